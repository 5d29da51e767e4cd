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
    CATALOG_PATH,
    LEVELS,
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
    normalize_ws,
    parse_spec,
    parse_spec_requirements,
    spec_profile_version,
)

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = sorted((ROOT / "docs" / "spec" / "openapi").glob("*.yaml"))
CATALOG = load_catalog()
SPEC = parse_spec()
SPEC_IDS = sorted(SPEC)


# ------------------------------------------------------------------ catalog on its own


def test_catalog_validates_and_is_non_trivial() -> None:
    assert 60 <= len(CATALOG) <= 110
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
    ],
)
def test_loader_rejects_invalid_catalogs(tmp_path: Path, mutate: Any) -> None:
    with pytest.raises(CatalogError):
        load_catalog(_write_catalog(tmp_path, mutate))


# ------------------------------------------------------------------ catalog vs spec


def test_profile_versions_agree() -> None:
    assert catalog_profile_version() == spec_profile_version() == "1.0.0"


def test_same_ids_in_spec_and_catalog() -> None:
    assert [r.id for r in CATALOG] == list(SPEC), "same IDs, in document order"


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
    expected = dump_catalog(list(SPEC.values()), spec_profile_version())
    assert CATALOG_PATH.read_text(encoding="utf-8") == expected


@pytest.mark.parametrize(
    ("field", "value"),
    [("level", "SHOULD"), ("role", "provider-client"), ("profiles", ("media",)),
     ("title", "Other"), ("text", "Something else entirely MUST.")],
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
