"""Evidence bundle: verify, tampering, redaction, compare — on a synthetic run.

Real runs against the reference provider are covered in ``tests/selfcheck``; here every
branch of ``verify`` is driven with a bundle whose content we control.
"""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conformance.evidence import verify as V
from conformance.evidence.compare import compare
from conformance.profile import load_profile
from conformance.reporting import validate_report, write_all
from conformance.results import CheckResult, RunResults
from conformance.verdicts import Verdict

SECRET_JWT = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJwbGFudGVkLXNlY3JldCJ9.c2lnbmF0dXJlLXBsYW50ZWQ"
SECRET_KEY_HEX = "7f" * 32
SECRET_PEM = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIPLANTEDPLANTEDPLANTEDPLANTEDPLANTED\n-----END PRIVATE KEY-----"


def make_results(verdict_for: dict[str, Verdict] | None = None) -> RunResults:
    profile = load_profile("core")
    verdict_for = verdict_for or {}
    res = RunResults(kit_version="0.1.0", profile_name="core", profile_version=profile.profile_version,
                     profile_requirements=list(profile.requirements), target="http://127.0.0.1:1",
                     harness="http://127.0.0.1:2", vectors_version="1.0.0", declaration_digest="",
                     started="2026-01-01T00:00:00+00:00", finished="2026-01-01T00:01:00+00:00")
    for r in profile.requirements:
        v = verdict_for.get(r.id, Verdict.PASS)
        res.checks.append(CheckResult(
            nodeid=f"suite/test_{r.area}.py::test_{r.id.replace('-', '_')}", requirements=(r.id,),
            verdict=v, duration=0.01,
            message=f"observed token {SECRET_JWT}" if v is Verdict.FAIL else "",
            evidence=[{"t": 1, "kind": "http", "detail": {"authorization": f"Bearer {SECRET_JWT}",
                                                          "media_key": SECRET_KEY_HEX,
                                                          "body": SECRET_PEM, "status": 200}}],
            exchanges=1))
    return res


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    write_all(make_results(), tmp_path)
    return tmp_path / "evidence.zip"


def test_reports_are_valid_and_bundle_verifies(bundle: Path):
    report = json.loads((bundle.parent / "report.json").read_text())
    assert validate_report(report) == []
    assert report["result"] == "PASS"
    got, notes = V.verify(bundle)
    assert got["summary"]["by_verdict"]["PASS"] == len(load_profile("core").requirements)
    assert notes  # says the key beside the bundle proves integrity only


def _rewrite(bundle: Path, change) -> None:
    with zipfile.ZipFile(bundle) as zf:
        files = {i.filename: zf.read(i.filename) for i in zf.infolist()}
    change(files)
    with zipfile.ZipFile(bundle, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)


@pytest.mark.parametrize("change", [
    lambda f: f.__setitem__("report.html", f["report.html"] + b" "),
    lambda f: f.__setitem__("extra.txt", b"added"),
    lambda f: f.pop("junit.xml"),
    lambda f: f.__setitem__("manifest.json", f["manifest.json"].replace(b'"PASS"', b'"FAIL"')),
], ids=["changed-file", "added-file", "removed-file", "changed-manifest"])
def test_tampering_with_the_bundle_is_detected(bundle: Path, change):
    _rewrite(bundle, change)
    with pytest.raises(V.VerifyError) as ei:
        V.verify(bundle)
    assert ei.value.code == V.EXIT_TAMPERED


@pytest.mark.parametrize("byte", [0, 31, 63])
def test_any_changed_signature_byte_is_detected(bundle: Path, byte: int):
    sig_path = bundle.with_name("evidence.zip.sig")
    sig = bytearray(bytes.fromhex(sig_path.read_text().strip()))
    sig[byte] ^= 0x01
    sig_path.write_text(sig.hex())
    with pytest.raises(V.VerifyError) as ei:
        V.verify(bundle)
    assert ei.value.code == V.EXIT_TAMPERED


def test_wrong_public_key_is_tampered(bundle: Path, tmp_path: Path):
    other = tmp_path / "other"
    write_all(make_results(), other)
    with pytest.raises(V.VerifyError) as ei:
        V.verify(bundle, public_key=other / "evidence.pub.pem")
    assert ei.value.code == V.EXIT_TAMPERED


def test_failed_and_incomplete_runs_have_their_exit_codes(tmp_path: Path):
    failed = tmp_path / "failed"
    write_all(make_results({"ENL-001": Verdict.FAIL}), failed)
    with pytest.raises(V.VerifyError) as ei:
        V.verify(failed / "evidence.zip")
    assert ei.value.code == V.EXIT_FAILED and "ENL-001" in str(ei.value)
    incomplete = tmp_path / "incomplete"
    write_all(make_results({"CHN-002": Verdict.NOT_TESTED}), incomplete)
    with pytest.raises(V.VerifyError) as ei:
        V.verify(incomplete / "evidence.zip")
    assert ei.value.code == V.EXIT_INCOMPLETE


def test_cli_exit_codes(bundle: Path, tmp_path: Path):
    cmd = [sys.executable, "-m", "conformance.cli", "verify"]
    assert subprocess.run(cmd + [str(bundle)], capture_output=True).returncode == 0
    assert subprocess.run(cmd + [str(tmp_path / "nope.zip")], capture_output=True).returncode == 2


def test_planted_secrets_appear_in_no_written_file(bundle: Path):
    blobs = [p.read_bytes() for p in bundle.parent.iterdir() if p.is_file()]
    with zipfile.ZipFile(bundle) as zf:
        blobs += [zf.read(n) for n in zf.namelist()]
    for blob in blobs:
        for secret in (SECRET_JWT, SECRET_KEY_HEX, "PLANTEDPLANTED"):
            assert secret.encode() not in blob


def test_compare_names_changes_by_requirement(tmp_path: Path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_all(make_results({"ENL-002": Verdict.FAIL}), a)
    write_all(make_results({"ENL-001": Verdict.FAIL}), b)
    diff = compare(json.loads((a / "report.json").read_text()), json.loads((b / "report.json").read_text()))
    assert diff["newly_failing"] == ["ENL-001"]
    assert diff["newly_passing"] == ["ENL-002"]
    assert {c["id"] for c in diff["changed"]} == {"ENL-001", "ENL-002"}
    out = subprocess.run([sys.executable, "-m", "conformance.cli", "compare", str(a / "evidence.zip"),
                          str(b / "report.json"), "--json"], capture_output=True, text=True)
    assert out.returncode == 1 and json.loads(out.stdout)["newly_failing"] == ["ENL-001"]
