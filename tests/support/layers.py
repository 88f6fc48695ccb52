"""The layer check run by ``make lint``: floors import only downwards, nothing imports in a
circle, and package ``__init__`` files only re-export (imports, ``__all__``, a docstring).

Every import counts: module level, inside functions and under ``TYPE_CHECKING``, and so does
every package ``__init__`` an import runs (``from pkg import sub`` runs ``pkg``): inside a
package, modules import their siblings by their own names (``from pkg.sub import name``),
never through the package.

    python -m tests.support.layers        # exit 1 listing each problem

The floors are :data:`LAYERS`, bottom first: a module belongs to the floor of its longest
matching prefix, and a module in none of them is an error, so a new package is placed on
purpose.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: What the check reads: the framework, its settings, the feature modules, the entry point.
SOURCES = ("core", "config", "modules", "app.py")

#: Bottom first. A floor may import from its own floor and any floor below it.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("errors, logging, lifecycle", ("core.errors", "core.log", "core.lifecycle")),
    ("edge: principal, policies, strict JSON, problems, bearer", ("core.edge",)),
    ("settings", ("config",)),
    ("managers", ("core.managers", "core.module", "core.crypto")),
    ("app_manager: the composition root", ("core.app_manager",)),
    ("http: pipeline, routing, views", ("core.http",)),
    ("cli: flask commands", ("core.cli",)),
    ("factory", ("core.factory",)),
    (
        "top: entry points, server, feature modules, test plugin, dev stack",
        (
            "app",
            "core.server",
            "core.system_actions",
            "core.testing",
            "core.devstack",
            "modules",
        ),
    ),
)


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    path: Path
    line: int
    #: Run only as a parent package of what the statement names.
    implicit: bool = False


def module_names(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every Python file of :data:`SOURCES`."""
    found: dict[str, Path] = {}
    for source in SOURCES:
        base = root / source
        files = [base] if base.suffix == ".py" else sorted(base.rglob("*.py"))
        for path in files:
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports(root: Path) -> Iterator[Import]:
    """Every import between two modules of :data:`SOURCES`, wherever it is written.

    An import runs more than the module it names, and each of those runs is an edge:

    - ``from pkg import name`` reads ``pkg``'s namespace, so it imports ``pkg`` (its
      ``__init__``), and the submodule ``pkg.name`` too when there is one;
    - importing ``a.b.c`` runs the ``__init__`` of ``a`` and ``a.b`` first, except those of
      the importer's own packages, which are already running when the importer runs.
    """
    modules = module_names(root)

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    def parents(name: str) -> list[str]:
        parts = name.split(".")
        return [".".join(parts[:i]) for i in range(1, len(parts))]

    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        running = {package, *parents(package)}  # the importer's packages: already importing
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parent, *([node.module] if node.module else [])])
                # ``from pkg import sub``: the namespace ``pkg``, and the submodule ``pkg.sub``
                # when there is one.
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            named = {m for m in map(known, targets) if m is not None}
            run = {p for m in named for p in parents(m) if p in modules and p not in running}
            for imported in sorted(named - {name}):
                yield Import(name, imported, path, node.lineno)
            for imported in sorted(run - named - {name}):
                yield Import(name, imported, path, node.lineno, implicit=True)


#: Package ``__init__`` files that only name a namespace: on the lowest floor.
NAMESPACES = frozenset({"core"})


def floor_of(module: str) -> int | None:
    if module in NAMESPACES:
        return 0
    best: tuple[int, int] | None = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (
                best is None or len(prefix) > best[1]
            ):
                best = (index, len(prefix))
    return None if best is None else best[0]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(edges.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def init_problems(root: Path) -> Iterator[str]:
    """A package ``__init__`` re-exports only: imports, ``__all__`` and a docstring. Code in it
    runs whenever any module of the package is imported, and hides from the name a reader
    looks for: it lives in a named module of the package."""
    for path in module_names(root).values():
        if path.name != "__init__.py":
            continue
        for node in ast.parse(path.read_text(encoding="utf-8"), str(path)).body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                continue
            if isinstance(node, ast.Expr) and isinstance(getattr(node.value, "value", 0), str):
                continue
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if all(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                    continue
            what = type(node).__name__.lower().removesuffix("def")
            yield (
                f"{path.relative_to(root)}:{node.lineno}: an __init__.py only re-exports "
                f"(imports, __all__, a docstring): move this {what} into a named module"
            )


def check(root: Path = ROOT) -> list[str]:
    """Every problem, one line each; empty when the layers hold."""
    problems: list[str] = list(init_problems(root))
    edges: dict[str, set[str]] = {name: set() for name in module_names(root)}
    for name in edges:
        if floor_of(name) is None:
            problems.append(f"{name}: in no floor (add it to LAYERS in {Path(__file__).name})")
    upward: set[tuple[Path, int]] = set()  # statements reported: one line each
    for found in imports(root):
        edges[found.importer].add(found.imported)
        low, high = floor_of(found.importer), floor_of(found.imported)
        if low is not None and high is not None and high > low:
            if found.implicit and (found.path, found.line) in upward:
                continue
            upward.add((found.path, found.line))
            where = f"{found.path.relative_to(root)}:{found.line}"
            problems.append(
                f"{where}: {found.importer} ({LAYERS[low][0].split(':')[0]}) imports upward "
                f"{found.imported} ({LAYERS[high][0].split(':')[0]})"
            )
    for group in cycles(edges):
        problems.append(f"import circle of {len(group)} modules: {', '.join(group)}")
    return problems


def main() -> int:
    problems = check()
    for problem in problems:
        print(problem)
    if problems:
        print(f"layer check: {len(problems)} problem(s); the floors are in {__name__}.LAYERS")
        return 1
    print(
        f"layer check: {len(LAYERS)} floors, no upward import, no circle, "
        "__init__ files re-export only"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
