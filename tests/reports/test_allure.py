"""``--alluredir`` on a real (small) conformance run: requirement labels, spec links and the
wire evidence as an attachment end up in the Allure results."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_allure_results_carry_requirements_links_and_evidence(tmp_path: Path):
    profile = tmp_path / "p.yaml"
    profile.write_text(yaml.safe_dump({"name": "allure", "profile_version": "1.0.0", "extends": "core",
                                       "include": {"profiles": [], "requirements": ["ID-001", "ID-004"]}}))
    allure_dir = tmp_path / "allure"
    proc = subprocess.run([sys.executable, "-m", "pytest", "--conformance", "--profile", str(profile),
                           "--report-dir", str(tmp_path / "reports"), "--alluredir", str(allure_dir),
                           "-q", "-p", "no:cacheprovider"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    results = [json.loads(p.read_text()) for p in allure_dir.glob("*-result.json")]
    labels = {l["value"] for r in results for l in r["labels"] if l["name"] == "requirement"}
    assert labels == {"ID-001", "ID-004"}
    assert all(any("interop-profile.md#" in k["url"] for k in r.get("links", [])) for r in results)
    # milestone and provenance labels, one epic per milestone named with the gatekeeper's test
    for r in results:
        got = {l["name"]: l["value"] for l in r["labels"]}
        assert got["milestone"] == "M1"
        assert got["provenance"] == {"ID-001": "framework", "ID-004": "profile"}[got["requirement"]]
        assert got["epic"].startswith("M1 ") and "enlist a user and verify the response" in got["epic"]
    env = dict(line.split("=", 1) for line in (allure_dir / "environment.properties").read_text().splitlines())
    assert env["milestone.M1"].startswith("PASS (2 requirements)")
    assert env["milestone.M2"].startswith("NOT_TESTED (0 requirements)")
    containers = [json.loads(p.read_text()) for p in allure_dir.glob("*-container.json")]
    attachments = [a for c in containers for f in c.get("afters", []) for a in f.get("attachments", [])]
    assert len(attachments) >= len(results)
    evidence = json.loads((allure_dir / attachments[0]["source"]).read_text())
    assert any(e["kind"] == "http" for e in evidence)
