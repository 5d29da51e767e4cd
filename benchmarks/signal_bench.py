"""Signal throughput of the reference implementation against python-axolotl 0.2.3, one run.

    python benchmarks/signal_bench.py [--seconds S] [--repeats N]

Both implementations run the same workloads (``_signal_workloads.py``) in separate
processes, alternately, N times; the median of each figure is printed with the ratio
reference / axolotl. python-axolotl is the named baseline (C curve25519, protobuf 3.20.3),
installed into ``.interop-peers/axolotl-venv`` by the interop provisioning on first use.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests" / "interop"))

from peers_client import ensure_axolotl_peer  # noqa: E402


def run(python: str, impl: str, seconds: float) -> dict:
    out = subprocess.run([python, str(HERE / "_signal_workloads.py"), impl, str(seconds)],
                         cwd=ROOT, check=True, capture_output=True, text=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="time per figure per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    axolotl_python = str(ensure_axolotl_peer())
    results: dict[str, list[dict]] = {"reference": [], "axolotl": []}
    for _ in range(args.repeats):
        results["reference"].append(run(sys.executable, "reference", args.seconds))
        results["axolotl"].append(run(axolotl_python, "axolotl", args.seconds))
    keys = list(results["reference"][0])
    print(f"{'workload (ops/s, median of %d)' % args.repeats:34} {'reference':>10} {'axolotl':>10} {'ratio':>7}")
    for k in keys:
        ref = statistics.median(r[k] for r in results["reference"])
        axo = statistics.median(r[k] for r in results["axolotl"])
        print(f"{k:34} {ref:10.0f} {axo:10.0f} {ref / axo:7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
