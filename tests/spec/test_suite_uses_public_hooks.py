"""Checks drive the gatekeeper simulator through its public hooks only (issue 11).

Why: a check that assigns to a simulator attribute, wraps one of its methods or reaches a
``_private`` name leaves the simulator changed for whatever runs next (or at the same time)
and breaks silently when the simulator's insides change. An AST walk over
``conformance/suite/*.py``, without importing anything, flags:

1. **Assignments into the simulator**: an assignment, augmented assignment or ``del`` whose
   target is an attribute or item of an expression that names a simulator attribute
   (``gk.keys = ...``, ``user.party.store.x = ...``, ``gk.accounts[l] = ...``), a store into a
   module imported from ``conformance.gatekeeper`` (``routing.handle = ...``), or an assignment
   to a name the simulator's classes define on an object the suite did not define itself.
2. **Container mutation** of simulator state: ``.add/.remove/.pop/...`` called (or passed
   on, e.g. to ``kit.call``) on an expression that passes through a simulator attribute
   (``gk.keys.keys.remove(k)``).
3. **Reflection**: any use of ``setattr``, ``delattr`` or ``vars`` (how patching is spelled
   when it is passed to ``kit.call``).
4. **Private names**: ``x._name`` for any ``_name`` the simulator or the reference
   implementation defines, except on ``self``/``cls``.

"Simulator attribute" means a name assigned as ``self.X`` or declared as a class field, or a
method, in ``conformance/gatekeeper``, less the names the suite's own classes define (a
check's ``Attempt.login`` is its own business). Reading simulator state stays allowed.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SIM = ROOT / "conformance" / "gatekeeper"
SUITE = ROOT / "conformance" / "suite"
PRIVATE_SOURCES = (SIM, ROOT / "reference_impl")
MUTATORS = frozenset({
    "add", "remove", "discard", "pop", "popitem", "clear", "update", "append", "extend",
    "insert", "setdefault", "difference_update", "intersection_update",
    "symmetric_difference_update", "appendleft", "popleft", "move_to_end",
})
REFLECTION = frozenset({"setattr", "delattr", "vars"})
#: (attribute, method) pairs that are public API, not container mutation: the evidence log is
#: append-only and a check may add its own notes (crafted messages) to it.
PUBLIC_METHODS = frozenset({("log", "append")})


def _class_names(files: list[Path]) -> set[str]:
    """Attribute and method names the classes in ``files`` define."""
    names: set[str] = set()
    for f in files:
        for node in ast.walk(ast.parse(f.read_text("utf-8"), str(f))):
            if not isinstance(node, ast.ClassDef):
                continue
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    names.add(item.target.id)
                elif isinstance(item, ast.Assign):
                    names.update(t.id for t in item.targets if isinstance(t, ast.Name))
            for sub in ast.walk(node):
                if isinstance(sub, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                    targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target]
                    for t in targets:
                        for el in ast.walk(t):
                            if isinstance(el, ast.Attribute) and isinstance(el.value, ast.Name) \
                                    and el.value.id == "self":
                                names.add(el.attr)
    return names


def _private_names(roots: tuple[Path, ...]) -> set[str]:
    names: set[str] = set()
    for root in roots:
        for f in root.rglob("*.py"):
            for node in ast.walk(ast.parse(f.read_text("utf-8"), str(f))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    names.add(node.name)
                elif isinstance(node, ast.Attribute):
                    names.add(node.attr)
                elif isinstance(node, ast.Name):
                    names.add(node.id)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def _chain(node: ast.AST) -> tuple[str | None, list[str]]:
    """Root name and attribute names of ``a.b[c].d`` (subscripts and calls passed through)."""
    attrs: list[str] = []
    while True:
        if isinstance(node, ast.Attribute):
            attrs.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Subscript):
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        else:
            break
    return (node.id if isinstance(node, ast.Name) else None), attrs[::-1]


def _sim_modules(tree: ast.Module) -> set[str]:
    """Local names bound to modules (or objects) imported from ``conformance.gatekeeper``."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("conformance.gatekeeper"):
            out.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.asname or a.name.split(".")[0] for a in node.names
                       if a.name.startswith("conformance.gatekeeper"))
    return out


