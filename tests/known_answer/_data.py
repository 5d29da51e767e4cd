"""Shared loaders for the known-answer data files (kept beside the tests, see data/)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

__all__ = ["DATA_DIR", "WYCHEPROOF_DIR", "load_json", "wycheproof_cases"]

DATA_DIR = Path(__file__).parent / "data"
WYCHEPROOF_DIR = DATA_DIR / "wycheproof"


def load_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


def wycheproof_cases(name: str, algorithm: str) -> list[Any]:
    """One ``pytest.param(group, test)`` per Wycheproof test case, id'd by tcId."""
    doc = load_json(WYCHEPROOF_DIR / name)
    # Guard against pointing a test at the wrong file.
    assert doc["algorithm"] == algorithm, (name, doc["algorithm"])
    return [
        pytest.param(group, test, id=f"tc{test['tcId']}")
        for group in doc["testGroups"]
        for test in group["tests"]
    ]
