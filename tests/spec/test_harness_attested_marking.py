"""Every check that judges by the provider harness' word is marked ``harness_attested``, and
no other (issue 13 §6): an AST walk over ``conformance/suite/test_*.py``, without importing it.

"Judges by the harness' word" means: it calls ``harness.inbox`` or ``harness.events`` (what the
client says it surfaced or reported), directly or through a helper of its module. Driving the
client through the harness (send, connect) is not attestation: G sees the result on the wire.
"""
from __future__ import annotations

import ast
from pathlib import Path

SUITE = Path(__file__).resolve().parents[2] / "conformance" / "suite"
READS = frozenset({"inbox", "events"})


def _marked(fn: ast.FunctionDef) -> bool:
    for d in fn.decorator_list:
        target = d.func if isinstance(d, ast.Call) else d
        if isinstance(target, ast.Name) and target.id == "harness_attested":
            return True
        if isinstance(target, ast.Attribute) and target.attr == "harness_attested":
            return True
    return False


def _reads_harness(tree: ast.Module) -> dict[str, bool]:
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    calls: dict[str, set[str | None]] = {}
    for name, fn in funcs.items():
        out: set[str | None] = set()
        for x in ast.walk(fn):
            if not isinstance(x, ast.Call):
                continue
            f = x.func
            if (isinstance(f, ast.Attribute) and f.attr in READS and isinstance(f.value, ast.Name)
                    and f.value.id == "harness"):
                out.add(None)
            elif isinstance(f, ast.Name) and f.id in funcs:
                out.add(f.id)
        calls[name] = out

    def reads(name: str, seen: frozenset[str] = frozenset()) -> bool:
        if name in seen:
            return False
        return None in calls[name] or any(reads(c, seen | {name}) for c in calls[name] if c)

    return {n: reads(n) for n in funcs if n.startswith("test_")}


def test_harness_reading_checks_are_exactly_the_marked_ones():
    unmarked, wrongly = [], []
    total = 0
    for path in sorted(SUITE.glob("test_*.py")):
        tree = ast.parse(path.read_text("utf-8"), str(path))
        fns = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        for name, reads in _reads_harness(tree).items():
            marked = _marked(fns[name])
            total += marked
            if reads and not marked:
                unmarked.append(f"{path.name}::{name}")
            if marked and not reads:
                wrongly.append(f"{path.name}::{name}")
    assert not unmarked, f"read the harness' word but not marked harness_attested: {unmarked}"
    assert not wrongly, f"marked harness_attested but read no harness answer: {wrongly}"
    assert total > 0


def test_the_walk_sees_a_read_through_a_helper():
    tree = ast.parse("def _shown(harness):\n    return harness.inbox('u')\n"
                     "def test_a(harness):\n    _shown(harness)\n"
                     "def test_b(harness):\n    harness.send_text('u', 'g', 'x')\n")
    assert _reads_harness(tree) == {"test_a": True, "test_b": False}
