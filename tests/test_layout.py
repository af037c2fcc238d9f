"""The package's layout: imports flow one way, and the folders say what may import what.

Walks every module of `gradcheck` with ast (module-level and function-level imports alike;
only `if TYPE_CHECKING:` blocks, which never run, are left out) and holds the graph to the
rules each subpackage's docstring states.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "gradcheck"

#: subpackage (or top-level module group) -> the groups its modules may import.
#: The order is the architecture: core at the bottom, the entry points at the top.
ALLOWED = {
    "errors": set(),
    "core": {"errors"},
    "diagnosis": {"errors", "core"},
    "report": {"errors", "core", "diagnosis", "package"},
    "catalogue": {"errors", "core", "diagnosis"},
    "user": {"errors", "core", "diagnosis", "report"},
    "profiles": set(),
    "strategies": {"errors", "core", "catalogue", "profiles"},
    "campaign": {"errors", "core", "catalogue", "report", "strategies", "profiles"},
    "cli": {"errors", "core", "catalogue", "user", "report", "campaign", "package"},
    "pytest_plugin": {"errors", "user", "report", "profiles"},
    "package": {"errors"},  # gradcheck/__init__.py: everything else lazily, by name
    "__main__": {"cli"},
}

#: imports that must stay out of the error model and result types
FORBIDDEN_IN_CORE = ("hypothesis", "pytest", "_pytest")

MAX_LINES = 500


def _modules() -> dict[str, pathlib.Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ("gradcheck", *path.relative_to(PACKAGE).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _group(module: str) -> str:
    parts = module.split(".")
    return "package" if len(parts) == 1 else parts[1]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Imports(ast.NodeVisitor):
    """Every import a module runs: (target module, line, inside a function?)."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.package = module if MODULES[module].name == "__init__.py" else module.rsplit(".", 1)[0]
        self.found: list[tuple[str, int, bool]] = []
        self.depth = 0

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def _function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = _function  # noqa: N815 - ast's names

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append((alias.name, node.lineno, self.depth > 0))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")[: len(self.package.split(".")) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        for alias in node.names:
            candidate = f"{target}.{alias.name}"
            self.found.append(
                (candidate if candidate in MODULES else target, node.lineno, self.depth > 0)
            )


def _imports(module: str) -> list[tuple[str, int, bool]]:
    visitor = _Imports(module)
    visitor.visit(ast.parse(MODULES[module].read_text(encoding="utf-8")))
    return visitor.found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        targets = {target for target, _, _ in _imports(module) if target in MODULES}
        graph[module] = targets - {module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` as a list of modules (first = last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_cycle_finder_finds_a_cycle_and_accepts_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_package_has_no_import_cycle():
    assert find_cycle(_graph()) is None


def test_the_import_walker_sees_function_level_imports(tmp_path):
    visitor = _Imports("gradcheck.cli")
    visitor.visit(ast.parse("def f():\n    from gradcheck.core import compact\n"))
    assert visitor.found == [("gradcheck.core.compact", 2, True)]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_flow_one_way(module):
    group = _group(module)
    allowed = ALLOWED[group] | {group}
    wrong = sorted(
        f"{target} (line {line})"
        for target, line, _ in _imports(module)
        if target in MODULES and _group(target) not in allowed
    )
    assert not wrong, f"{module} ({group}) may import only {sorted(allowed)}; it imports {wrong}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _group(m) == "core"))
def test_core_is_free_of_hypothesis_and_pytest(module):
    used = [t for t, _, _ in _imports(module) if t.split(".")[0] in FORBIDDEN_IN_CORE]
    assert not used


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_inside_functions_say_why(module):
    """An import inside a function is either lazy on purpose (keeping `import gradcheck`,
    the plugin or the command cheap: a comment on that line or the one above says
    "lazy") or hides a cycle, which the layout forbids."""
    lines = MODULES[module].read_text(encoding="utf-8").splitlines()
    hidden = [
        f"line {line}: {lines[line - 1].strip()}"
        for target, line, inner in _imports(module)
        if inner
        and target.startswith("gradcheck")
        and "lazy" not in lines[line - 1] + lines[line - 2] + lines[line - 3]
    ]
    assert not hidden, f"{module} imports inside a function without saying why: {hidden}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_longer_than_the_limit(module):
    count = len(MODULES[module].read_text(encoding="utf-8").splitlines())
    assert count <= MAX_LINES, f"{module} has {count} lines; split it by concern"


@pytest.mark.parametrize(
    "package", sorted({m for m in MODULES if MODULES[m].name == "__init__.py"})
)
def test_every_subpackage_says_what_lives_there(package):
    docstring = ast.get_docstring(ast.parse(MODULES[package].read_text(encoding="utf-8")))
    assert docstring and len(docstring.split()) >= 20
    if package != "gradcheck":
        assert "import" in docstring  # and what it may import
