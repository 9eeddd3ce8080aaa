"""The project's layout: imports point one way (channels <- laser <- federated), no module imports
itself back through others, the orchestration package stays browsable, and the README's package
map names the sub-packages that exist."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("channels", "laser", "federated")
MAX_TOP_LEVEL_MODULES = 12  # in federated/: beyond this, a concern gets its own sub-package


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The project modules that ``path`` imports anywhere in it: at the top, inside functions and
    under ``if TYPE_CHECKING`` alike (``from a.b import c`` counts as importing a.b.c if that is a
    module, else a.b)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # a name inside a module: the module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, name, modules) for name, path in modules.items()}


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_dependencies_point_one_way():
    """channels imports neither laser nor federated; laser does not import federated."""
    forbidden = {"channels": ("laser", "federated"), "laser": ("federated",)}
    wrong = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        for target in targets
        if target.split(".")[0] in forbidden.get(module.split(".")[0], ())
    ]
    assert not wrong, wrong


def test_the_cycle_check_can_fail(tmp_path):
    """The checker itself: a two-module cycle hidden under TYPE_CHECKING is found."""
    (tmp_path / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from b import X\n"
    )
    (tmp_path / "b.py").write_text("import a\n")
    modules = {"a": tmp_path / "a.py", "b": tmp_path / "b.py"}
    assert _imports(modules["a"], "a", modules) == {"b"}
    assert _imports(modules["b"], "b", modules) == {"a"}


def test_the_orchestration_package_stays_browsable():
    top = sorted(p.name for p in (ROOT / "federated").glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def test_the_readme_package_map_names_the_sub_packages_on_disk():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Package map", 1)[1].split("```", 2)[1]
    named = set(re.findall(r"\b((?:channels|laser|federated)(?:/[a-z_]+)*)/", block))
    on_disk = {
        str(p.parent.relative_to(ROOT)) for package in PACKAGES for p in (ROOT / package).rglob("__init__.py")
    }
    assert named == on_disk
