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


def _version(report: dict) -> str:
    prof = report.get("profile")
    return str(prof.get("version", "")) if isinstance(prof, dict) else ""


def meaning(a: dict, b: dict, catalog: str | Path | None = None) -> dict:
    """What changed meaning between the profile versions of two reports: the catalog's
    withdrawn-and-replaced requirements between them, and any ID whose text differs between
    the reports (which the versioning rules forbid, so it is flagged)."""
    from ..catalog import CatalogError, meaning_changes

    va, vb = _version(a), _version(b)
    changes: list[dict] = []
    note = ""
    if va and vb and va != vb:
        try:
            changes = meaning_changes(va, vb, catalog)
        except CatalogError as exc:
            note = str(exc)
    ta = {r["id"]: r.get("text") for r in a["requirements"]}
    tb = {r["id"]: r.get("text") for r in b["requirements"]}
    reworded = sorted(i for i in set(ta) & set(tb)
                      if isinstance(ta[i], str) and isinstance(tb[i], str)
                      and " ".join(ta[i].split()) != " ".join(tb[i].split()))
    return {"from": va, "to": vb, "changed_meaning": changes, "text_changed": reworded, "note": note}


def compare(a: dict, b: dict, catalog: str | Path | None = None) -> dict:
    va = {r["id"]: r["verdict"] for r in a["requirements"]}
    vb = {r["id"]: r["verdict"] for r in b["requirements"]}
    common = sorted(set(va) & set(vb))
    return {
        "profile_version": meaning(a, b, catalog),
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
        pv = diff["profile_version"]
        if pv["from"] != pv["to"]:
            print(f"profile version: {pv['from'] or '?'} -> {pv['to'] or '?'}"
                  + (f" ({pv['note']})" if pv["note"] else ""))
            print(f"changed meaning ({len(pv['changed_meaning'])}): "
                  + (", ".join(f"{c['id']} (withdrawn {c['withdrawn']}, now "
                               f"{', '.join(c['replaced_by']) or 'gone'})" for c in pv["changed_meaning"])
                     or "-"))
        if pv["text_changed"]:
            print(f"same ID, different text ({len(pv['text_changed'])}; the versioning rules "
                  f"forbid this): {', '.join(pv['text_changed'])}")
    return 1 if diff["newly_failing"] else 0
