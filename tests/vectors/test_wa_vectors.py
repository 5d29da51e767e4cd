"""The `wa` vector areas catch the bugs they name (a vector that cannot fail is not a vector)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reference_impl.wa import noise
from reference_impl.wa.binary_xml import JID, Node
from reference_impl.wa.certs import CertificateError
from reference_impl.wa.node_json import node_from_json, node_to_json
from reference_impl.wa.wa_handshake_pb2 import CertChain
from vectors import check
from vectors.adapters import InProcessAdapter

VECTORS = Path(check.__file__).resolve().parent


def _load(name: str) -> dict:
    return json.loads((VECTORS / name).read_text())


def _failures(area: str) -> dict[int, str]:
    (res,) = check.run(InProcessAdapter(), VECTORS, [area])
    out = {}
    for line in res.failures:
        tc = int(line.split("tcId ")[1].split(" ")[0])
        out[tc] = line
    return out


def _by_flag(name: str, flag: str) -> set[int]:
    return {t["tcId"] for g in _load(name)["testGroups"] for t in g["tests"] if flag in t["flags"]}


def test_framework_example_vector_carries_the_public_bytes() -> None:
    (t,) = [t for g in _load("wa_binary_xml_test.json")["testGroups"] for t in g["tests"]
            if "FrameworkExample" in t["flags"]]
    assert t["publicPrefix"] == bytes([248, 12, 19, 17, 250, 255, 134, 20, 21, 85, 81, 0, 31, 3]).hex()
    assert t["encoded"].startswith(t["publicPrefix"])


def test_baileys_level_certificate_check_fails_the_signature_vectors(monkeypatch) -> None:
    """Baileys 6.17.16 only checks intermediate issuerSerial == 0: those vectors must catch it."""
    def baileys_check(data: bytes, *, server_static: bytes, root_public: bytes, now=None):
        chain = CertChain()
        chain.ParseFromString(data)
        d = CertChain.NoiseCertificate.Details()
        d.ParseFromString(chain.intermediate.details)
        if d.issuerSerial != 0:
            raise CertificateError("certification match failed")
    monkeypatch.setattr(noise, "verify_cert_chain", baileys_check)
    failed = _failures("wa_handshake")
    name = "wa_handshake_test.json"
    wrong_root = _by_flag(name, "WrongRoot")
    expected = _by_flag(name, "CertSignature") | wrong_root | (
        _by_flag(name, "CertMismatch") - {t["tcId"] for g in _load(name)["testGroups"] for t in g["tests"]
                                          if "issuerSerial" in t["comment"]})
    assert set(failed) == expected and expected


def test_standard_noise_hashing_fails_every_valid_handshake_vector(monkeypatch) -> None:
    """An implementation that hashes message 1's empty payload (standard Noise) fails them."""
    real_start = noise.WAClient.start
    real_on = noise.WAServer._on_handshake

    def start(self):
        real_start(self)
        self._ss.mix_hash(b"")

    def on(self, frame):
        if self._state is noise._State.WAIT_HELLO:
            orig = self._ss.mix_hash
            calls = []

            def mh(data):
                orig(data)
                calls.append(data)
                if len(calls) == 2:  # after header, client e
                    orig(b"")
            self._ss.mix_hash = mh
            try:
                return real_on(self, frame)
            finally:
                del self._ss.mix_hash
        return real_on(self, frame)
    monkeypatch.setattr(noise.WAClient, "start", start)
    monkeypatch.setattr(noise.WAServer, "_on_handshake", on)
    failed = _failures("wa_handshake")
    assert _by_flag("wa_handshake_test.json", "WAHandshake") <= set(failed)


def test_sorted_attributes_fail_the_codec_vectors(monkeypatch) -> None:
    """Attribute order is part of the bytes; an encoder that reorders them is caught."""
    from reference_impl.wa import binary_xml
    real = binary_xml._Writer.node

    def node(self, n, depth):
        return real(self, Node(n.tag, dict(sorted(n.attrs.items())), n.content), depth)
    monkeypatch.setattr(binary_xml._Writer, "node", node)
    assert len(_failures("wa_binary_xml")) >= 5


@pytest.mark.parametrize("node", [
    Node("iq", {"b": "1", "a": JID("x", "interop", 1, 2)}, [Node("c", {}, b"\x00"), Node("d", {}, "s")]),
    Node("user", {}, JID("1", "s.whatsapp.net", 3)),
])
def test_node_json_round_trip_keeps_attribute_order(node: Node) -> None:
    j = node_to_json(node)
    assert list(node_from_json(json.loads(json.dumps(j, sort_keys=True))).attrs) == list(node.attrs)
    assert node_from_json(j) == node


@pytest.mark.parametrize("bad", [
    {"tag": 1}, {"tag": "a", "attrs": {"k": "v"}}, {"tag": "a", "attrs": [["k", "v"], ["k", "w"]]},
    {"tag": "a", "content": {"x": 1}}, {"tag": "a", "attrs": [["k", {"user": "u"}]]},
])
def test_node_json_rejects_malformed(bad) -> None:
    with pytest.raises(ValueError):
        node_from_json(bad)
