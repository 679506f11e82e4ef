import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal
from torch.nn import functional as F

from vae import evaluate as ev
from vae import fit
from vae.loss import elbo_terms
from vae.model import VAE


def exact_nll_on_grid(model, x, latent_dim: int, half_width: float = 8.0, points: int = 1601) -> torch.Tensor:
    """-log p(x) = -log integral p(x|z) p(z) dz by a Riemann sum over a fine grid of z: the oracle."""
    axis = torch.linspace(-half_width, half_width, points, dtype=torch.float64)
    z = torch.cartesian_prod(*[axis] * latent_dim).reshape(-1, latent_dim)  # (G, D)
    log_pz = Normal(0.0, 1.0).log_prob(z).sum(dim=1)  # (G,)
    logits = model.decode(z)  # (G, input_dim)
    log_px_z = -F.binary_cross_entropy_with_logits(
        logits.unsqueeze(0).expand(len(x), -1, -1), x.unsqueeze(1).expand(-1, len(z), -1), reduction="none"
    ).sum(dim=2)  # (N, G)
    log_cell = latent_dim * math.log(axis[1] - axis[0])
    return -(torch.logsumexp(log_px_z + log_pz, dim=1) + log_cell)


@pytest.mark.parametrize("latent_dim, points", [(1, 4001), (2, 301)])
def test_iwae_approaches_the_exact_marginal_likelihood(latent_dim, points):
    torch.manual_seed(0)
    model = VAE(input_dim=6, hidden_dim=8, latent_dim=latent_dim).double().eval()
    with torch.no_grad():
        model.dec_out.weight.mul_(4)  # a sharper decoder, so that q(z|x) is far from the posterior
        x = (torch.rand(32, 6, dtype=torch.float64) > 0.5).double()
        exact = exact_nll_on_grid(model, x, latent_dim, points=points)
        errors = {k: (ev.iwae_nll(model, x, k, seed=1) - exact).mean().item() for k in (1, 10, 3000)}
        neg_elbo = ev.iwae_nll(model, x.repeat(200, 1), 1, seed=2).view(200, -1).mean(dim=0)  # K = 1, averaged
    assert errors[1] > errors[10] > errors[3000] > -0.01  # the estimate comes down towards -log p(x)
    assert abs(errors[3000]) < 0.02  # nats
    assert (neg_elbo - exact).min() > 0  # -ELBO >= -log p(x) for every image
    assert errors[1] > 0.1  # the test would be vacuous if q(z|x) were already the posterior


def test_iwae_is_below_the_elbo_on_a_trained_model(tiny_config, images):
    model, _ = fit(tiny_config, *images, progress=False)
    x = images[1]
    neg_elbo = ev.test_elbo(model, x)
    iw = ev.iwae_nll(model, x, 500).mean().item()
    assert iw < neg_elbo["loss"] - 0.1
    # With K = 1 the estimate is the -ELBO itself (a Monte Carlo estimate of the KL instead of the closed form).
    iw1 = ev.iwae_nll(model, x.repeat(50, 1), 1).mean().item()
    assert iw1 == pytest.approx(neg_elbo["loss"], abs=1.0)
    assert neg_elbo["loss_bits_per_dim"] == pytest.approx(neg_elbo["loss"] / (784 * math.log(2)))


def test_iwae_does_not_depend_on_the_batching(tiny_config, images):
    model = VAE.from_config(tiny_config).eval()
    x = images[1][:20]
    a = ev.iwae_nll(model, x, 7, rows=7)  # one image per step
    b = ev.iwae_nll(model, x[:1], 7, rows=1000)
    torch.testing.assert_close(a[:1], b)
    with pytest.raises(ValueError, match="num_samples"):
        ev.iwae_nll(model, x, 0)


def test_encode_mu_in_chunks_matches_one_call(tiny_config, images):
    model = VAE.from_config(tiny_config).eval()
    mu, logvar = ev.encode_mu(model, images[0], batch_size=100)
    with torch.no_grad():
        ref_mu, ref_logvar = model.encode(images[0])
    torch.testing.assert_close(mu, ref_mu)
    torch.testing.assert_close(logvar, ref_logvar)


def test_kl_per_dim_matches_the_closed_form_and_sums_to_the_kl():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(50, 6, generator=g), torch.randn(50, 6, generator=g)
    per_dim = ev.kl_per_dim(mu, logvar)
    expected = (0.5 * (mu**2 + logvar.exp() - 1 - logvar)).mean(dim=0)
    torch.testing.assert_close(per_dim, expected)
    _, kl = elbo_terms(torch.zeros(50, 3), torch.zeros(50, 3), mu, logvar)
    assert per_dim.sum().item() == pytest.approx(kl.mean().item(), rel=1e-5)


def test_active_units_counts_dims_with_variance_above_0_01():
    g = torch.Generator().manual_seed(0)
    std = torch.tensor([1.0, 0.05, 0.2, 0.0, 0.5])  # variances 1, 0.0025, 0.04, 0, 0.25
    mu = torch.randn(20000, 5, generator=g) * std + 3.0
    np.testing.assert_allclose(ev.latent_variance(mu).numpy(), np.cov(mu.numpy(), rowvar=False).diagonal(), rtol=1e-4)
    assert ev.active_units(mu) == 3
    assert ev.active_units(mu, threshold=0.1) == 2


def test_knn_accuracy_on_a_known_case():
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    rng = np.random.default_rng(0)
    train_y = np.repeat([0, 1, 2], 20)
    train = centres[train_y] + rng.normal(0, 0.5, (60, 2))
    test_y = np.array([0, 1, 2, 2])
    test = centres[test_y]
    assert ev.knn_accuracy(train, train_y, test, test_y, k=5) == 1.0
    assert ev.knn_accuracy(train, train_y, test, np.array([1, 1, 0, 2]), k=5) == 0.5


def test_tsne_keeps_clusters_and_is_seeded():
    rng = np.random.default_rng(0)
    features = np.concatenate([rng.normal(c, 0.3, (40, 5)) for c in (0.0, 5.0, 10.0)])
    a = ev.tsne_embedding(features, perplexity=10, seed=3, max_iter=300)
    b = ev.tsne_embedding(features, perplexity=10, seed=3, max_iter=300)
    assert a.shape == (120, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert ev.trustworthiness(features, a, n_neighbors=5) > 0.9
    assert ev.trustworthiness(features, rng.normal(size=(120, 2)), n_neighbors=5) < 0.7


def test_cached_arrays_computes_once_and_recovers_from_a_bad_file(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"mu": np.arange(6.0).reshape(3, 2), "y": np.array([1, 2, 3])}

    path = tmp_path / "cache" / "latents-abc.npz"
    first = ev.cached_arrays(path, compute)
    second = ev.cached_arrays(path, compute)
    assert len(calls) == 1
    np.testing.assert_array_equal(first["mu"], second["mu"])
    path.write_bytes(b"not an npz file")
    third = ev.cached_arrays(path, compute)
    assert len(calls) == 2
    np.testing.assert_array_equal(third["y"], [1, 2, 3])
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary files left behind


def test_file_sha256(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert ev.file_sha256(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
