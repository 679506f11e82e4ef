"""Figures. Every function returns a matplotlib Figure; `save_figure` alone writes files (PNG, fixed dpi).

Figures are built with `matplotlib.figure.Figure`, not pyplot: nothing here picks a backend or keeps figures
open, so scripts need no display, and a notebook shows a returned Figure inline as the cell's value.
"""

from contextlib import nullcontext
from pathlib import Path

import matplotlib.patches
import numpy as np
import torch
from matplotlib.figure import Figure
from torch.distributions import Normal
from torchvision.utils import make_grid

from vae.lab.files import staged_writes
from vae.lab.literature import PUBLISHED_NLL, current_runs, how_it_ended, upgraded

DPI = 150  # at this dpi a figure 10.5 inches wide is 1575 pixels: readable at 100 % zoom
SIDE = 28  # images are 28 x 28 pixels
PAD = 2  # pixels between images in a grid


def save_figure(fig: Figure, name: str, fig_dir="figures", stage=None) -> Path:
    """Write `fig` as `<fig_dir>/<name>.png` at DPI dots per inch, atomically or in a `staged_writes` set."""
    path = Path(fig_dir) / f"{name}.png"
    with nullcontext(stage) if stage else staged_writes() as stage:
        fig.savefig(stage(path), format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return path


def _show_grid(ax, images: torch.Tensor, nrow: int) -> None:
    """Draw images (N, 784) in [0, 1] on `ax` as one torchvision grid, nrow images per row, white gaps."""
    grid = make_grid(images.detach().cpu().float().view(-1, 1, SIDE, SIDE), nrow=nrow, padding=PAD, pad_value=1.0)
    ax.imshow(grid[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _centres(count: int) -> list[float]:
    """Pixel coordinates of the centres of `count` grid cells along one axis."""
    return [PAD + i * (SIDE + PAD) + SIDE / 2 for i in range(count)]


@torch.no_grad()
def _decode_mean(model, z: torch.Tensor) -> torch.Tensor:
    """The Bernoulli means sigmoid(decode(z)), (N, 784): what a VAE's 'image' is."""
    return torch.sigmoid(model.decode(z))


def loss_curves(history: list[dict]) -> Figure:
    """-ELBO, BCE and KL per epoch, train and test, in nats per image, from `fit`'s history."""
    epochs = [r["epoch"] for r in history]
    fig = Figure(figsize=(10.5, 3.6), layout="constrained")
    axes = fig.subplots(1, 3)
    parts = (("loss", "-ELBO = BCE + KL"), ("bce", "BCE (reconstruction)"), ("kl", "KL(q(z|x) || p(z))"))
    for ax, (key, title) in zip(axes, parts, strict=True):
        ax.plot(epochs, [r[f"train_{key}"] for r in history], "o-", label="train (mean over the epoch)")
        ax.plot(epochs, [r[f"test_{key}"] for r in history], "s--", label="test (after the epoch)")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel("nats per image (axis not from 0)")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("Training curves: per-image losses (not per-batch sums)")
    return fig


def reconstructions(model, x: torch.Tensor, y: torch.Tensor, class_names: list[str]) -> Figure:
    """Originals (top row) over their reconstructions sigmoid(decode(mu)) (bottom row), one per column's class."""
    with torch.no_grad():
        mu, _ = model.encode(x)
    rows = {"original": x, "reconstruction": _decode_mean(model, mu)}
    names = [class_names[int(c)] for c in y]
    return image_rows(rows, names, "Test images and their reconstructions from the posterior mean μ")


def posterior_draws(model, x: torch.Tensor, z: torch.Tensor) -> Figure:
    """One image x (784,), its decoding from mu, and the decodings of draws z (n, latent_dim) of q(z|x), in a row."""
    with torch.no_grad():
        mu, _ = model.encode(x.view(1, -1))  # (1, latent_dim)
    images = torch.cat([x.view(1, -1), _decode_mean(model, torch.cat([mu, z]))])  # (2 + n, 784)
    fig = Figure(figsize=(0.9 * len(images) + 0.6, 1.9), layout="constrained")
    ax = fig.subplots()
    _show_grid(ax, images, nrow=len(images))
    ax.set_xticks(_centres(len(images)), ["x", "from μ", *[f"draw {i + 1}" for i in range(len(z))]], fontsize=9)
    ax.set_title("One test image x, decoded from its mean μ and from draws z = μ + σ·ε", fontsize=10)
    return fig


def image_rows(rows: dict, column_labels: list[str] | None, title: str) -> Figure:
    """Rows of images (label -> (N, 784) in [0, 1]), one grid, each row labelled, each column named (if given)."""
    n = len(next(iter(rows.values())))
    fig = Figure(figsize=(min(10.5, 1.0 * n), 0.95 * len(rows) + 1.0), layout="constrained")
    ax = fig.subplots()
    _show_grid(ax, torch.cat([images.detach().cpu() for images in rows.values()]), nrow=n)
    if column_labels is not None:
        ax.set_xticks(_centres(n), column_labels, rotation=30, ha="right")
    ax.set_yticks(_centres(len(rows)), list(rows))
    ax.set_title(title)
    return fig


def prior_samples(model, n: int = 64, seed: int = 0) -> Figure:
    """n images decoded from z ~ N(0, I) (seeded), shown as Bernoulli means in a square-ish grid."""
    device = next(model.parameters()).device
    z = torch.randn(n, model.latent_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    nrow = int(np.ceil(np.sqrt(n)))
    fig = Figure(figsize=(6, 6 * np.ceil(n / nrow) / nrow + 0.4), layout="constrained")
    ax = fig.subplots()
    _show_grid(ax, _decode_mean(model, z), nrow=nrow)
    ax.set_title(f"{n} samples from the prior, z ~ N(0, I) (seed {seed}); pixel means shown")
    return fig


def interpolation(model, x_start: torch.Tensor, x_end: torch.Tensor, row_labels: list[str], steps: int = 10) -> Figure:
    """Each row decodes mu(start) + t (mu(end) - mu(start)) for `steps` values of t from 0 to 1."""
    with torch.no_grad():
        mu_a, _ = model.encode(x_start)  # (P, D)
        mu_b, _ = model.encode(x_end)
    t = torch.linspace(0, 1, steps, device=mu_a.device).view(1, steps, 1)
    z = (mu_a.unsqueeze(1) + t * (mu_b - mu_a).unsqueeze(1)).flatten(0, 1)  # (P * steps, D), row by row
    fig = Figure(figsize=(0.85 * steps + 1.6, 0.85 * len(x_start) + 0.6), layout="constrained")
    ax = fig.subplots()
    _show_grid(ax, _decode_mean(model, z), nrow=steps)
    ax.set_yticks(_centres(len(x_start)), row_labels)
    ax.set_xticks(_centres(steps), [f"{v:.2f}" for v in t.flatten().tolist()])
    ax.set_xlabel("t (0 = first test image's μ, 1 = second's)")
    ax.set_title("Linear interpolation in latent space between test images of different classes")
    return fig


def tsne(embedding, y, class_names: list[str], perplexity: float, seed: int, trust: float | None = None) -> Figure:
    """Scatter of a 2-D t-SNE embedding (N, 2), one tab10 colour per class, a legend of all class names."""
    fig = Figure(figsize=(8, 7), layout="constrained")
    ax = fig.subplots()
    class_scatter(ax, embedding, y, class_names)
    ax.legend(markerscale=6, loc="center left", bbox_to_anchor=(1.0, 0.5), title="class")
    ax.set_xticks([])
    ax.set_yticks([])
    note = f"scikit-learn t-SNE of test-set μ: {len(y)} points, perplexity {perplexity:g}, PCA init, seed {seed}"
    if trust is not None:
        note += f", trustworthiness {trust:.3f}"
    ax.set_title(note, fontsize=9)
    return fig


def kl_per_dim(kl, variance=None, threshold: float = 0.01) -> Figure:
    """Bar chart of the KL per latent dim (nats per image); with `variance` (Cov_x of mu), active units in colour."""
    kl = np.asarray(kl)
    fig = Figure(figsize=(8, 3.6), layout="constrained")
    ax = fig.subplots()
    colours = "C0"
    if variance is not None:
        active = np.asarray(variance) > threshold
        colours = ["C0" if a else "C7" for a in active]
        ax.set_title(f"KL per latent dimension; {int(active.sum())} of {len(kl)} active (Cov_x(μ_j) > {threshold:g})")
    else:
        ax.set_title("KL per latent dimension")
    ax.bar(np.arange(len(kl)), kl, color=colours)
    ax.set_xticks(np.arange(len(kl)))
    ax.set_xlabel("latent dimension j")
    ax.set_ylabel("KL(q(z_j|x) || N(0,1)), nats per image")
    ax.grid(axis="y", alpha=0.3)
    return fig


# --- Figures for the notebooks: the data, embeddings side by side, a 2-D latent space, traversals --------------


def class_examples(x: torch.Tensor, y: torch.Tensor, class_names: list[str], per_class: int = 10) -> Figure:
    """The first `per_class` images (N, 784) of each class, one row per class, labelled with the class name."""
    rows = {name: x[torch.as_tensor(y, device=x.device) == c][:per_class] for c, name in enumerate(class_names)}
    if any(len(r) < per_class for r in rows.values()):
        raise ValueError(f"every class needs {per_class} examples; counts {[len(r) for r in rows.values()]}")
    return image_rows(rows, None, f"The first {per_class} training images of each class")


def class_scatter(ax, points, y, class_names: list[str]) -> None:
    """Scatter points (N, 2) on `ax`, one tab10 colour per class (10 distinct colours), small rasterized points."""
    points, y = np.asarray(points), np.asarray(y)
    for label, name in enumerate(class_names):
        chosen = points[y == label]
        ax.scatter(chosen[:, 0], chosen[:, 1], s=2, color=f"C{label % 10}", label=name, rasterized=True)


def embeddings(maps: dict, y, class_names: list[str]) -> Figure:
    """2-D maps (title -> (N, 2)) of the same N points side by side, coloured by class, one shared legend."""
    fig = Figure(figsize=(4.2 * len(maps) + 1.8, 4.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(maps)))
    for ax, (title, points) in zip(axes, maps.items(), strict=True):
        class_scatter(ax, points, y, class_names)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, markerscale=6, loc="outside right center", title="class")
    return fig


def latent_scatter(mu, y, class_names: list[str]) -> Figure:
    """The posterior means mu (N, 2) of a latent_dim=2 model, coloured by class, on the prior's axes."""
    mu = np.asarray(torch.as_tensor(mu).cpu())
    if mu.ndim != 2 or mu.shape[1] != 2:
        raise ValueError(f"latent_scatter needs mu of shape (N, 2), got {mu.shape}")
    fig = Figure(figsize=(8, 7), layout="constrained")
    ax = fig.subplots()
    class_scatter(ax, mu, y, class_names)
    for radius in (1, 2, 3):  # where the prior N(0, I) puts 39 %, 86 %, 99 % of its mass
        ax.add_patch(matplotlib.patches.Circle((0, 0), radius, fill=False, ls=":", color="0.5"))
    ax.set_aspect("equal")
    ax.set_xlabel("μ_1")
    ax.set_ylabel("μ_2")
    ax.legend(markerscale=6, loc="center left", bbox_to_anchor=(1.0, 0.5), title="class")
    ax.set_title(f"Posterior means of {len(mu)} test images (circles: 1, 2, 3 prior standard deviations)")
    return fig


def manifold_coordinates(n: int, p_min: float = 0.05) -> torch.Tensor:
    """n values of z (n,) at evenly spaced quantiles p_min..1-p_min of N(0, 1): the inverse CDF of a uniform grid."""
    return Normal(0.0, 1.0).icdf(torch.linspace(p_min, 1 - p_min, n))


def manifold_grid(model, n: int = 15, p_min: float = 0.05) -> Figure:
    """Images decoded on an n x n grid of a 2-D latent space at equal prior probability steps (inverse CDF).

    Column j has z_1 = manifold_coordinates(n)[j]; row i (top to bottom) has z_2 = manifold_coordinates(n)[n-1-i],
    so that the grid has the orientation of `latent_scatter`.
    """
    if model.latent_dim != 2:
        raise ValueError(f"manifold_grid needs a model with latent_dim=2, got latent_dim={model.latent_dim}")
    values = manifold_coordinates(n, p_min)
    device = next(model.parameters()).device
    z = torch.stack(torch.meshgrid(values.flip(0), values, indexing="ij")[::-1], dim=-1).view(-1, 2)  # (n*n, 2)
    fig = Figure(figsize=(8, 8), layout="constrained")
    ax = fig.subplots()
    _show_grid(ax, _decode_mean(model, z.to(device)), nrow=n)
    labels = [f"{v:.1f}" for v in values.tolist()]
    ax.set_xticks(_centres(n), labels, fontsize=9, rotation=90)
    ax.set_yticks(_centres(n), labels[::-1], fontsize=9)
    ax.set_xlabel("z_1")
    ax.set_ylabel("z_2")
    ax.set_title(f"Decoded 2-D latent space at N(0,1) quantiles {p_min:g} … {1 - p_min:g}")
    return fig


def latent_traversal(model, z: torch.Tensor, dims, values, row_labels: list[str] | None = None) -> Figure:
    """Row r decodes z (latent_dim,) with z[dims[r]] set to each of `values`; the other dims stay fixed."""
    values = torch.as_tensor(values, dtype=z.dtype, device=z.device)
    rows = z.detach().view(1, 1, -1).repeat(len(dims), len(values), 1)  # (R, V, D)
    for r, d in enumerate(dims):
        rows[r, :, d] = values
    fig = Figure(figsize=(0.9 * len(values) + 1.6, 0.9 * len(dims) + 0.8), layout="constrained")
    ax = fig.subplots()
    _show_grid(ax, _decode_mean(model, rows.view(-1, z.numel())), nrow=len(values))
    ax.set_yticks(_centres(len(dims)), row_labels or [f"z[{d}]" for d in dims])
    ax.set_xticks(_centres(len(values)), [f"{v:.1f}" for v in values.tolist()])
    ax.set_xlabel("value given to the row's latent dimension")
    ax.set_title("Latent traversal: one dimension changed at a time")
    return fig


# --- Figures of the ablation sweep (vae/lab/sweep.py), from its stored results -------------------------------------

ABLATION_TITLES = {
    "variance_head": "What the encoder's second head predicts",
    "kl_weight": "The weight β of the KL term in the training loss",
    "latent_dim": "The size of the latent code z",
    "data_protocol": "The data and its likelihood: grey-level BCE, binarised images, continuous Bernoulli",
    "training": "Training length and learning rate",
}
DENSITY_KEYS = ("test_loss", "iwae_nll")  # of a continuous-Bernoulli model: another quantity than the BCE's
METRIC_LABELS = {
    "test_loss": "test −ELBO, nats per image",
    "iwae_nll": "IWAE NLL, nats per image",
    "test_kl": "KL, nats per image",
    "knn_accuracy": "5-NN accuracy on μ",
    "active_units": "active units",
}


def ablation(runs: list, ablation_name: str, seeds) -> Figure:
    """One panel per metric: for each (label, [stored result per seed]), each seed's value and their mean."""
    fig = Figure(figsize=(10.2, 7.2), layout="constrained")
    axes = fig.subplots(2, 3).flatten()
    for ax, (key, label) in zip(axes, METRIC_LABELS.items(), strict=False):
        for i, (_, found) in enumerate(runs):
            if key in DENSITY_KEYS and any(
                r and r["config"].get("likelihood") == "continuous-bernoulli" for r in found
            ):
                ax.annotate("a density:\nsee the table", (i, 0.5), xycoords=("data", "axes fraction"), ha="center")
                continue  # nats of a density on [0, 1], not comparable with a cross-entropy's
            values = [r["metrics"][key] for r in found if r and r["status"] == "ok"]
            if values:
                ax.plot([i] * len(values), values, "o", color="C0", ms=5, alpha=0.7)
                ax.hlines(sum(values) / len(values), i - 0.3, i + 0.3, color="C3", lw=2)
            failed = sum(1 for r in found if r and r["status"] != "ok")
            if failed:
                ax.annotate(
                    f"{failed} diverged", (i, 0.02), xycoords=("data", "axes fraction"), ha="center", color="C3"
                )
        ax.set_xticks(range(len(runs)), [label for label, _ in runs], rotation=30, ha="right", fontsize=9)
        ax.set_xlim(-0.6, len(runs) - 0.4)
        ax.set_ylabel(label, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        if key == "active_units":  # a count: from 0, so that lost units show
            ax.set_ylim(0, ax.get_ylim()[1] * 1.05)
    axes[-1].axis("off")
    note = (
        f"Dots: one run per seed ({', '.join(map(str, seeds))}).\nRed line: mean over seeds.\nTest set, true ELBO "
        "(β = 1).\nThe y-axes other than active units\ndo not start at 0: they span the\nruns' values."
    )
    axes[-1].text(0, 0.5, note, fontsize=10, va="center")
    fig.suptitle(f"Ablation: {ABLATION_TITLES.get(ablation_name, ablation_name)}", fontsize=12)
    return fig


def tsne_small_multiples(runs: list, class_names: list[str]) -> Figure:
    """The t-SNE of test-set μ of each (label, stored result) side by side, 10 classes in 10 colours."""
    runs = [(label, r) for label, r in runs if r and r.get("tsne")]
    fig = Figure(figsize=(10.5, 3.9), layout="constrained")
    axes = fig.subplots(1, max(1, len(runs)), squeeze=False)[0]
    for ax, (label, r) in zip(axes, runs, strict=False):
        class_scatter(ax, r["tsne"]["xy"], r["tsne"]["labels"], class_names)
        m = r["metrics"]
        ax.set_title(f"{label}\n{m['active_units']} active units, 5-NN {m['knn_accuracy']:.3f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    handles, texts = axes[0].get_legend_handles_labels()
    fig.legend(handles, texts, loc="outside lower center", ncol=5, markerscale=5, fontsize=9)
    n = len(runs[0][1]["tsne"]["labels"]) if runs else 0
    fig.suptitle(f"t-SNE of the μ of {n} test images for each KL weight β (seed 0)", fontsize=11)
    return fig


def training_length(runs: list) -> Figure:
    """Test −ELBO per epoch of each (label, [stored result per seed]), one line per seed."""
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    later = [e["test_loss"] for _, results in runs for r in results if r for e in r["history"][1:]]
    for i, (label, results) in enumerate(runs):
        for j, r in enumerate(x for x in results if x and x["history"]):
            h = r["history"]
            style = {"ls": "--", "lw": 2.5, "zorder": 3} if i == 0 else {}  # on top of the 50 epochs' start
            shown = label if j == 0 else None
            ax.plot([e["epoch"] for e in h], [e["test_loss"] for e in h], color=f"C{i}", label=shown, **style)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test −ELBO, nats per image (axis not from 0)")
    if later:  # leave the first epoch's loss off the top, so that the later epochs' differences show
        ax.set_ylim(top=max(later) + 0.1 * (max(later) - min(later)))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    ax.set_title("Longer training and a larger learning rate (one line per seed)")
    return fig


def k_convergence(records: list[dict]) -> Figure:
    """The IWAE bound against K (log scale), ± its standard error: a panel per test data, a line per model."""
    datasets = list(dict.fromkeys(r["dataset"] for r in records))
    models = list(dict.fromkeys(r["model"] for r in records))  # a model keeps its colour across panels
    fig = Figure(figsize=(7, 1 + 3.2 * len(datasets)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(datasets), 1, sharex=True))
    for ax, dataset in zip(axes, datasets, strict=True):
        here = [r for r in records if r["dataset"] == dataset]
        for model in dict.fromkeys(r["model"] for r in here):
            mine = [r for r in here if r["model"] == model]
            ks, bounds, ses = ([r[key] for r in mine] for key in ("k", "bound", "se"))
            ax.errorbar(ks, bounds, yerr=ses, fmt="o-", color=f"C{models.index(model)}", capsize=4, label=model)
            for k, bound in zip(ks, bounds, strict=True):
                ax.annotate(f"{bound:.2f}", (k, bound), textcoords="offset points", xytext=(0, 7), ha="center",
                            fontsize=9)  # fmt: skip
        ax.set_xscale("log")
        ax.margins(y=0.15)  # room for the labels above the points
        ax.set_ylabel("bound on −log p(x),\nnats per image\n(axis not from 0)")
        ax.set_title(f"test set: {dataset}", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=9)
    axes[-1].set_xlabel("K, importance samples per image (log scale; K = 1 is the −ELBO)")
    fig.suptitle("How far the IWAE bound falls as K grows (bars: ± standard error over test images)", fontsize=10)
    return fig


def loss_readings(readings: list[dict], original: tuple) -> Figure:
    """Each reading's first- and last-epoch loss as a ratio to the original report's numbers; 1 is a match."""
    fig = Figure(figsize=(8, 6), layout="constrained")
    ax = fig.subplots()
    models = list(dict.fromkeys(r["model"] for r in readings))
    marks = dict(zip(dict.fromkeys(r["reading"] for r in readings), "os^D", strict=False))
    ax.add_patch(matplotlib.patches.Rectangle((0.9, 0.9), 0.2, 0.2, color="C2", alpha=0.25, label="within 10 %"))
    for r in readings:
        x, y = 1 + r["first_error"], 1 + r["last_error"]
        i = models.index(r["model"])  # concentric hollow markers, so that coinciding readings all show
        ax.plot(x, y, marks[r["reading"]], color=f"C{i}", ms=14 - 4 * i, mfc="none", mew=2)
    for i, model in enumerate(models):  # legend entries: colour = model, marker = reading
        ax.plot([], [], "o", color=f"C{i}", label=model)
    for reading, mark in marks.items():
        ax.plot([], [], mark, color="0.4", label=reading)
    ax.plot(1, 1, "k*", ms=14, label=f"the original report: ≈{original[0]:,} → ≈{original[1]:,}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"first-epoch loss ÷ {original[0]:,} (log scale)")
    ax.set_ylabel(f"last-epoch loss ÷ {original[1]:,} (log scale)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=9, loc="upper left")
    ax.set_title("Which reading of the original report's loss numbers fits? (the star is a perfect fit)")
    return fig


def literature_training(results: dict) -> Figure:
    """Per dataset of results.json: each run's validation and test −ELBO per epoch and K = 5000 NLL, for the runs
    of its newest protocol, and the published NLL with its spread over runs."""
    datasets = [d for d in PUBLISHED_NLL if d in results]
    fig = Figure(figsize=(5.2 * len(datasets), 4.2), layout="constrained")
    for ax, dataset in zip(np.atleast_1d(fig.subplots(1, len(datasets))), datasets, strict=True):
        entry = upgraded(dataset, results[dataset])
        runs, later = current_runs(entry), []
        for r in runs:
            who = f"seed {r['seed']}: " if len(runs) > 1 else ""
            epochs = range(1, len(r["curve"]["test_loss"]) + 1)
            (line,) = ax.plot(epochs, r["curve"]["val_loss"], lw=1, label=f"{who}validation −ELBO")
            colour = line.get_color()
            ax.plot(epochs, r["curve"]["test_loss"], lw=1, ls=":", color=colour, label=f"{who}test −ELBO")
            nll = f"{who}test NLL, IWAE K = {r['iw_samples']}: {r['iwae_nll']:.2f}"
            ax.errorbar(r["best_epoch"], r["iwae_nll"], yerr=r["iwae_nll_se"], fmt="o", color=colour, mec="k",
                        capsize=4, label=nll)  # fmt: skip
            later += r["curve"]["test_loss"][len(epochs) // 10 :]  # leave the first epochs off the top
        published, spread = entry["published_nll"], entry["published_sd"]
        ax.axhline(published, color="C3", ls="--", label=f"published: {published:.2f} ± {spread:.2f} over runs")
        ax.axhspan(published - spread, published + spread, color="C3", alpha=0.15, lw=0)
        ax.set_ylim(min(published - spread, *(r["iwae_nll"] for r in runs)) - 2, max(later) + 2)
        ax.set_xlabel("epoch")
        ax.set_ylabel("nats per image (axis not from 0)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9 if len(runs) == 1 else 7)
        seeds = ", ".join(str(r["seed"]) for r in runs)
        title = f"{dataset}: {len(runs)} runs (seeds {seeds}) of protocol {entry['protocol']}"
        if len(runs) == 1:
            r, limit = runs[0], runs[0]["config"]["num_epochs"]
            ending = {"stopped early": "stopped early", "epoch limit": "the protocol's limit"}.get(
                how_it_ended(r), f"cut short (limit {limit})"
            )
            title = f"{dataset}, seed {seeds}, protocol {entry['protocol']}: {r['epochs']} epochs, {ending}"
        ax.set_title(title, fontsize=10)
    fig.suptitle("The literature preset: −ELBO per epoch, and the NLL of the best validation epoch", fontsize=11)
    return fig
