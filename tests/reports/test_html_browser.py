"""The HTML report in a real headless browser (Debian's Chromium): it renders, logs no console
errors, and its summary shows the counts of report.json. The screenshot is kept as an artifact
under ``reports/test-artifacts/``."""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conformance.reporting import write_all
from conformance.verdicts import Verdict

from .test_evidence_bundle import make_results

ARTIFACTS = Path(__file__).resolve().parents[2] / "reports" / "test-artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-extensions", "--disable-default-apps"]


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    reason = "Chromium is not installed (apt-get install chromium)"
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(reason + "; CI is set, so this is a failure", pytrace=False)
    pytest.skip(reason)


def _run(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'profile'}",
                           "--enable-logging=stderr", "--v=0", *args],
                          capture_output=True, text=True, timeout=120)


def test_html_report_renders_without_console_errors_and_shows_the_counts(tmp_path: Path):
    out = tmp_path / "run"
    write_all(make_results({"ENL-009": Verdict.FAIL, "CHN-008": Verdict.ERROR,
                            "E2E-008": Verdict.WARN, "CHN-002": Verdict.NOT_TESTED}), out)
    report = json.loads((out / "report.json").read_text())
    url = (out / "report.html").as_uri()

    dom = _run(["--dump-dom", url], tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console_errors = [line for line in dom.stderr.splitlines()
                      if "CONSOLE" in line and ("error" in line.lower() or "Uncaught" in line)]
    assert console_errors == []
    assert 'id="overall"' in dom.stdout and "FAIL: profile core" in dom.stdout
    shown = dict(re.findall(r"""data-verdict=["']([A-Z_]+)["']>(\d+)<""", dom.stdout))
    assert {k: int(v) for k, v in shown.items()} == report["summary"]["by_verdict"]
    for r in report["requirements"]:
        assert f'id="{r["id"]}"' in dom.stdout
    # the six milestones at a glance, each with its verdict and the gatekeeper's own test wording
    tiles = re.findall(r'<li class="ms" data-milestone="(M\d)" data-verdict="([A-Z_]+)"', dom.stdout)
    assert [m for m, _ in tiles] == ["M1", "M2", "M3", "M4", "M5", "M6"]
    assert dict(tiles) == {m["id"]: m["verdict"] for m in report["milestones"]}
    assert dict(tiles)["M1"] == "FAIL" and dict(tiles)["M2"] == "ERROR"  # ENL-009, CHN-008
    for m in report["milestones"]:
        assert html.escape(m["test"], quote=False) in dom.stdout
    assert 'data-provenance="framework"' in dom.stdout

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report-screenshot.png"
    res = _run([f"--screenshot={shot}", "--window-size=1200,1600", "--hide-scrollbars", url], tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the milestones come first, right under the overall result, and get their own shot
    assert dom.stdout.index('id="milestones"') < dom.stdout.index('id="summary"')
    top = ARTIFACTS / "report-milestones.png"
    res = _run([f"--screenshot={top}", "--window-size=1200,700", "--hide-scrollbars", url], tmp_path)
    assert res.returncode == 0 and top.exists() and top.stat().st_size > 10_000, res.stderr[-2000:]
