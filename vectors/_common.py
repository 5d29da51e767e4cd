"""Shared pieces of the vector files: the file skeleton, flags, hex helpers, JSON output.

Every area module (``vectors.areas.*``) builds its file with :class:`VectorFile` and
declares the flags it uses with :func:`note`; ``vectors.generate`` writes the result with
:func:`dump_json`, so that formatting is one decision made in one place.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BUG_TYPES",
    "FORMAT_VERSION",
    "GENERATOR",
    "RESULTS",
    "Note",
    "VectorFile",
    "dump_json",
    "expand_generator",
    "h",
    "unh",
]

#: Semver of the *format* (fields, semantics, adapter protocol), not of the data.
FORMAT_VERSION = "1.0.0"
GENERATOR = {"name": "messaging-interop-conformance vectors.generate", "version": "1.0.0"}

BUG_TYPES = (
    "BASIC",
    "AUTH_BYPASS",
    "CONFIDENTIALITY",
    "EDGE_CASE",
    "KNOWN_BUG",
    "LEGACY",
    "MALLEABILITY",
    "SIGNATURE_MALLEABILITY",
    "MISSING_STEP",
    "MODIFIED_PARAMETER",
    "WRONG_PRIMITIVE",
    "BER_ENCODING",
    "WEAK_PARAMS",
    "CAN_OF_WORMS",
    "DEFINED",
    "DOS",
    "REPLAY",
)
RESULTS = ("valid", "invalid", "acceptable")


def h(data: bytes) -> str:
    return bytes(data).hex()


def unh(text: str) -> bytes:
    return bytes.fromhex(text)


@dataclass(frozen=True)
class Note:
    bug_type: str
    description: str
    effect: str

    def to_json(self) -> dict[str, str]:
        assert self.bug_type in BUG_TYPES, self.bug_type
        return {"bugType": self.bug_type, "description": self.description, "effect": self.effect}


@dataclass
class VectorFile:
    """One ``vectors/<area>_test.json``: header fields, flag notes and test groups.

    Tests are appended in a fixed order and numbered from 1; a tcId is never reused, so new
    vectors go at the end of their file (see CHANGELOG.md).
    """

    algorithm: str
    schema: str
    header: list[str]
    notes: dict[str, Note]
    groups: list[dict[str, Any]] = field(default_factory=list)
    _next_id: int = 1

    def group(self, type_: str, **params: Any) -> list[dict[str, Any]]:
        tests: list[dict[str, Any]] = []
        self.groups.append({"type": type_, **params, "tests": tests})
        return tests

    def add(self, tests: list[dict[str, Any]], comment: str, result: str,
            flags: Iterable[str] = (), **fields: Any) -> dict[str, Any]:
        assert result in RESULTS, result
        flags = list(flags)
        for f in flags:
            assert f in self.notes, f"flag {f!r} has no note in {self.algorithm}"
        t = {"tcId": self._next_id, "comment": comment, "flags": flags, "result": result, **fields}
        self._next_id += 1
        tests.append(t)
        return t

    def to_json(self) -> dict[str, Any]:
        used = {f for g in self.groups for t in g["tests"] for f in t["flags"]}
        unused = set(self.notes) - used
        assert not unused, f"{self.algorithm}: notes for unused flags {sorted(unused)}"
        return {
            "algorithm": self.algorithm,
            "schema": self.schema,
            "version": FORMAT_VERSION,
            "generator": dict(GENERATOR),
            "numberOfTests": sum(len(g["tests"]) for g in self.groups),
            "header": self.header,
            "notes": {k: self.notes[k].to_json() for k in sorted(self.notes)},
            "testGroups": self.groups,
        }


def dump_json(doc: Any, *, sort_keys: bool = True) -> str:
    """The one serialisation every committed file uses: indent 2, sorted keys, LF, final newline."""
    return json.dumps(doc, indent=2, sort_keys=sort_keys, ensure_ascii=False) + "\n"


def expand_generator(spec: dict[str, Any]) -> bytes:
    """Expand a ``plaintextGenerator`` (README "Generated inputs").

    ``sha256-counter``: concatenate ``SHA-256(seed_bytes || uint64_be(i))`` for i = 0, 1, ...
    and cut to ``length`` bytes; ``seed`` is hex.
    """
    if spec.get("kind") != "sha256-counter":
        raise ValueError(f"unknown generator kind {spec.get('kind')!r}")
    seed, length = unh(spec["seed"]), int(spec["length"])
    out = bytearray()
    i = 0
    while len(out) < length:
        out += hashlib.sha256(seed + i.to_bytes(8, "big")).digest()
        i += 1
    return bytes(out[:length])
