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
    "BASES",
    "LEVELS",
    "MILESTONE_IDS",
    "Milestone",
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
    "load_milestones",
    "meaning_changes",
    "parse_spec",
    "parse_spec_milestones",
    "requirements_at",
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

#: Where a requirement comes from (spec §2 "Provenance"): the gatekeeper's public technical
#: framework or Reference Offer, behaviour observed in (reverse-engineered) WhatsApp clients, or a
#: choice of this profile where the public sources are silent.
BASES: tuple[str, ...] = ("framework", "observed", "profile")
#: The gatekeeper's six onboarding milestones (spec §1.1); every requirement maps to one.
MILESTONE_IDS: tuple[str, ...] = ("M1", "M2", "M3", "M4", "M5", "M6")
FIRST_VERSION = "1.0.0"

_ID_RE = re.compile(r"^(?P<prefix>[A-Z0-9]+)-\d{3}$")
_SOURCE_ID = re.compile(r"\bS\d+b?\b")


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
    #: ``framework``, ``observed`` or ``profile`` (see :data:`BASES`).
    provenance: str = "profile"
    #: Where in the public sources the rule is stated (source ids ``S1``..``S19`` of the research
    #: notes, with section); required for ``framework`` and ``observed``.
    source: str = ""
    #: Why the profile chose this where the sources are silent; required for ``profile``.
    reason: str = ""
    milestone: str = "M1"
    #: Profile version that introduced the requirement, and the one that withdrew it (IDs are
    #: never reused: a changed meaning is a new ID, the old one is withdrawn and kept here).
    added: str = FIRST_VERSION
    withdrawn: str = ""
    replaced_by: tuple[str, ...] = ()
    #: The chat binding the requirement is specific to (spec §5.3): ``""`` = every binding,
    #: ``"wa"`` = judged only on a ``--wire wa`` run (NOT_APPLICABLE on others).
    wire: str = ""

    def active_at(self, version: str) -> bool:
        """Whether the requirement is part of profile ``version`` (added, not yet withdrawn)."""
        v = _semver(version)
        return _semver(self.added) <= v and (not self.withdrawn or v < _semver(self.withdrawn))

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


@dataclass(frozen=True)
class Milestone:
    """One of the gatekeeper's onboarding milestones, with the wording of its own test."""

    id: str
    name: str
    test: str
    source: str


def _semver(version: str) -> tuple[int, int, int]:
    parts = version.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise CatalogError(f"{version!r} is not a MAJOR.MINOR.PATCH version")
    return int(parts[0]), int(parts[1]), int(parts[2])


def _check_provenance(where: str, req: Requirement) -> None:
    """Rules the schema states per basis, restated so spec parse errors read the same."""
    if req.provenance not in BASES:
        raise CatalogError(f"{where}: {req.id}: provenance {req.provenance!r} is not one of {BASES}")
    if req.provenance in ("framework", "observed") and not _SOURCE_ID.search(req.source):
        raise CatalogError(f"{where}: {req.id}: {req.provenance} provenance needs a Source naming "
                           f"a source id (S1..S19) and section")
    if req.provenance == "profile" and not req.reason:
        raise CatalogError(f"{where}: {req.id}: profile provenance needs a Reason")
    if req.milestone not in MILESTONE_IDS:
        raise CatalogError(f"{where}: {req.id}: milestone {req.milestone!r} is not one of {MILESTONE_IDS}")
    if req.withdrawn and _semver(req.withdrawn) <= _semver(req.added):
        raise CatalogError(f"{where}: {req.id}: withdrawn in {req.withdrawn}, not after {req.added}")
    if req.replaced_by and not req.withdrawn:
        raise CatalogError(f"{where}: {req.id}: replaced_by without withdrawn")


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


def _requirement_from_entry(entry: dict[str, Any]) -> Requirement:
    prov = entry["provenance"]
    hist = entry.get("history", {})
    return Requirement(
        id=entry["id"],
        level=entry["level"],
        title=entry["title"],
        text=entry["text"],
        section=entry["section"],
        role=entry["role"],
        profiles=tuple(entry["profiles"]),
        area=entry["area"],
        provenance=prov["basis"],
        source=prov.get("source", ""),
        reason=prov.get("reason", ""),
        milestone=entry["milestone"],
        added=str(hist.get("added", FIRST_VERSION)),
        withdrawn=str(hist.get("withdrawn", "")),
        replaced_by=tuple(hist.get("replaced_by", ())),
        wire=entry.get("wire", ""),
    )


