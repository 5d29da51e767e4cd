"""The `wa` vectors checked by an independent implementation: the adapter around Baileys 6.17.16
(``vectors/adapters/baileys/adapter.js``, provisioned by ``vectors.adapters.npm_peers``).

Every vector must pass, or fail only where Baileys is known to differ: the exact tcIds are pinned
here, so a declared deviation cannot hide a new failure, and a deviation that no longer fails must
be removed. Skips without node/npm, fails when ``CI`` is set (as the npm libsignal adapter test).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from vectors import check
from vectors.adapters import SubprocessAdapter
from vectors.areas import AREAS

VECTORS = Path(check.__file__).resolve().parent
WA_AREAS = {a.FILE: a for a in AREAS if a.FILE in ("wa_binary_xml_test.json", "wa_handshake_test.json")}

#: tcIds where Baileys 6.17.16 differs from the vectors, with the flag its adapter declares.
KNOWN: dict[str, dict[int, str]] = {
    "wa_binary_xml_test.json": {
        14: "InteropJid", 30: "InteropJid", 34: "InteropJid",  # no token 245
        29: "TokenKinds",  # AD_JID device 0 reads back without device
        45: "TrailingBytes", 52: "BadPacked", 54: "BadJid",
        56: "BadNode", 57: "BadNode", 58: "BadNode", 67: "CompressionLie",
    },
    "wa_handshake_test.json": {12: "WrongRoot", 16: "CertSignature", 17: "CertMismatch"},
}


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _load(name: str) -> dict:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def adapter():
    from vectors.adapters.npm_peers import ProvisioningError, baileys_adapter_command

    try:
        command = baileys_adapter_command()
    except ProvisioningError as exc:
        reason = f"Baileys vectors adapter unavailable: {exc}"
        if _in_ci():
            pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)", pytrace=False)
        pytest.skip(reason)
    a = SubprocessAdapter(command)
    yield a
    a.close()


@pytest.mark.interop
def test_every_wa_vector_passes_or_is_a_declared_deviation(adapter: SubprocessAdapter) -> None:
    results = check.run(adapter, VECTORS, ["wa_binary_xml", "wa_handshake"])
    assert [r.file for r in results] == list(WA_AREAS)
    for r in results:
        assert not r.failures, "\n".join(r.failures)
        assert r.passed + r.skipped == r.total == _load(r.file)["numberOfTests"]
        assert r.skipped == len(KNOWN[r.file]), r.skips
        assert all(reason.startswith("known deviation") for reason in r.skips), r.skips
    info = adapter.info
    assert info["implementation"] == {"name": "baileys", "version": "6.17.16"}
    assert set(info["ops"]) == {"wa_binary_decode", "wa_binary_encode", "wa_payload_decode", "wa_handshake"}


@pytest.mark.interop
def test_baileys_differs_exactly_where_declared(adapter: SubprocessAdapter) -> None:
    """Without the deviations, exactly the pinned tcIds fail, each carrying its declared flag."""
    declared = adapter.info["known_deviations"]
    assert set(declared) <= {flag for name in WA_AREAS for flag in _load(name)["notes"]}
    failing: dict[str, dict[int, list[str]]] = {}
    for name, area in WA_AREAS.items():
        for group in _load(name)["testGroups"]:
            for test in group["tests"]:
                if area.check(group, test, adapter).status != "passed":
                    failing.setdefault(name, {})[test["tcId"]] = test["flags"]
    assert {n: set(t) for n, t in failing.items()} == {n: set(t) for n, t in KNOWN.items()}
    for name, tests in KNOWN.items():
        for tc, flag in tests.items():
            assert flag in failing[name][tc] and flag in declared, (name, tc, flag)
    assert set(declared) == {f for tests in KNOWN.values() for f in tests.values()}, "unused deviation"


@pytest.mark.interop
def test_a_wrong_expectation_fails_through_the_adapter(adapter: SubprocessAdapter, tmp_path: Path) -> None:
    """The adapter's answers are compared, not waved through: corrupt one expected value per area."""
    xml = _load("wa_binary_xml_test.json")
    test = xml["testGroups"][0]["tests"][0]
    test["encoded"] = test["encoded"][:-2] + ("00" if test["encoded"][-2:] != "00" else "01")
    hs = _load("wa_handshake_test.json")
    hs["testGroups"][0]["tests"][0]["handshakeHash"] = "00" * 32
    for doc, name in ((xml, "wa_binary_xml_test.json"), (hs, "wa_handshake_test.json")):
        (tmp_path / name).write_text(json.dumps(doc), encoding="utf-8")
    results = check.run(adapter, tmp_path, ["wa_binary_xml", "wa_handshake"])
    assert [len(r.failures) for r in results] == [1, 1], [r.failures for r in results]
    assert "tcId 1" in results[0].failures[0] and "handshake_hash" in results[1].failures[0]


def test_node_missing_is_a_provisioning_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """No node on PATH: a ProvisioningError (the fixture's skip / CI failure), not a traceback."""
    from vectors.adapters import npm_peers

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(npm_peers.ProvisioningError, match="node and npm are needed"):
        npm_peers.baileys_adapter_command()
