"""Profile 1.1.0 against 1.0.0: old bundles still verify, against the requirements of the
version they name; ``compare`` across versions says which requirements changed meaning."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conformance.catalog import CatalogError, load_catalog, meaning_changes, requirements_at
from conformance.evidence import verify as V
from conformance.evidence.compare import compare
from conformance.reporting import write_all
from conformance.results import CheckResult, RunResults
from conformance.verdicts import Verdict

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


#: What profile 1.1.0 withdrew (issue 12's contradictions), each with the ID replacing it.
WITHDRAWN_1_1_0 = {"ENL-001": ["ENL-009"], "ENL-005": ["ENL-010"], "MED-007": ["MED-017"],
                   "MED-009": ["MED-018"], "CON-012": ["CON-013"]}


def _results_1_0_0() -> RunResults:
    """A run of the core profile as it was in 1.0.0: the withdrawn requirements in, the ones
    1.1.0 added out, all passing."""
    res = make_results()
    core_1_0_0 = [r for r in requirements_at("1.0.0") if r.in_profiles(("core",))]
    res.profile_requirements = core_1_0_0
    res.checks = [CheckResult(f"suite/test_{r.area}.py::test_{r.id.replace('-', '_')}", (r.id,),
                              Verdict.PASS, 0.01, exchanges=1) for r in core_1_0_0]
    return res


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
    write_all(_results_1_0_0(), tmp_path)
    pem = _resign(tmp_path / "evidence.zip", _as_1_0_0)
    assert V.main([str(tmp_path / "evidence.zip"), "--public-key", str(pem)]) == V.EXIT_OK
    report, _, _ = V.verify(tmp_path / "evidence.zip", public_key=pem)
    assert report["profile"]["version"] == "1.0.0" and "milestones" not in report


@pytest.mark.parametrize("missing", ["ENL-004", "ENL-001"])
def test_an_old_bundle_missing_a_1_0_0_requirement_is_incomplete(tmp_path: Path, missing: str):
    """ENL-001 too: withdrawn in 1.1.0, it still belongs to every 1.0.0 report."""
    write_all(_results_1_0_0(), tmp_path)

    def drop(report: dict) -> None:
        _as_1_0_0(report)
        report["requirements"] = [r for r in report["requirements"] if r["id"] != missing]
    pem = _resign(tmp_path / "evidence.zip", drop)
    with pytest.raises(V.VerifyError, match=missing) as ei:
        V.verify(tmp_path / "evidence.zip", public_key=pem)
    assert ei.value.code == V.EXIT_INCOMPLETE


def test_a_report_from_a_newer_profile_version_is_refused(tmp_path: Path):
    write_all(make_results(), tmp_path)
    pem = _resign(tmp_path / "evidence.zip", lambda r: r["profile"].update(version="9.0.0"))
    with pytest.raises(V.VerifyError, match="newer") as ei:
        V.verify(tmp_path / "evidence.zip", public_key=pem)
    assert ei.value.code == V.EXIT_INCOMPLETE


def test_withdrawn_requirements_belong_to_the_versions_that_had_them():
    ids = lambda reqs: {r.id for r in reqs}  # noqa: E731
    for old, new in WITHDRAWN_1_1_0.items():
        assert old in ids(requirements_at("1.0.0")) and old not in ids(requirements_at("1.1.0"))
        assert old not in ids(load_catalog()) and old in ids(load_catalog(include_withdrawn=True))
        assert set(new) <= ids(requirements_at("1.1.0")) and not set(new) & ids(requirements_at("1.0.0"))
    changes = meaning_changes("1.0.0", "1.1.0")
    assert {c["id"]: c["replaced_by"] for c in changes} == WITHDRAWN_1_1_0
    assert all(c["withdrawn"] == "1.1.0" for c in changes)
    assert next(c for c in changes if c["id"] == "ENL-001")["title"] == "Enlistment request"
    assert [c["id"] for c in meaning_changes("1.1.0", "1.0.0")] == [c["id"] for c in changes]
    assert meaning_changes("1.1.0", "1.1.0") == []
    with pytest.raises(CatalogError):
        requirements_at("1.0")


def test_compare_across_versions_says_what_changed_meaning(tmp_path: Path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_all(_results_1_0_0(), a)
    write_all(make_results(), b)
    old = json.loads((a / "report.json").read_text())
    _as_1_0_0(old)
    new = json.loads((b / "report.json").read_text())
    diff = compare(old, new)
    pv = diff["profile_version"]
    assert (pv["from"], pv["to"]) == ("1.0.0", "1.1.0")
    assert {c["id"]: c["replaced_by"] for c in pv["changed_meaning"]} == WITHDRAWN_1_1_0
    assert pv["text_changed"] == []
    # same ID with different text is flagged (the rules forbid it)
    next(r for r in new["requirements"] if r["id"] == "ID-006")["text"] = "reworded"
    assert compare(old, new)["profile_version"]["text_changed"] == ["ID-006"]
    (a / "old.json").write_text(json.dumps(old))
    out = subprocess.run([sys.executable, "-m", "conformance.cli", "compare", str(a / "old.json"),
                          str(b / "report.json")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "profile version: 1.0.0 -> 1.1.0" in out.stdout
    assert "changed meaning (5): " in out.stdout
    for old_id, (new_id,) in WITHDRAWN_1_1_0.items():
        assert f"{old_id} (withdrawn 1.1.0, now {new_id})" in out.stdout