def load_catalog(path: str | Path | None = None, *, include_withdrawn: bool = False) -> list[Requirement]:
    """Load and validate the catalog; entries keep the file's (spec) order.

    By default only the requirements of the catalog's own ``profile_version`` are returned;
    ``include_withdrawn`` adds those withdrawn by it (kept so that older reports still verify,
    see :func:`requirements_at`). Beyond the JSON Schema it enforces unique IDs, that ``area``
    matches the prefix, the provenance rules and that replacements exist.
    """
    path = Path(path) if path is not None else CATALOG_PATH
    doc = _load_document(path)
    version = str(doc["profile_version"])
    out: list[Requirement] = []
    seen: set[str] = set()
    for entry in doc["requirements"]:
        req = _requirement_from_entry(entry)
        _check_provenance(str(path), req)
        if req.id in seen:
            raise CatalogError(f"{path}: duplicate requirement id {req.id}")
        seen.add(req.id)
        if req.area != area_for_id(req.id):
            raise CatalogError(
                f"{path}: {req.id} has area {req.area!r}, its prefix gives {area_for_id(req.id)!r}"
            )
        out.append(req)
    for req in out:
        for new in req.replaced_by:
            if new not in seen:
                raise CatalogError(f"{path}: {req.id} is replaced by unknown requirement {new}")
    if include_withdrawn:
        return out
    return [r for r in out if r.active_at(version)]


def requirements_at(version: str, path: str | Path | None = None) -> list[Requirement]:
    """The requirements that made up profile ``version`` (for verifying an older report).

    A version newer than the catalog's is refused: this kit cannot know what it required.
    """
    if _semver(version) > _semver(catalog_profile_version(path)):
        raise CatalogError(f"profile version {version} is newer than this kit's catalog "
                           f"({catalog_profile_version(path)})")
    return [r for r in load_catalog(path, include_withdrawn=True) if r.active_at(version)]


def meaning_changes(old: str, new: str, path: str | Path | None = None) -> list[dict[str, Any]]:
    """Requirements withdrawn after ``old`` up to ``new`` (their meaning changed or they went),
    each with the version that withdrew it and its replacements, in catalog order."""
    lo, hi = sorted((_semver(old), _semver(new)))
    return [{"id": r.id, "withdrawn": r.withdrawn, "replaced_by": list(r.replaced_by),
             "title": r.title}
            for r in load_catalog(path, include_withdrawn=True)
            if r.withdrawn and lo < _semver(r.withdrawn) <= hi]


def load_milestones(path: str | Path | None = None) -> list[Milestone]:
    """The six milestones, in order, with the gatekeeper's test wording."""
    doc = _load_document(Path(path) if path is not None else CATALOG_PATH)
    return [Milestone(m["id"], m["name"], m["test"], m["source"]) for m in doc["milestones"]]


def catalog_profile_version(path: str | Path | None = None) -> str:
    """``profile_version`` the catalog was taken from."""
    return str(_load_document(Path(path) if path is not None else CATALOG_PATH)["profile_version"])


def _entry(r: Requirement) -> dict[str, Any]:
    prov: dict[str, str] = {"basis": r.provenance}
    if r.source:
        prov["source"] = r.source
    if r.reason:
        prov["reason"] = r.reason
    entry: dict[str, Any] = {
        "id": r.id,
        "level": r.level,
        "title": r.title,
        "text": r.text,
        "section": r.section,
        "role": r.role,
        "profiles": list(r.profiles),
        "area": r.area,
        "provenance": prov,
        "milestone": r.milestone,
    }
    if r.wire:
        entry["wire"] = r.wire
    hist: dict[str, Any] = {}
    if r.added != FIRST_VERSION or r.withdrawn:
        hist["added"] = r.added
    if r.withdrawn:
        hist["withdrawn"] = r.withdrawn
    if r.replaced_by:
        hist["replaced_by"] = list(r.replaced_by)
    if hist:
        entry["history"] = hist
    return entry


def dump_catalog(requirements: list[Requirement], profile_version: str,
                 milestones: list[Milestone]) -> str:
    """Serialize requirements as ``requirements.yaml`` (used to regenerate it from the spec)."""
    doc = {
        "profile_version": profile_version,
        "milestones": [{"id": m.id, "name": m.name, "test": m.test, "source": m.source}
                       for m in milestones],
        "requirements": [_entry(r) for r in requirements],
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
    r" · Profiles: (?P<profiles>[a-z]+(?:, [a-z]+)*)(?: · Wire: (?P<wire>open|wa))?\s*$"
)
_PROVENANCE = re.compile(r"^- Provenance: (?P<basis>[a-z]+)(?P<rest>(?: · (?:Source|Reason): [^·]+?)+)"
                         r" · Milestone: (?P<milestone>M\d)\s*$")
