import struct
from dataclasses import replace

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image
from scipy import stats
from torch.distributions import Normal

from vae import Config, plots
from vae.data import class_names
from vae.evaluate import EvalSettings
from vae.lab import figures as lab_figures
from vae.lab import sweep
from vae.lab.files import staged_writes
from vae.lab.literature import ORIGINAL_REPORT_LOSS, dataset_entry
from vae.lab.pipeline import make_figures
from vae.model import VAE
from vae.research import build_model
from vae.research import latent_space as ls

NAMES = [f"class {i}" for i in range(10)]
MAX_WIDTH = 1600  # pixels: readable at 100 % zoom on a laptop screen
# Names from the code that a reader of a figure's title should never meet.
CODE_NAMES = [name for name in (*Config.__dataclass_fields__, *sweep.ABLATIONS) if "_" in name]


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


def png_width(path) -> int:
    """The width in pixels from a PNG's IHDR chunk: bytes 16-20, big-endian, after the 8-byte signature."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return struct.unpack(">I", head[16:20])[0]


def cell(grid: np.ndarray, row: int, col: int) -> np.ndarray:
    """The 28x28 image at (row, col) of a torchvision grid with 2-pixel padding."""
    top, left = 2 + 30 * row, 2 + 30 * col
    return grid[top : top + 28, left : left + 28]


def decoded(model, z) -> np.ndarray:
    with torch.no_grad():
        return torch.sigmoid(model.decode(torch.as_tensor(z, dtype=torch.float32).view(1, -1))).view(28, 28).numpy()


@pytest.fixture
def model2():
    torch.manual_seed(0)
    return VAE(hidden_dim=16, latent_dim=2).eval()


# --- The report's figures -----------------------------------------------------------------------------------------


def test_loss_curves_show_train_test_and_the_split_in_nats_per_image(tmp_path):
    fig = plots.loss_curves(history())
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["-ELBO = BCE + KL", "BCE (reconstruction)", "KL(q(z|x) || p(z))"]
    for ax in axes:
        assert len(ax.get_lines()) == 2 and ax.get_xlabel() == "epoch"
        assert ax.get_ylabel() == "nats per image (axis not from 0)"
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


def test_reconstructions_of_a_continuous_bernoulli_model_draw_its_mean_not_sigmoid(tiny_config, images):
    torch.manual_seed(0)
    model = build_model(replace(tiny_config, likelihood="continuous-bernoulli")).eval()
    with torch.no_grad():
        model.dec_out.weight.mul_(10)  # logits far from 0, where the two means differ
    x, y = images[1][:10], torch.arange(10)
    (ax,) = plots.reconstructions(model, x, y, NAMES).get_axes()
    grid = ax.get_images()[0].get_array()
    with torch.no_grad():
        logits = model.decode(model.encode(x)[0]).double()  # (10, 784): decoded from mu
    lam = torch.sigmoid(logits)
    cb_mean = lam / (2 * lam - 1) + 1 / (2 * torch.atanh(1 - 2 * lam))  # E[x] of the continuous Bernoulli
    for col in range(10):
        shown = cell(grid, 1, col).astype(np.float64)  # the reconstruction row
        np.testing.assert_allclose(shown, cb_mean[col].view(28, 28).numpy(), atol=1e-5)
        assert np.abs(shown - lam[col].view(28, 28).numpy()).max() > 0.05  # not sigmoid(logits)


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


# --- save_figure ----------------------------------------------------------------------------------------------------


def test_save_figure_has_a_fixed_dpi(tmp_path):
    fig = Figure(figsize=(2, 1))
    fig.subplots().plot([0, 1])
    width, _ = saved_png(fig, "x", tmp_path)
    assert width == pytest.approx(2 * plots.DPI, rel=0.1)  # bbox_inches="tight" trims a little


def test_save_figure_in_a_staged_set_writes_nothing_until_the_set_commits(tmp_path):
    fig = Figure(figsize=(2, 1))
    fig.subplots().plot([0, 1])
    with staged_writes() as stage:
        path = plots.save_figure(fig, "a", tmp_path, stage)
        plots.save_figure(fig, "b", tmp_path, stage)
        assert path == tmp_path / "a.png"
        assert not path.exists() and not (tmp_path / "b.png").exists()  # only temporaries so far
    assert png_width(tmp_path / "a.png") == png_width(tmp_path / "b.png") > 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    fig.subplots().plot([1, 0])  # a changed figure, whose set fails before it commits
    with pytest.raises(RuntimeError, match="interrupted"), staged_writes() as stage:
        plots.save_figure(fig, "a", tmp_path, stage)
        raise RuntimeError("interrupted")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # unchanged, and no temporary left


# --- Every figure of the report and of the sweep: size, text size, titles ------------------------------------------


def stored_results(seeds=(0, 1)) -> dict:
    """Hand-made stored sweep results for every variant and seed, as sweep.run_one writes them."""
    rng = np.random.default_rng(0)
    results = {}
    for variants in sweep.ABLATIONS.values():
        for _, overrides in variants:
            for seed in seeds:
                config = replace(Config(), **overrides, seed=seed)
                h = [
                    {"epoch": e, "train_loss": 300 - 5 * e, "train_bce": 285 - 5 * e, "train_kl": 15.0,
                     "test_loss": 290 - 4 * e}
                    for e in range(1, config.num_epochs + 1)
                ]  # fmt: skip
                metrics = {"test_loss": 250 + rng.random(), "iwae_nll": 247 + rng.random(), "test_kl": 16.0,
                           "test_bce": 234.0, "knn_accuracy": 0.85, "active_units": 20}  # fmt: skip
                labels = np.arange(200) % 10
                tsne = {"xy": rng.normal(size=(200, 2)).tolist(), "labels": labels.tolist()} if seed == 0 else None
                results[sweep.variant_name(overrides, seed)] = {
                    "config": config.to_dict(), "smoke": False, "status": "ok", "history": h, "metrics": metrics,
                    "tsne": tsne, "evaluation": {"iw_samples": 100},
                }  # fmt: skip
    return results


def runs_of(results, ablation, seeds=(0, 1)):
    return [(label, [results.get(sweep.variant_name(o, s)) for s in seeds]) for label, o in sweep.ABLATIONS[ablation]]


def report_figures() -> dict:
    """The report's figures (pipeline.make_figures), with the real class names and a 20-dim model."""
    torch.manual_seed(0)
    model = VAE(hidden_dim=16, latent_dim=20).eval()
    x, y = torch.rand(40, 784), torch.arange(40) % 10
    rng = np.random.default_rng(0)
    tsne = {"embedding": rng.normal(size=(40, 2)), "labels": y.numpy(), "trustworthiness": 0.9}
    run = {"kl_per_dim": rng.random(20).tolist(), "latent_variance": rng.random(20).tolist()}
    settings = EvalSettings(tsne_points=40, tsne_perplexity=5.0)
    return make_figures(model, history(10), tsne, run, x, y, class_names("fashion-mnist"), settings)


