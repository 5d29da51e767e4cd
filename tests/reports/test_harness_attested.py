"""``harness-attested`` (issue 13 §6): checks whose verdict rests in part on the provider
harness' word carry the ``harness_attested`` marker; report.json and the HTML report show it per
check and per requirement, and list the requirements that rest on the harness alone."""
from __future__ import annotations

import json
from pathlib import Path

from conformance.results import CheckResult
from conformance.reporting import validate_report, write_all
from conformance.verdicts import Verdict

from .test_evidence_bundle import make_results


def test_basis_per_check_and_requirement_and_the_harness_only_list(tmp_path: Path):
    res = make_results()
    by_req = {c.requirements[0]: c for c in res.checks}
    by_req["CHN-012"].basis = "harness-attested"  # its only check: harness-only
    by_req["CON-013"].basis = "harness-attested"
    res.checks.append(CheckResult("suite/test_consent.py::test_con_013_wire", ("CON-013",),
                                  Verdict.PASS, 0.01, exchanges=1))  # a wire check too: mixed
    write_all(res, tmp_path)
    report = json.loads((tmp_path / "report.json").read_text())
    assert validate_report(report) == []
    reqs = {r["id"]: r for r in report["requirements"]}
    assert reqs["CHN-012"]["evidence_basis"] == "harness-attested"
    assert [c["basis"] for c in reqs["CHN-012"]["checks"]] == ["harness-attested"]
    assert reqs["CON-013"]["evidence_basis"] == "mixed"
    assert reqs["ENL-009"]["evidence_basis"] == "wire"
    assert report["summary"]["harness_attested"] == ["CHN-012"]
    page = (tmp_path / "report.html").read_text()
    assert "<p id='harness-attested'>1 requirement(s)" in page and "href='#CHN-012'" in page
    assert page.count("data-basis='harness-attested'") == 1 and page.count("data-basis='mixed'") == 1


def test_a_report_with_an_unknown_basis_is_refused(tmp_path: Path):
    write_all(make_results(), tmp_path)
    report = json.loads((tmp_path / "report.json").read_text())
    report["requirements"][0]["checks"][0]["basis"] = "trust me"
    assert validate_report(report) != []
