"""``conformance catalog``: the requirements with their provenance and milestone.

Why: a provider planning its onboarding needs to see, before any run, which rules the
gatekeeper itself publishes (``framework``), which come from observed WhatsApp clients
(``observed``) and which this profile chose (``profile``), and which milestone each counts
towards. ``--summary`` prints the counts by provenance and milestone.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter

from . import BASES, MILESTONE_IDS, CatalogError, load_catalog, load_milestones


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--provenance", metavar="BASIS[,BASIS]",
                   help=f"only these provenance classes ({', '.join(BASES)})")
    p.add_argument("--milestone", action="append", default=[], choices=MILESTONE_IDS,
                   help="only this milestone (repeatable)")
    p.add_argument("--withdrawn", action="store_true",
                   help="also list requirements withdrawn by the current profile version")
    p.add_argument("--summary", action="store_true", help="counts by provenance and milestone only")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def parse_bases(value: str | None) -> tuple[str, ...]:
    """``framework,observed`` -> ("framework", "observed"); unknown names are an error."""
    if not value:
        return BASES
    wanted = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    bad = [v for v in wanted if v not in BASES]
    if bad or not wanted:
        raise CatalogError(f"unknown provenance {', '.join(bad) or repr(value)}; "
                           f"choose from {', '.join(BASES)} (comma-separated)")
    return wanted


def run(args: argparse.Namespace) -> int:
    try:
        bases = parse_bases(args.provenance)
    except CatalogError as exc:
        print(f"catalog: {exc}")
        return 2
    reqs = [r for r in load_catalog(include_withdrawn=args.withdrawn)
            if r.provenance in bases and (not args.milestone or r.milestone in args.milestone)]
    milestones = {m.id: m for m in load_milestones()}
    by_basis = Counter(r.provenance for r in reqs)
    by_milestone = Counter(r.milestone for r in reqs)
    if args.json:
        print(json.dumps({
            "summary": {"requirements": len(reqs),
                        "by_provenance": {b: by_basis.get(b, 0) for b in BASES},
                        "by_milestone": {m: by_milestone.get(m, 0) for m in MILESTONE_IDS}},
            "requirements": [] if args.summary else [
                {"id": r.id, "level": r.level, "title": r.title, "provenance": r.provenance,
                 "source": r.source, "reason": r.reason, "milestone": r.milestone,
                 "added": r.added, "withdrawn": r.withdrawn, "replaced_by": list(r.replaced_by)}
                for r in reqs]}, indent=2))
        return 0
    if not args.summary:
        for r in reqs:
            where = r.source if r.provenance != "profile" else r.reason
            hist = f" [withdrawn {r.withdrawn} -> {', '.join(r.replaced_by) or '-'}]" if r.withdrawn else ""
            print(f"{r.id:8} {r.level:6} {r.milestone} {r.provenance:9} {r.title}{hist}\n"
                  f"{'':26}{where}")
    print(f"{len(reqs)} requirements: " + ", ".join(f"{by_basis.get(b, 0)} {b}" for b in BASES))
    for mid in MILESTONE_IDS:
        m = milestones[mid]
        print(f"  {mid} {by_milestone.get(mid, 0):3}  {m.name} — test: \"{m.test}\"")
    return 0
