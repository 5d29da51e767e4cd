"""The requirement catalog: typed access to the interop profile's requirements.

Why two sources: ``docs/spec/interop-profile.md`` is what humans read and review, and
``requirements.yaml`` is what the suite, the reports and the evidence bundles key on. Both
are kept in lockstep (``tests/spec/test_catalog.py``); this module loads the YAML, validates
it against ``requirements.schema.json`` plus the rules a schema cannot express, and parses
the spec's requirement entries so the two can be compared (and the YAML regenerated:
``python -m conformance.catalog --write``).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import jsonschema
import yaml

__all__ = [
    "AREAS",
    "LEVELS",
    "PROFILES",
    "ROLES",
    "CatalogError",
    "FULL_PROFILES",
    "Requirement",
    "SpecEntry",
    "area_for_id",
    "catalog_profile_version",
    "diff_catalog_against_spec",
    "dump_catalog",
    "load_catalog",
    "parse_spec",
    "parse_spec_requirements",
    "spec_profile_version",
]

_HERE = Path(__file__).resolve().parent
CATALOG_PATH = _HERE / "requirements.yaml"
SCHEMA_PATH = _HERE / "requirements.schema.json"
# The spec is not shipped in the wheel; this default works in a source checkout.
SPEC_PATH = _HERE.parent.parent / "docs" / "spec" / "interop-profile.md"

LEVELS: tuple[str, ...] = ("MUST", "SHOULD", "MAY")
ROLES: tuple[str, ...] = ("provider-server", "provider-client")
PROFILES: tuple[str, ...] = ("core", "media", "groups", "load")
#: What ``full`` means: every profile the pytest suite judges (``load`` is ``conformance load``'s).
FULL_PROFILES: tuple[str, ...] = ("core", "media", "groups")
AREAS: dict[str, str] = {
    "ID": "identity",
    "ENL": "enlistment",
    "CHN": "channel",
    "E2E": "e2e",
    "MED": "media",
    "CON": "consent",
    "TRN": "transport",
    "GRP": "groups",
    "LOAD": "load",
}

_ID_RE = re.compile(r"^(?P<prefix>[A-Z0-9]+)-\d{3}$")


class CatalogError(ValueError):
    """The catalog or the spec breaks a rule the kit relies on."""


@dataclass(frozen=True)
class Requirement:
    """One requirement of the interop profile."""

    id: str
    level: str
    title: str
    text: str
    section: str
    role: str
    profiles: tuple[str, ...]
    area: str

    def in_profiles(self, claimed: set[str] | frozenset[str] | tuple[str, ...]) -> bool:
        """Whether a run claiming ``claimed`` (``full`` meaning core, media and groups; the
        ``load`` profile is judged apart, by ``conformance load``) must check this requirement."""
        wanted = set(claimed) | (set(FULL_PROFILES) if "full" in claimed else set())
        return bool(wanted.intersection(self.profiles))


class SpecEntry(NamedTuple):
    """What the spec heading and metadata line say about a requirement."""

    level: str
    role: str
    profiles: tuple[str, ...]
    title: str


def area_for_id(req_id: str) -> str:
    """Area of a requirement, derived from its ID prefix (``ENL-003`` -> ``enlistment``)."""
    m = _ID_RE.match(req_id)
    if m is None or m.group("prefix") not in AREAS:
        raise CatalogError(f"{req_id!r} is not a requirement id with a known prefix")
    return AREAS[m.group("prefix")]


def normalize_ws(text: str) -> str:
    """Collapse runs of whitespace, so that line wrapping never counts as a difference."""
    return " ".join(text.split())


# --------------------------------------------------------------------------- YAML catalog


@cache
def _schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def _load_document(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    try:
        jsonschema.validate(doc, _schema(), cls=jsonschema.Draft202012Validator)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise CatalogError(f"{path}: {where}: {exc.message}") from exc
    return doc


def load_catalog(path: str | Path | None = None) -> list[Requirement]:
    """Load and validate the catalog; entries keep the file's (spec) order.

    Beyond the JSON Schema it enforces unique IDs and that ``area`` matches the prefix.
    """
    path = Path(path) if path is not None else CATALOG_PATH
    doc = _load_document(path)
    out: list[Requirement] = []
    seen: set[str] = set()
    for entry in doc["requirements"]:
        req = Requirement(
            id=entry["id"],
            level=entry["level"],
            title=entry["title"],
            text=entry["text"],
            section=entry["section"],
            role=entry["role"],
            profiles=tuple(entry["profiles"]),
            area=entry["area"],
        )
        if req.id in seen:
            raise CatalogError(f"{path}: duplicate requirement id {req.id}")
        seen.add(req.id)
        if req.area != area_for_id(req.id):
            raise CatalogError(
                f"{path}: {req.id} has area {req.area!r}, its prefix gives {area_for_id(req.id)!r}"
            )
        out.append(req)
    return out


def catalog_profile_version(path: str | Path | None = None) -> str:
    """``profile_version`` the catalog was taken from."""
    return str(_load_document(Path(path) if path is not None else CATALOG_PATH)["profile_version"])


def dump_catalog(requirements: list[Requirement], profile_version: str) -> str:
    """Serialize requirements as ``requirements.yaml`` (used to regenerate it from the spec)."""
    doc = {
        "profile_version": profile_version,
        "requirements": [
            {
                "id": r.id,
                "level": r.level,
                "title": r.title,
                "text": r.text,
                "section": r.section,
                "role": r.role,
                "profiles": list(r.profiles),
                "area": r.area,
            }
            for r in requirements
        ],
    }
    header = (
        "# Requirement catalog of the interop profile. Generated from docs/spec/interop-profile.md\n"
        "# by `python -m conformance.catalog --write`; tests/spec/test_catalog.py keeps them equal.\n"
        "# Schema: requirements.schema.json\n"
    )
    body = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
    return header + body


# --------------------------------------------------------------------------- spec markdown

_REQ_HEADING = re.compile(r"^#### (?P<id>[A-Z0-9]+-\d{3}) — (?P<title>\S.*?)\s*$")
_META = re.compile(
    r"^- Level: (?P<level>MUST|SHOULD|MAY) · Role: (?P<role>provider-server|provider-client)"
    r" · Profiles: (?P<profiles>[a-z]+(?:, [a-z]+)*)\s*$"
)
_VERSION = re.compile(r"^- profile_version: (?P<v>\d+\.\d+\.\d+)\s*$")
_SECTION_NUM = re.compile(r"^(?P<num>\d+(?:\.\d+)*)\.?\s+(?P<title>.+)$")


def _section_name(heading: str) -> str:
    m = _SECTION_NUM.match(heading.strip())
    return f"{m.group('num')} {m.group('title')}" if m else heading.strip()


def _spec_lines(path: Path) -> list[tuple[int, str]]:
    """Lines outside fenced code blocks, with 1-based line numbers (code blocks show examples)."""
    out: list[tuple[int, str]] = []
    fenced = False
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            out.append((no, line))
    return out


def parse_spec(path: str | Path | None = None) -> dict[str, Requirement]:
    """Parse every requirement entry of the spec, in document order.

    Grammar (spec §2): ``#### ID — Title``, then directly the metadata line
    ``- Level: L · Role: R · Profiles: p, q``, a blank line, and one paragraph of normative
    text. Further paragraphs before the next heading must start with ``Note:``; anything
    else is an error, so normative text cannot slip past the catalog.
    """
    path = Path(path) if path is not None else SPEC_PATH
    lines = _spec_lines(path)
    out: dict[str, Requirement] = {}
    section = subsection = ""
    i = 0

    def fail(no: int, msg: str) -> CatalogError:
        return CatalogError(f"{path}:{no}: {msg}")

    while i < len(lines):
        no, line = lines[i]
        if line.startswith("## "):
            section, subsection = _section_name(line[3:]), ""
        elif line.startswith("### "):
            subsection = _section_name(line[4:])
        elif line.startswith("#### "):
            head = _REQ_HEADING.match(line)
            if head is None:
                raise fail(no, f"level-4 heading is not a requirement heading: {line!r}")
            req_id, title = head.group("id"), head.group("title")
            try:
                area = area_for_id(req_id)
            except CatalogError as exc:
                raise fail(no, str(exc)) from None
            if req_id in out:
                raise fail(no, f"duplicate requirement id {req_id}")
            if i + 1 >= len(lines) or (meta := _META.match(lines[i + 1][1])) is None:
                raise fail(no + 1, f"{req_id}: expected '- Level: … · Role: … · Profiles: …'")
            profiles = tuple(meta.group("profiles").split(", "))
            bad = [p for p in profiles if p not in PROFILES]
            if bad or len(set(profiles)) != len(profiles):
                raise fail(no + 1, f"{req_id}: bad profiles {profiles}")
            j = i + 2
            if j >= len(lines) or lines[j][1].strip():
                raise fail(no + 2, f"{req_id}: expected a blank line after the metadata line")
            paragraphs: list[list[str]] = []
            while j < len(lines) and not lines[j][1].startswith("#"):
                if lines[j][1].strip():
                    if j == 0 or not lines[j - 1][1].strip():
                        paragraphs.append([])
                    paragraphs[-1].append(lines[j][1])
                j += 1
            if not paragraphs:
                raise fail(no, f"{req_id}: no requirement text")
            for extra in paragraphs[1:]:
                if not extra[0].startswith("Note:"):
                    raise fail(no, f"{req_id}: extra paragraph not marked 'Note:': {extra[0][:60]!r}")
            out[req_id] = Requirement(
                id=req_id,
                level=meta.group("level"),
                title=title,
                text=normalize_ws(" ".join(paragraphs[0])),
                section=subsection or section,
                role=meta.group("role"),
                profiles=profiles,
                area=area,
            )
            i = j
            continue
        i += 1
    if not out:
        raise CatalogError(f"{path}: no requirement entries found")
    return out


def parse_spec_requirements(path: str | Path | None = None) -> dict[str, SpecEntry]:
    """``{id: (level, role, profiles, title)}`` for every requirement entry of the spec."""
    return {
        rid: SpecEntry(r.level, r.role, r.profiles, r.title) for rid, r in parse_spec(path).items()
    }


def spec_profile_version(path: str | Path | None = None) -> str:
    """The ``profile_version`` the spec declares in its front matter."""
    path = Path(path) if path is not None else SPEC_PATH
    for _, line in _spec_lines(path):
        if m := _VERSION.match(line):
            return m.group("v")
    raise CatalogError(f"{path}: no '- profile_version: X.Y.Z' line")


def diff_catalog_against_spec(
    catalog: list[Requirement], spec: dict[str, Requirement]
) -> list[str]:
    """Every disagreement between catalog and spec, one line each, naming the requirement ID.

    Text is compared after whitespace normalisation; everything else exactly.
    """
    problems: list[str] = []
    by_id = {r.id: r for r in catalog}
    for rid in sorted(spec.keys() - by_id.keys()):
        problems.append(f"{rid}: in the spec, missing from the catalog")
    for rid in sorted(by_id.keys() - spec.keys()):
        problems.append(f"{rid}: in the catalog, missing from the spec")
    for rid in sorted(by_id.keys() & spec.keys()):
        cat, sp = by_id[rid], spec[rid]
        for field in ("level", "role", "title", "section", "area"):
            if getattr(cat, field) != getattr(sp, field):
                problems.append(f"{rid}: {field} {getattr(cat, field)!r} in the catalog, "
                                f"{getattr(sp, field)!r} in the spec")
        if set(cat.profiles) != set(sp.profiles):
            problems.append(f"{rid}: profiles {sorted(cat.profiles)} in the catalog, "
                            f"{sorted(sp.profiles)} in the spec")
        if normalize_ws(cat.text) != normalize_ws(sp.text):
            problems.append(f"{rid}: text differs")
    return problems
