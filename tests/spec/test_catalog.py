"""The requirement catalog is valid and says exactly what the spec says.

Why: verdicts, reports and evidence bundles key on the catalog, while reviewers read the
spec; if the two drift, a certification could rest on text nobody reviewed.
"""
from __future__ import annotations

import dataclasses
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.catalog import (
    AREAS,
    BASES,
    CATALOG_PATH,
    LEVELS,
    MILESTONE_IDS,
    PROFILES,
    ROLES,
    SPEC_PATH,
    CatalogError,
    Requirement,
    area_for_id,
    catalog_profile_version,
    diff_catalog_against_spec,
    dump_catalog,
    load_catalog,
    load_milestones,
    normalize_ws,
    parse_spec,
    parse_spec_milestones,
    parse_spec_requirements,
    spec_profile_version,
)

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = sorted((ROOT / "docs" / "spec" / "openapi").glob("*.yaml"))
#: The whole catalog, withdrawn entries (Appendix C) included, as the spec has them.
CATALOG = load_catalog(include_withdrawn=True)
SPEC = parse_spec()
SPEC_IDS = sorted(SPEC)


# ------------------------------------------------------------------ catalog on its own


def test_catalog_validates_and_is_non_trivial() -> None:
    assert 60 <= len(load_catalog()) <= 150  # current; CATALOG also holds the withdrawn ones
    assert len({r.id for r in CATALOG}) == len(CATALOG)
    assert all(isinstance(r, Requirement) for r in CATALOG)
    assert {r.area for r in CATALOG} == set(AREAS.values())
    assert {r.level for r in CATALOG} <= set(LEVELS)
    assert {r.role for r in CATALOG} == set(ROLES)
    assert {p for r in CATALOG for p in r.profiles} == set(PROFILES)


def test_requirement_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        CATALOG[0].level = "MAY"  # type: ignore[misc]


def test_area_is_derived_from_prefix() -> None:
    assert area_for_id("ENL-003") == "enlistment"
    assert area_for_id("ID-001") == "identity"
    with pytest.raises(CatalogError):
        area_for_id("XYZ-001")
    for req in CATALOG:
        assert req.area == area_for_id(req.id), req.id


def test_profile_membership() -> None:
    grp = next(r for r in CATALOG if r.id.startswith("GRP-"))
    assert grp.in_profiles({"full"}) and grp.in_profiles({"groups"})
    assert not grp.in_profiles({"core", "media"})


@pytest.mark.parametrize("req", CATALOG, ids=lambda r: r.id)
def test_text_uses_only_its_own_level_keyword(req: Requirement) -> None:
    """One level per requirement: alternatives are 'either … or' / 'is allowed', never MAY."""
    keywords = set(re.findall(r"\b(MUST|SHOULD|MAY)\b", req.text))
    assert keywords == {req.level}, f"{req.id}: level {req.level}, text uses {sorted(keywords)}"


def _write_catalog(tmp_path: Path, mutate: Any) -> Path:
    doc = yaml.safe_load(CATALOG_PATH.read_text(encoding="utf-8"))
    mutate(doc["requirements"])
    path = tmp_path / "requirements.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda reqs: reqs.append(dict(reqs[0])), id="duplicate-id"),
        pytest.param(lambda reqs: reqs[0].update(level="MUST NOT"), id="bad-level"),
        pytest.param(lambda reqs: reqs[0].update(role="gatekeeper"), id="bad-role"),
        pytest.param(lambda reqs: reqs[0].update(profiles=["full"]), id="full-is-not-listed"),
        pytest.param(lambda reqs: reqs[0].update(area="media"), id="area-not-from-prefix"),
        pytest.param(lambda reqs: reqs[0].update(id="ID-1"), id="bad-id"),
        pytest.param(lambda reqs: reqs[0].pop("text"), id="missing-field"),
        pytest.param(lambda reqs: reqs[0].update(extra=1), id="unknown-field"),
        pytest.param(lambda reqs: reqs[0].pop("provenance"), id="no-provenance"),
        pytest.param(lambda reqs: reqs[0].pop("milestone"), id="no-milestone"),
        pytest.param(lambda reqs: reqs[0].update(milestone="M7"), id="bad-milestone"),
        pytest.param(lambda reqs: reqs[0].update(provenance={"basis": "rumour", "source": "S2"}),
                     id="bad-basis"),
        pytest.param(lambda reqs: reqs[0].update(provenance={"basis": "framework"}),
                     id="framework-without-source"),
        pytest.param(lambda reqs: reqs[0].update(provenance={"basis": "observed", "source": "a blog"}),
                     id="source-without-source-id"),
        pytest.param(lambda reqs: reqs[0].update(provenance={"basis": "profile", "source": "S2 §1"}),
                     id="profile-without-reason"),
        pytest.param(lambda reqs: reqs[0].update(history={"added": "1.0.0", "replaced_by": ["ID-002"]}),
                     id="replaced-without-withdrawn"),
        pytest.param(lambda reqs: reqs[0].update(history={"added": "1.0.0", "withdrawn": "1.0.0"}),
                     id="withdrawn-not-after-added"),
        pytest.param(lambda reqs: reqs[0].update(
            history={"added": "1.0.0", "withdrawn": "1.1.0", "replaced_by": ["ID-999"]}),
                     id="replaced-by-unknown"),
    ],
)
def test_loader_rejects_invalid_catalogs(tmp_path: Path, mutate: Any) -> None:
    with pytest.raises(CatalogError):
        load_catalog(_write_catalog(tmp_path, mutate))


