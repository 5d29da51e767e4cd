"""The import structure stays the one ``docs/architecture.md`` describes.

Why: layers that import upward, and import circles, are what made the kit hard to read, test
and extend (issue 11). An AST walk over ``conformance/``, ``reference_impl/`` and ``vectors/``
checks three rules, without importing anything:

1. **Layers.** A module imports only its own layer or lower ones (table ``LAYERS``, lowest
   first); ``reference_impl.provider`` and ``conformance.gatekeeper`` share a layer but must not
   import each other; ``vectors`` may use ``reference_impl`` but not ``conformance``.
2. **No circles** between modules, anywhere (the last one, inside ``conformance.gatekeeper``,
   was removed by layering the simulator: see ``docs/architecture.md``).
3. **No cross-module private names**: ``from m import _x`` where ``m`` is another module.
   A ``_private`` *module* may be imported from inside its own package only.

Every import counts, also those inside functions or ``if TYPE_CHECKING:`` — a lazy import
hides a circle, it does not remove it.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("conformance", "reference_impl", "vectors")

#: (layer, module prefixes), lowest first. The longest matching prefix decides a module's layer.
LAYERS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (0, ("reference_impl", "reference_impl.signal")),
    (1, ("reference_impl.media", "reference_impl.wire", "reference_impl.channel", "reference_impl.wa",
         "reference_impl.tlsutil",
         # A leaf utility with no kit imports, shared by the event log and the report writers.
         "conformance.redact")),
    (2, ("reference_impl.provider", "conformance.gatekeeper", "vectors")),
    (3, ("conformance",)),
)

#: Same-layer packages that must not import each other.
SEPARATE = (("reference_impl.provider", "conformance.gatekeeper"),
            ("vectors", "conformance.gatekeeper"), ("vectors", "reference_impl.provider"))


@dataclass(frozen=True)
class Import:
    importer: str
    target: str  # a module of the kit
    names: tuple[str, ...]  # names taken with ``from target import ...`` (empty for ``import``)
    line: int


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(f.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(parts)] = f
    return mods


def _imports(mods: dict[str, Path]) -> list[Import]:
    out: list[Import] = []
    for name, path in mods.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target = _known(alias.name, mods)
                    if target:
                        out.append(Import(name, target, (), node.lineno))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[:len(package) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                plain: list[str] = []
                for alias in node.names:
                    sub = f"{module}.{alias.name}"
                    if sub in mods:  # ``from pkg import submodule``
                        out.append(Import(name, sub, (), node.lineno))
                    else:
                        plain.append(alias.name)
                target = _known(module, mods)
                if target and plain:
                    out.append(Import(name, target, tuple(plain), node.lineno))
    return out


def _known(module: str, mods: dict[str, Path]) -> str | None:
    """The kit module ``module`` names (or its nearest kit parent), None for third-party."""
    parts = module.split(".")
    while parts:
        if ".".join(parts) in mods:
            return ".".join(parts)
        parts.pop()
    return None


def _layer(module: str) -> tuple[int, str]:
    best = (-1, "")
    for layer, prefixes in LAYERS:
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > len(best[1]):
                best = (layer, p)
    assert best[0] >= 0, f"{module} is in no layer: add it to LAYERS"
    return best


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


MODS = _modules()
IMPORTS = _imports(MODS)


def test_the_walk_sees_the_kit() -> None:
    # A walk that found nothing would pass every rule below.
    assert len(MODS) > 50 and len(IMPORTS) > 200
    assert any(i.importer == "reference_impl.provider.app" and i.target == "reference_impl.provider.client"
               for i in IMPORTS)


def upward_imports(imports: list[Import]) -> list[str]:
    bad = []
    for i in imports:
        (src, src_p), (dst, dst_p) = _layer(i.importer), _layer(i.target)
        if dst > src:
            bad.append(f"{i.importer}:{i.line} imports {i.target} (layer {src} -> {dst})")
        for a, b in SEPARATE:
            if (_within(i.importer, a) and _within(i.target, b)) or \
                    (_within(i.importer, b) and _within(i.target, a)):
                bad.append(f"{i.importer}:{i.line} imports {i.target} ({a} and {b} are separate)")
    return bad


def test_no_module_imports_upward() -> None:
    assert upward_imports(IMPORTS) == []


def cycles(imports: list[Import]) -> set[tuple[str, ...]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    graph: dict[str, set[str]] = {m: set() for m in MODS}
    for i in imports:
        if i.target != i.importer and not _within(i.importer, i.target):
            # A module importing its own package's __init__ is not a circle we can break.
            graph[i.importer].add(i.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: set[tuple[str, ...]] = set()
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                elif nxt in on:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    found.add(tuple(sorted(comp)))
    return found


def test_no_import_circles() -> None:
    found = sorted(cycles(IMPORTS))
    assert found == [], "import circle(s):\n" + "\n".join(" <-> ".join(c) for c in found)


def private_imports(imports: list[Import]) -> list[str]:
    bad = []
    for i in imports:
        for n in i.names:
            if n.startswith("_") and not n.startswith("__"):
                bad.append(f"{i.importer}:{i.line} imports private {i.target}.{n}")
        for part_no, part in enumerate(i.target.split(".")):
            if part.startswith("_") and not part.startswith("__"):
                owner = ".".join(i.target.split(".")[:part_no])
                if not _within(i.importer, owner):
                    bad.append(f"{i.importer}:{i.line} imports private module {i.target}")
    return bad


def test_no_cross_module_private_imports() -> None:
    assert private_imports(IMPORTS) == []


# -- the rules themselves fail on the violations they exist for ----------------------------------
def test_rules_catch_their_violations() -> None:
    up = Import("reference_impl.signal.store", "reference_impl.provider.app", (), 1)
    across = Import("conformance.gatekeeper.core", "reference_impl.provider.tls", (), 1)
    vec = Import("vectors.check", "conformance.plugin", (), 1)
    assert len(upward_imports([up, across, vec])) == 3
    assert upward_imports([Import("conformance.suite.kit", "reference_impl.provider", (), 1)]) == []
    circle = [Import("reference_impl.signal.store", "reference_impl.signal.keys", (), 1),
              Import("reference_impl.signal.keys", "reference_impl.signal.store", (), 1)]
    assert cycles(circle) == {("reference_impl.signal.keys", "reference_impl.signal.store")}
    priv = [Import("conformance.gatekeeper.core", "conformance.gatekeeper.script", ("_shape",), 1),
            Import("conformance.suite.kit", "reference_impl.signal._ed25519", (), 1),
            Import("reference_impl.signal.xeddsa", "reference_impl.signal._ed25519", (), 1)]
    assert len(private_imports(priv)) == 2
