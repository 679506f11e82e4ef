import math
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import make_images
from test_progress import Terminal, logged_steps
from torch.distributions import Normal
from torch.nn import functional as F

from vae import Config, fit, progress
from vae import evaluate as ev
from vae.lab.literature import k_convergence
from vae.loss import Bernoulli, elbo_terms, negative_elbo
from vae.model import VAE
from vae.research import build_model
from vae.research import latent_space as ls
from vae.research.likelihoods import ContinuousBernoulli, cb_log_normalizer
from vae.research.training import Binarized, fixed_binarization

KEYS = {
    "test_loss",
    "test_bce",
    "test_kl",
    "test_bits_per_dim",
    "iwae_nll",
    "iwae_nll_se",
    "iwae_bits_per_dim",
    "iwae_gap",
    "knn_accuracy",
    "active_units",
    "kl_per_dim",
    "latent_variance",
    "tsne",
    "seconds",
}


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


@pytest.fixture(scope="module")
def trained():
    """A 784-32-4 VAE trained 3 epochs on 512 synthetic images, and (x_train, y_train, x_test, y_test)."""
    x = make_images(640)
    y = torch.arange(640) % 4  # labels unrelated to the prototypes: the kNN test needs no meaning
    model, _ = fit(Config(hidden_dim=32, latent_dim=4, batch_size=64, num_epochs=3, lr=1e-3, device="cpu"),
                   x[:512], x[512:], progress=False)  # fmt: skip
    return model, (x[:512], y[:512], x[512:], y[512:])


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


def test_iwae_is_below_the_elbo_on_a_trained_model(trained):
    model, (_, _, x, _) = trained
    neg_elbo = negative_elbo(model, x)
    iw = ev.iwae_nll(model, x, 500).mean().item()
    assert iw < neg_elbo["loss"] - 0.1
    # With K = 1 the estimate is the -ELBO itself (a Monte Carlo estimate of the KL instead of the closed form).
    iw1 = ev.iwae_nll(model, x.repeat(50, 1), 1).mean().item()
    assert iw1 == pytest.approx(neg_elbo["loss"], abs=1.0)
    assert ev.bits_per_dim(neg_elbo["loss"]) == pytest.approx(neg_elbo["loss"] / (784 * math.log(2)))


def test_iwae_needs_a_sample(tiny_config, images):  # its batching: tests/test_devices.py
    model = VAE.from_config(tiny_config).eval()
    x = images[1][:20]
    with pytest.raises(ValueError, match="num_samples"):
        ev.iwae_nll(model, x, 0)


def test_encode_posterior_in_chunks_matches_one_call(tiny_config, images):
    model = VAE.from_config(tiny_config).eval()
    mu, logvar = ev.encode_posterior(model, images[0], batch_size=100)
    with torch.no_grad():
        ref_mu, ref_logvar = model.encode(images[0])
    torch.testing.assert_close(mu, ref_mu)
    torch.testing.assert_close(logvar, ref_logvar)


class FixedPosterior:
    """A stand-in for a model in elbo_terms: logits 0 and the given q(z|x) = N(mu, exp(logvar)), whatever x."""

    likelihood = Bernoulli()

    def __init__(self, mu, logvar):
        self.mu, self.logvar = mu, logvar

    def __call__(self, x, generator=None):
        return torch.zeros_like(x), self.mu, self.logvar


def test_kl_per_dim_matches_the_closed_form_and_sums_to_the_kl():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(50, 6, generator=g), torch.randn(50, 6, generator=g)
    per_dim = ev.kl_per_dim(mu, logvar)
    expected = (0.5 * (mu**2 + logvar.exp() - 1 - logvar)).mean(dim=0)
    torch.testing.assert_close(per_dim, expected)
    _, kl = elbo_terms(FixedPosterior(mu, logvar), torch.zeros(50, 3))
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


# --- evaluate_model: every number, each recomputed from its definition ------------------------------------------


