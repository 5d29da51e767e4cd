"""Our WA Noise handshake (``reference_impl.wa.noise``) against Baileys 6.17.16's noise handler.

Both directions, driven by feeding bytes through the adapter (no socket): our ``WAServer`` with
Baileys' client exactly as ``lib/Socket/socket.js`` runs it (our server key and chain, Baileys'
own ``ClientPayload`` encoding), and our ``WAClient`` with a responder built on Baileys'
primitives. Then stanzas both ways over the transport. Skips without node/npm, fails under CI.
"""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baileys_client  # noqa: E402
from peers_client import Peer, ProvisioningError  # noqa: E402
from test_wa_baileys import STANZAS, to_json  # noqa: E402

from reference_impl.signal import xeddsa  # noqa: E402
from reference_impl.signal.keys import KeyPair  # noqa: E402
from reference_impl.signal.rng import DeterministicRng  # noqa: E402
from reference_impl.wa import certs, noise  # noqa: E402
from reference_impl.wa.binary_xml import decode, encode  # noqa: E402
from reference_impl.wa.frame import pack_payload, unpack_payload  # noqa: E402
from reference_impl.wa.wa_handshake_pb2 import CertChain, ClientPayload  # noqa: E402

TOKEN = b"eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIxMDg1MzYzNDAzOTg5MyJ9.c2ln"
ACCOUNT = 10853634039893


@pytest.fixture(scope="module")
def baileys_dir() -> Path:
    try:
        return baileys_client.ensure_baileys_noise()
    except ProvisioningError as exc:
        if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
            pytest.fail(f"Baileys noise oracle unavailable under CI: {exc}", pytrace=False)
        pytest.skip(f"Baileys noise oracle unavailable: {exc}")


@pytest.fixture
def peer(baileys_dir: Path) -> Iterator[Peer]:
    p = baileys_client.baileys_noise_peer(baileys_dir)
    assert p.ops() and p.impl == "baileys-6.17.16"
    yield p
    p.close()


class Keys:
    def __init__(self, seed: str = "baileys-noise") -> None:
        self.rng = DeterministicRng(seed)
        self.root, self.inter, self.server, self.client, self.ce, self.se = (
            KeyPair.generate(self.rng) for _ in range(6))

    def chain(self, **kw) -> bytes:
        kw.setdefault("server_static", self.server.public.u)
        return certs.make_cert_chain(root=self.root.private, intermediate=self.inter, rng=self.rng, **kw)

    def server_conn(self, chain: bytes | None = None) -> noise.WAServer:
        return noise.WAServer(static=self.server, cert_chain=chain or self.chain(), rng=self.rng)


BAILEYS_PAYLOAD = {"product": "INTEROP", "interopData": {"accountId": str(ACCOUNT),
                                                         "token": base64.b64encode(TOKEN).decode()},
                   "userAgent": {"appVersion": {"primary": 1, "secondary": 0, "tertiary": 0}}}


def _client_start(peer: Peer, k: Keys) -> bytes:
    r = peer.call("client_start", noise_private=k.client.private.serialize().hex(),
                  ephemeral_private=k.ce.private.serialize().hex(), payload=BAILEYS_PAYLOAD, check=True)
    return bytes.fromhex(r["hex"])


def test_oracle_constants_are_the_ones_we_use(peer: Peer) -> None:
    r = peer.call("ops", check=True)
    assert r["noise_mode"].encode() == noise.NOISE_MODE
    assert bytes.fromhex(r["header"]) == b"WA\x06\x02" and r["cert_serial"] == certs.ROOT_SERIAL


def test_our_server_with_baileys_client(peer: Peer) -> None:
    k = Keys()
    server = k.server_conn()
    m0 = _client_start(peer, k)
    assert server.receive_data(m0) == []
    r = peer.call("client_receive", hex=server.data_to_send().hex(), check=True)
    (auth,) = server.receive_data(bytes.fromhex(r["send"]))
    assert isinstance(auth, noise.ClientAuthenticated)
    assert auth.client_static == k.client.public.u
    assert auth.payload.product == ClientPayload.INTEROP
    assert auth.payload.interopData.token == TOKEN and auth.payload.interopData.accountId == ACCOUNT
    assert auth.payload.userAgent.appVersion.primary == 1
    # transport: Baileys encodes + encrypts, we decrypt + decode; then the other way round
    for node in STANZAS:
        r = peer.call("client_send", node=to_json(node), check=True)
        (frame_ev,) = server.receive_data(bytes.fromhex(r["hex"]))
        assert to_json(decode(unpack_payload(frame_ev.data))) == to_json(node)
    for i, node in enumerate(STANZAS):
        server.send(pack_payload(encode(node), compress=bool(i % 2)))
    r = peer.call("client_receive", hex=server.data_to_send().hex(), check=True)
    assert r["nodes"] == [to_json(n) for n in STANZAS]


def test_our_server_rejects_a_tampered_baileys_client_finish(peer: Peer) -> None:
    k = Keys()
    server = k.server_conn()
    server.receive_data(_client_start(peer, k))
    m2 = bytes.fromhex(peer.call("client_receive", hex=server.data_to_send().hex(), check=True)["send"])
    with pytest.raises(noise.DecryptFailed):
        server.receive_data(m2[:-1] + bytes([m2[-1] ^ 1]))


