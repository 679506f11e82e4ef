"""The latent space of a trained VAE, for latent_space.ipynb: mu against pixels and PCA, 2-D maps of the same points
side by side, a 2-D latent space and its decoded manifold, and traversals of one dimension at a time."""

import matplotlib.patches
import numpy as np
import torch
from matplotlib.figure import Figure
from sklearn.decomposition import PCA
from torch.distributions import Normal

from vae.devices import to_numpy
from vae.evaluate import knn_accuracy, tsne_embedding
from vae.plots import _centers, _decode_mean, _show_grid, class_scatter
from vae.progress import step


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
    mu = to_numpy(mu)
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
    z = torch.stack(torch.meshgrid(values.flip(0), values, indexing="ij")[::-1], dim=-1).view(-1, 2)  # (n*n, 2)
    fig = Figure(figsize=(8, 8), layout="constrained")
    ax = fig.subplots()
    _show_grid(ax, _decode_mean(model, z), nrow=n)
    labels = [f"{v:.1f}" for v in values.tolist()]
    ax.set_xticks(_centers(n), labels, fontsize=9, rotation=90)
    ax.set_yticks(_centers(n), labels[::-1], fontsize=9)
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
    ax.set_yticks(_centers(len(dims)), row_labels or [f"z[{d}]" for d in dims])
    ax.set_xticks(_centers(len(values)), [f"{v:.1f}" for v in values.tolist()])
    ax.set_xlabel("value given to the row's latent dimension")
    ax.set_title("Latent traversal: one dimension changed at a time")
    return fig


def pca_features(train_features, test_features, n_components: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """PCA (scikit-learn) fitted on the training features; both sets projected onto its first n_components."""
    pca = PCA(n_components=n_components, random_state=seed).fit(to_numpy(train_features))
    return pca.transform(to_numpy(train_features)), pca.transform(to_numpy(test_features))


def compare_representations(
    train_mu, test_mu, x_train, x_test, y_train, y_test, tsne_points: int, k: int = 5, seed: int = 0, progress=True
) -> dict:
    """kNN accuracy on mu, on raw pixels, and on PCA of the pixels (as many components as mu has dims),
    and 2-D maps of the first `tsne_points` test images: t-SNE of mu, t-SNE of pixels, PCA of pixels.

    Returns {"knn": {name: accuracy}, "maps": {title: (n, 2) array}}; every input may be a tensor or an array.
    Each kNN and t-SNE is named on stderr while it runs (vae.progress.step), unless progress=False.
    """
    train_mu, test_mu, x_train, x_test, y_train, y_test = (
        to_numpy(a) for a in (train_mu, test_mu, x_train, x_test, y_train, y_test)
    )
    d, n = train_mu.shape[1], min(tsne_points, len(x_test))
    train_pca, test_pca = pca_features(x_train, x_test, d, seed)
    knn = {}
    for name, (train, test) in {
        f"μ ({d}-d)": (train_mu, test_mu),
        f"pixels ({x_train.shape[1]}-d)": (x_train, x_test),
        f"PCA of pixels ({d}-d)": (train_pca, test_pca),
    }.items():
        with step(f"{k}-NN accuracy on {name}", show=progress):
            knn[name] = knn_accuracy(train, y_train, test, y_test, k)
    maps = {}
    for title, features in {"t-SNE of μ": test_mu[:n], "t-SNE of pixels": x_test[:n]}.items():
        with step(f"{title} of {n} test images", show=progress):
            maps[title] = tsne_embedding(features, seed=seed)
    maps["PCA of pixels (first 2 components)"] = test_pca[:n, :2].astype(np.float32)
    return {"knn": knn, "maps": maps}