def test_evaluate_model_returns_every_number_each_as_recomputed(trained):
    model, data = trained
    x_train, y_train, x_test, y_test = data
    settings = ev.EvalSettings(iw_samples=50, tsne_points=40, tsne_perplexity=5.0, tsne_max_iter=250)
    values = ev.evaluate_model(model, data, settings, seed=3)
    assert set(values) == KEYS
    elbo = negative_elbo(model, x_test, seed=3)  # the evaluation's seed draws the z of the -ELBO
    assert values["test_loss"] == pytest.approx(elbo["loss"], rel=1e-9)
    assert (values["test_bce"], values["test_kl"]) == pytest.approx((elbo["nll"], elbo["kl"]), rel=1e-9)
    assert values["test_loss"] == pytest.approx(values["test_bce"] + values["test_kl"])
    assert values["test_bits_per_dim"] == pytest.approx(values["test_loss"] / (784 * math.log(2)))

    nll = ev.iwae_nll(model, x_test, 50, seed=3).double()  # (N,)
    assert values["iwae_nll"] == pytest.approx(nll.mean().item())
    assert values["iwae_nll_se"] == pytest.approx(nll.std().item() / math.sqrt(len(x_test)))  # std / sqrt(N)
    assert values["iwae_nll_se"] > 0
    assert values["iwae_nll"] < values["test_loss"]  # the IWAE bound is tighter than the ELBO
    assert values["iwae_gap"] == pytest.approx(values["test_loss"] - values["iwae_nll"])
    assert values["iwae_bits_per_dim"] == pytest.approx(ev.bits_per_dim(values["iwae_nll"]))

    mu, logvar = ev.encode_posterior(model, x_test)
    train_mu, _ = ev.encode_posterior(model, x_train)
    assert values["knn_accuracy"] == ev.knn_accuracy(train_mu, y_train, mu, y_test, k=5)
    assert values["kl_per_dim"] == pytest.approx(ev.kl_per_dim(mu, logvar).tolist())
    assert sum(values["kl_per_dim"]) == pytest.approx(values["test_kl"], rel=1e-4)  # the closed-form KL, split
    assert values["latent_variance"] == pytest.approx(ev.latent_variance(mu).tolist())
    assert values["active_units"] == sum(v > ev.ACTIVE_UNIT_THRESHOLD for v in values["latent_variance"])

    tsne = values["tsne"]
    assert tsne["embedding"].shape == (40, 2) and tsne["labels"].tolist() == y_test[:40].tolist()
    assert tsne["trustworthiness"] == pytest.approx(ev.trustworthiness(mu[:40], tsne["embedding"], 5))
    assert {"elbo", "iwae", "knn", "tsne"} <= set(values["seconds"])
    assert all(s >= 0 for s in values["seconds"].values())


def test_evaluate_model_on_average_has_the_iwae_bound_below_the_elbo(trained):
    """Over several seeds (each its own z), the mean IWAE estimate stays below the mean -ELBO."""
    model, data = trained
    settings = ev.EvalSettings(iw_samples=20)
    runs = [ev.evaluate_model(model, data, settings, seed=s) for s in range(3)]
    assert "tsne" not in runs[0]  # tsne_points = 0: no t-SNE
    assert np.mean([r["iwae_nll"] for r in runs]) <= np.mean([r["test_loss"] for r in runs])
    assert len({r["iwae_nll"] for r in runs}) == 3  # the seed changes the samples


def test_binarized_evaluation_scores_the_fixed_binarization(trained):
    model, data = trained
    x_train, y_train, x_test, y_test = data
    settings = ev.EvalSettings(iw_samples=10)
    binarized = build_model(Config(hidden_dim=32, latent_dim=4, binarize=True))  # the same weights, its protocol
    binarized.load_state_dict(model.state_dict())
    binarized.eval()
    assert isinstance(binarized.protocol, Binarized) and not isinstance(model.protocol, Binarized)
    grey = ev.evaluate_model(model, data, settings)
    binary = ev.evaluate_model(binarized, data, settings)
    expected = negative_elbo(model, fixed_binarization(x_test))
    assert binary["test_loss"] == pytest.approx(expected["loss"], rel=1e-9)
    assert binary["test_loss"] != pytest.approx(grey["test_loss"], rel=1e-3)
    nll = ev.iwae_nll(model, fixed_binarization(x_test), 10).double()
    assert binary["iwae_nll"] == pytest.approx(nll.mean().item())
    mu, _ = ev.encode_posterior(model, fixed_binarization(x_test))
    train_mu, _ = ev.encode_posterior(model, fixed_binarization(x_train))
    assert binary["knn_accuracy"] == ev.knn_accuracy(train_mu, y_train, mu, y_test)
    assert torch.equal(data[2], x_test) and not torch.equal(x_test, fixed_binarization(x_test))  # the input is kept


