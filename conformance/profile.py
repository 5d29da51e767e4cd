"""Profiles and provider declarations: which requirements a run covers, with what parameters.

A profile is YAML, validated against ``profiles/schema.json`` at load with errors that name
the file and the offending key; ``extends:`` inherits parameters and includes from a parent
(cycles are refused). The declaration is the provider's own statement (capabilities,
limits, test accounts), validated against ``profiles/declaration.schema.json``. Together
they decide which requirements apply and which may be NOT_APPLICABLE.
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .catalog import Requirement, load_catalog

__all__ = ["ProfileError", "Profile", "Declaration", "load_profile", "load_declaration", "PROFILE_DIR"]

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"


class ProfileError(ValueError):
    """A profile or declaration file is missing, malformed or inconsistent."""


def _read_yaml(path: Path, what: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(f"{what} {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ProfileError(f"{what} {path} must be a mapping at the top level")
    return data


def _validate(data: dict[str, Any], schema_name: str, path: Path, what: str) -> None:
    schema = json.loads((PROFILE_DIR / schema_name).read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.path))
    if errors:
        lines = [f"  at {'/'.join(map(str, e.path)) or '(top level)'}: {e.message}" for e in errors[:10]]
        raise ProfileError(f"{what} {path} does not match its schema:\n" + "\n".join(lines))


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


@dataclass(frozen=True)
class Profile:
    name: str
    profile_version: str
    description: str
    requirements: tuple[Requirement, ...]
    optional: frozenset[str]
    parameters: dict[str, Any] = field(hash=False)
    source: str = ""

    def timeout(self, area: str, default: float = 15.0) -> float:
        return float(self.parameters.get("timeouts", {}).get(area, default))

    def deadline(self, kind: str = "exchange", default: float = 30.0) -> float:
        """Total wall-clock seconds one exchange with the provider may take (``exchange``: an
        HTTP request, TLS handshake or WebSocket step; ``harness``: one harness call), whatever
        the peer trickles. Per-read timeouts alone never end a slow-drip peer."""
        return float(self.parameters.get("deadlines", {}).get(kind, default))

    def ids(self) -> set[str]:
        return {r.id for r in self.requirements}


def _resolve(name_or_path: str, seen: tuple[str, ...]) -> tuple[dict[str, Any], Path]:
    p = Path(name_or_path)
    path = p if (p.suffix in (".yaml", ".yml") or p.exists()) else PROFILE_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        known = ", ".join(sorted(x.stem for x in PROFILE_DIR.glob("*.yaml") if x.stem != "example-declaration"))
        raise ProfileError(f"unknown profile {name_or_path!r} (bundled: {known}; or give a path)")
    key = str(path.resolve())
    if key in seen:
        raise ProfileError(f"profile inheritance cycle: {' -> '.join(seen + (key,))}")
    data = _read_yaml(path, "profile")
    _validate(data, "schema.json", path, "profile")
    parent = data.get("extends")
    if parent:
        base, _ = _resolve(parent, seen + (key,))
        base.pop("name", None)
        base.pop("description", None)
        data = _merge(base, data)
    return data, path


def load_profile(name_or_path: str, catalog: list[Requirement] | None = None) -> Profile:
    data, path = _resolve(name_or_path, ())
    catalog = catalog if catalog is not None else load_catalog()
    by_id = {r.id: r for r in catalog}
    inc = data.get("include", {})
    claimed = set(inc.get("profiles", []))
    ids = {r.id for r in catalog if claimed & set(r.profiles)}
    for rid in inc.get("requirements", []):
        if rid not in by_id:
            raise ProfileError(f"profile {path} includes unknown requirement {rid}")
        ids.add(rid)
    for rid in data.get("exclude", {}).get("requirements", []):
        if rid not in by_id:
            raise ProfileError(f"profile {path} excludes unknown requirement {rid}")
        if by_id[rid].level == "MUST":
            raise ProfileError(f"profile {path} may not exclude the MUST requirement {rid}")
        ids.discard(rid)
    optional = frozenset(data.get("optional", []))
    for rid in optional:
        if rid not in by_id:
            raise ProfileError(f"profile {path} lists unknown optional requirement {rid}")
    reqs = tuple(r for r in catalog if r.id in ids)
    return Profile(data["name"], data["profile_version"], data.get("description", ""), reqs,
                   optional, data.get("parameters", {}), str(path.name))


@dataclass(frozen=True)
class Declaration:
    data: dict[str, Any]
    digest: str  # sha256 of the file bytes, for the report
    source: str

    @property
    def unsupported(self) -> frozenset[str]:
        return frozenset(self.data.get("unsupported", []))

    @classmethod
    def empty(cls) -> "Declaration":
        return cls({"provider": {"name": "undeclared"}, "profiles": []}, "", "")


def load_declaration(path: str | Path | None) -> Declaration:
    if not path:
        return Declaration.empty()
    p = Path(path)
    data = _read_yaml(p, "declaration")
    _validate(data, "declaration.schema.json", p, "declaration")
    return Declaration(data, hashlib.sha256(p.read_bytes()).hexdigest(), p.name)
