"""Profile 1.1.0 against 1.0.0: old bundles still verify, against the requirements of the
version they name; ``compare`` across versions says which requirements changed meaning."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from conformance.catalog import CATALOG_PATH, CatalogError, load_catalog, meaning_changes, requirements_at
from conformance.evidence import verify as V
from conformance.evidence.compare import compare
from conformance.reporting import write_all

from .test_evidence_bundle import make_results


def _resign(bundle: Path, edit) -> Path:
    """Rewrite report.json inside a bundle and sign it again with a fresh key; returns its PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from conformance.evidence import bundle as B

    with zipfile.ZipFile(bundle) as zf:
        files = {n: zf.read(n) for n in zf.namelist() if n != "manifest.json"}
    report = json.loads(files["report.json"])
    edit(report)
    key = Ed25519PrivateKey.generate()
    report["signer_fingerprint"] = B.fingerprint(key)
    files["report.json"] = json.dumps(report).encode()
    for name, data in B.bundle_files(files, report, key).items():
        (bundle.parent / name).write_bytes(data)
    pem = bundle.parent / "pinned.pem"
    pem.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return pem


def _as_1_0_0(report: dict) -> None:
    """What a 1.0.0-era kit wrote: no milestones, selection or provenance."""
    report["profile"]["version"] = "1.0.0"
    report.pop("milestones"), report.pop("selection")
    for r in report["requirements"]:
        r.pop("provenance"), r.pop("milestone")


def test_current_bundle_names_1_1_0_and_verifies(tmp_path: Path):
    write_all(make_results(), tmp_path)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["profile"]["version"] == "1.1.0"
    assert V.main([str(tmp_path / "evidence.zip"), "--public-key", str(tmp_path / "evidence.pub.pem")]) == V.EXIT_OK


def test_an_old_1_0_0_bundle_still_verifies(tmp_path: Path):
    write_all(make_results(), tmp_path)
    pem = _resign(tmp_path / "evidence.zip", _as_1_0_0)
    assert V.main([str(tmp_path / "evidence.zip"), "--public-key", str(pem)]) == V.EXIT_OK
    report, _, _ = V.verify(tmp_path / "evidence.zip", public_key=pem)
    assert report["profile"]["version"] == "1.0.0" and "milestones" not in report


def test_an_old_bundle_missing_a_1_0_0_requirement_is_incomplete(tmp_path: Path):
    write_all(make_results(), tmp_path)

    def drop(report: dict) -> None:
        _as_1_0_0(report)
        report["requirements"] = [r for r in report["requirements"] if r["id"] != "ENL-004"]
    pem = _resign(tmp_path / "evidence.zip", drop)
    with pytest.raises(V.VerifyError, match="ENL-004") as ei:
        V.verify(tmp_path / "evidence.zip", public_key=pem)
    assert ei.value.code == V.EXIT_INCOMPLETE


def test_a_report_from_a_newer_profile_version_is_refused(tmp_path: Path):
    write_all(make_results(), tmp_path)
    pem = _resign(tmp_path / "evidence.zip", lambda r: r["profile"].update(version="9.0.0"))
    with pytest.raises(V.VerifyError, match="newer") as ei:
        V.verify(tmp_path / "evidence.zip", public_key=pem)
    assert ei.value.code == V.EXIT_INCOMPLETE


@pytest.fixture
def catalog_with_a_withdrawal(tmp_path: Path) -> Path:
    """The real catalog, with ENL-001 withdrawn in 1.1.0 and replaced by ENL-002 (synthetic:
    1.1.0 itself withdraws nothing, but the machinery must work when a later version does)."""
    doc = yaml.safe_load(CATALOG_PATH.read_text(encoding="utf-8"))
    for r in doc["requirements"]:
        if r["id"] == "ENL-001":
            r["history"] = {"added": "1.0.0", "withdrawn": "1.1.0", "replaced_by": ["ENL-002"]}
    path = tmp_path / "requirements.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def test_withdrawn_requirements_belong_to_the_versions_that_had_them(catalog_with_a_withdrawal: Path):
    ids = lambda reqs: {r.id for r in reqs}  # noqa: E731
    assert "ENL-001" in ids(requirements_at("1.0.0", catalog_with_a_withdrawal))
    assert "ENL-001" not in ids(requirements_at("1.1.0", catalog_with_a_withdrawal))
    assert "ENL-001" not in ids(load_catalog(catalog_with_a_withdrawal))
    assert "ENL-001" in ids(load_catalog(catalog_with_a_withdrawal, include_withdrawn=True))
    assert meaning_changes("1.0.0", "1.1.0", catalog_with_a_withdrawal) == [
        {"id": "ENL-001", "withdrawn": "1.1.0", "replaced_by": ["ENL-002"], "title": "Enlistment request"}]
    assert meaning_changes("1.1.0", "1.0.0", catalog_with_a_withdrawal)[0]["id"] == "ENL-001"
    assert meaning_changes("1.1.0", "1.1.0", catalog_with_a_withdrawal) == []
    with pytest.raises(CatalogError):
        requirements_at("1.0", catalog_with_a_withdrawal)


def test_compare_across_versions_says_what_changed_meaning(tmp_path: Path, catalog_with_a_withdrawal: Path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_all(make_results(), a)
    write_all(make_results(), b)
    old = json.loads((a / "report.json").read_text())
    _as_1_0_0(old)
    new = json.loads((b / "report.json").read_text())
    diff = compare(old, new, catalog_with_a_withdrawal)
    pv = diff["profile_version"]
    assert (pv["from"], pv["to"]) == ("1.0.0", "1.1.0")
    assert [c["id"] for c in pv["changed_meaning"]] == ["ENL-001"]
    assert pv["text_changed"] == []
    # the real catalog: 1.1.0 changed no requirement's meaning
    assert compare(old, new)["profile_version"]["changed_meaning"] == []
    # same ID with different text is flagged (the rules forbid it)
    next(r for r in new["requirements"] if r["id"] == "ID-006")["text"] = "reworded"
    assert compare(old, new)["profile_version"]["text_changed"] == ["ID-006"]
    (a / "old.json").write_text(json.dumps(old))
    out = subprocess.run([sys.executable, "-m", "conformance.cli", "compare", str(a / "old.json"),
                          str(b / "report.json")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "profile version: 1.0.0 -> 1.1.0" in out.stdout and "changed meaning (0): -" in out.stdout