def cb_log_c(logits: torch.Tensor) -> torch.Tensor:
    """log C(lambda) of the continuous Bernoulli, C = 2 atanh(1 - 2 lambda) / (1 - 2 lambda), in float64: the oracle."""
    t = 1 - 2 * torch.sigmoid(logits.double())
    return torch.log(2 * torch.atanh(t) / t)


def test_evaluate_model_scores_a_built_model_on_its_protocol_with_its_likelihood(trained):
    _, data = trained
    x_test = data[2]
    settings = ev.EvalSettings(iw_samples=1)
    # A binarised model of the default size is scored on the fixed binarisation of the test images, whatever the seed.
    torch.manual_seed(0)
    model = build_model(Config(binarize=True)).eval()
    with torch.no_grad():
        model.dec_out.weight.mul_(20)  # a decoder whose logits tell grey levels from binary pixels
    values = ev.evaluate_model(model, data, settings, seed=5, progress=False)
    binary = fixed_binarization(x_test)
    assert set(binary.unique().tolist()) == {0.0, 1.0} and torch.equal(data[2], x_test)
    expected = negative_elbo(model, binary, seed=5)
    assert (values["test_loss"], values["test_bce"]) == pytest.approx((expected["loss"], expected["nll"]), rel=1e-9)
    assert abs(values["test_loss"] - negative_elbo(model, x_test, seed=5)["loss"]) > 1  # not the grey levels (by 4.5)

    # A continuous-Bernoulli model: its -ELBO and its K = 1 IWAE, recomputed by hand on the evaluation's draws of z.
    # They share the reconstruction term (the BCE less log C), but the IWAE estimates the KL by its Monte Carlo
    # sample log q(z|x) - log p(z) where the -ELBO has the closed form: at K = 1 they agree in expectation only.
    torch.manual_seed(0)
    cb_model = build_model(Config(hidden_dim=32, latent_dim=3, likelihood="continuous-bernoulli")).eval()
    with torch.no_grad():
        cb_model.dec_out.weight.mul_(5)  # logits far from 0, where log C differs much from log 2
        values = ev.evaluate_model(cb_model, data, settings, seed=7, progress=False)
        mu, logvar = (t.double() for t in cb_model.encode(x_test))
        eps = torch.randn((len(x_test), 1, 3), generator=torch.Generator().manual_seed(7))[:, 0].double()
        z = mu + torch.exp(0.5 * logvar) * eps
        logits = cb_model.decode(z.float()).double()
    x = x_test.double()
    nll = (F.softplus(logits) - x * logits - cb_log_c(logits)).sum(dim=1)  # -log p(x|z): BCE - log C, per image
    kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(dim=1)
    mc_kl = (Normal(mu, torch.exp(0.5 * logvar)).log_prob(z) - Normal(0.0, 1.0).log_prob(z)).sum(dim=1)
    assert cb_log_c(logits).sum(dim=1).abs().min() > 100  # the normaliser matters: a Bernoulli score would fail
    assert values["test_loss"] == pytest.approx((nll + kl).mean().item(), abs=1e-4)
    assert values["test_bce"] == pytest.approx(nll.mean().item(), abs=1e-4)
    assert values["iwae_nll"] == pytest.approx((nll + mc_kl).mean().item(), abs=1e-4)
    assert values["iwae_gap"] == pytest.approx((kl - mc_kl).mean().item(), abs=1e-4)  # 0.013 nats here, not 0


