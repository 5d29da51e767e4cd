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
    got, notes, pinned = V.verify(bundle)
    assert pinned is None
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
    write_all(make_results({"ENL-009": Verdict.FAIL}), failed)
    with pytest.raises(V.VerifyError) as ei:
        V.verify(failed / "evidence.zip")
    assert ei.value.code == V.EXIT_FAILED and "ENL-009" in str(ei.value)
    incomplete = tmp_path / "incomplete"
    write_all(make_results({"CHN-002": Verdict.NOT_TESTED}), incomplete)
    with pytest.raises(V.VerifyError) as ei:
        V.verify(incomplete / "evidence.zip")
    assert ei.value.code == V.EXIT_INCOMPLETE


def test_cli_exit_codes(bundle: Path, tmp_path: Path):
    cmd = [sys.executable, "-m", "conformance.cli", "verify"]
    unpinned = subprocess.run(cmd + [str(bundle)], capture_output=True, text=True)
    assert unpinned.returncode == V.EXIT_UNVERIFIED and "signer unverified" in unpinned.stdout
    pinned = subprocess.run(cmd + [str(bundle), "--public-key", str(bundle.with_name("evidence.pub.pem"))],
                            capture_output=True, text=True)
    assert pinned.returncode == 0 and pinned.stdout.startswith("OK:")
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
    write_all(make_results({"ENL-009": Verdict.FAIL}), b)
    diff = compare(json.loads((a / "report.json").read_text()), json.loads((b / "report.json").read_text()))
    assert diff["newly_failing"] == ["ENL-009"]
    assert diff["newly_passing"] == ["ENL-002"]
    assert {c["id"] for c in diff["changed"]} == {"ENL-009", "ENL-002"}
    out = subprocess.run([sys.executable, "-m", "conformance.cli", "compare", str(a / "evidence.zip"),
                          str(b / "report.json"), "--json"], capture_output=True, text=True)
    assert out.returncode == 1 and json.loads(out.stdout)["newly_failing"] == ["ENL-009"]


def _forge(bundle: Path, tmp_path: Path) -> None:
    """Flip a FAIL to PASS and re-sign with another key, shipping that key beside the bundle."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from conformance.evidence import bundle as B

    with zipfile.ZipFile(bundle) as zf:
        files = {n: zf.read(n) for n in zf.namelist() if n != "manifest.json"}
    report = json.loads(files["report.json"])
    for r in report["requirements"]:
        r["verdict"] = "PASS"
        r["message"] = ""
    report["result"] = "PASS"
    report["summary"]["by_verdict"] = {k: 0 for k in report["summary"]["by_verdict"]}
    report["summary"]["by_verdict"]["PASS"] = len(report["requirements"])
    other = Ed25519PrivateKey.generate()
    report["signer_fingerprint"] = B.fingerprint(other)
    files["report.json"] = json.dumps(report).encode()
    for name, data in B.bundle_files(files, report, other).items():
        (bundle.parent / name).write_bytes(data)


def test_forged_bundle_is_tampered_with_a_pin_and_unverified_without(tmp_path: Path):
    real = tmp_path / "real"
    write_all(make_results({"ENL-009": Verdict.FAIL}), real)
    good_pub = (real / "evidence.pub.pem").read_bytes()
    pin = json.loads((real / "report.json").read_text())["signer_fingerprint"]
    (tmp_path / "ci.pub.pem").write_bytes(good_pub)
    _forge(real / "evidence.zip", tmp_path)
    b = str(real / "evidence.zip")
    assert V.main([b, "--public-key", str(tmp_path / "ci.pub.pem")]) == V.EXIT_TAMPERED
    assert V.main([b, "--fingerprint", pin]) == V.EXIT_TAMPERED
    (tmp_path / "allowed").write_text(f"# CI key\n{pin}\n")
    assert V.main([b, "--allowed-signers", str(tmp_path / "allowed")]) == V.EXIT_TAMPERED
    assert V.main([b]) == V.EXIT_UNVERIFIED


def test_fingerprint_is_in_manifest_and_report_and_pins(bundle: Path):
    with zipfile.ZipFile(bundle) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    report = json.loads(bundle.with_name("report.json").read_text())
    assert manifest["signer_fingerprint"] == report["signer_fingerprint"]
    assert V.main([str(bundle), "--fingerprint", report["signer_fingerprint"]]) == V.EXIT_OK
    assert V.main([str(bundle), "--fingerprint", "0" * 64]) == V.EXIT_TAMPERED
    assert V.main([str(bundle), "--fingerprint", "xyz"]) == V.EXIT_USAGE


def _raw_zip(bundle: Path, extra) -> None:
    with zipfile.ZipFile(bundle) as zf:
        entries = [(i, zf.read(i)) for i in zf.infolist()]
    with zipfile.ZipFile(bundle, "w") as zf:
        for info, data in entries:
            zf.writestr(info, data)
        extra(zf, dict((i.filename, d) for i, d in entries))


def _symlink(zf, files):
    info = zipfile.ZipInfo("wire/link.jsonl")
    info.external_attr = 0o120777 << 16
    zf.writestr(info, "report.json")


def _encrypted(zf, files):
    info = zipfile.ZipInfo("x.bin")
    info.flag_bits = 0x1
    zf.writestr(info, b"x")


@pytest.mark.parametrize("extra", [
    lambda zf, f: zf.writestr("report.json", f["report.json"].replace(b'"PASS"', b'"FAIL"', 1)),
    _symlink, _encrypted, lambda zf, f: zf.writestr("wire/", b""),
], ids=["duplicate-name", "symlink", "encrypted-flag", "directory"])
def test_unsafe_entries_are_tampered(bundle: Path, extra):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name we plant
        _raw_zip(bundle, extra)
    assert V.main([str(bundle), "--public-key", str(bundle.with_name("evidence.pub.pem"))]) == V.EXIT_TAMPERED


def test_legacy_bundle_without_fingerprint_still_verifies(tmp_path: Path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives import serialization
    from conformance.evidence import bundle as B

    write_all(make_results(), tmp_path)
    with zipfile.ZipFile(tmp_path / "evidence.zip") as zf:
        files = {n: zf.read(n) for n in zf.namelist() if n != "manifest.json"}
    report = json.loads(files["report.json"])
    report.pop("signer_fingerprint"), report.pop("interrupted")
    files["report.json"] = json.dumps(report).encode()
    manifest = json.loads(B.manifest_for(files, report, "0" * 64))
    manifest.pop("signer_fingerprint")
    manifest["format"] = "1.0.0"
    mbytes = json.dumps(manifest).encode()
    key = Ed25519PrivateKey.generate()
    (tmp_path / "evidence.zip").write_bytes(B._zip_bytes(files, mbytes))
    (tmp_path / "evidence.zip.sig").write_text(key.sign(mbytes).hex())
    (tmp_path / "k.pem").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (tmp_path / "evidence.pub.pem").write_bytes((tmp_path / "k.pem").read_bytes())
    assert V.main([str(tmp_path / "evidence.zip")]) == V.EXIT_UNVERIFIED
    assert V.main([str(tmp_path / "evidence.zip"), "--public-key", str(tmp_path / "k.pem")]) == V.EXIT_OK
