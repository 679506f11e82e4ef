"""Figures. Every function returns a matplotlib Figure; `save_figure` alone writes files (PNG, fixed dpi).

Figures are built with `matplotlib.figure.Figure`, not pyplot: nothing here picks a backend or keeps figures
open, so scripts need no display, and a notebook shows a returned Figure inline as the cell's value.
Losses are drawn in nats per image.
"""

import os
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torchvision.utils import make_grid

from vae.devices import on_model_device, to_numpy
from vae.raw_files import temporary

DPI = 150  # at this dpi a figure 10.5 inches wide is 1575 pixels: readable at 100 % zoom
SIDE = 28  # images are 28 x 28 pixels
PAD = 2  # pixels between images in a grid


def save_figure(fig: Figure, name: str, fig_dir="figures", stage=None) -> Path:
    """Write `fig` as `<fig_dir>/<name>.png` at DPI dots per inch, atomically: a reader sees the old file or the new.

    `stage(path)`, if given, names the temporary file to write instead (vae.lab.files.staged_writes: a set of files).
    """
    path = Path(fig_dir) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = stage(path) if stage else temporary(path)
    try:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
        if not stage:
            os.replace(tmp, path)
    finally:
        if not stage:
            tmp.unlink(missing_ok=True)
    return path


def _show_grid(ax, images: torch.Tensor, nrow: int) -> None:
    """Draw images (N, 784) in [0, 1] on `ax` as one torchvision grid, nrow images per row, white gaps."""
    grid = make_grid(images.detach().cpu().float().view(-1, 1, SIDE, SIDE), nrow=nrow, padding=PAD, pad_value=1.0)
    ax.imshow(grid[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _centers(count: int) -> list[float]:
    """Pixel coordinates of the centres of `count` grid cells along one axis."""
    return [PAD + i * (SIDE + PAD) + SIDE / 2 for i in range(count)]


@torch.no_grad()
def _decode_mean(model, z: torch.Tensor) -> torch.Tensor:
    """The images E[x|z] (N, 784) that a model draws: its likelihood's mean, e.g. the Bernoulli's sigmoid(logits)."""
    return model.likelihood.mean(model.decode(on_model_device(model, z))).cpu()


@torch.no_grad()
def _encode_mean(model, x: torch.Tensor) -> torch.Tensor:
    """The posterior means mu (N, latent_dim) of images x (N, 784), on the model's device."""
    return model.encode(on_model_device(model, x))[0]


def loss_curves(history: list[dict]) -> Figure:
    """-ELBO, BCE and KL per epoch, train and test, from `fit`'s history."""
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
    """Originals (top row) over their reconstructions, the likelihood's mean of decode(mu), one per column's class."""
    rows = {"original": x, "reconstruction": _decode_mean(model, _encode_mean(model, x))}
    names = [class_names[int(c)] for c in y]
    return image_rows(rows, names, "Test images and their reconstructions from the posterior mean μ")


def posterior_draws(model, x: torch.Tensor, z: torch.Tensor) -> Figure:
    """One image x (784,), its decoding from mu, and the decodings of draws z (n, latent_dim) of q(z|x), in a row."""
    mu = _encode_mean(model, x.view(1, -1))  # (1, latent_dim)
    images = torch.cat([x.view(1, -1).cpu(), _decode_mean(model, torch.cat([mu, z.to(mu.device)]))])  # (2 + n, 784)
    fig = Figure(figsize=(0.9 * len(images) + 0.6, 1.9), layout="constrained")
    ax = fig.subplots()
    _show_grid(ax, images, nrow=len(images))
    ax.set_xticks(_centers(len(images)), ["x", "from μ", *[f"draw {i + 1}" for i in range(len(z))]], fontsize=9)
    ax.set_title("One test image x, decoded from its mean μ and from draws z = μ + σ·ε", fontsize=10)
    return fig


def image_rows(rows: dict, column_labels: list[str] | None, title: str) -> Figure:
    """Rows of images (label -> (N, 784) in [0, 1]), one grid, each row labelled, each column named (if given)."""
    n = len(next(iter(rows.values())))
    fig = Figure(figsize=(min(10.5, 1.0 * n), 0.95 * len(rows) + 1.0), layout="constrained")
    ax = fig.subplots()
    _show_grid(ax, torch.cat([images.detach().cpu() for images in rows.values()]), nrow=n)
    if column_labels is not None:
        ax.set_xticks(_centers(n), column_labels, rotation=30, ha="right")
    ax.set_yticks(_centers(len(rows)), list(rows))
    ax.set_title(title)
    return fig


def prior_samples(model, n: int = 64, seed: int = 0) -> Figure:
    """n images decoded from z ~ N(0, I) (seeded), shown as the likelihood's means in a square-ish grid."""
    z = torch.randn(n, model.latent_dim, generator=torch.Generator().manual_seed(seed))
    nrow = int(np.ceil(np.sqrt(n)))
    fig = Figure(figsize=(6, 6 * np.ceil(n / nrow) / nrow + 0.4), layout="constrained")
    ax = fig.subplots()
    _show_grid(ax, _decode_mean(model, z), nrow=nrow)
    ax.set_title(f"{n} samples from the prior, z ~ N(0, I) (seed {seed}); pixel means shown")
    return fig


def interpolation(model, x_start: torch.Tensor, x_end: torch.Tensor, row_labels: list[str], steps: int = 10) -> Figure:
    """Each row decodes mu(start) + t (mu(end) - mu(start)) for `steps` values of t from 0 to 1."""
    mu_a, mu_b = _encode_mean(model, x_start), _encode_mean(model, x_end)  # (P, D) each
    t = torch.linspace(0, 1, steps, device=mu_a.device).view(1, steps, 1)
    z = (mu_a.unsqueeze(1) + t * (mu_b - mu_a).unsqueeze(1)).flatten(0, 1)  # (P * steps, D), row by row
    fig = Figure(figsize=(0.85 * steps + 1.6, 0.85 * len(x_start) + 0.6), layout="constrained")
    ax = fig.subplots()
    _show_grid(ax, _decode_mean(model, z), nrow=steps)
    ax.set_yticks(_centers(len(x_start)), row_labels)
    ax.set_xticks(_centers(steps), [f"{v:.2f}" for v in t.flatten().tolist()])
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
    """Bar chart of the KL per latent dim; with `variance` (Cov_x of mu), the active units in colour."""
    kl = to_numpy(kl)
    active = np.ones(len(kl), dtype=bool) if variance is None else to_numpy(variance) > threshold
    fig = Figure(figsize=(8, 3.6), layout="constrained")
    ax = fig.subplots()
    counted = "" if variance is None else f"; {int(active.sum())} of {len(kl)} active (Cov_x(μ_j) > {threshold:g})"
    ax.set_title(f"KL per latent dimension{counted}")
    ax.bar(np.arange(len(kl)), kl, color=["C0" if a else "C7" for a in active])
    ax.set_xticks(np.arange(len(kl)))
    ax.set_xlabel("latent dimension j")
    ax.set_ylabel("KL(q(z_j|x) || N(0,1)), nats per image")
    ax.grid(axis="y", alpha=0.3)
    return fig


def class_examples(x: torch.Tensor, y: torch.Tensor, class_names: list[str], per_class: int = 10) -> Figure:
    """The first `per_class` images (N, 784) of each class, one row per class, labelled with the class name."""
    rows = {name: x[torch.as_tensor(y, device=x.device) == c][:per_class] for c, name in enumerate(class_names)}
    if any(len(r) < per_class for r in rows.values()):
        raise ValueError(f"every class needs {per_class} examples; counts {[len(r) for r in rows.values()]}")
    return image_rows(rows, None, f"The first {per_class} training images of each class")


def class_scatter(ax, points, y, class_names: list[str]) -> None:
    """Scatter points (N, 2) on `ax`, one tab10 colour per class (10 distinct colors), small rasterized points."""
    points, y = to_numpy(points), to_numpy(y)
    for label, name in enumerate(class_names):
        chosen = points[y == label]
        ax.scatter(chosen[:, 0], chosen[:, 1], s=2, color=f"C{label % 10}", label=name, rasterized=True)
