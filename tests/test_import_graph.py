"""The import graph of ``gateway`` and ``backends``, read from the source.

DESIGN.md asks for no import circles, not even behind ``TYPE_CHECKING`` or inside a
function (they mean two modules are one concept, or one reaches for what it should
be handed), and for ``backends`` never to import ``gateway``.  Python lets both
happen silently, so they are checked here, statically: every import statement of
every module, wherever it stands, is an edge.  A failure lists each cycle module by
module, with the file and line of every import on it, so the reader sees what to cut.

How an import statement becomes an edge (only modules of these packages count):

* ``import a.b.c`` is an edge to ``a.b.c``, not to ``a`` or ``a.b``: importing a
  package's ``__init__`` on the way is Python's doing, not a dependency the code
  chose, and counting it would put every module on a cycle with its package;
* ``from a.b import c`` is an edge to ``a.b.c`` when that is a module, else to
  ``a.b``; relative imports are resolved against the importing module's package.

The last test imports the fsspec backend in a fresh interpreter where aiobotocore and
botocore cannot be imported, as on an installation with only the fsspec extra.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "backends")
#: Cycles listed per strongly connected component before the rest is summarized.
CYCLE_LIMIT = 200


@dataclass(frozen=True)
class Import:
    """One import statement's edge: where it stands and in what context."""

    source: str
    target: str
    file: str  # relative to ROOT, with "/" separators
    line: int
    context: str  # "", "inside def f()", "under TYPE_CHECKING"...

    def describe(self) -> str:
        where = f"{self.file}:{self.line}"
        return f"{where} imports {self.target}" + (f" ({self.context})" if self.context else "")


@dataclass
class Graph:
    modules: dict[str, Path]
    imports: list[Import]

    def edges(self) -> dict[str, set[str]]:
        graph: dict[str, set[str]] = {name: set() for name in self.modules}
        for edge in self.imports:
            graph[edge.source].add(edge.target)
        return graph

    def sites(self, source: str, target: str) -> list[Import]:
        return [edge for edge in self.imports if edge.source == source and edge.target == target]


# -- reading the source --------------------------------------------------------------------


