"""Per-milestone verdicts in report.json, JUnit and HTML, from one roll-up (spec §1.1)."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from conformance.catalog import load_catalog, load_milestones
from conformance.milestones import milestone_rollup
from conformance.reporting import render_html, validate_report, write_all
from conformance.verdicts import Verdict

from .test_evidence_bundle import make_results


def test_report_json_has_six_milestones_with_the_gatekeepers_test_wording(tmp_path: Path):
    write_all(make_results({"ENL-002": Verdict.FAIL, "CON-008": Verdict.WARN}), tmp_path)
    report = json.loads((tmp_path / "report.json").read_text())
    assert validate_report(report) == []
    ms = {m["id"]: m for m in report["milestones"]}
    assert list(ms) == ["M1", "M2", "M3", "M4", "M5", "M6"]
    assert ms["M1"]["verdict"] == "FAIL" and ms["M1"]["failing"] == ["ENL-002"]
    assert ms["M1"]["test"] == "enlist a user and verify the response"
    assert ms["M5"]["verdict"] == "WARN" and ms["M5"]["failing"] == []
    assert {ms[m]["verdict"] for m in ("M2", "M3", "M4", "M6")} == {"PASS"}
    in_core = {r["id"]: r["milestone"] for r in report["requirements"]}
    for m in ms.values():
        assert m["requirements"] == sum(1 for v in in_core.values() if v == m["id"])
        assert sum(m["by_verdict"].values()) == m["requirements"]
    req = next(r for r in report["requirements"] if r["id"] == "MED-006")
    assert req["provenance"]["basis"] == "observed" and "S13" in req["provenance"]["source"]


def test_junit_carries_milestones_as_suite_and_case_properties(tmp_path: Path):
    write_all(make_results({"CHN-008": Verdict.FAIL}), tmp_path)
    root = ET.parse(tmp_path / "junit.xml").getroot()
    suite_props = {p.get("name"): p.get("value") for p in root.find("properties")}
    assert suite_props["milestone.M2"].startswith("FAIL: handshake completes and ping gets a response")
    assert suite_props["milestone.M1"].startswith("PASS: enlist a user and verify the response")
    case = next(c for c in root.iter("testcase") if c.get("name") == "test_CHN_008")
    props = [(p.get("name"), p.get("value")) for p in case.find("properties")]
    assert ("milestone", "M2") in props and ("provenance", "framework") in props


def test_rollup_edge_cases():
    ids = {m.id for m in load_milestones()}
    by_id = {r.id: r for r in load_catalog()}
    none = milestone_rollup([])
    assert {m["verdict"] for m in none} == {"NOT_TESTED"} and {m["id"] for m in none} == ids
    na = milestone_rollup([{"id": "CON-008", "milestone": "M5", "verdict": "NOT_APPLICABLE"},
                           {"id": "CON-009", "milestone": "M5", "verdict": "NOT_APPLICABLE"}])
    assert na[4]["verdict"] == "NOT_APPLICABLE"
    mixed = milestone_rollup([{"id": "CON-008", "milestone": "M5", "verdict": "NOT_APPLICABLE"},
                              {"id": "CON-009", "milestone": "M5", "verdict": "PASS"}])
    assert mixed[4]["verdict"] == "PASS"
    err = milestone_rollup([{"id": "CON-001", "milestone": "M6", "verdict": "PASS"},
                            {"id": "CON-002", "milestone": "M6", "verdict": "ERROR"}])
    assert err[5]["verdict"] == "ERROR" and err[5]["failing"] == ["CON-002"]
    may = milestone_rollup([{"id": "CHN-008", "milestone": "M2", "verdict": "PASS", "level": "MUST"},
                            {"id": "CHN-009", "milestone": "M2", "verdict": "NOT_TESTED", "level": "MAY"}])
    assert may[1]["verdict"] == "PASS" and may[1]["by_verdict"]["NOT_TESTED"] == 1
    must = milestone_rollup([{"id": "CHN-008", "milestone": "M2", "verdict": "NOT_TESTED", "level": "MUST"},
                             {"id": "CHN-009", "milestone": "M2", "verdict": "PASS", "level": "MAY"}])
    assert must[1]["verdict"] == "NOT_TESTED"
    assert by_id["CON-001"].milestone == "M6"


def test_an_older_report_without_milestones_still_renders(tmp_path: Path):
    write_all(make_results(), tmp_path)
    report = json.loads((tmp_path / "report.json").read_text())
    for key in ("milestones", "selection"):
        report.pop(key)
    for r in report["requirements"]:
        r.pop("provenance"), r.pop("milestone")
    assert validate_report(report) == []
    page = render_html(report, {})
    assert "id='milestones'" not in page and "ID-001" in page
