import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from vae import plots
from vae.model import VAE

NAMES = [f"class {i}" for i in range(10)]


@pytest.fixture
def model(tiny_config):
    torch.manual_seed(0)
    return VAE.from_config(tiny_config).eval()


def history(epochs: int = 3) -> list[dict]:
    return [
        {
            f"{split}_{key}": 300.0 - 10 * e + (5 if key == "kl" else 0)
            for split in ("train", "test")
            for key in ("loss", "bce", "kl")
        }
        | {"epoch": e}
        for e in range(1, epochs + 1)
    ]


def saved_png(fig, name, tmp_path) -> tuple[int, int]:
    assert isinstance(fig, Figure)
    path = plots.save_figure(fig, name, tmp_path / "figures")
    assert path == tmp_path / "figures" / f"{name}.png"
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_loss_curves_show_train_test_and_the_split_in_nats_per_image(tmp_path):
    fig = plots.loss_curves(history())
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["-ELBO = BCE + KL", "BCE (reconstruction)", "KL(q(z|x) || p(z))"]
    for ax in axes:
        assert len(ax.get_lines()) == 2 and ax.get_ylabel() == "nats per image" and ax.get_xlabel() == "epoch"
        assert list(ax.get_lines()[0].get_xdata()) == [1, 2, 3]
    assert list(axes[2].get_lines()[1].get_ydata()) == [295.0, 285.0, 275.0]  # test KL
    saved_png(fig, "loss_curves", tmp_path)


def test_reconstructions_one_column_per_class(model, images, tmp_path):
    x, y = images[1][:10], torch.arange(10)
    fig = plots.reconstructions(model, x, y, NAMES)
    (ax,) = fig.get_axes()
    assert [t.get_text() for t in ax.get_xticklabels()] == NAMES
    assert [t.get_text() for t in ax.get_yticklabels()] == ["original", "reconstruction"]
    grid = ax.get_images()[0].get_array()
    assert grid.shape == (2 + 2 * 30, 2 + 10 * 30)  # 2 rows x 10 columns of 28 px + 2 px padding
    np.testing.assert_allclose(grid[2:30, 2:30], x[0].view(28, 28).numpy(), atol=1e-6)  # the original, top left
    saved_png(fig, "reconstructions", tmp_path)


def test_prior_samples_are_seeded(model, tmp_path):
    a = plots.prior_samples(model, n=16, seed=1).get_axes()[0].get_images()[0].get_array()
    b = plots.prior_samples(model, n=16, seed=1).get_axes()[0].get_images()[0].get_array()
    c = plots.prior_samples(model, n=16, seed=2).get_axes()[0].get_images()[0].get_array()
    assert a.shape == (2 + 4 * 30, 2 + 4 * 30)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    saved_png(plots.prior_samples(model, n=16), "prior_samples", tmp_path)


def test_interpolation_rows_start_and_end_at_the_reconstructions(model, images, tmp_path):
    x = images[1]
    fig = plots.interpolation(model, x[:2], x[2:4], ["a -> b", "c -> d"], steps=5)
    (ax,) = fig.get_axes()
    grid = ax.get_images()[0].get_array()
    assert grid.shape == (2 + 2 * 30, 2 + 5 * 30)
    with torch.no_grad():
        end = torch.sigmoid(model.decode(model.encode(x[3:4])[0])).view(28, 28).numpy()
    np.testing.assert_allclose(grid[32:60, 122:150], end, atol=1e-5)  # row 2, last column
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a -> b", "c -> d"]
    saved_png(fig, "interpolation", tmp_path)


def test_tsne_has_ten_colours_a_ten_entry_legend_and_its_parameters(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 5)
    fig = plots.tsne(rng.normal(size=(50, 2)), y, NAMES, perplexity=30, seed=7, trust=0.95)
    (ax,) = fig.get_axes()
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == NAMES
    colours = {tuple(c.get_facecolor()[0]) for c in ax.collections}
    assert len(ax.collections) == 10 and len(colours) == 10
    assert all(len(c.get_offsets()) == 5 for c in ax.collections)
    assert "perplexity 30" in ax.get_title() and "seed 7" in ax.get_title() and "0.950" in ax.get_title()
    saved_png(fig, "tsne", tmp_path)


def test_kl_per_dim_bars_and_active_units(tmp_path):
    fig = plots.kl_per_dim([0.5, 0.0, 2.0, 0.001], variance=[0.5, 0.001, 1.0, 0.02])
    (ax,) = fig.get_axes()
    assert [p.get_height() for p in ax.patches] == [0.5, 0.0, 2.0, 0.001]
    assert "3 of 4 active" in ax.get_title() and "nats per image" in ax.get_ylabel()
    assert ax.patches[1].get_facecolor() != ax.patches[0].get_facecolor()
    saved_png(fig, "kl_per_dim", tmp_path)


def test_save_figure_has_a_fixed_dpi(tmp_path):
    fig = Figure(figsize=(2, 1))
    fig.subplots().plot([0, 1])
    width, _ = saved_png(fig, "x", tmp_path)
    assert width == pytest.approx(2 * plots.DPI, rel=0.1)  # bbox_inches="tight" trims a little