def sweep_figures() -> dict:
    """Every figure the sweep writes (sweep.write_outputs), from hand-made stored results."""
    results, seeds = stored_results(), (0, 1)
    figures = {f"ablation_{a}": lab_figures.ablation(runs_of(results, a), a, seeds) for a in sweep.ABLATIONS}
    kl_runs = [(label, results[sweep.variant_name(o, 0)]) for label, o in sweep.ABLATIONS["kl_weight"]]
    figures["tsne_kl_weight"] = lab_figures.tsne_small_multiples(kl_runs, class_names("fashion-mnist"))
    figures["training_length"] = lab_figures.training_length(runs_of(results, "training"))
    figures["loss_readings"] = lab_figures.loss_readings(sweep.loss_readings(results), ORIGINAL_REPORT_LOSS)
    torch.manual_seed(0)
    figures["manifold_latent2"] = ls.manifold_grid(VAE(hidden_dim=16, latent_dim=2).eval())
    return figures


@pytest.fixture(scope="module")
def every_figure() -> dict:
    return report_figures() | sweep_figures()


def test_every_figure_of_the_report_and_the_sweep_fits_1600_pixels(every_figure, tmp_path):
    assert len(every_figure) == 6 + 9
    widths = {name: png_width(plots.save_figure(fig, name, tmp_path)) for name, fig in every_figure.items()}
    assert min(widths.values()) > 500  # read from real PNGs
    assert {name: w for name, w in widths.items() if w > MAX_WIDTH} == {}


def test_the_ablation_figures_have_no_text_below_9_points(every_figure):
    names = [n for n in every_figure if n.startswith("ablation_")] + ["tsne_kl_weight", "training_length",
                                                                      "loss_readings"]  # fmt: skip
    for name in names:
        fig = every_figure[name]
        fig.draw_without_rendering()  # creates the tick labels
        ticks = [t for ax in fig.get_axes() for t in (*ax.get_xticklabels(), *ax.get_yticklabels()) if t.get_text()]
        assert ticks or name == "tsne_kl_weight", name  # the t-SNE panels alone have no ticks
        texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
        small = {t.get_text(): t.get_fontsize() for t in [*ticks, *texts] if t.get_fontsize() < 9}
        assert small == {}, name


