"""Static checks of every notebook in notebooks/ (executing them is `pytest --nbmake notebooks/`, in `make test`).

Each notebook must: start its code with a `parameters`-tagged cell whose values environment variables override;
be committed without outputs; install the package on Colab only inside a guard; and call the package rather
than patch sys.path or define a model, a loss, an optimizer or a training step itself.
"""

import ast
import re
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
LOSS_FUNCTIONS = {
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "mse_loss",
    "kl_divergence",
    "BCELoss",
    "BCEWithLogitsLoss",
    "MSELoss",
}
OPTIMIZERS = {"Adam", "AdamW", "SGD", "RMSprop"}
TRAINING_CALLS = {"backward", "zero_grad", "step"}
COLAB_BADGE = "https://colab.research.google.com/github/{}/blob/main/notebooks/{}"


def python_of(source: str) -> str:
    """A cell's source as plain Python: IPython turns `%pip ...` and `!cmd` into function calls."""
    return TransformerManager().transform_cell(source)


def _name(node) -> str:
    """'nn.Module' for an Attribute chain, 'Module' for a Name, '' otherwise."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return ""


def violations(source: str) -> list[str]:
    """What in this code belongs in the package, or breaks on Colab: sys.path, models, losses, training steps."""
    found = []
    for node in ast.walk(ast.parse(python_of(source))):
        if isinstance(node, ast.Attribute) and _name(node) == "sys.path":
            found.append("sys.path")
        elif isinstance(node, ast.ImportFrom) and node.module == "sys" and any(a.name == "path" for a in node.names):
            found.append("sys.path")
        elif isinstance(node, ast.Constant) and node.value == "PYTHONPATH":
            found.append("PYTHONPATH")
        elif isinstance(node, ast.ClassDef) and any(_name(b).split(".")[-1] == "Module" for b in node.bases):
            found.append(f"nn.Module {node.name}")
        elif isinstance(node, ast.FunctionDef) and re.search(r"loss|elbo|kl", node.name, re.IGNORECASE):
            found.append(f"loss function {node.name}")
        elif isinstance(node, ast.Call):
            called = _name(node.func).split(".")[-1]
            if called in LOSS_FUNCTIONS:
                found.append(f"loss {called}")
            elif called in OPTIMIZERS:
                found.append(f"optimizer {called}")
            elif called in TRAINING_CALLS and isinstance(node.func, ast.Attribute):
                found.append(f"training step .{called}()")
    return found


def code_cells(path: Path) -> list:
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def test_the_notebooks_are_there():
    assert {"vae_fashion_mnist.ipynb", "latent_space.ipynb"} <= {p.name for p in NOTEBOOKS}


@pytest.mark.parametrize(
    "source, expected",
    [
        ("import sys\nsys.path.append('..')", "sys.path"),
        ("from sys import path\npath.insert(0, '..')", "sys.path"),
        ("import os\nos.environ['PYTHONPATH'] = '..'", "PYTHONPATH"),
        ("from torch import nn\nclass Net(nn.Module):\n    pass", "nn.Module Net"),
        ("def vae_loss(x, logits, mu, logvar):\n    return 0", "loss function vae_loss"),
        ("from torch.nn import functional as F\nb = F.binary_cross_entropy(p, x)", "loss binary_cross_entropy"),
        ("import torch\nopt = torch.optim.Adam(model.parameters())", "optimizer Adam"),
        ("for x in batches:\n    loss.backward()", "training step .backward()"),
        ("%pip install torch\nimport sys\nprint(sys.path)", "sys.path"),
    ],
)
def test_the_checker_finds_what_belongs_in_the_package(source, expected):
    assert expected in violations(source)


def test_the_checker_lets_package_calls_through():
    source = "%pip install --quiet x\nfrom vae import fit\nmodel, history = fit(config, x_train, x_test)\nsys.version"
    assert violations(source) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_calls_the_package_instead_of_reimplementing_it(path):
    found = {i: v for i, cell in enumerate(code_cells(path)) if (v := violations(cell.source))}
    assert found == {}, f"{path.name}: code cell -> what belongs in vae/ (or breaks on Colab)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_starts_with_parameters_that_the_environment_overrides(path):
    first = code_cells(path)[0]
    assert "parameters" in first.metadata.get("tags", []), f"{path.name}: the first code cell is not tagged"
    assigned = [node for node in ast.parse(first.source).body if isinstance(node, ast.Assign)]
    assert assigned, f"{path.name}: the parameters cell sets nothing"
    for node in assigned:
        reads_env = any(_name(n).endswith(("os.environ", "os.getenv")) for n in ast.walk(node.value))
        assert reads_env, f"{path.name}: {ast.unparse(node)!r} is not overridable by an environment variable"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    for cell in code_cells(path):
        assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: run `nbstripout {path}`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_installs_the_package_on_colab_only(path):
    installs = [c.source for c in code_cells(path) if "pip install" in c.source]
    assert len(installs) == 1, f"{path.name}: needs exactly one guarded install cell"
    source = installs[0]
    assert '"google.colab" in sys.modules' in source and 'find_spec("vae") is None' in source
    assert re.search(r"^\s+%pip install", source, re.MULTILINE), "the install must be inside the guard"
    assert " -e " not in source and "--editable" not in source, "an editable install needs a restart on Colab"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_shows_figures_inline(path):
    """vae.plots builds Figures without pyplot: without the inline backend a cell shows only their repr."""
    sources = [c.source for c in code_cells(path)]
    if any("plots." in s for s in sources):
        assert any(re.search(r"^%matplotlib inline$", s, re.MULTILINE) for s in sources), path.name


def test_one_repository_url_in_the_notebooks_and_the_readme_badges():
    urls = {re.search(r'^REPO_URL = "(.+?)"', c.source, re.MULTILINE) for p in NOTEBOOKS for c in code_cells(p)}
    urls = {m.group(1) for m in urls if m}
    assert len(urls) == 1, f"the notebooks disagree on REPO_URL: {urls}"
    (url,) = urls
    owner_repo = url.removeprefix("https://github.com/")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for path in NOTEBOOKS:
        assert COLAB_BADGE.format(owner_repo, path.name) in readme, f"README lacks the Colab badge of {path.name}"
