"""The kit's second opinion (issue "Prove the kit", §2): run the conformance suite, as a provider
would (``pytest --target --harness``, profile ``core``), against the naive provider, and check
that it passes everywhere the naive provider conforms and fails exactly where it cuts corners.

The naive provider runs in its own process (``python -m tests.naive_provider``) for the whole
suite run. Its server certificate comes from a throw-away CA: the suite's own HTTP client is
told ``--insecure``, and the gatekeeper simulator (which fetches the JWK Set and sends pushes
with httpx's default trust) gets the CA through ``SSL_CERT_FILE``.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.catalog import load_catalog

from .cuts import CUTS

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "naive-provider.md"
#: Requirements of one chat binding only (spec "Wire:"), by ID.
WIRE_OF = {r.id: r.wire for r in load_catalog()}

GK_STOP_RACE = re.compile(r"ERROR .*teardown failed: .*gatekeeper/server\.py:\d+: in stop", re.DOTALL)


def test_doc_lists_the_same_cuts() -> None:
    rows = re.findall(r"^\|\s*`?([A-Z0-9]+-\d{3})`?\s*\|\s*(FAIL|WARN)\s*\|", DOC.read_text(), re.MULTILINE)
    assert dict(rows) == {rid: verdict for rid, (verdict, _) in CUTS.items()}


def test_cut_verdicts_match_levels() -> None:
    from conformance.catalog import load_catalog

    level = {r.id: r.level for r in load_catalog()}
    for rid, (verdict, _) in CUTS.items():
        assert verdict == {"MUST": "FAIL", "SHOULD": "WARN"}[level[rid]], rid


@pytest.fixture(scope="module")
def naive(tmp_path_factory: pytest.TempPathFactory):
    proc = subprocess.Popen([sys.executable, "-m", "tests.naive_provider"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line:
            raise RuntimeError(f"naive provider did not start: {proc.stderr.read() if proc.stderr else ''}")
        yield json.loads(line)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_suite_fails_the_naive_provider_exactly_where_it_cuts(naive, tmp_path: Path) -> None:
    out = tmp_path / "report"
    env = {**os.environ, "SSL_CERT_FILE": naive["ca_certificate"]}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--target", naive["target"], "--harness", naive["harness"],
         "--insecure", "--profile", "core", "--report-dir", str(out), "-p", "no:cacheprovider", "-q"],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    report_path = out / "report.json"
    assert report_path.exists(), f"no report (rc {run.returncode}):\n{run.stdout[-4000:]}\n{run.stderr[-2000:]}"
    report = json.loads(report_path.read_text())
    got = {r["id"]: r["verdict"] for r in report["requirements"]}
    level = {r["id"]: r["level"] for r in report["requirements"]}
    wrong = {}
    for rid, verdict in got.items():
        if rid in CUTS:
            expected = {CUTS[rid][0]}
        elif level[rid] == "MAY":
            expected = {"PASS", "NOT_TESTED"}  # reported, never failed; may have no check
        elif WIRE_OF.get(rid, "") not in ("", report.get("wire", "open")):
            expected = {"NOT_APPLICABLE"}  # a rule of the other chat binding (Wire: in the spec)
        else:
            expected = {"PASS"}
        if verdict not in expected:
            msg = next((r["message"] for r in report["requirements"] if r["id"] == rid), "")
            wrong[rid] = f"{verdict} (expected {'/'.join(sorted(expected))}): {msg[:300]}"
    assert set(CUTS) <= set(got), f"cuts outside the core profile: {set(CUTS) - set(got)}"
    if wrong and all(GK_STOP_RACE.search(v) for v in wrong.values()):
        # Kit bug, not a verdict: the gatekeeper simulator's stop() re-raises a TLS error from a
        # client connection still open at the end of the run (hypercorn's shutdown race), and
        # the last check gets an ERROR at teardown. Visible as xfail until the kit tolerates it.
        pytest.xfail(f"gatekeeper shutdown race turned into ERROR: {sorted(wrong)}")
    assert not wrong, "\n".join(f"{k}: {v}" for k, v in sorted(wrong.items()))
    assert report["result"] == "FAIL" and run.returncode != 0
    # Its harness has no clock action: the checks that need time to pass on the client are
    # NOT_TESTED, never PASS (issue 13 §6).
    clock = {c["nodeid"].rsplit("::", 1)[-1]: c["verdict"] for r in report["requirements"]
             for c in r["checks"] if c["nodeid"].rsplit("::", 1)[-1] in CLOCK_CHECKS}
    assert clock == dict.fromkeys(CLOCK_CHECKS, "NOT_TESTED"), clock


#: Checks that advance the provider client's clock (``POST /users/{user}/clock``).
CLOCK_CHECKS = ("test_back_off_grows_to_at_least_60_s_on_the_client_clock",
                "test_previous_signed_pre_key_decrypts_for_7_days_after_the_rotation",
                "test_second_reachability_ping_23h50_later_is_not_sent")
