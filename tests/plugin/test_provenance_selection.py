"""``--provenance``: real runs against the embedded reference provider on a short profile
(ID-001 framework, ID-003 and ID-004 profile, ENL-004 observed) select by provenance and say so
in report.json, the HTML, JUnit and the terminal; a partial selection never verifies."""
from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from conformance.catalog import load_catalog

ROOT = Path(__file__).resolve().parents[2]
SHORT = ["ID-001", "ID-003", "ID-004", "ENL-004"]


def _run(tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    profile = tmp_path / "short.yaml"
    profile.write_text(yaml.safe_dump({"name": "short", "profile_version": "1.0.0", "extends": "core",
                                       "include": {"profiles": [], "requirements": SHORT}}))
    out = tmp_path / "reports"
    proc = subprocess.run([sys.executable, "-m", "pytest", "--conformance", "--profile", str(profile),
                           "--report-dir", str(out), "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                           *extra], cwd=ROOT, capture_output=True, text=True, timeout=300)
    return proc, out


def test_catalog_basis_of_the_short_profile_is_what_the_test_assumes():
    by_id = {r.id: r.provenance for r in load_catalog()}
    assert [by_id[i] for i in SHORT] == ["framework", "profile", "profile", "observed"]


def test_provenance_framework_runs_only_what_the_gatekeeper_publishes(tmp_path: Path):
    proc, out = _run(tmp_path, "--provenance", "framework")
    assert proc.returncode == 0, proc.stdout[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert [r["id"] for r in report["requirements"]] == ["ID-001"]
    assert report["requirements"][0]["verdict"] == "PASS"
    assert report["requirements"][0]["checks"], "the framework requirement really ran"
    assert report["selection"] == {"provenance": ["framework"], "requirements": [], "complete": False}
    assert report["summary"]["requirements"] == 1
    ran = {c["nodeid"] for r in report["requirements"] for c in r["checks"]}
    assert all("test_identity" in n for n in ran)
    assert "partial selection" in (out / "report.html").read_text()
    root = ET.parse(out / "junit.xml").getroot()
    props = {p.get("name"): p.get("value") for p in root.find("properties")}
    assert props["selection.provenance"] == "framework"
    reqs = {p.get("value") for c in root.iter("testcase") for p in c.find("properties")
            if p.get("name") == "requirement"}
    assert reqs == {"ID-001"}
    assert "selection: provenance framework" in proc.stdout
    # a partial selection is not a certification: the bundle does not verify as complete
    from conformance.evidence import verify as V
    with pytest.raises(V.VerifyError, match="partial selection") as ei:
        V.verify(out / "evidence.zip", profile=str(tmp_path / "short.yaml"),
                 public_key=out / "evidence.pub.pem")
    assert ei.value.code == V.EXIT_INCOMPLETE


def test_comma_list_selects_the_union(tmp_path: Path):
    proc, out = _run(tmp_path, "--provenance", "observed,profile")
    assert proc.returncode == 0, proc.stdout[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert sorted(r["id"] for r in report["requirements"]) == ["ENL-004", "ID-003", "ID-004"]
    assert all(r["verdict"] == "PASS" and r["checks"] for r in report["requirements"])
    assert report["selection"]["provenance"] == ["observed", "profile"]


def test_without_the_option_everything_runs_and_the_selection_is_complete(tmp_path: Path):
    proc, out = _run(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert sorted(r["id"] for r in report["requirements"]) == sorted(SHORT)
    assert report["selection"] == {"provenance": ["framework", "observed", "profile"],
                                   "requirements": [], "complete": True}
    assert {m["id"]: m["verdict"] for m in report["milestones"]}["M1"] == "PASS"


@pytest.mark.parametrize("extra", [("--provenance", "rumour"), ("--provenance", "framework", "--certify")])
def test_bad_selection_is_a_usage_error(tmp_path: Path, extra: tuple[str, ...]):
    proc, out = _run(tmp_path, *extra)
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "--provenance" in proc.stderr + proc.stdout
    assert not (out / "report.json").exists()
