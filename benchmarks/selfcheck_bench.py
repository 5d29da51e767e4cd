"""Self-check figures (issue 8): faults caught, collateral verdicts, flakes, wall time.

    python benchmarks/selfcheck_bench.py [--clean-runs 3] [--jobs 2] [--faults NAME ...]

Runs the full profile against the embedded reference provider ``--clean-runs`` times (a
verdict that differs between runs is a flake), then every named fault of the reference
provider against the requirements of its areas, ``--jobs`` suite processes at a time, and
prints the table fault → failed requirements → expected → verdict, then the totals. The
baseline is the clean run: any non-PASS there is a false failure.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reference_impl.provider.faults import FAULTS  # noqa: E402
from tests.selfcheck.runner import requirement_profile, run_suite  # noqa: E402
from tests.selfcheck.test_selfcheck import classify, fault_selection  # noqa: E402


def run_fault(fault: str) -> tuple[str, dict, float]:
    with tempfile.TemporaryDirectory() as tmp:
        profile = requirement_profile(Path(tmp), f"fault-{fault}", fault_selection(fault))
        run = run_suite("--profile", str(profile), "--reference-fault", fault)
        return fault, run.verdicts(), run.wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clean-runs", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--faults", nargs="*", default=sorted(FAULTS))
    args = ap.parse_args()
    t0 = time.perf_counter()
    clean = [run_suite("--profile", "full", workers="2") for _ in range(args.clean_runs)]
    first = clean[0].verdicts() if clean else {}
    from conformance.catalog import load_catalog

    level = {r.id: r.level for r in load_catalog()}
    # A MAY nobody checks (any behaviour allowed) is NOT_TESTED by design, not a false failure.
    false_failures = {r: v for r, v in first.items()
                      if v != "PASS" and not (level[r] == "MAY" and v == "NOT_TESTED")}
    flakes = sorted({r for run in clean[1:] for r, v in run.verdicts().items() if v != first.get(r)})
    print(f"clean full-profile runs: {len(clean)}, wall {', '.join(f'{c.wall:.0f} s' for c in clean)}; "
          f"false failures: {false_failures or 'none'}; flakes: {flakes or 'none'}")
    print(f"{'fault':30} {'failed requirements':28} {'expected':18} verdict")
    caught = collateral = blocked_total = 0
    with ThreadPoolExecutor(args.jobs) as pool:
        for fault, verdicts, wall in pool.map(run_fault, args.faults):
            c = classify(fault, verdicts)
            failed = sorted(r for r, v in verdicts.items() if v in ("FAIL", "WARN", "ERROR"))
            verdict = "caught" if not c["missed"] else "MISSED"
            if c["collateral"]:
                verdict += f" +collateral {c['collateral']}"
            if c["blocked"]:
                verdict += f" (blocked: {len(c['blocked'])})"
            caught += not c["missed"]
            collateral += bool(c["collateral"])
            blocked_total += bool(c["blocked"])
            print(f"{fault:30} {','.join(failed)[:28]:28} {','.join(sorted(FAULTS[fault].requirements))[:18]:18} "
                  f"{verdict}  [{wall:.0f} s]")
    total = len(args.faults)
    print(f"faults caught: {caught}/{total}; faults with collateral failures: {collateral}; "
          f"faults that block other checks (NOT_TESTED): {blocked_total}; flakes over "
          f"{len(clean)} clean runs: {len(flakes)}; wall time: {time.perf_counter() - t0:.0f} s")
    return 0 if caught == total and not collateral and not flakes and not false_failures else 1


if __name__ == "__main__":
    sys.exit(main())
