"""The package's layering, checked on the source with ``ast`` (module-level imports only).

- no import cycle between modules of ``trustbox``;
- ``auth/`` is server-only: it imports nothing from ``client/`` (nor ``cli/``);
- the pure cores (``tuf/``, ``oci/``) import no I/O layer of trustbox;
- ``client/`` and ``cli/`` use no ``importlib`` and no ``inspect.signature``;
- ``client/`` and ``oci/`` import trustbox modules only at module level (``TYPE_CHECKING`` blocks
  aside): no import inside a function to dodge the layering;
- no two modules of ``client/`` + ``oci/`` define a class of the same name;
- no module is named like a top-level package;
- the shared client modules (``client/*.py``) import neither half; the trust half imports only
  the registry access of the image half: ``images.distribution`` (the manifest ``trust sign``
  signs) and ``images.attachments`` (the sigstore signatures ``trust sign``/``revoke``/``attach``
  write beside it), never image transfer.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "trustbox"
PACKAGES = sorted(p.name for p in PKG.iterdir() if (p / "__init__.py").exists())


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports executed when the module is imported (not in functions, not under TYPE_CHECKING)."""
    stack: list[ast.stmt] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            stack.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            stack.extend(node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body])
        elif isinstance(node, ast.ClassDef):
            stack.extend(node.body)


def _targets(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The trustbox modules an import statement loads explicitly."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in MODULES]
    base = node.module or ""
    if not base.startswith("trustbox"):
        return []
    out = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
    return out if len(out) == len(node.names) else [*out, base]


def _graph() -> dict[str, set[str]]:
    return {
        name: {t for node in _module_level_imports(ast.parse(path.read_text())) for t in _targets(node) if t != name}
        for name, path in MODULES.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def _imports_under(package: str) -> Iterator[tuple[str, str]]:
    for name, targets in _graph().items():
        if name == package or name.startswith(package + "."):
            for t in targets:
                yield name, t


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("trustbox.auth", ("trustbox.client", "trustbox.cli", "trustbox.sandbox")),
        ("trustbox.oci", ("trustbox.client", "trustbox.cli", "trustbox.registry", "trustbox.trustserver", "trustbox.auth")),
        ("trustbox.tuf", ("trustbox.client", "trustbox.cli", "trustbox.registry", "trustbox.trustserver", "trustbox.auth")),
        ("trustbox.client", ("trustbox.cli", "trustbox.trustserver", "trustbox.registry", "trustbox.sandbox")),
    ],
)
def test_layers_import_only_downwards(package: str, forbidden: tuple[str, ...]) -> None:
    bad = [(m, t) for m, t in _imports_under(package) if any(t == f or t.startswith(f + ".") for f in forbidden)]
    assert bad == []


def _files(*packages: str) -> list[Path]:
    return [p for pkg in packages for p in sorted((PKG / pkg).rglob("*.py"))]


@pytest.mark.parametrize("path", _files("client", "cli"), ids=lambda p: str(p.relative_to(PKG)))
def test_no_reflection_in_client_and_cli(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "importlib" not in imported
    signature = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "signature"]
    assert "inspect" not in imported or not signature


@pytest.mark.parametrize("path", _files("client", "oci"), ids=lambda p: str(p.relative_to(PKG)))
def test_no_function_level_trustbox_imports(path: Path) -> None:
    tree = ast.parse(path.read_text())
    inner = [
        f"{fn.name}: {ast.unparse(n)}"
        for fn in ast.walk(tree)
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
        for n in ast.walk(fn)
        if isinstance(n, ast.Import | ast.ImportFrom)
        and any(t.startswith("trustbox") for t in ([n.module or ""] if isinstance(n, ast.ImportFrom) else [a.name for a in n.names]))
    ]
    assert inner == []


def test_no_class_defined_twice_in_client_and_oci() -> None:
    seen: dict[str, list[str]] = {}
    for path in _files("client", "oci"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                seen.setdefault(node.name, []).append(str(path.relative_to(PKG)))
    assert {name: where for name, where in seen.items() if len(where) > 1} == {}


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_named_like_a_package(package: str) -> None:
    clashes = [str(p.relative_to(PKG)) for p in _files(package) if p.stem in PACKAGES]
    assert clashes == []


def test_shared_client_modules_import_neither_half() -> None:
    """``client/*.py`` (docker's environment, transport, errors, login) sit under both halves."""
    halves = ("trustbox.client.trust", "trustbox.client.images")
    bad = [
        (m, t)
        for m, t in _imports_under("trustbox.client")
        if m.count(".") == 2 and m != "trustbox.client" and not m.startswith(halves) and t.startswith(halves)
    ]
    assert bad == []


TRUST_HALF_MAY_IMPORT = frozenset({"trustbox.client.images.distribution", "trustbox.client.images.attachments"})


def test_trust_half_reads_only_the_registry_from_the_image_half() -> None:
    bad = [
        (m, t)
        for m, t in _imports_under("trustbox.client.trust")
        if t.startswith("trustbox.client.images") and t not in TRUST_HALF_MAY_IMPORT
    ]
    assert bad == []
