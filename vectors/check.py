"""Run every vector against an implementation: ``python -m vectors.check [--adapter CMD]``.

Without ``--adapter`` the reference implementation is called in-process. With it, ``CMD`` is
started once and spoken to over the JSON-lines adapter protocol (README). Prints one row per
area (passed / failed / skipped) and exits 1 if any vector failed, 2 on a broken adapter.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ._check import FAILED, PASSED, SKIPPED, Outcome, Unsupported
from .adapters import Adapter, AdapterError, InProcessAdapter, SubprocessAdapter
from .areas import AREAS

__all__ = ["AreaResult", "main", "run"]

VECTORS_DIR = Path(__file__).resolve().parent


@dataclass
class AreaResult:
    area: str
    file: str
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)
    skips: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.skipped


def run(adapter: Adapter, directory: Path = VECTORS_DIR, areas: list[str] | None = None) -> list[AreaResult]:
    results = []
    for area in AREAS:
        if areas and area.TITLE not in areas and area.FILE.removesuffix("_test.json") not in areas:
            continue
        doc = json.loads((directory / area.FILE).read_text(encoding="utf-8"))
        res = AreaResult(area.TITLE, area.FILE)
        for group in doc["testGroups"]:
            for test in group["tests"]:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        out = area.check(group, test, adapter)
                except Unsupported as exc:
                    out = Outcome(SKIPPED, f"unsupported: {exc}")
                if out.status == FAILED:
                    deviation = adapter.known_deviation(test["flags"])
                    if deviation:
                        out = Outcome(SKIPPED, f"known deviation ({deviation}); failure was: {out.detail}")
                if out.status == PASSED:
                    res.passed += 1
                elif out.status == SKIPPED:
                    res.skipped += 1
                    reason = out.detail.split(";")[0][:110]
                    res.skips[reason] = res.skips.get(reason, 0) + 1
                else:
                    res.failed += 1
                    res.failures.append(f"{area.FILE} tcId {test['tcId']} ({test['comment']}): {out.detail}")
        results.append(res)
    return results


def format_table(results: list[AreaResult], adapter_name: str) -> str:
    rows = [("area", "file", "tests", "passed", "failed", "skipped")]
    for r in results:
        rows.append((r.area, r.file, str(r.total), str(r.passed), str(r.failed), str(r.skipped)))
    rows.append(("total", "", *(str(sum(getattr(r, k) for r in results)) for k in ("total", "passed", "failed", "skipped"))))
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    lines = [f"adapter: {adapter_name}"]
    for n, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0 or n == len(rows) - 2:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vectors.check", description=__doc__.splitlines()[0])
    ap.add_argument("--adapter", metavar="CMD", help="command speaking the adapter protocol "
                    "(default: the reference implementation, in-process)")
    ap.add_argument("--dir", type=Path, default=VECTORS_DIR, help="directory holding the *_test.json files")
    ap.add_argument("--area", action="append", help="only this area (algorithm or file stem); repeatable")
    ap.add_argument("--show-skips", action="store_true", help="list why vectors were skipped")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for one adapter answer")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    adapter: Adapter = SubprocessAdapter(args.adapter, timeout=args.timeout) if args.adapter else InProcessAdapter()
    try:
        info = adapter.info
        name = f"{info.get('implementation', {}).get('name', adapter.name)} " \
               f"{info.get('implementation', {}).get('version', '')}".strip()
        results = run(adapter, args.dir, args.area)
    except AdapterError as exc:
        print(f"adapter failure: {exc}", file=sys.stderr)
        return 2
    finally:
        adapter.close()
    print(format_table(results, name))
    for r in results:
        for f in r.failures:
            print(f"FAIL {f}")
    if args.show_skips:
        for r in results:
            for reason, n in sorted(r.skips.items()):
                print(f"SKIP {r.file}: {n} x {reason}")
    print(f"({time.perf_counter() - t0:.1f}s)")
    return 1 if any(r.failed for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