# ------------------------------------------------------------------ catalog vs spec


def test_profile_versions_agree() -> None:
    assert catalog_profile_version() == spec_profile_version() == "1.1.0"


def test_same_ids_in_spec_and_catalog() -> None:
    """Withdrawn entries (Appendix C) included: both keep them so older reports still verify."""
    assert [r.id for r in CATALOG] == list(SPEC), "same IDs, in document order"
    assert [r.id for r in load_catalog()] == [i for i, r in SPEC.items() if not r.withdrawn]


@pytest.mark.parametrize("req_id", SPEC_IDS)
def test_spec_and_catalog_agree(req_id: str) -> None:
    cat = {r.id: r for r in CATALOG}.get(req_id)
    assert cat is not None, f"{req_id} missing from requirements.yaml"
    level, role, profiles, title = parse_spec_requirements()[req_id]
    assert (cat.level, cat.role, set(cat.profiles), cat.title) == (level, role, set(profiles), title)
    assert normalize_ws(cat.text) == normalize_ws(SPEC[req_id].text)
    assert cat.section == SPEC[req_id].section


def test_catalog_is_exactly_the_generated_form() -> None:
    """``python -m conformance.catalog --write`` would not change the committed file."""
    expected = dump_catalog(list(SPEC.values()), spec_profile_version(), parse_spec_milestones())
    assert CATALOG_PATH.read_text(encoding="utf-8") == expected


@pytest.mark.parametrize(
    ("field", "value"),
    [("level", "SHOULD"), ("role", "provider-client"), ("profiles", ("media",)),
     ("title", "Other"), ("text", "Something else entirely MUST."), ("provenance", "observed"),
     ("source", "S13 elsewhere"), ("reason", "another reason"), ("milestone", "M6"),
     ("added", "1.1.0"), ("withdrawn", "2.0.0"), ("replaced_by", ("ID-001",))],
)
def test_disagreement_is_detected_and_names_the_id(field: str, value: Any) -> None:
    victim = CATALOG[5]
    tampered = [dataclasses.replace(r, **{field: value}) if r is victim else r for r in CATALOG]
    problems = diff_catalog_against_spec(tampered, SPEC)
    assert problems and all(p.startswith(victim.id) for p in problems)


def test_missing_and_extra_ids_are_detected() -> None:
    extra = dataclasses.replace(CATALOG[0], id="ID-999")
    problems = diff_catalog_against_spec(CATALOG[1:] + [extra], SPEC)
    assert any(p.startswith(CATALOG[0].id) for p in problems)
    assert any(p.startswith("ID-999") for p in problems)
    assert diff_catalog_against_spec(CATALOG, SPEC) == []


def test_parser_rejects_unmarked_extra_paragraph(tmp_path: Path) -> None:
    text = SPEC_PATH.read_text(encoding="utf-8")
    first = next(iter(SPEC.values()))
    anchor = f"#### {first.id} — {first.title}\n"
    head, tail = text.split(anchor, 1)
    meta, rest = tail.split("\n\n", 1)
    para, after = rest.split("\n\n", 1)
    path = tmp_path / "spec.md"
    path.write_text(f"{head}{anchor}{meta}\n\n{para}\n\nAlso MUST do more.\n\n{after}", "utf-8")
    with pytest.raises(CatalogError, match=first.id):
        parse_spec(path)


def test_parser_ignores_fenced_examples() -> None:
    assert "AREA-NNN" not in SPEC and not any(r.id.startswith("AREA") for r in SPEC.values())


def test_counts_per_area_and_level_are_reported() -> None:
    counts = Counter((r.area, r.level) for r in CATALOG)
    assert sum(counts.values()) == len(SPEC)


# ------------------------------------------------------------------ provenance and milestones

CURRENT = load_catalog()
ALL = load_catalog(include_withdrawn=True)


@pytest.mark.parametrize("req", ALL, ids=lambda r: r.id)
def test_every_requirement_has_provenance_and_a_milestone(req: Requirement) -> None:
    assert req.provenance in BASES and req.milestone in MILESTONE_IDS
    if req.provenance in ("framework", "observed"):
        assert re.search(r"\bS\d+", req.source), req.id
    else:
        assert req.reason, req.id


