"""``conformance compare A B [--json]``: what changed between two runs, by requirement ID.

A and B are ``report.json`` files or ``evidence.zip`` bundles. Exit code 0 when nothing got
worse, 1 when a requirement is newly failing, 2 on unreadable input.
"""
from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path

_BAD = {"FAIL", "ERROR"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", help="older report.json or evidence.zip")
    p.add_argument("b", help="newer report.json or evidence.zip")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def load_report(path: Path) -> dict:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            return json.loads(zf.read("report.json"))
    return json.loads(path.read_text(encoding="utf-8"))


def compare(a: dict, b: dict) -> dict:
    va = {r["id"]: r["verdict"] for r in a["requirements"]}
    vb = {r["id"]: r["verdict"] for r in b["requirements"]}
    common = sorted(set(va) & set(vb))
    return {
        "newly_failing": [i for i in common if vb[i] in _BAD and va[i] not in _BAD],
        "newly_passing": [i for i in common if vb[i] == "PASS" and va[i] != "PASS"],
        "changed": [{"id": i, "from": va[i], "to": vb[i]} for i in common if va[i] != vb[i]],
        "added": sorted(set(vb) - set(va)),
        "removed": sorted(set(va) - set(vb)),
        "result": {"from": a.get("result"), "to": b.get("result")},
    }


def run(args: argparse.Namespace) -> int:
    try:
        diff = compare(load_report(Path(args.a)), load_report(Path(args.b)))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        print(f"compare: cannot read reports: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(diff, indent=2, sort_keys=True))
    else:
        print(f"result: {diff['result']['from']} -> {diff['result']['to']}")
        for title, key in (("newly failing", "newly_failing"), ("newly passing", "newly_passing"),
                           ("added", "added"), ("removed", "removed")):
            print(f"{title} ({len(diff[key])}): {', '.join(diff[key]) or '-'}")
        for c in diff["changed"]:
            print(f"  {c['id']}: {c['from']} -> {c['to']}")
    return 1 if diff["newly_failing"] else 0