def test_figure_titles_name_no_code(every_figure):
    assert "variance_head" in CODE_NAMES and "latent_dim" in CODE_NAMES
    for name, fig in every_figure.items():
        titles = [fig.get_suptitle(), *(ax.get_title() for ax in fig.get_axes())]
        assert any(titles), name
        found = [code for code in CODE_NAMES for title in titles if code in title]
        assert found == [], f"{name}: {titles}"


def test_ablation_shows_each_seed_its_mean_and_failures():
    results = stored_results()
    results[sweep.variant_name({"beta": 4.0}, 1)] |= {"status": "diverged", "metrics": None}
    fig = lab_figures.ablation(runs_of(results, "kl_weight"), "kl_weight", (0, 1))
    axes = fig.get_axes()
    assert fig.get_suptitle() == "Ablation: " + lab_figures.ABLATION_TITLES["kl_weight"]
    assert [t.get_text() for t in axes[0].get_xticklabels()] == [label for label, _ in sweep.ABLATIONS["kl_weight"]]
    values = [results[sweep.variant_name({"beta": 2.0}, s)]["metrics"]["test_loss"] for s in (0, 1)]
    dots = axes[0].get_lines()[1]  # the second variant's dots
    assert list(dots.get_ydata()) == values and list(dots.get_xdata()) == [1, 1]
    mean = axes[0].collections[1].get_segments()[0]  # its red line: the mean over seeds
    assert mean[0][1] == pytest.approx(sum(values) / 2)
    assert "1 diverged" in [t.get_text() for t in axes[0].texts]
    assert len(axes[0].get_lines()[3].get_ydata()) == 1  # β=4: one seed left


def test_tsne_small_multiples_one_panel_per_run_with_a_t_sne():
    results = stored_results()
    runs = [(label, results[sweep.variant_name(o, 0)]) for label, o in sweep.ABLATIONS["kl_weight"]]
    runs[2] = (runs[2][0], None)  # a run not (yet) stored
    fig = lab_figures.tsne_small_multiples(runs, NAMES)
    axes = fig.get_axes()
    assert len(axes) == 3 and axes[1].get_title().startswith(runs[1][0] + "\n20 active units")
    np.testing.assert_allclose(axes[0].collections[3].get_offsets(), np.asarray(runs[0][1]["tsne"]["xy"])[3::10])
    assert "200 test images" in fig.get_suptitle()


def test_training_length_one_line_per_seed_and_loss_readings_one_point_per_reading():
    results = stored_results()
    fig = lab_figures.training_length(runs_of(results, "training"))
    (ax,) = fig.get_axes()
    assert len(ax.get_lines()) == 3 * 2
    assert len(ax.get_lines()[-1].get_xdata()) == 50  # the 50-epoch run
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [label for label, _ in sweep.ABLATIONS["training"]]
    readings = sweep.loss_readings(results)
    fig = lab_figures.loss_readings(readings, ORIGINAL_REPORT_LOSS)
    (ax,) = fig.get_axes()
    points = [line for line in ax.get_lines() if len(line.get_xdata())]
    assert len(points) == len(readings) + 1  # and the star at (1, 1)
    assert points[0].get_xdata()[0] == pytest.approx(1 + readings[0]["first_error"])
    assert (points[-1].get_xdata()[0], points[-1].get_ydata()[0]) == (1, 1)


def test_training_length_keeps_every_last_epoch_in_view_whatever_the_scale():
    """A smoke sweep's losses (about 400 nats after one epoch) must show too, on an axis that goes up."""
    for start in (290.0, 420.0):
        runs = [(f"run {i}", [{"history": [{"epoch": e, "test_loss": start + 5 * i - 3 * e} for e in range(1, n + 1)]}])
                for i, n in enumerate((1, 1, 5))]  # fmt: skip
        (ax,) = lab_figures.training_length(runs).get_axes()
        bottom, top = ax.get_ylim()
        assert bottom < top
        for line in ax.get_lines():
            assert bottom <= line.get_ydata()[-1] <= top, (start, line.get_label())


# --- The notebooks' figures -----------------------------------------------------------------------------------------


def test_class_examples_one_labelled_row_per_class(tmp_path):
    x = torch.rand(60, 784)
    y = torch.arange(60) % 10
    fig = plots.class_examples(x, y, NAMES, per_class=4)
    (ax,) = fig.get_axes()
    grid = ax.get_images()[0].get_array()
    assert grid.shape == (2 + 10 * 30, 2 + 4 * 30)
    assert [t.get_text() for t in ax.get_yticklabels()] == NAMES
    np.testing.assert_allclose(cell(grid, 3, 1), x[13].view(28, 28).numpy(), atol=1e-6)  # 2nd image of class 3
    assert plots.save_figure(fig, "data_examples", tmp_path).is_file()
    with pytest.raises(ValueError, match="needs 7 examples"):
        plots.class_examples(x, y, NAMES, per_class=7)


