"""The figures and evaluation helpers added for the notebooks: checked against recomputation and scipy/torch."""

import numpy as np
import pytest
import torch
from scipy import stats
from torch.distributions import Normal

from vae import evaluate as ev
from vae import plots
from vae.model import VAE

NAMES = [f"class {i}" for i in range(10)]


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
    fig = plots.embeddings(maps, y, NAMES)
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == list(maps)
    assert all(len(ax.collections) == 10 for ax in axes)
    np.testing.assert_allclose(axes[1].collections[4].get_offsets(), maps["t-SNE of pixels"][y == 4])
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == NAMES


def test_latent_scatter_of_2d_means():
    mu = torch.randn(50, 2)
    y = torch.arange(50) % 10
    fig = plots.latent_scatter(mu, y, NAMES)
    (ax,) = fig.get_axes()
    assert len(ax.collections) == 10 and len(ax.patches) == 3  # one scatter per class, three prior circles
    np.testing.assert_allclose(ax.collections[0].get_offsets(), mu[y == 0].numpy())
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("μ_1", "μ_2")
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        plots.latent_scatter(torch.randn(5, 3), y[:5], NAMES)


def test_manifold_coordinates_are_normal_quantiles():
    z = plots.manifold_coordinates(9, p_min=0.05)
    p = torch.linspace(0.05, 0.95, 9)
    torch.testing.assert_close(z, Normal(0.0, 1.0).icdf(p))
    np.testing.assert_allclose(z.numpy(), stats.norm.ppf(p.numpy()), atol=1e-5)  # a second, independent oracle
    gaps = z.diff()
    assert gaps[0] > 1.5 * gaps[4]  # wider steps in the tails than near 0, unlike a linspace


def test_manifold_grid_decodes_the_quantile_grid(model2, tmp_path):
    n = 5
    fig = plots.manifold_grid(model2, n=n, p_min=0.1)
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
        plots.manifold_grid(VAE(hidden_dim=8, latent_dim=3), n=3)


def test_latent_traversal_changes_one_dim_per_row(tiny_config):
    torch.manual_seed(0)
    model = VAE.from_config(tiny_config).eval()
    z = torch.tensor([0.5, -1.0, 0.2, 2.0])
    values = [-2.0, 0.0, 2.0]
    fig = plots.latent_traversal(model, z, [3, 1], values, ["third", "first"])
    (ax,) = fig.get_axes()
    grid = ax.get_images()[0].get_array()
    assert grid.shape == (2 + 2 * 30, 2 + 3 * 30)
    np.testing.assert_allclose(cell(grid, 0, 2), decoded(model, [0.5, -1.0, 0.2, 2.0]), atol=1e-5)  # z[3] = 2
    np.testing.assert_allclose(cell(grid, 1, 0), decoded(model, [0.5, -2.0, 0.2, 2.0]), atol=1e-5)  # z[1] = -2
    assert [t.get_text() for t in ax.get_yticklabels()] == ["third", "first"]
    assert torch.equal(z, torch.tensor([0.5, -1.0, 0.2, 2.0]))  # the caller's z is left alone


def test_first_of_each_class():
    y = torch.tensor([2, 0, 1, 0, 2, 1, 1, 0, 2])
    expected = [[i for i, c in enumerate(y.tolist()) if c == k][:2] for k in range(3)]
    assert ev.first_of_each_class(y, per_class=2).tolist() == expected
    assert ev.first_of_each_class(y).tolist() == [[1], [2], [0]]


def test_pca_features_match_the_svd():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(200, 6)) * np.array([5.0, 3.0, 1.0, 0.5, 0.1, 0.1])
    test = rng.normal(size=(20, 6))
    train_pca, test_pca = ev.pca_features(train, test, n_components=2)
    _, _, vt = np.linalg.svd(train - train.mean(axis=0), full_matrices=False)
    expected = (test - train.mean(axis=0)) @ vt[:2].T
    np.testing.assert_allclose(np.abs(test_pca), np.abs(expected), atol=1e-8)  # up to each axis's sign
    assert train_pca.shape == (200, 2)


def test_compare_representations_finds_the_informative_code():
    """Labels follow the code's clusters, the 'pixels' are noise: kNN must see it, and every map has n points."""
    rng = np.random.default_rng(0)
    y_train, y_test = np.arange(300) % 3, np.arange(60) % 3
    centres = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    train_mu, test_mu = centres[y_train] + rng.normal(size=(300, 2)), centres[y_test] + rng.normal(size=(60, 2))
    x_train, x_test = rng.random((300, 784)), rng.random((60, 784))
    result = ev.compare_representations(train_mu, test_mu, x_train, x_test, y_train, y_test, tsne_points=40, k=5)
    assert list(result["knn"]) == ["μ (2-d)", "pixels (784-d)", "PCA of pixels (2-d)"]
    assert result["knn"]["μ (2-d)"] == 1.0
    assert result["knn"]["pixels (784-d)"] < 0.6 and result["knn"]["PCA of pixels (2-d)"] < 0.6
    assert all(m.shape == (40, 2) for m in result["maps"].values())