def violations(source: str, filename: str, sim_attrs: set[str], private: set[str]) -> list[str]:
    tree = ast.parse(source, filename)
    imported = _sim_modules(tree)
    bad: list[str] = []

    def where(node: ast.AST) -> str:
        return f"{filename}:{getattr(node, 'lineno', '?')}: {ast.unparse(node)[:90]}"

    def into_sim(target: ast.AST) -> bool:
        if not isinstance(target, (ast.Attribute, ast.Subscript)):
            return False
        root, attrs = _chain(target)
        if root in ("self", "cls"):
            return False
        inner = attrs[:-1] if isinstance(target, ast.Attribute) else attrs
        if root in imported or any(a in sim_attrs for a in inner):
            return True
        return isinstance(target, ast.Attribute) and target.attr in sim_attrs

    for node in ast.walk(tree):
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = list(node.targets)
        for t in targets:
            for el in ast.walk(t):
                if isinstance(el, (ast.Attribute, ast.Subscript)) and \
                        isinstance(el.ctx, (ast.Store, ast.Del)) and into_sim(el):
                    bad.append("assigns into the simulator: " + where(node))
        if isinstance(node, ast.Attribute) and node.attr in MUTATORS:
            # Called or passed on (``kit.call(gk.keys.keys.remove, k)``): the same mutation.
            root, attrs = _chain(node.value)
            public = bool(attrs) and (attrs[-1], node.attr) in PUBLIC_METHODS
            if root not in ("self", "cls") and not public and any(a in sim_attrs for a in attrs):
                bad.append("mutates simulator state: " + where(node))
        if isinstance(node, ast.Name) and node.id in REFLECTION:
            bad.append(f"uses {node.id}: " + where(node))
        if isinstance(node, ast.Attribute) and node.attr in private:
            root, _ = _chain(node)
            if root not in ("self", "cls"):
                bad.append("uses a private simulator name: " + where(node))
    return bad


SUITE_FILES = sorted(SUITE.glob("*.py"))
SIM_ATTRS = _class_names(sorted(SIM.glob("*.py"))) - _class_names(SUITE_FILES)
PRIVATE = _private_names(PRIVATE_SOURCES)


def test_the_walk_sees_the_simulator() -> None:
    # An empty name set would pass every check below.
    assert {"keys", "accounts", "party", "noise_private", "auto_delivery_receipts"} <= SIM_ATTRS
    assert {"_ensure_session", "_peers"} & PRIVATE or "_fetch_media_blob" in PRIVATE
    assert len(SUITE_FILES) >= 8


def test_no_check_patches_the_simulator() -> None:
    bad = [v for f in SUITE_FILES
           for v in violations(f.read_text("utf-8"), str(f.relative_to(ROOT)), SIM_ATTRS, PRIVATE)]
    assert bad == [], "checks must use public simulator hooks:\n" + "\n".join(bad)


PLANTED = '''
from conformance.gatekeeper import routing

def test_planted(kit, g):
    kit.gk.enlist = lambda *a: None
    routing.handle = None
    kit.call(kit.gk.keys.keys.remove, 1)
    kit.gk.keys.keys.remove(1)
    kit.call(setattr, g, "auto_delivery_receipts", False)
    g.party = None
    g.party.store.registration_id += 1
    kit.gk.accounts["x"] = None
    del kit.gk.accounts["x"]
    g._ensure_session("peer")
    kit.gk.noise_private = b""
'''


def test_the_rules_catch_a_planted_violation(tmp_path: Path) -> None:
    planted = tmp_path / "test_planted.py"
    planted.write_text(PLANTED)
    bad = violations(planted.read_text(), planted.name, SIM_ATTRS | {"enlist"}, PRIVATE)
    lines = sorted({int(re.search(r"test_planted\.py:(\d+):", v).group(1)) for v in bad})
    assert lines == list(range(5, 16)), bad  # every line of the planted check


def test_allowed_uses_pass(tmp_path: Path) -> None:
    ok = '''
class Mine:
    def __init__(self):
        self.login = ""

def test_ok(kit, g, att):
    att.login = "x"
    kit.call(g.set_auto_receipts, delivery=False)
    kit.call(kit.gk.keys.retire, "kid")
    n = len(kit.gk.accounts)
    seen = []
    seen.append(n)
    kit.gk.log.append("note", None, crafted=True)
'''
    assert violations(ok, "ok.py", SIM_ATTRS, PRIVATE) == []
