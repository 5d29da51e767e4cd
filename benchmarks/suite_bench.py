"""Wall time of the conformance suite against the local reference provider, per profile and area.

    python benchmarks/suite_bench.py [--profiles core full] [-n auto] [--repeats 1]

Each run is a real ``pytest --conformance`` subprocess (embedded reference provider, TLS,
gatekeeper simulator). Printed: total wall time per profile (median of the repeats) and the
summed check time per area from ``report.json``; the named baseline is the same profile run
serially (``-n 0``) in the same invocation, so the parallel speed-up is visible.
Goal (issue 6): core under 60 s, full under 120 s on a 2-core machine.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(profile: str, workers: str) -> tuple[float, dict, int]:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "pytest", "--conformance", "--profile", profile, "-q",
               "-p", "no:cacheprovider", "--report-dir", out, "-n", workers]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
        wall = time.perf_counter() - t0
        report_path = Path(out) / "report.json"
        if not report_path.exists():
            sys.exit(f"suite run produced no report (exit {proc.returncode}):\n{proc.stdout[-3000:]}")
        return wall, json.loads(report_path.read_text()), proc.returncode


def area_times(report: dict) -> dict[str, float]:
    per: dict[str, float] = defaultdict(float)
    for r in report["requirements"]:
        per[r["area"]] += r["duration"]
    return dict(sorted(per.items()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", nargs="+", default=["core", "full"])
    ap.add_argument("-n", default="auto", help="xdist workers for the measured run")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--no-baseline", action="store_true", help="skip the serial baseline run")
    args = ap.parse_args()
    for profile in args.profiles:
        walls, report, code = [], {}, 0
        for _ in range(args.repeats):
            wall, report, code = run(profile, args.n)
            walls.append(wall)
        line = (f"{profile:6} -n {args.n:4}: {statistics.median(walls):6.1f} s wall  "
                f"result {report['result']}  ({report['summary']['checks']} checks, exit {code})")
        if not args.no_baseline:
            base_wall, _, _ = run(profile, "0")
            line += f"   baseline -n 0: {base_wall:6.1f} s  (x{base_wall / statistics.median(walls):.2f})"
        print(line)
        for area, secs in area_times(report).items():
            print(f"    {area:12} {secs:6.1f} s in check bodies (fixture setup such as enlisting users excluded)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