@pytest.mark.parametrize(
    "kwargs, option",
    [
        ({"iw_samples": 0}, "settings.iw_samples"),
        ({"iw_samples": -5}, "settings.iw_samples"),
        ({"knn_k": 0}, "settings.knn_k"),
        ({"tsne_points": -1}, "settings.tsne_points"),
        ({"tsne_points": 1}, "settings.tsne_points"),
        ({"tsne_points": 90}, "settings.tsne_points"),  # = 3 x the default perplexity 30
        ({"tsne_points": 30, "tsne_perplexity": 10.0}, "settings.tsne_points"),
    ],
)
def test_eval_settings_reject_bad_values_naming_the_option(kwargs, option):
    with pytest.raises(ValueError, match=f"^{option} ") as e:
        ev.EvalSettings(**kwargs)
    assert str(next(iter(kwargs.values()))) in str(e.value)


def test_eval_settings_accept_the_limits():
    assert ev.EvalSettings(tsne_points=91).tsne_points == 91  # just above 3 x perplexity
    assert ev.EvalSettings(tsne_points=31, tsne_perplexity=10.0).tsne_points == 31
    assert ev.EvalSettings(iw_samples=1, tsne_points=0).iw_samples == 1


# --- For the notebooks: picking examples, and mu against pixels and PCA -----------------------------------------


def test_first_of_each_class():
    y = torch.tensor([2, 0, 1, 0, 2, 1, 1, 0, 2])
    expected = [[i for i, c in enumerate(y.tolist()) if c == k][:2] for k in range(3)]
    assert ev.first_of_each_class(y, per_class=2).tolist() == expected
    assert ev.first_of_each_class(y).tolist() == [[1], [2], [0]]


def test_pca_features_match_the_svd():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(200, 6)) * np.array([5.0, 3.0, 1.0, 0.5, 0.1, 0.1])
    test = rng.normal(size=(20, 6))
    train_pca, test_pca = ls.pca_features(train, test, n_components=2)
    _, _, vt = np.linalg.svd(train - train.mean(axis=0), full_matrices=False)
    expected = (test - train.mean(axis=0)) @ vt[:2].T
    np.testing.assert_allclose(np.abs(test_pca), np.abs(expected), atol=1e-8)  # up to each axis's sign
    assert train_pca.shape == (200, 2)


def test_compare_representations_finds_the_informative_code(capfd, monkeypatch):
    """Labels follow the code's clusters, the 'pixels' are noise: kNN must see it, and every map has n points."""
    monkeypatch.setattr(progress, "live_bar", lambda: False)
    rng = np.random.default_rng(0)
    y_train, y_test = np.arange(300) % 3, np.arange(60) % 3
    centres = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    train_mu, test_mu = centres[y_train] + rng.normal(size=(300, 2)), centres[y_test] + rng.normal(size=(60, 2))
    x_train, x_test = rng.random((300, 784)), rng.random((60, 784))
    result = ls.compare_representations(train_mu, test_mu, x_train, x_test, y_train, y_test, tsne_points=40, k=5)
    assert list(result["knn"]) == ["μ (2-d)", "pixels (784-d)", "PCA of pixels (2-d)"]
    assert result["knn"]["μ (2-d)"] == 1.0
    assert result["knn"]["pixels (784-d)"] < 0.6 and result["knn"]["PCA of pixels (2-d)"] < 0.6
    assert all(m.shape == (40, 2) for m in result["maps"].values())
    assert logged_steps(capfd.readouterr().err) == [
        "5-NN accuracy on μ (2-d)",
        "5-NN accuracy on pixels (784-d)",
        "5-NN accuracy on PCA of pixels (2-d)",
        "t-SNE of μ of 40 test images",
        "t-SNE of pixels of 40 test images",
    ]