def test_baileys_rejects_a_tampered_server_hello(peer: Peer) -> None:
    k = Keys()
    server = k.server_conn()
    server.receive_data(_client_start(peer, k))
    m1 = bytearray(server.data_to_send())
    m1[50] ^= 1  # inside the encrypted server static
    r = peer.call("client_receive", hex=bytes(m1).hex())
    assert not r["ok"] and "authenticate" in r["message"]


def test_baileys_checks_only_the_issuer_serial(peer: Peer) -> None:
    """Disagreement recorded in docs/wa-binding.md: Baileys rejects issuerSerial != 0 but verifies
    no signature, so it accepts a chain with zeroed signatures that our client rejects."""
    k = Keys()
    D = CertChain.NoiseCertificate.Details
    bad_serial = CertChain()
    bad_serial.intermediate.details = D(serial=1, issuerSerial=7, key=k.inter.public.u).SerializeToString()
    bad_serial.intermediate.signature = xeddsa.sign(k.root.private, bad_serial.intermediate.details, k.rng)
    bad_serial.leaf.details = D(serial=2, issuerSerial=1, key=k.server.public.u).SerializeToString()
    bad_serial.leaf.signature = xeddsa.sign(k.inter.private, bad_serial.leaf.details, k.rng)
    server = k.server_conn(bad_serial.SerializeToString())
    server.receive_data(_client_start(peer, k))
    r = peer.call("client_receive", hex=server.data_to_send().hex())
    assert not r["ok"] and "certification match failed" in r["message"]

    unsigned = CertChain()
    unsigned.ParseFromString(k.chain())
    unsigned.intermediate.signature = bytes(64)
    unsigned.leaf.signature = bytes(64)
    chain = unsigned.SerializeToString()
    server = k.server_conn(chain)
    server.receive_data(_client_start(peer, k))
    m1 = server.data_to_send()
    r = peer.call("client_receive", hex=m1.hex(), check=True)
    assert "send" in r  # Baileys finished the handshake
    ours = noise.WAClient(static=k.client, ephemeral=k.ce, payload=b"", root_public=k.root.public.u)
    ours.start()
    server = noise.WAServer(static=k.server, cert_chain=chain, ephemeral=k.se, rng=k.rng)
    server.receive_data(ours.data_to_send())
    with pytest.raises(certs.CertificateError, match="intermediate signature"):
        ours.receive_data(server.data_to_send())


def test_our_client_with_a_baileys_primitives_responder(peer: Peer) -> None:
    k = Keys("client-side")
    client = noise.WAClient(static=k.client, root_public=k.root.public.u, rng=k.rng,
                            payload=noise.interop_payload(token=TOKEN, account_id=ACCOUNT,
                                                          enable_read_receipts=True, app_version=(1, 0, 0)))
    client.start()
    r = peer.call("server_start", hex=client.data_to_send().hex(), cert_chain=k.chain().hex(),
                  static_private=k.server.private.serialize().hex(),
                  ephemeral_private=k.se.private.serialize().hex(), check=True)
    (done,) = client.receive_data(bytes.fromhex(r["send"]))
    assert done == noise.HandshakeComplete(k.server.public.u)
    r = peer.call("server_receive", hex=client.data_to_send().hex(), check=True)
    assert bytes.fromhex(r["client_static"]) == k.client.public.u
    p = r["payload"]
    assert p["product"] == "INTEROP"
    assert base64.b64decode(p["interopData"]["token"]) == TOKEN
    assert p["interopData"]["accountId"] == str(ACCOUNT)
    # enableReadReceipts (field 3, S13) is unknown to Baileys' InteropData: decoded as unknown
    assert "enableReadReceipts" not in p["interopData"]
    for node in STANZAS:
        client.send(pack_payload(encode(node)))
    r = peer.call("server_receive", hex=client.data_to_send().hex(), check=True)
    assert r["nodes"] == [to_json(n) for n in STANZAS]
    for node in STANZAS:
        r = peer.call("server_send", node=to_json(node), check=True)
        (ev,) = client.receive_data(bytes.fromhex(r["hex"]))
        assert to_json(decode(unpack_payload(ev.data))) == to_json(node)


def test_baileys_responder_rejects_our_client_under_another_prologue(peer: Peer) -> None:
    """The header is the prologue: a client that sends 'WA' 6 2 but hashes another header fails."""
    k = Keys("prologue")
    client = noise.WAClient(static=k.client, root_public=k.root.public.u, rng=k.rng,
                            payload=noise.interop_payload(token=TOKEN), header=b"WA\x06\x03")
    client.start()
    wire = b"WA\x06\x02" + client.data_to_send()[4:]
    r = peer.call("server_start", hex=wire.hex(), cert_chain=k.chain().hex(),
                  static_private=k.server.private.serialize().hex(),
                  ephemeral_private=k.se.private.serialize().hex(), check=True)
    with pytest.raises(noise.DecryptFailed):
        client.receive_data(bytes.fromhex(r["send"]))
