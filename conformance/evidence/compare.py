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

from .safezip import MAX_JSON, SafeZip

_BAD = {"FAIL", "ERROR"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", help="older report.json or evidence.zip")
    p.add_argument("b", help="newer report.json or evidence.zip")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def load_report(path: Path) -> dict:
    """A report as a dict, read with caps (streamed from a bundle, never inflated whole)."""
    if zipfile.is_zipfile(path):
        with SafeZip(path) as zf:
            data = zf.read_small("report.json", MAX_JSON)
    else:
        with open(path, "rb") as fh:
            data = fh.read(MAX_JSON + 1)
        if len(data) > MAX_JSON:
            raise ValueError(f"{path} is larger than {MAX_JSON} bytes")
    report = json.loads(data)
    if not isinstance(report, dict):
        raise ValueError(f"{path}: report is a JSON {type(report).__name__}, not an object")
    reqs = report.get("requirements")
    if not isinstance(reqs, list) or not all(
            isinstance(r, dict) and isinstance(r.get("id"), str) and isinstance(r.get("verdict"), str)
            for r in reqs):
        raise ValueError(f"{path}: 'requirements' is not a list of objects with string id and verdict")
    return report


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
    except Exception as exc:  # noqa: BLE001 - malformed input: one line, exit 2, never a traceback
        print(f"compare: cannot read reports: {' '.join(str(exc).split())[:300]}", file=sys.stderr)
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