def test_iwae_with_the_continuous_bernoulli_adds_its_log_normaliser():
    torch.manual_seed(0)
    model = VAE(784, 32, 3).eval()
    cb_model = build_model(Config(hidden_dim=32, latent_dim=3, likelihood="continuous-bernoulli"))
    cb_model.load_state_dict(model.state_dict())  # the same weights; only its likelihood differs
    cb_model.eval()
    assert isinstance(cb_model.likelihood, ContinuousBernoulli)
    assert not isinstance(model.likelihood, ContinuousBernoulli)
    x = make_images(8)
    bernoulli = ev.iwae_nll(model, x, num_samples=1, seed=3)
    continuous = ev.iwae_nll(cb_model, x, num_samples=1, seed=3)
    # K = 1: the same single z per image in both (same seed), so they differ by -sum_i log C(lambda_i) alone
    with torch.no_grad():
        mu, logvar = model.encode(x)
        eps = torch.randn((8, 1, 3), generator=torch.Generator().manual_seed(3))[:, 0]
        logits = model.decode(mu + torch.exp(0.5 * logvar) * eps)
    torch.testing.assert_close(continuous, bernoulli - cb_log_normalizer(logits).sum(dim=1), rtol=0, atol=1e-3)


def test_k_convergence_gives_each_k_its_iwae_bound_and_standard_error(trained):
    model, (_, _, x, _) = trained  # 128 test images
    records = k_convergence(model, x, ks=(1, 10, 100), seed=4)
    assert [r["k"] for r in records] == [1, 10, 100]
    for r in records:  # each recomputed from iwae_nll: the mean and std / sqrt(N) of the per-image estimates
        nll = ev.iwae_nll(model, x, r["k"], seed=4).double()
        assert r["bound"] == pytest.approx(nll.mean().item())
        assert r["se"] == pytest.approx(nll.std().item() / math.sqrt(128))
    bounds = [r["bound"] for r in records]
    assert bounds[0] > bounds[1] > bounds[2]  # a tighter bound with more samples (here by far more than the se)


# --- Progress: each long step named while it runs, and no number changed by it ---------------------------------


def test_in_a_log_evaluate_model_names_each_step_with_its_seed(trained, capfd, monkeypatch):
    model, data = trained  # 128 test images
    monkeypatch.setattr(progress, "live_bar", lambda: False)
    settings = ev.EvalSettings(iw_samples=10, tsne_points=40, tsne_perplexity=5.0, tsne_max_iter=250)
    ev.evaluate_model(model, data, settings, seed=3)
    assert logged_steps(capfd.readouterr().err) == [
        "seed 3: -ELBO of 128 test images",
        "seed 3: IWAE K = 10 on 128 images",
        "seed 3: 5-NN accuracy on μ of 128 test images",
        "seed 3: t-SNE of μ of 40 test images, 250 iterations",
    ]
    ev.evaluate_model(model, data, replace(settings, tsne_points=0), seed=3, label="[2/15] beta=2.0,seed=3")
    assert logged_steps(capfd.readouterr().err)[1] == "[2/15] beta=2.0,seed=3: IWAE K = 10 on 128 images"


def test_progress_changes_no_number_and_progress_false_prints_nothing(trained, capfd, monkeypatch):
    model, data = trained
    settings = ev.EvalSettings(iw_samples=10, tsne_points=40, tsne_perplexity=5.0, tsne_max_iter=250)
    quiet = ev.evaluate_model(model, data, settings, seed=3, progress=False)
    assert capfd.readouterr() == ("", "")
    monkeypatch.setattr(sys, "stderr", Terminal())  # live bars
    live = ev.evaluate_model(model, data, settings, seed=3)
    assert "seed 3: IWAE K = 10 on 128 images: 100%" in sys.stderr.getvalue()  # the bar reached its total
    assert "seed 3: t-SNE of μ of 40 test images, 250 iterations ... " in sys.stderr.getvalue()
    np.testing.assert_array_equal(quiet.pop("tsne").pop("embedding"), live.pop("tsne").pop("embedding"))
    del quiet["seconds"], live["seconds"]
    assert quiet == live


def test_k_convergence_names_each_k_with_the_models_label(trained, capfd, monkeypatch):
    model, (_, _, x, _) = trained
    monkeypatch.setattr(progress, "live_bar", lambda: False)
    k_convergence(model, x, ks=(1, 10), label="default")
    assert logged_steps(capfd.readouterr().err) == [
        "default: IWAE K = 1 on 128 images",
        "default: IWAE K = 10 on 128 images",
    ]
    k_convergence(model, x, ks=(1, 10), progress=False)
    assert capfd.readouterr() == ("", "")