_HISTORY = re.compile(r"^- History: added (?P<added>\d+\.\d+\.\d+)"
                      r"(?: · withdrawn (?P<withdrawn>\d+\.\d+\.\d+))?"
                      r"(?: · replaced by (?P<by>[A-Z0-9]+-\d{3}(?:, [A-Z0-9]+-\d{3})*))?\s*$")
_MILESTONE_ROW = re.compile(r"^\| (?P<id>M\d) \| (?P<name>[^|]+?) \| (?P<test>[^|]+?) \| (?P<source>[^|]+?) \|\s*$")
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
    ``- Level: L · Role: R · Profiles: p, q``, the provenance line
    ``- Provenance: B · Source: … | Reason: … · Milestone: Mn``, optionally a history line
    ``- History: added X.Y.Z[ · withdrawn X.Y.Z][ · replaced by ID, ID]``, a blank line, and
    one paragraph of normative text. Further paragraphs before the next heading must start with ``Note:``; anything
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
            if i + 2 >= len(lines) or (prov := _PROVENANCE.match(lines[i + 2][1])) is None:
                raise fail(no + 2, f"{req_id}: expected '- Provenance: framework|observed|profile"
                                   f" · Source: …|Reason: … · Milestone: M1..M6'")
            fields: dict[str, str] = {}
            for part in prov.group("rest").split(" · ")[1:]:
                key, _, value = part.partition(": ")
                if key.lower() in fields:
                    raise fail(no + 2, f"{req_id}: {key} given twice")
                fields[key.lower()] = value.strip()
            j = i + 3
            history = None
            if j < len(lines) and lines[j][1].startswith("- History:"):
                if (history := _HISTORY.match(lines[j][1])) is None:
                    raise fail(lines[j][0], f"{req_id}: expected '- History: added X.Y.Z"
                                            f"[ · withdrawn X.Y.Z][ · replaced by ID, …]'")
                j += 1
            if j >= len(lines) or lines[j][1].strip():
                raise fail(no + 2, f"{req_id}: expected a blank line after the metadata lines")
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
                provenance=prov.group("basis"),
                source=fields.get("source", ""),
                reason=fields.get("reason", ""),
                milestone=prov.group("milestone"),
                added=history.group("added") if history else FIRST_VERSION,
                withdrawn=(history.group("withdrawn") or "") if history else "",
                replaced_by=tuple(history.group("by").split(", ")) if history and history.group("by") else (),
                wire=meta.group("wire") or "",
            )
            try:
                _check_provenance(f"{path}:{no}", out[req_id])
            except CatalogError as exc:
                raise fail(no + 2, str(exc).split(": ", 1)[1]) from None
            i = j
            continue
        i += 1
    if not out:
        raise CatalogError(f"{path}: no requirement entries found")
    return out


def parse_spec_milestones(path: str | Path | None = None) -> list[Milestone]:
    """The milestone table of spec §1.1: ``| M1 | name | the gatekeeper's test | source |``."""
    path = Path(path) if path is not None else SPEC_PATH
    rows = [m for _, line in _spec_lines(path) if (m := _MILESTONE_ROW.match(line))]
    out = [Milestone(m.group("id"), m.group("name"), m.group("test"), m.group("source")) for m in rows]
    if [m.id for m in out] != list(MILESTONE_IDS):
        raise CatalogError(f"{path}: the milestone table must list {', '.join(MILESTONE_IDS)} once each, "
                           f"in order; found {[m.id for m in out]}")
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
        for field in ("level", "role", "title", "section", "area", "provenance", "source",
                      "reason", "milestone", "added", "withdrawn", "replaced_by", "wire"):
            if getattr(cat, field) != getattr(sp, field):
                problems.append(f"{rid}: {field} {getattr(cat, field)!r} in the catalog, "
                                f"{getattr(sp, field)!r} in the spec")
        if set(cat.profiles) != set(sp.profiles):
            problems.append(f"{rid}: profiles {sorted(cat.profiles)} in the catalog, "
                            f"{sorted(sp.profiles)} in the spec")
        if normalize_ws(cat.text) != normalize_ws(sp.text):
            problems.append(f"{rid}: text differs")
    return problems