def test_embeddings_side_by_side_with_one_legend():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 3)
    maps = {title: rng.normal(size=(30, 2)) for title in ("t-SNE of μ", "t-SNE of pixels", "PCA")}
    fig = ls.embeddings(maps, y, NAMES)
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == list(maps)
    assert all(len(ax.collections) == 10 for ax in axes)
    np.testing.assert_allclose(axes[1].collections[4].get_offsets(), maps["t-SNE of pixels"][y == 4])
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == NAMES


def test_latent_scatter_of_2d_means():
    mu = torch.randn(50, 2)
    y = torch.arange(50) % 10
    fig = ls.latent_scatter(mu, y, NAMES)
    (ax,) = fig.get_axes()
    assert len(ax.collections) == 10 and len(ax.patches) == 3  # one scatter per class, three prior circles
    np.testing.assert_allclose(ax.collections[0].get_offsets(), mu[y == 0].numpy())
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("μ_1", "μ_2")
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        ls.latent_scatter(torch.randn(5, 3), y[:5], NAMES)


def test_manifold_coordinates_are_normal_quantiles():
    z = ls.manifold_coordinates(9, p_min=0.05)
    p = torch.linspace(0.05, 0.95, 9)
    torch.testing.assert_close(z, Normal(0.0, 1.0).icdf(p))
    np.testing.assert_allclose(z.numpy(), stats.norm.ppf(p.numpy()), atol=1e-5)  # a second, independent oracle
    gaps = z.diff()
    assert gaps[0] > 1.5 * gaps[4]  # wider steps in the tails than near 0, unlike a linspace


def test_manifold_grid_decodes_the_quantile_grid(model2, tmp_path):
    n = 5
    fig = ls.manifold_grid(model2, n=n, p_min=0.1)
    (ax,) = fig.get_axes()
    grid = ax.get_images()[0].get_array()
    assert grid.shape == (2 + n * 30, 2 + n * 30)
    q = Normal(0.0, 1.0).icdf(torch.linspace(0.1, 0.9, n))
    for row, col in ((0, 0), (0, 4), (3, 1), (4, 4)):
        expected = decoded(model2, [q[col], q[n - 1 - row]])  # z_1 along columns, z_2 decreasing down the rows
        np.testing.assert_allclose(cell(grid, row, col), expected, atol=1e-5)
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"{v:.1f}" for v in q.tolist()]
    assert plots.save_figure(fig, "latent2d_manifold", tmp_path).is_file()
    with pytest.raises(ValueError, match="latent_dim=2"):
        ls.manifold_grid(VAE(hidden_dim=8, latent_dim=3), n=3)


def test_latent_traversal_changes_one_dim_per_row(tiny_config):
    torch.manual_seed(0)
    model = VAE.from_config(tiny_config).eval()
    z = torch.tensor([0.5, -1.0, 0.2, 2.0])
    values = [-2.0, 0.0, 2.0]
    fig = ls.latent_traversal(model, z, [3, 1], values, ["third", "first"])
    (ax,) = fig.get_axes()
    grid = ax.get_images()[0].get_array()
    assert grid.shape == (2 + 2 * 30, 2 + 3 * 30)
    np.testing.assert_allclose(cell(grid, 0, 2), decoded(model, [0.5, -1.0, 0.2, 2.0]), atol=1e-5)  # z[3] = 2
    np.testing.assert_allclose(cell(grid, 1, 0), decoded(model, [0.5, -2.0, 0.2, 2.0]), atol=1e-5)  # z[1] = -2
    assert [t.get_text() for t in ax.get_yticklabels()] == ["third", "first"]
    assert torch.equal(z, torch.tensor([0.5, -1.0, 0.2, 2.0]))  # the caller's z is left alone


def test_posterior_draws_shows_the_image_its_mean_decoding_and_each_draw(tiny_config):
    torch.manual_seed(0)
    model = VAE.from_config(tiny_config).eval()
    x = torch.rand(784)
    z = torch.randn(3, tiny_config.latent_dim)
    fig = plots.posterior_draws(model, x, z)
    (ax,) = fig.get_axes()
    grid = ax.get_images()[0].get_array()
    assert grid.shape == (2 + 30, 2 + 5 * 30)  # one row of 5 images, 2-pixel gaps

    def cell(col):
        return grid[2 : 2 + 28, 2 + 30 * col : 2 + 30 * col + 28]

    with torch.no_grad():
        mu, _ = model.encode(x.view(1, -1))
        expected = [x, torch.sigmoid(model.decode(mu))[0], *torch.sigmoid(model.decode(z))]
    for col, image in enumerate(expected):
        np.testing.assert_allclose(cell(col), image.view(28, 28).numpy(), atol=1e-6)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["x", "from μ", "draw 1", "draw 2", "draw 3"]


