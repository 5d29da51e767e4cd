"""Regenerate every vector file and schema: ``python -m vectors.generate [--out DIR]``.

Deterministic: all randomness comes from fixed seeds (``DeterministicRng``), XEdDSA uses fixed
Z, JWTs are EdDSA / RS256 (committed test key) / ES256 with RFC 6979 deterministic nonces, and
nothing reads the clock. Two runs, on any machine, give byte-identical files; the test suite
checks the committed files against a fresh run.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ._common import BUG_TYPES, FORMAT_VERSION, RESULTS, dump_json
from .areas import AREAS

__all__ = ["VECTORS_DIR", "build_all", "main", "schema_for", "write_all"]

VECTORS_DIR = Path(__file__).resolve().parent
SCHEMA_BASE = "https://interop-conformance.example/vectors/schema/"


def schema_for(area: Any) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one area's file, from the area's field fragments."""
    schema_name = area.FILE.replace("_test.json", "_test_schema.json")
    test = {
        "type": "object",
        "required": ["tcId", "comment", "flags", "result"],
        "properties": {
            "tcId": {"type": "integer", "minimum": 1},
            "comment": {"type": "string"},
            "flags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            "result": {"enum": list(RESULTS)},
            **area.TEST_PROPERTIES,
        },
        "additionalProperties": False,
    }
    group = {
        "type": "object",
        "required": ["type", "op", "tests"],
        "properties": {
            "type": {"enum": sorted(area.REQUIRED)},
            "op": {"type": "string"},
            "tests": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/test"}},
            **area.GROUP_PROPERTIES,
        },
        "additionalProperties": False,
        "allOf": [
            {"if": {"properties": {"type": {"const": t}}},
             "then": {"properties": {"tests": {"items": {"required": req}}}}}
            for t, req in sorted(area.REQUIRED.items())
        ],
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_BASE + schema_name,
        "title": f"{area.TITLE} test vectors (format {FORMAT_VERSION})",
        "type": "object",
        "required": ["algorithm", "schema", "version", "generator", "numberOfTests", "header", "notes",
                     "testGroups"],
        "properties": {
            "algorithm": {"const": area.TITLE},
            "schema": {"const": schema_name},
            "version": {"type": "string", "pattern": r"^\d+\.\d+\.\d+$"},
            "generator": {"type": "object", "required": ["name", "version"],
                          "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
                          "additionalProperties": False},
            "numberOfTests": {"type": "integer", "minimum": 1},
            "header": {"type": "array", "items": {"type": "string"}},
            "notes": {"type": "object", "additionalProperties": {"$ref": "#/$defs/note"}},
            "testGroups": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/group"}},
        },
        "additionalProperties": False,
        "$defs": {
            "hex": {"type": "string", "pattern": "^([0-9a-f]{2})*$"},
            "hex16": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
            "hex32": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "hex64": {"type": "string", "pattern": "^[0-9a-f]{128}$"},
            "note": {"type": "object", "required": ["bugType", "description", "effect"],
                     "properties": {"bugType": {"enum": list(BUG_TYPES)}, "description": {"type": "string"},
                                    "effect": {"type": "string"}},
                     "additionalProperties": False},
            "group": group,
            "test": test,
        },
    }


def build_all() -> dict[str, str]:
    """relative path -> file text, for every vector file and schema."""
    out: dict[str, str] = {}
    for area in AREAS:
        doc = area.build().to_json()
        assert doc["schema"] == area.FILE.replace("_test.json", "_test_schema.json")
        out[area.FILE] = dump_json(doc)
        out[f"schema/{doc['schema']}"] = dump_json(schema_for(area))
    return out


def write_all(out_dir: Path) -> dict[str, str]:
    files = build_all()
    for rel, text in files.items():
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8", newline="\n")
    return files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vectors.generate", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=VECTORS_DIR,
                    help="directory to write into (default: the vectors/ package itself)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    files = write_all(args.out)
    size = sum(len(t.encode()) for rel, t in files.items() if not rel.startswith("schema/"))
    print(f"wrote {len(files)} files to {args.out} ({size / 1e6:.2f} MB of vectors) "
          f"in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
