"""``conformance load`` for real: Locust in its own processes against the embedded reference
provider on loopback (a master and two workers, and local runs per load-only fault), and a
dead target. Short runs (a few seconds of load each), judged with the bundled load profile.
"""
from __future__ import annotations

import fcntl
import io
import json
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Iterator

import pytest

from conformance.reporting import validate_report
from reference_impl.provider.faults import FAULTS

LOAD_FAULTS = sorted(n for n, f in FAULTS.items() if all(r.startswith("LOAD-") for r in f.requirements))


#: Seconds of load per run: a ramp of ~2 s leaves ~5 s of steady load to judge.
DURATION = "8"


@pytest.fixture
def load_slot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One ``conformance load`` at a time in a pytest session, also across xdist workers.
    Why: each run measures rates and latencies and takes about 1.5 of this machine's 2 cores
    (scene + Locust); two at once measured each other, and a clean run failed its thresholds
    while a fault run next to it loaded the machine. The rest of the suite still runs beside."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    with (shared / "conformance-load.lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # released when the file closes (or the process dies)
        yield


def _load(tmp_path: Path, *args: str, timeout: float = 240) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], Path]:
    out = tmp_path / "reports"
    proc = subprocess.run([sys.executable, "-m", "conformance.cli", "load", "--quiet",
                           "--report-dir", str(out), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=tmp_path,
                          env=dict(os.environ))
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else {}
    return proc, report, out


def _verdicts(report: dict[str, Any]) -> dict[str, str]:
    return {r["id"]: r["verdict"] for r in report["requirements"]}


def _bundle(out: Path) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO((out / "evidence.zip").read_bytes()))


def test_master_and_two_workers_pass_the_clean_provider_and_merge_stats(tmp_path: Path, load_slot: None) -> None:
    proc, report, out = _load(tmp_path, "--workers", "2", "--duration", DURATION)
    assert report, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert validate_report(report) == []
    assert report["result"] == "PASS", proc.stdout[-3000:]
    assert proc.returncode == 0
    assert set(_verdicts(report)) == {f"LOAD-00{i}" for i in range(1, 9)}
    assert set(_verdicts(report).values()) == {"PASS"}
    z = _bundle(out)
    names = set(z.namelist())
    assert {"load/locust_stats.csv", "load/locust_stats_history.csv", "load/locust.html",
            "load/observations.json"} <= names
    obs = json.loads(z.read("load/observations.json"))["observations"]
    # The master and both workers read the plan (Locust's dispatcher gives each worker its
    # share of users; the master writes the merged stats).
    assert obs["locust_processes"] == 3
    # G signs once per subject and token lifetime, never per request.
    stats = z.read("load/locust_stats.csv").decode()
    pushes = sum(int(line.split(",")[2]) for line in stats.splitlines() if ",push " in line)
    assert 0 < obs["signatures"] == obs["token_subjects"] < pushes
    assert all(w["woken"] for w in obs["wakes"]) and obs["wakes"]
    html = (out / "report.html").read_text()
    assert "<h2 id='load'>Load</h2>" in html and html.count("<svg") >= 4
    section = html.split("<h2 id='load'>")[1].split("<h2>")[0]
    assert "<script" not in html and "src=" not in section and "<link" not in html  # no assets


@pytest.mark.parametrize("fault", LOAD_FAULTS)
def test_each_load_fault_is_caught_by_its_requirement(tmp_path: Path, fault: str, load_slot: None) -> None:
    proc, report, _ = _load(tmp_path, "--reference-fault", fault, "--duration", DURATION)
    assert report, proc.stdout[-2000:] + proc.stderr[-2000:]
    verdicts = _verdicts(report)
    declared = set(FAULTS[fault].requirements)
    assert {verdicts[r] for r in declared} == {"FAIL"}, verdicts
    assert {r for r, v in verdicts.items() if v != "PASS"} == declared, verdicts  # nothing else
    assert report["result"] == "FAIL" and proc.returncode == 1


def test_a_dead_target_passes_nothing(tmp_path: Path, load_slot: None) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again at once: nothing listens there
    proc, report, _ = _load(tmp_path, "--target", f"http://127.0.0.1:{port}", "--duration", "3")
    assert report, proc.stdout[-2000:] + proc.stderr[-2000:]
    verdicts = _verdicts(report)
    assert "PASS" not in verdicts.values(), verdicts
    assert verdicts["LOAD-001"] == "FAIL" and verdicts["LOAD-007"] == "NOT_TESTED"
    assert report["result"] == "FAIL" and proc.returncode == 1
