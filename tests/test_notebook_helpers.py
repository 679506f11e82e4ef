"""vae.notebook: the project's folders, train-or-load, and the latent-traversal widget."""

import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from vae import checkpoint as vcheckpoint
from vae import notebook as nb
from vae.model import VAE


def make_checkout(root):
    (root / "vae").mkdir(parents=True)
    (root / "vae" / "__init__.py").write_text("")
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (root / "notebooks").mkdir()
    return root


def test_project_root_is_found_from_the_notebooks_folder_and_not_elsewhere(tmp_path, monkeypatch):
    root = make_checkout(tmp_path / "repo")
    assert nb.project_root(root / "notebooks") == root.resolve()
    assert nb.project_root(root) == root.resolve()
    (tmp_path / "content").mkdir()
    assert nb.project_root(tmp_path / "content") is None  # e.g. /content on Colab
    monkeypatch.chdir(root / "notebooks")
    assert nb.project_dir("", "data") == root.resolve() / "data"
    assert nb.project_dir("/somewhere/else", "data") == Path("/somewhere/else")
    monkeypatch.chdir(tmp_path / "content")
    assert nb.project_dir(None, "figures/notebooks") == (tmp_path / "content").resolve() / "figures/notebooks"


def test_train_or_load_trains_once_then_loads(tiny_config, images, tmp_path, monkeypatch):
    model, history, path = nb.train_or_load(tiny_config, *images, tmp_path / "runs", progress=False)
    assert path == tmp_path / "runs" / "notebooks" / "latent4-seed0" / "checkpoint.pt" and path.is_file()
    assert len(history) == tiny_config.num_epochs

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(nb, "fit", no_training)
    again, history_again, path_again = nb.train_or_load(tiny_config, *images, tmp_path / "runs", progress=False)
    assert path_again == path and history_again == history
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


def test_train_or_load_prefers_the_reports_checkpoint(tiny_config, images, tmp_path, monkeypatch):
    report_dir = tmp_path / "runs" / "report" / "seed0"
    _, history = nb.fit(tiny_config, *images, out_dir=report_dir, progress=False)
    monkeypatch.setattr(nb, "fit", lambda *a, **k: pytest.fail("trained although the report's checkpoint exists"))
    _, loaded, path = nb.train_or_load(tiny_config, *images, tmp_path / "runs", progress=False)
    assert path == report_dir / "checkpoint.pt" and loaded == history


def test_train_or_load_ignores_a_checkpoint_of_another_config(tiny_config, images, tmp_path):
    report_dir = tmp_path / "runs" / "report" / "seed0"
    nb.fit(replace(tiny_config, lr=1e-2), *images, out_dir=report_dir, progress=False)
    assert not nb.finished_with(report_dir / "checkpoint.pt", tiny_config)
    _, _, path = nb.train_or_load(tiny_config, *images, tmp_path / "runs", progress=False)
    assert path.parent.name == "latent4-seed0"
    assert vcheckpoint.load_checkpoint(path)["config"]["lr"] == tiny_config.lr


def test_train_or_load_continues_a_shorter_run(tiny_config, images, tmp_path):
    short = replace(tiny_config, num_epochs=2)
    _, first, _ = nb.train_or_load(short, *images, tmp_path, progress=False)
    _, history, _ = nb.train_or_load(tiny_config, *images, tmp_path, progress=False)
    assert len(history) == 3 and history[:2] == first  # resumed, not retrained


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
