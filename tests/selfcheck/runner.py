"""Run the bundled suite in a subprocess and read its report: the unit of the self-check."""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class SuiteRun:
    report: dict[str, Any]
    returncode: int
    wall: float
    output: str

    def verdicts(self) -> dict[str, str]:
        return {r["id"]: r["verdict"] for r in self.report["requirements"]}


def requirement_profile(tmp: Path, name: str, ids: list[str]) -> Path:
    """A profile file selecting exactly ``ids`` (parameters inherited from core)."""
    name = name.lower().replace("_", "-")
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "profile_version": "1.0.0", "extends": "core",
                                    "include": {"profiles": [], "requirements": sorted(ids)}}))
    return path


def run_suite(*args: str, workers: str = "0", timeout: float = 1200) -> SuiteRun:
    with tempfile.TemporaryDirectory(prefix="selfcheck-") as out:
        cmd = [sys.executable, "-m", "pytest", "--conformance", "-q", "-p", "no:cacheprovider",
               "-p", "no:randomly", "--report-dir", out, "-n", workers, *args]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        wall = time.perf_counter() - t0
        report_path = Path(out) / "report.json"
        if not report_path.exists():
            raise AssertionError(f"suite wrote no report (exit {proc.returncode}): {' '.join(cmd)}\n"
                                 f"{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
        return SuiteRun(json.loads(report_path.read_text()), proc.returncode, wall, proc.stdout)
