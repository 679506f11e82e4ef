"""The package's shape: a small core that holds the original report's experiment and nothing else, research variants
above it, the lab above both, and imports that go one way (vae.lab -> vae.research -> the core)."""

import ast
import inspect
import re
from pathlib import Path

import pytest

import vae

PACKAGE = Path(vae.__file__).parent
CORE = sorted(p for p in PACKAGE.glob("*.py") if p.name != "__main__.py")  # __main__: the shim onto vae.lab.cli
LAYERS = {"core": CORE, "research": sorted((PACKAGE / "research").glob("*.py"))}
ABOVE = {"core": ("vae.research", "vae.lab"), "research": ("vae.lab",)}
STUDENT_FILES = ("model.py", "loss.py", "train.py", "data.py")
# Words of the research variants and the machinery, which the student's files must not contain (as code).
EXTENSIONS = r"gated|variance_head|SigmaHead|SoftplusHead|warm.?up|patience|validation|binari|continuous|bf16|autocast"
EXTENSIONS += r"|lock|crc|checkpoint"


def imported(path: Path) -> set[str]:
    """The modules that `path` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def code_lines(path: Path) -> list[str]:
    """The non-blank lines of `path` without its comments and docstrings: what the code says."""
    source = path.read_text(encoding="utf-8")
    documented = [n for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef))]
    docstrings = {
        i
        for n in documented
        if n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)
        for i in range(n.body[0].lineno, n.body[0].end_lineno + 1)
    }
    lines = enumerate(source.splitlines(), 1)
    return [re.sub(r"#.*", "", line) for i, line in lines if i not in docstrings and line.strip()]


def non_blank(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


@pytest.mark.parametrize("layer", LAYERS)
def test_no_module_imports_a_layer_above_its_own(layer):
    for path in LAYERS[layer]:
        upward = {m for m in imported(path) if m.startswith(ABOVE[layer])}
        assert not upward, f"{path.relative_to(PACKAGE)} imports {sorted(upward)}, a layer above {layer}"


def test_the_core_is_small_and_the_students_files_smaller():
    assert sum(non_blank(p) for p in CORE) <= 900
    assert sum(non_blank(PACKAGE / name) for name in STUDENT_FILES) <= 320


@pytest.mark.parametrize("name", STUDENT_FILES)
def test_the_students_files_never_name_a_variant_or_the_machinery(name):
    found = [line for line in code_lines(PACKAGE / name) if re.search(EXTENSIONS, line, re.IGNORECASE)]
    assert not found, f"vae/{name} names an extension in its code: {found}"


def test_what_the_main_notebook_prints_is_short_and_only_the_original_experiment():
    model, loss = inspect.getsource(vae.VAE), inspect.getsource(vae.elbo_terms)
    assert len(model.splitlines()) <= 50 and len(loss.splitlines()) <= 20
    for source in (model, loss):
        assert not re.search(EXTENSIONS, source, re.IGNORECASE)


def test_no_file_over_400_lines_and_no_function_over_60():
    for path in PACKAGE.rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        assert len(source.splitlines()) <= 400, f"{path.relative_to(PACKAGE)}: {len(source.splitlines())} lines"
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                assert length <= 60, f"{path.relative_to(PACKAGE)}: {node.name} has {length} lines"
