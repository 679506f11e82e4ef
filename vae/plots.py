"""Figures. Every function returns a matplotlib Figure; `save_figure` alone writes files (PNG, fixed dpi).

Figures are built with `matplotlib.figure.Figure`, not pyplot: nothing here picks a backend or keeps figures
open, so scripts need no display, and a notebook shows a returned Figure inline as the cell's value.
"""

from pathlib import Path

import matplotlib.patches
import numpy as np
import torch
from matplotlib.figure import Figure
from torch.distributions import Normal
from torchvision.utils import make_grid

from vae.files import atomic_path

DPI = 150
FIGURE_NAMES = ("loss_curves", "reconstructions", "prior_samples", "interpolation", "tsne", "kl_per_dim")
SIDE = 28  # images are 28 x 28 pixels
PAD = 2  # pixels between images in a grid


def save_figure(fig: Figure, name: str, fig_dir="figures") -> Path:
    """Write `fig` atomically as `<fig_dir>/<name>.png` at DPI dots per inch; return the path."""
    path = Path(fig_dir) / f"{name}.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
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
    fig = Figure(figsize=(12, 3.6), layout="constrained")
    axes = fig.subplots(1, 3)
    parts = (("loss", "-ELBO = BCE + KL"), ("bce", "BCE (reconstruction)"), ("kl", "KL(q(z|x) || p(z))"))
    for ax, (key, title) in zip(axes, parts, strict=True):
        ax.plot(epochs, [r[f"train_{key}"] for r in history], "o-", label="train (mean over the epoch)")
        ax.plot(epochs, [r[f"test_{key}"] for r in history], "s--", label="test (after the epoch)")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel("nats per image")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("Training curves: per-image losses (not per-batch sums)")
    return fig


def reconstructions(model, x: torch.Tensor, y: torch.Tensor, class_names: list[str]) -> Figure:
    """Originals (top row) over their reconstructions sigmoid(decode(mu)) (bottom row), one per column's class."""
    with torch.no_grad():
        mu, _ = model.encode(x)
    fig = Figure(figsize=(1.1 * len(x), 3.0), layout="constrained")
    ax = fig.subplots()
    _show_grid(ax, torch.cat([x, _decode_mean(model, mu)]), nrow=len(x))
    ax.set_xticks(_centres(len(x)), [class_names[int(c)] for c in y], rotation=30, ha="right")
    ax.set_yticks(_centres(2), ["original", "reconstruction"])
    ax.set_title("Test images and their reconstructions from the posterior mean μ")
    return fig


def prior_samples(model, n: int = 64, seed: int = 0) -> Figure:
    """n images decoded from z ~ N(0, I) (seeded), shown as Bernoulli means in a square-ish grid."""
    device = next(model.parameters()).device
    z = torch.randn(n, model.dec.in_features, generator=torch.Generator().manual_seed(seed)).to(device)
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
    fig = Figure(figsize=(1.0 * steps + 2, 1.0 * len(x_start) + 0.6), layout="constrained")
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


# --- Figures for the notebooks (issue 4): the data, embeddings side by side, a 2-D latent space, traversals ---


def class_examples(x: torch.Tensor, y: torch.Tensor, class_names: list[str], per_class: int = 10) -> Figure:
    """The first `per_class` images (N, 784) of each class, one row per class, labelled with the class name."""
    rows = [x[torch.as_tensor(y, device=x.device) == c][:per_class] for c in range(len(class_names))]
    if any(len(r) < per_class for r in rows):
        raise ValueError(f"every class needs {per_class} examples; counts {[len(r) for r in rows]}")
    fig = Figure(figsize=(0.8 * per_class + 1.6, 0.8 * len(class_names) + 0.4), layout="constrained")
    ax = fig.subplots()
    _show_grid(ax, torch.cat(rows), nrow=per_class)
    ax.set_yticks(_centres(len(class_names)), class_names)
    ax.set_title(f"The first {per_class} training images of each class")
    return fig


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
    if model.dec.in_features != 2:
        raise ValueError(f"manifold_grid needs a model with latent_dim=2, got latent_dim={model.dec.in_features}")
    values = manifold_coordinates(n, p_min)
    device = next(model.parameters()).device
    z = torch.stack(torch.meshgrid(values.flip(0), values, indexing="ij")[::-1], dim=-1).view(-1, 2)  # (n*n, 2)
    fig = Figure(figsize=(8, 8), layout="constrained")
    ax = fig.subplots()
    _show_grid(ax, _decode_mean(model, z.to(device)), nrow=n)
    labels = [f"{v:.1f}" for v in values.tolist()]
    ax.set_xticks(_centres(n), labels, fontsize=7)
    ax.set_yticks(_centres(n), labels[::-1], fontsize=7)
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
