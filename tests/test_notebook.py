"""vae.lab.notebook: strict parameters, the project's folders, the posterior draws figure, the latent-traversal
widget."""

import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
import torch
from IPython.core.inputtransformer2 import TransformerManager

from vae.config import Config
from vae.evaluate import EvalSettings
from vae.lab import notebook as nb
from vae.model import VAE

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def make_checkout(root):
    (root / "vae").mkdir(parents=True)
    (root / "vae" / "__init__.py").write_text("")
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (root / "notebooks").mkdir()
    return root


@pytest.mark.parametrize(
    "raw, default, expected",
    [
        ("1", False, True),
        ("Yes", False, True),
        (" on ", False, True),
        ("0", True, False),
        ("FALSE", True, False),
        ("off", True, False),
        ("25", 10, 25),
        ("0.5", 1.0, 0.5),
        ("/tmp/figures", "", "/tmp/figures"),
        ("", "default", ""),
    ],
)
def test_env_param_parses_vae_variables_as_the_defaults_type(monkeypatch, raw, default, expected):
    monkeypatch.setenv("VAE_THING", raw)
    value = nb.env_param("THING", default)
    assert value == expected and type(value) is type(default)


def test_env_param_is_the_default_when_unset_and_reads_only_the_prefixed_name(monkeypatch):
    monkeypatch.delenv("VAE_SMOKE", raising=False)
    monkeypatch.setenv("SMOKE", "1")  # the unprefixed name belongs to someone else
    assert nb.env_param("SMOKE", False) is False


@pytest.mark.parametrize(
    "raw, default, message",
    [
        ("2", False, r"VAE_THING='2': use one of 1, true, yes, on or 0, false, no, off"),
        ("", True, r"VAE_THING='': use one of"),
        ("ten", 10, r"VAE_THING='ten' is not a valid int"),
        ("1.5", 10, r"VAE_THING='1.5' is not a valid int"),
        ("x", 0.5, r"VAE_THING='x' is not a valid float"),
    ],
)
def test_env_param_rejects_what_it_cannot_parse_naming_the_variable(monkeypatch, raw, default, message):
    monkeypatch.setenv("VAE_THING", raw)
    with pytest.raises(ValueError, match=message):
        nb.env_param("THING", default)


@pytest.mark.parametrize(
    "cls, params, message",
    [
        (Config, {"num_epochs": -1}, "VAE_NUM_EPOCHS must be >= 1, got -1"),
        (Config, {"seed": -1}, r"VAE_SEED must be in \[0, 2\*\*63\), got -1"),
        (EvalSettings, {"tsne_points": -5}, r"VAE_TSNE_POINTS must be 0 \(no t-SNE\) or exceed 3 x perplexity"),
        (EvalSettings, {"iw_samples": 0}, "VAE_IW_SAMPLES must be an integer >= 1, got 0"),
    ],
)
def test_from_params_names_the_notebook_variable_not_the_field(cls, params, message):
    with pytest.raises(ValueError, match=f"^{message}") as e:
        nb.from_params(cls, params)
    assert "config." not in str(e.value) and "--" not in str(e.value)
    assert nb.from_params(Config, {"num_epochs": 3}, device="cpu") == Config(num_epochs=3, device="cpu")


def setup_cells(name: str) -> tuple[str, str]:
    """A notebook's parameters cell and the setup cell after it, as plain Python."""
    cells = [c for c in nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4).cells if c.cell_type == "code"]
    return tuple(TransformerManager().transform_cell(c.source) for c in cells[1:3])


@pytest.mark.parametrize(
    "name, variable, value",
    [
        ("vae_fashion_mnist", "NUM_EPOCHS", "-1"),
        ("vae_fashion_mnist", "SEED", "-1"),
        ("vae_fashion_mnist", "TSNE_POINTS", "-5"),
        ("vae_fashion_mnist", "IW_SAMPLES", "0"),
        ("latent_space", "NUM_EPOCHS", "-1"),
        ("latent_space", "SEED", "-1"),
        ("latent_space", "TSNE_POINTS", "-5"),
    ],
)
def test_a_bad_notebook_parameter_fails_in_the_setup_cell_naming_its_variable(name, variable, value, monkeypatch):
    monkeypatch.setenv(f"VAE_{variable}", value)
    parameters, setup = setup_cells(name)
    namespace = {"get_ipython": lambda: SimpleNamespace(run_line_magic=lambda *args: None)}  # for %matplotlib
    exec(parameters, namespace)
    with pytest.raises(ValueError, match=f"^VAE_{variable} must"):
        exec(setup, namespace)


def test_project_root_is_found_from_the_notebooks_folder_and_not_elsewhere(tmp_path, monkeypatch):
    root = make_checkout(tmp_path / "repo")
    assert nb.project_root(root / "notebooks") == root.resolve()
    assert nb.project_root(root) == root.resolve()
    (tmp_path / "content").mkdir()
    assert nb.project_root(tmp_path / "content") is None  # e.g. /content on Colab, before the clone
    monkeypatch.chdir(root / "notebooks")
    assert nb.project_dir("", "data") == root.resolve() / "data"
    assert nb.project_dir("/somewhere/else", "data") == Path("/somewhere/else")
    monkeypatch.chdir(tmp_path / "content")
    assert nb.project_dir(None, "figures/notebooks") == (tmp_path / "content").resolve() / "figures/notebooks"


def test_traversal_widget_moves_the_decoded_image(tiny_config):
    torch.manual_seed(0)
    model = VAE.from_config(tiny_config).eval()
    z = torch.zeros(tiny_config.latent_dim)
    widget = nb.traversal_widget(model, z, dims=[2, 0])
    sliders, image = widget.children[0].children, widget.children[1]
    assert [s.description for s in sliders] == ["z[2]", "z[0]"]
    with torch.no_grad():
        expected = nb._png(torch.sigmoid(model.decode(torch.tensor([[0.0, 0, 1.5, 0]])))[0], 196)
    before = image.value
    sliders[0].value = 1.5
    assert image.value != before and image.value == expected
    assert z.tolist() == [0.0] * 4  # the caller's z is left alone


def test_traversal_widget_is_none_without_ipywidgets(tiny_config, monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import ipywidgets now raises ImportError
    model = VAE.from_config(tiny_config).eval()
    assert nb.traversal_widget(model, torch.zeros(tiny_config.latent_dim), [0]) is None