def find_modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file below each package."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is one of ``modules`` (None: external)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def _absolute(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name ``from <level dots><name> import ...`` refers to inside ``module``."""
    if not level:
        return name or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    if level - 1 >= len(package):
        raise ValueError(f"relative import beyond the top-level package in {module}")
    base = package[: len(package) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _is_type_checking(test: ast.expr) -> bool:
    return any(
        (isinstance(node, ast.Name) and node.id == "TYPE_CHECKING")
        or (isinstance(node, ast.Attribute) and node.attr == "TYPE_CHECKING")
        for node in ast.walk(test)
    )


class _ImportCollector(ast.NodeVisitor):
    """Every import statement of one module, with the innermost context it sits in."""

    def __init__(self) -> None:
        self.found: list[tuple[ast.Import | ast.ImportFrom, str]] = []
        self._context: list[str] = []

    def _inside(self, label: str, node: ast.AST) -> None:
        self._context.append(label)
        self.generic_visit(node)
        self._context.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._inside(f"inside def {node.name}()", node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._inside(f"inside async def {node.name}()", node)

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        self.visit(node.test)
        self._context.append("under TYPE_CHECKING")
        for child in node.body:
            self.visit(child)
        self._context.pop()
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        self.found.append((node, self._context[-1] if self._context else ""))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.found.append((node, self._context[-1] if self._context else ""))


def module_imports(module: str, path: Path, modules: dict[str, Path], root: Path
                   ) -> Iterator[Import]:
    """The edges from ``module`` to other modules of ``modules``, one per import site."""
    collector = _ImportCollector()
    collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    is_package = path.name == "__init__.py"
    file = path.relative_to(root).as_posix()
    for node, context in collector.found:
        targets: list[str | None] = []
        if isinstance(node, ast.Import):
            targets = [_known(alias.name, modules) for alias in node.names]
        else:
            base = _absolute(module, is_package, node.level, node.module)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                targets.append(
                    candidate if alias.name != "*" and candidate in modules
                    else _known(base, modules)
                )
        seen: set[str] = set()
        for target in targets:
            if target is None or target == module or target in seen:
                continue  # external, or a module naming itself: no edge between modules
            seen.add(target)
            yield Import(module, target, file, node.lineno, context)


def build_graph(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> Graph:
    modules = find_modules(root, packages)
    imports = [
        edge for name, path in modules.items() for edge in module_imports(name, path, modules, root)
    ]
    return Graph(modules, imports)


# -- cycles ----------------------------------------------------------------------------------


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively (each sorted, in a stable order)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        work = [(start, iter(sorted(graph[start])))]
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return sorted(components)


class _Enough(Exception):
    pass


def _circuits(start: str, graph: dict[str, set[str]], cycles: list[list[str]], limit: int) -> None:
    """Johnson's circuit search: every elementary cycle through ``start`` in ``graph``."""
    blocked: set[str] = set()
    blockers: dict[str, set[str]] = defaultdict(set)
    path = [start]

    def unblock(node: str) -> None:
        pending = [node]
        while pending:
            current = pending.pop()
            if current in blocked:
                blocked.discard(current)
                pending.extend(blockers.pop(current, ()))

    def circuit(node: str) -> bool:
        found = False
        blocked.add(node)
        for child in sorted(graph[node]):
            if child == start:
                cycles.append([*path, start])
                found = True
                if len(cycles) > limit:
                    raise _Enough
            elif child not in blocked:
                path.append(child)
                found = circuit(child) or found
                path.pop()
        if found:
            unblock(node)
        else:
            for child in graph[node]:
                blockers[child].add(node)
        return found

    circuit(start)


def simple_cycles(graph: dict[str, set[str]], members: list[str], limit: int
                  ) -> tuple[list[list[str]], bool]:
    """Elementary cycles among ``members`` (Johnson's algorithm), at most ``limit`` of them.

    Each cycle starts at its smallest module and ends where it started.  Returns the
    cycles and whether more were left out.
    """
    cycles: list[list[str]] = []
    order = sorted(members)
    try:
        for position, start in enumerate(order):
            allowed = set(order[position:])
            rest = {node: graph[node] & allowed for node in allowed}
            # the cycles through ``start`` lie in its component of what is left
            scope = set(next(c for c in strongly_connected(rest) if start in c))
            if len(scope) > 1:
                _circuits(start, {node: rest[node] & scope for node in scope}, cycles, limit)
    except _Enough:
        return cycles[:limit], True
    return cycles, False


def cycle_report(graph: Graph, components: list[list[str]]) -> str:
    """Every cycle of each component, each import on it with its file and line."""
    edges = graph.edges()
    lines = [f"{len(components)} import cycle group(s); cut one import of each cycle:"]
    for number, members in enumerate(components, 1):
        lines.append("")
        lines.append(f"group {number} ({len(members)} modules): {', '.join(members)}")
        cycles, truncated = simple_cycles(edges, members, CYCLE_LIMIT)
        covered: set[tuple[str, str]] = set()
        for count, cycle in enumerate(cycles, 1):
            lines.append(f"  cycle {number}.{count}: {' -> '.join(cycle)}")
            for source, target in zip(cycle, cycle[1:], strict=False):
                covered.add((source, target))
                lines.extend(f"      {site.describe()}" for site in graph.sites(source, target))
        if truncated:
            inside = set(members)
            rest = sorted(
                (source, target) for source in members for target in edges[source] & inside
                if (source, target) not in covered
            )
            lines.append(f"  ... more than {CYCLE_LIMIT} cycles; the group's other imports:")
            for source, target in rest:
                lines.extend(f"      {site.describe()}" for site in graph.sites(source, target))
    return "\n".join(lines)


def cyclic_components(graph: Graph) -> list[list[str]]:
    return [c for c in strongly_connected(graph.edges()) if len(c) > 1]


# -- the rules -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> Graph:
    return build_graph()


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycles(graph: Graph, package: str) -> None:
    components = [
        members for members in cyclic_components(graph)
        if any(_in(member, package) for member in members)
    ]
    if components:
        pytest.fail(cycle_report(graph, components), pytrace=False)


def test_backends_never_import_gateway(graph: Graph) -> None:
    wrong = [
        edge.describe() for edge in graph.imports
        if _in(edge.source, "backends") and _in(edge.target, "gateway")
    ]
    assert not wrong, "backends must not import gateway:\n" + "\n".join(wrong)


def test_graph_sees_the_known_imports(graph: Graph) -> None:
    """The reader itself: a few edges that exist today, and none to parent packages."""
    edges = graph.edges()
    assert "backends.s3.writer" in edges["backends.s3.pathio"]
    assert "backends.s3.store" in edges["backends.s3.writer"]
    assert "backends.partbody" in edges["backends.fsspec.multipart"]
    # from ..registry import ... inside backends.fsspec.options: the module, not ``backends``
    assert edges["backends.fsspec.options"] >= {"backends.registry"}
    assert "backends" not in edges["backends.fsspec.options"]


def test_graph_resolution_rules(tmp_path: Path) -> None:
    """Each rule of the module docstring, on a tree made for it."""
    files = {
        "pkg/__init__.py": "from .a import thing\n",
        "pkg/a.py": "thing = 1\n",
        "pkg/sub/__init__.py": "from . import b\nfrom .. import a\n",
        "pkg/sub/b.py": textwrap.dedent("""\
            from typing import TYPE_CHECKING
            import os
            import pkg.sub.c
            from pkg import thing
            from ..a import thing as again

            if TYPE_CHECKING:
                from pkg.sub import d

            def later():
                from . import e
            """),
        "pkg/sub/c.py": "from .b import *\n",
        "pkg/sub/d.py": "",
        "pkg/sub/e.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = build_graph(tmp_path, ["pkg"])
    edges = graph.edges()
    assert edges["pkg"] == {"pkg.a"}
    assert edges["pkg.sub"] == {"pkg.sub.b", "pkg.a"}
    # pkg.sub.c only, not pkg or pkg.sub; ``thing`` is a name, so ``pkg`` itself
    assert edges["pkg.sub.b"] == {"pkg.sub.c", "pkg", "pkg.a", "pkg.sub.d", "pkg.sub.e"}
    assert edges["pkg.sub.c"] == {"pkg.sub.b"}
    contexts = {edge.target: edge.context for edge in graph.imports if edge.source == "pkg.sub.b"}
    assert contexts["pkg.sub.d"] == "under TYPE_CHECKING"
    assert contexts["pkg.sub.e"] == "inside def later()"
    assert cyclic_components(graph) == [["pkg.sub.b", "pkg.sub.c"]]
    report = cycle_report(graph, cyclic_components(graph))
    assert "pkg.sub.b -> pkg.sub.c -> pkg.sub.b" in report
    assert "pkg/sub/b.py:3 imports pkg.sub.c" in report
    assert "pkg/sub/c.py:1 imports pkg.sub.b" in report


def test_cycles_are_all_listed() -> None:
    """Two cycles through one module are two lines, each from its smallest module."""
    edges = {"a": {"b", "c"}, "b": {"a"}, "c": {"a", "d"}, "d": {"c"}}
    cycles, truncated = simple_cycles(edges, ["a", "b", "c", "d"], CYCLE_LIMIT)
    assert sorted(cycles) == [["a", "b", "a"], ["a", "c", "a"], ["c", "d", "c"]]
    assert not truncated
    cycles, truncated = simple_cycles(edges, ["a", "b", "c", "d"], 2)
    assert len(cycles) == 2 and truncated


_WITHOUT_BOTOCORE = textwrap.dedent("""\
    import asyncio
    import importlib
    import pkgutil
    import sys

    for name in ("aiobotocore", "botocore"):
        sys.modules[name] = None  # importing either (or below it) now fails

    import backends.fsspec

    names = [info.name for info in pkgutil.walk_packages(
        backends.fsspec.__path__, "backends.fsspec.")]
    for name in names:
        importlib.import_module(name)

    from backends import backend_for_root
    from backends.fsspec import FsspecPathIO

    async def main():
        factory, root = backend_for_root("fsspec+memory://no-botocore")
        try:
            path_io = factory()
            assert isinstance(path_io, FsspecPathIO), path_io
            path = root / "probe.txt"
            async with path_io.open(path, mode="wb") as file:
                await file.write(b"fsspec alone")
            async with path_io.open(path, mode="rb") as file:
                data = b"".join([block async for block in file.iter_by_block()])
            assert data == b"fsspec alone", data
        finally:
            await factory.aclose()

    asyncio.run(main())
    s3 = sorted(name for name in sys.modules if name.startswith("backends.s3"))
    assert not s3, f"the fsspec backend loaded {s3}"
    print("imported", ", ".join(names))
    """)


def test_fsspec_backend_needs_no_botocore() -> None:
    """An install with only the fsspec extra has no aiobotocore; the backend must not care."""
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_BOTOCORE],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for module in ("multipart", "options", "pathio", "reader", "store", "urls", "writer"):
        assert f"backends.fsspec.{module}" in result.stdout
