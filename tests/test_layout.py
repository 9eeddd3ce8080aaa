"""The project's layout: imports point one way (channels <- laser <- federated), no module imports
itself back through others, the orchestration package stays browsable, and the README's package
map names the sub-packages that exist."""

import ast
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("channels", "laser", "federated")
MAX_TOP_LEVEL_MODULES = 13  # in federated/: beyond this, a concern gets its own sub-package


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


# the project's design notes live outside the repository: nothing in it may send a reader there
OUTSIDE = ("DESIGN.md", "../shared", "LASER.md", "STYLE.md", "METHODS.md")


def _tracked_text_files() -> list[Path]:
    """The files git tracks (every file under the root, minus ignored and virtual-environment ones,
    where git is missing); binary files (a NUL byte, or not UTF-8) left out."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
        ).stdout.decode()
        paths = [ROOT / name for name in listed.split("\0") if name]
    except (OSError, subprocess.SubprocessError):
        skip = {".git", ".venv", "venv", "site", "data", "runs", "sweeps", "node_modules"}
        paths = [p for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.relative_to(ROOT).parts[:-1])]
    texts = []
    for path in paths:
        try:
            raw = path.read_bytes()
        except OSError:  # tracked, deleted in the working tree
            continue
        if b"\0" not in raw:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                continue
            texts.append(path)
    return texts


def test_no_file_points_outside_the_repository():
    """Users see only the repository: what they need of the design notes (the physics, the units)
    is in docs/, and no tracked file names notes kept elsewhere."""
    this = Path(__file__).resolve()
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}"
        for path in _tracked_text_files()
        if path.resolve() != this  # this test names what it looks for
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if any(name in line for name in OUTSIDE)
    ]
    assert not found, "\n".join(found)


def _exported(package: str) -> set[str]:
    """The names in ``package/__init__.py``'s ``__all__`` (read, not imported)."""
    tree = ast.parse((ROOT / package / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return set(ast.literal_eval(node.value))
    raise AssertionError(f"{package}/__init__.py has no __all__")


def test_the_api_reference_documents_each_public_name():
    """docs/api/<package>.md renders (``::: package.Name``) exactly the names of ``__all__``, so a
    new public name gets its entry in the API site."""
    for package in PACKAGES:
        page = (ROOT / "docs" / "api" / f"{package}.md").read_text(encoding="utf-8")
        targets = re.findall(rf"^::: ({package}(?:\.\w+)*)\s*$", page, flags=re.MULTILINE)
        documented = {t.rsplit(".", 1)[-1] for t in targets if t != package}
        assert documented == _exported(package), package
