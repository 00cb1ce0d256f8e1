"""The repository's own rules, enforced: ruff's pyflakes checks (unused imports and names, undefined names)
and lines of at most 110 characters (pyproject.toml), over every Python file."""
import ast
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ruff_passes():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is in requirements.txt: run ./launch.sh test to set it up"
    proc = subprocess.run([ruff, "check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def _project_imports() -> dict[str, set[str]]:
    """Each project module's imports of other project modules, anywhere in the file (a function-level import
    hides a circle from Python, not from this)."""
    modules = {}
    for path in REPO.glob("**/*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[0] in (".venv", "tests", "bench") or parts[0].startswith("."):
            continue
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def test_no_import_circles():
    """Layers import downwards only: core <- tasks/align/train <- eval <- cli (issue 17's circles were
    eval <-> align and core/data's)."""
    graph = _project_imports()
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for other in sorted(graph[module]):
            assert state.get(other) != 1, "import circle: " + " -> ".join(path[path.index(other):] + [other])
            if other not in state:
                visit(other, path + [other])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