def test_milestones_are_the_six_with_the_gatekeepers_wording() -> None:
    ms = load_milestones()
    assert [m.id for m in ms] == list(MILESTONE_IDS) == [m.id for m in parse_spec_milestones()]
    assert ms == parse_spec_milestones()
    tests = {m.id: m.test for m in ms}
    assert tests["M1"] == "enlist a user and verify the response"
    assert tests["M2"] == "handshake completes and ping gets a response"
    assert tests["M5"] == "send a deletion request"
    assert {r.milestone for r in CURRENT} == set(MILESTONE_IDS), "every milestone has requirements"


def test_provenance_is_honest_about_the_known_cases() -> None:
    """The issue's own examples: ENL field sizes are the gatekeeper's; the 16 MiB media floor,
    the 24 h token lifetime and the retry limit of 5 are this profile's choices."""
    by_id = {r.id: r for r in ALL}
    assert by_id["ENL-002"].provenance == "framework" and "S2" in by_id["ENL-002"].source
    for rid in ("MED-013", "ID-008", "E2E-017"):
        assert by_id[rid].provenance == "profile", rid


def test_parser_rejects_a_missing_or_bad_provenance_line(tmp_path: Path) -> None:
    text = SPEC_PATH.read_text(encoding="utf-8")
    first = next(iter(SPEC.values()))
    lines = text.splitlines()
    line = lines[lines.index(f"#### {first.id} — {first.title}") + 2]
    assert line.startswith("- Provenance: framework")
    for replacement, needle in (("", first.id), (line.replace("Milestone: M1", "Milestone: M9"), "M9"),
                                ("- Provenance: framework · Milestone: M1", first.id),
                                (line.replace("- Provenance: framework", "- Provenance: profile"), "Reason")):
        path = tmp_path / "spec.md"
        path.write_text(text.replace(line + "\n", replacement + ("\n" if replacement else ""), 1), "utf-8")
        with pytest.raises(CatalogError, match=needle):
            parse_spec(path)


def test_catalog_command_shows_provenance_and_milestones() -> None:
    import json as _json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "conformance.cli", "catalog", "--json"],
                         capture_output=True, text=True, timeout=60, check=True)
    doc = _json.loads(out.stdout)
    assert doc["summary"]["requirements"] == len(CURRENT) == len(doc["requirements"])
    assert sum(doc["summary"]["by_provenance"].values()) == len(CURRENT)
    assert sum(doc["summary"]["by_milestone"].values()) == len(CURRENT)
    assert all(r["provenance"] in BASES and r["milestone"] in MILESTONE_IDS for r in doc["requirements"])
    fw = subprocess.run([sys.executable, "-m", "conformance.cli", "catalog", "--provenance", "framework"],
                        capture_output=True, text=True, timeout=60, check=True).stdout
    assert "ENL-002" in fw and "MED-013" not in fw
    bad = subprocess.run([sys.executable, "-m", "conformance.cli", "catalog", "--provenance", "rumour"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "rumour" in bad.stdout


# ------------------------------------------------------------------ OpenAPI documents


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_both_openapi_documents_exist() -> None:
    assert {p.name for p in OPENAPI} == {"provider-server.yaml", "harness.yaml"}


@pytest.mark.parametrize("path", OPENAPI, ids=lambda p: p.name)
def test_openapi_parses_and_is_3_1(path: Path) -> None:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    assert re.fullmatch(r"3\.1\.\d+", str(doc["openapi"]))
    assert doc["info"]["version"] == spec_profile_version()
    assert doc["paths"]
    for ref in _refs(doc):
        assert ref.startswith("#/"), ref
        _resolve(doc, ref)  # KeyError if dangling


@pytest.mark.parametrize("path", OPENAPI, ids=lambda p: p.name)
def test_openapi_requirement_references_exist(path: Path) -> None:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    cited = [rid for item in doc["paths"].values() for op in item.values()
             if isinstance(op, dict) for rid in op.get("x-requirements", [])]
    assert set(cited) <= set(SPEC), sorted(set(cited) - set(SPEC))


def test_provider_server_covers_the_black_box_surfaces() -> None:
    doc = yaml.safe_load((ROOT / "docs/spec/openapi/provider-server.yaml").read_text("utf-8"))
    paths = doc["paths"]
    assert "get" in paths["/.well-known/oauth/openid/jwks"]
    assert "post" in paths["/push"]
    assert "post" in paths["/media"]
    assert {"get", "head", "delete"} <= set(paths["/media/{storage_reference}"])
    assert "get" in paths["/health"]


def test_harness_errors_are_problem_json() -> None:
    doc = yaml.safe_load((ROOT / "docs/spec/openapi/harness.yaml").read_text("utf-8"))
    for route, item in doc["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            for status, resp in op["responses"].items():
                if str(status).startswith(("4", "5")) or status == "default":
                    resp = _resolve(doc, resp["$ref"]) if "$ref" in resp else resp
                    assert set(resp["content"]) == {"application/problem+json"}, (route, status)