def test_k_convergence_draws_one_line_per_model_with_its_standard_errors(tmp_path):
    records = [
        {"model": m, "dataset": "fashion-mnist, grey levels", "k": k, "bound": b - 0.5 * i, "se": 0.1}
        for m, b in (("small", 250.0), ("large", 230.0))
        for i, k in enumerate((1, 10, 100))
    ]
    fig = lab_figures.k_convergence(records)
    (ax,) = fig.get_axes()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["small", "large"]
    assert ax.get_xscale() == "log" and "axis not from 0" in ax.get_ylabel()
    path = plots.save_figure(fig, "k", tmp_path)
    assert int.from_bytes(path.read_bytes()[16:20], "big") <= 1600
    mnist = [{"model": "gated", "dataset": "mnist, binarised", "k": k, "bound": 90.0 - k / 100, "se": 0.1}
             for k in (1, 100)]  # fmt: skip
    fig = lab_figures.k_convergence(records + mnist)  # a panel per test data
    assert [[t.get_text() for t in ax.get_legend().get_texts()] for ax in fig.get_axes()] == [["small", "large"],
                                                                                              ["gated"]]  # fmt: skip
    assert [ax.get_title() for ax in fig.get_axes()] == ["test set: fashion-mnist, grey levels",
                                                         "test set: mnist, binarised"]  # fmt: skip
    assert fig.get_axes()[1].get_lines()[0].get_color() == "C2"  # a model keeps its colour across panels
    path = plots.save_figure(fig, "k", tmp_path)
    assert int.from_bytes(path.read_bytes()[16:20], "big") <= 1600


def test_the_literature_figure_has_a_panel_per_dataset_with_the_published_line():
    # Entries of results.json's first schema (one run, of protocol 1), as committed before runs were kept.
    entry = {"iwae_nll": 230.5, "iwae_nll_se": 0.25, "iw_samples": 5000, "published_nll": 228.70, "epochs": 3,
             "best_epoch": 2, "stopped_early": False, "config": {"num_epochs": 2000, "seed": 0},
             "curve": {"val_loss": [300, 260, 261], "test_loss": [301, 262, 263]}}  # fmt: skip
    fig = lab_figures.literature_training(
        {"fashion-mnist": entry, "mnist": {**entry, "published_nll": 84.45, "stopped_early": True}}
    )
    assert len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == [
        "fashion-mnist, seed 0, protocol 1: 3 epochs, cut short (limit 2000)",
        "mnist, seed 0, protocol 1: 3 epochs, stopped early",
    ]
    finished = {**entry, "config": {"num_epochs": 3, "seed": 0}}
    title = lab_figures.literature_training({"mnist": finished}).axes[0].get_title()
    assert title == "mnist, seed 0, protocol 1: 3 epochs, the protocol's limit"
    for ax, published in zip(fig.axes, (228.70, 84.45), strict=True):
        assert [line.get_ydata()[0] for line in ax.lines if line.get_linestyle() == "--"] == [published]
        assert any("K = 5000: 230.50" in t.get_text() for t in ax.get_legend().get_texts())


def test_the_literature_figure_shows_the_runs_of_the_newest_protocol():
    curve = {"val_loss": [300, 260, 261], "test_loss": [301, 262, 263]}
    run = {"iw_samples": 5000, "iwae_nll_se": 0.25, "epochs": 3, "best_epoch": 2, "stopped_early": False,
           "config": {"num_epochs": 2000}, "curve": curve}  # fmt: skip
    runs = [{**run, "seed": s, "validation_protocol": p, "iwae_nll": nll}
            for s, p, nll in ((0, 2, 230.5), (1, 2, 231.5), (0, 1, 240.0))]  # fmt: skip
    (ax,) = lab_figures.literature_training({"fashion-mnist": dataset_entry("fashion-mnist", runs)}).axes
    assert ax.get_title() == "fashion-mnist: 2 runs (seeds 0, 1) of protocol 2"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert [t for t in legend if "NLL" in t] == [
        "seed 0: test NLL, IWAE K = 5000: 230.50",
        "seed 1: test NLL, IWAE K = 5000: 231.50",
    ]  # not protocol 1's 240
