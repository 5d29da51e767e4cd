"""The run's own secrets are redacted by value (issue 13 §2): G's Noise static key and signing
keys, once the real simulator state has created them, disappear from check messages, wire
evidence, every report file and the evidence bundle in every common encoding, even where no
shape rule would recognise them (a key embedded in a longer token, under an innocent name)."""
from __future__ import annotations

import base64
import zipfile
from pathlib import Path

import pytest

from conformance.gatekeeper.state import GatekeeperState
from conformance.gatekeeper.tokens import SigningKey, _private_scalars
from conformance.profile import load_profile
from conformance.redact import quote_untrusted, redact, redact_known, redact_text, register_secret
from conformance.reporting import write_all
from conformance.results import CheckResult, RunResults
from conformance.verdicts import Verdict


def _forms(raw: bytes) -> list[str]:
    b64, url = base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()
    return [raw.hex(), raw.hex().upper(), b64, b64.rstrip("="), url.rstrip("=")]


def test_every_encoding_of_a_registered_secret_is_replaced_and_nothing_else():
    raw = bytes(range(100, 132))
    register_secret(raw, "planted test key")
    for form in _forms(raw):
        text = f"id=A{form}Z next"  # glued to other characters: no shape rule sees a key here
        out = redact_text(text)
        assert form not in out and "<redacted:known-secret:planted test key>" in out, (form, out)
        assert out.startswith("id=A") and out.endswith("Z next")
    assert redact_known("nothing secret here 0123") == "nothing secret here 0123"
    with pytest.raises(ValueError):
        register_secret(b"short", "too short")


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_the_simulator_registers_its_keys_when_it_creates_them(alg):
    state = GatekeeperState(key_alg=alg)
    secrets = [state.noise_private] + _private_scalars(SigningKey(alg)._key)
    for raw in secrets:
        for form in _forms(raw):
            assert form not in redact_text(f"x{form}x"), (alg, form)
            assert form not in quote_untrusted(f"x{form}x".encode(), limit=400)


def test_no_registered_secret_reaches_any_report_file(tmp_path: Path):
    state = GatekeeperState()
    needles = _forms(state.noise_private)
    profile = load_profile("core")
    res = RunResults(kit_version="0.1.0", profile_name="core", profile_version=profile.profile_version,
                     profile_requirements=list(profile.requirements), target="http://127.0.0.1:1",
                     harness="", vectors_version="1.0.0", declaration_digest="",
                     started="2026-01-01T00:00:00+00:00", finished="2026-01-01T00:01:00+00:00")
    for i, r in enumerate(profile.requirements):
        form = needles[i % len(needles)]
        res.checks.append(CheckResult(
            nodeid=f"suite/test_{r.area}.py::test_{r.id.replace('-', '_')}", requirements=(r.id,),
            verdict=Verdict.FAIL, duration=0.01, message=f"observed: the provider echoed k{form}k",
            evidence=[{"t": 1, "kind": "http", "detail": {"note": f"v={form};", "status": 200}}],
            exchanges=1))
    write_all(res, tmp_path)
    blobs = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with zipfile.ZipFile(tmp_path / "evidence.zip") as z:
        blobs.update({f"evidence.zip:{n}": z.read(n) for n in z.namelist()})
    leaks = [(name, f) for name, data in blobs.items() for f in needles if f.encode() in data]
    assert not leaks, leaks
    assert b"known-secret:gatekeeper Noise static key" in blobs["report.json"]
    assert redact({"x": needles[0]}) == {"x": "<redacted:known-secret:gatekeeper Noise static key>"}
