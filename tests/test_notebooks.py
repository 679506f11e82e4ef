"""Static checks of every notebook in notebooks/ (executing them is `pytest --nbmake notebooks/`, in `make test`).

Each notebook must: start its code with the Colab cell (clone, change into the clone, install, all inside a
guard), then a `parameters`-tagged cell whose values VAE_<NAME> environment variables override; be committed
without outputs; ask Colab for a GPU; and call the package rather than patch sys.path or define a model, a loss,
an optimizer or a training step itself.
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
METRIC_KEYS = {"test_loss", "test_bce", "test_kl", "iwae_nll", "knn_accuracy", "active_units", "trustworthiness"}
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
        elif isinstance(node, ast.Dict) and METRIC_KEYS & {k.value for k in node.keys if isinstance(k, ast.Constant)}:
            found.append("a dict of results (evaluate_model returns them)")
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


def notebook_text(path: Path) -> str:
    return "\n".join(c.source for c in nbformat.read(path, as_version=4).cells)


def colab_guard(source: str) -> ast.If | None:
    """The top-level `if "google.colab" in sys.modules ...:` of a cell, or None."""
    for node in ast.parse(python_of(source)).body:
        if isinstance(node, ast.If) and "'google.colab' in sys.modules" in ast.unparse(node.test):
            return node
    return None


def repository_url() -> str:
    """The one source of the repository's URL: pyproject.toml's [project.urls] Repository."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["urls"]["Repository"]


def test_the_notebooks_are_there():
    assert {"vae_fashion_mnist.ipynb", "latent_space.ipynb", "experiments.ipynb"} <= {p.name for p in NOTEBOOKS}


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
        ("metrics = {'test_loss': elbo['loss'], 'epochs': 10}", "a dict of results (evaluate_model returns them)"),
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
def test_notebook_starts_with_the_colab_cell_then_parameters_read_from_vae_variables(path):
    colab, parameters = code_cells(path)[:2]
    assert colab_guard(colab.source), f"{path.name}: the first code cell is not the Colab cell"
    assert "parameters" in parameters.metadata.get("tags", []), f"{path.name}: the second code cell is not tagged"
    assigned = [node for node in ast.parse(parameters.source).body if isinstance(node, ast.Assign)]
    assert assigned, f"{path.name}: the parameters cell sets nothing"
    for node in assigned:
        (target,) = node.targets
        call = node.value
        strict = isinstance(call, ast.Call) and _name(call.func) == "env_param"
        assert strict and ast.literal_eval(call.args[0]) == target.id, (
            f"{path.name}: {ast.unparse(node)!r} must read VAE_{target.id} with env_param({target.id!r}, default)"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    for cell in code_cells(path):
        assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: run `nbstripout {path}`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_clones_and_installs_on_colab_only(path):
    """Clone, change into the clone, and a plain install of it: all inside the guard, nowhere else."""
    cells = code_cells(path)
    assert [i for i, c in enumerate(cells) if "pip install" in c.source or "git clone" in c.source] == [0]
    module = ast.parse(python_of(cells[0].source))
    guard = colab_guard(cells[0].source)
    inside = ast.unparse(guard)
    assert "system('git clone --depth 1 {REPO_URL}')" in inside
    assert "os.chdir(clone)" in inside
    assert "run_line_magic('pip', 'install --quiet --no-deps .')" in inside
    assert " -e " not in cells[0].source and "--editable" not in cells[0].source, "an editable install needs a restart"
    outside = "".join(ast.unparse(n) for n in module.body).replace(inside, "")
    assert "get_ipython" not in outside and "subprocess" not in outside, "a command outside the guard"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_asks_colab_for_a_gpu_and_prints_the_device(path):
    metadata = nbformat.read(path, as_version=4).metadata
    assert metadata.get("accelerator") == "GPU" and metadata.get("colab", {}).get("gpuType") == "T4"
    assert any("pick_device(" in c.source and 'print(f"device: {' in c.source for c in code_cells(path))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_shows_figures_inline(path):
    """vae.plots builds Figures without pyplot: without the inline backend a cell shows only their repr."""
    sources = [c.source for c in code_cells(path)]
    if any("plots." in s for s in sources):
        assert any(re.search(r"^%matplotlib inline$", s, re.MULTILINE) for s in sources), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_intro_links_the_original_report_and_states_its_run_time(path):
    intro = nbformat.read(path, as_version=4).cells[0]
    assert intro.cell_type == "markdown"
    assert "](../docs/original-report.md)" in intro.source and (REPO / "docs" / "original-report.md").is_file()
    assert re.search(r"measured: \d+ s on a 2-core CPU", intro.source), f"{path.name}: no measured run time"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_says_seed_for_an_rng_seed_only_and_cites_no_issue_numbers(path):
    text = notebook_text(path)
    assert not re.search(r"seed report|the seed's|seed's", text, re.IGNORECASE), "say: the original report"
    assert not re.search(r"(?<![\w&])#\d+\b|\bissue \d+", text, re.IGNORECASE)


def test_the_first_notebook_shows_its_maths_and_reads_its_numbers():
    """The code beside the formulas; the curves' reading from the history; the numbers from evaluate_model."""
    text = notebook_text(REPO / "notebooks" / "vae_fashion_mnist.ipynb")
    for call in ("inspect.getsource(vae.VAE)", "inspect.getsource(vae.elbo_terms)", "model.reparameterize(",
                 "report.curves_reading(history)", "evaluate_model("):  # fmt: skip
        assert call in text


def test_one_repository_url_in_pyproject_the_notebooks_and_the_readme_badges():
    url = repository_url()
    for path in NOTEBOOKS:
        found = re.findall(r'^REPO_URL = "(.+?)"', code_cells(path)[0].source, re.MULTILINE)
        assert found == [url], f"{path.name}: REPO_URL {found} differs from pyproject.toml's {url}"
    owner_repo = url.removeprefix("https://github.com/")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for path in NOTEBOOKS:
        assert COLAB_BADGE.format(owner_repo, path.name) in readme, f"README lacks the Colab badge of {path.name}"
    badges = set(re.findall(r"colab\.research\.google\.com/github/([^/]+/[^/]+)/", readme))
    assert badges == {owner_repo}, f"README's Colab badges name {badges}, pyproject.toml {owner_repo}"
