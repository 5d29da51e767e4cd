"""The report folder after a real run that is interrupted: no stale green report left behind."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from conformance.reporting import write_all

from .test_evidence_bundle import make_results


def test_sigint_midway_leaves_marker_and_partial_report(tmp_path: Path):
    out = tmp_path / "reports"
    write_all(make_results(), out)  # a previous green run in the same folder
    assert json.loads((out / "report.json").read_text())["result"] == "PASS"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--conformance", "--report-dir", str(out), "-p", "no:cacheprovider",
         "-p", "no:xdist", "-v"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path, env=os.environ.copy())
    try:
        seen = 0
        for line in proc.stdout:  # wait on events: three checks reported, then interrupt
            if " PASSED" in line or " FAILED" in line or " ERROR" in line:
                seen += 1
                if seen == 3:
                    proc.send_signal(signal.SIGINT)
                    break
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, rest[-2000:]
    assert (out / "INTERRUPTED").exists()
    report = json.loads((out / "report.json").read_text())
    assert report["interrupted"] is True and report["result"] != "PASS"
    assert json.loads((out / "previous" / "report.json").read_text())["result"] == "PASS"
    from conformance.evidence import verify as V
    assert V.main([str(out / "evidence.zip"), "--public-key", str(out / "evidence.pub.pem")]) == V.EXIT_INCOMPLETE


def test_finished_run_removes_the_marker(tmp_path: Path):
    from conformance.reporting import prepare_report_dir
    prepare_report_dir(tmp_path, "now")
    assert (tmp_path / "INTERRUPTED").exists()
    write_all(make_results(), tmp_path)
    assert not (tmp_path / "INTERRUPTED").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
