"""The loss: the closed-form KL and the BCE against torch.distributions, per image, over a dataset."""

import math

import pytest
import torch
from torch.distributions import Bernoulli, ContinuousBernoulli, Normal, kl_divergence

from vae import VAE, elbo_terms, negative_elbo
from vae import loss as vloss
from vae.research import likelihoods
from vae.research.likelihoods import cb_log_normalizer, cb_mean


def random_terms(batch=16, latent_dim=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 784, generator=g)
    logits = 6 * torch.randn(batch, 784, generator=g)
    mu = torch.randn(batch, latent_dim, generator=g)
    logvar = torch.randn(batch, latent_dim, generator=g)
    return x, logits, mu, logvar


class FixedOutputs:
    """A stand-in for a VAE whose forward pass returns the given (logits, mu, logvar), scored by `likelihood`."""

    def __init__(self, logits, mu, logvar, likelihood=None):
        self.outputs = logits, mu, logvar
        self.likelihood = likelihood or vloss.Bernoulli()

    def __call__(self, x, generator=None):
        return self.outputs


def terms(x, logits, mu, logvar, likelihood=None):
    """elbo_terms of x for a forward pass that gave (logits, mu, logvar): (nll, kl), each (B,)."""
    return elbo_terms(FixedOutputs(logits, mu, logvar, likelihood), x)


class PerImage:
    """A deterministic stand-in for a VAE: each image's (logits, mu, logvar) depend on that image alone."""

    likelihood = vloss.Bernoulli()

    def parameters(self):  # its "weights" are on the CPU
        return iter([torch.zeros(())])

    def __call__(self, x, generator=None):
        return 6 * (x - 0.5), x[:, :5], x[:, 5:10] - 0.5


def test_kl_matches_torch_distributions():
    x, logits, mu, logvar = random_terms()
    _, kl = terms(x, logits, mu, logvar)
    q = Normal(mu, torch.exp(0.5 * logvar))
    p = Normal(torch.zeros_like(mu), torch.ones_like(logvar))
    expected = kl_divergence(q, p).sum(dim=1)
    torch.testing.assert_close(kl, expected)


def test_kl_is_zero_only_at_the_prior():
    x, logits, mu, logvar = random_terms()
    _, kl = terms(x, logits, torch.zeros_like(mu), torch.zeros_like(logvar))
    assert torch.all(kl == 0)
    _, kl = terms(x, logits, mu, logvar)
    assert torch.all(kl > 0)


def test_bce_matches_bernoulli_log_prob_binary_and_grey():
    x, logits, mu, logvar = random_terms()
    for target in (x, (x > 0.5).float()):
        bce, _ = terms(target, logits, mu, logvar)
        # Grey-level targets are outside Bernoulli's support; the formula x log p + (1-x) log(1-p) still holds.
        expected = -Bernoulli(logits=logits, validate_args=False).log_prob(target).sum(dim=1)
        torch.testing.assert_close(bce, expected)


def test_bce_is_finite_for_extreme_logits():
    x = torch.tensor([[0.0, 1.0, 0.0, 1.0]])
    logits = torch.tensor([[-200.0, 200.0, 200.0, -200.0]])
    bce, _ = terms(x, logits, torch.zeros(1, 2), torch.zeros(1, 2))
    torch.testing.assert_close(bce, torch.tensor([400.0]))


def test_loss_is_a_per_image_mean_not_a_batch_sum():
    x = random_terms(batch=32)[0]
    model = PerImage()
    nll, kl = elbo_terms(model, x)
    loss = negative_elbo(model, x)["loss"]
    assert loss * 32 == pytest.approx((nll + kl).sum().item(), rel=1e-6)
    # the same images twice give the same per-image loss, in one batch or in many
    assert negative_elbo(model, torch.cat([x, x]))["loss"] == pytest.approx(loss, rel=1e-6)
    assert negative_elbo(model, torch.cat([x, x]), batch_size=7)["loss"] == pytest.approx(loss, rel=1e-6)


def test_elbo_terms_runs_the_models_forward_pass_with_one_z_per_image():
    torch.manual_seed(0)
    model = VAE(hidden_dim=16, latent_dim=3)
    x = torch.rand(10, 784)
    nll, kl = elbo_terms(model, x, torch.Generator().manual_seed(5))
    logits, mu, logvar = model(x, torch.Generator().manual_seed(5))
    torch.testing.assert_close(nll, vloss.Bernoulli().nll(x, logits), rtol=0, atol=0)
    torch.testing.assert_close(kl, terms(x, logits, mu, logvar)[1], rtol=0, atol=0)
    assert nll.shape == kl.shape == (10,)
    assert not torch.equal(nll, elbo_terms(model, x, torch.Generator().manual_seed(6))[0])  # a fresh z, another nll


def test_negative_elbo_recomputes_batchwise_terms():
    torch.manual_seed(0)
    model = VAE(hidden_dim=16, latent_dim=3)
    x = torch.rand(50, 784)
    result = negative_elbo(model, x, batch_size=7, seed=3)
    g = torch.Generator().manual_seed(3)
    mu, logvar = model.encode(x)
    chunks = [model.reparameterize(m, lv, g) for m, lv in zip(mu.split(7), logvar.split(7), strict=True)]
    z = torch.cat(chunks)
    bce, kl = terms(x, model.decode(z), mu, logvar)
    assert abs(result["nll"] - bce.mean().item()) < 1e-3
    assert abs(result["kl"] - kl.mean().item()) < 1e-4
    assert abs(result["loss"] - (bce + kl).mean().item()) < 1e-3


# --- The continuous Bernoulli: its normaliser and mean against numerical integration and torch.distributions ---

LAMBDAS = [
    1e-6,
    1e-3,
    0.02,
    0.2,
    0.4,
    0.49,
    0.5 - 1e-4,
    0.5 - 1e-7,
    0.5,
    0.5 + 1e-7,
    0.5 + 1e-4,
    0.51,
    0.8,
    0.999,
    1 - 1e-6,
]


def integrate(f, points: int = 200_001) -> float:
    """The integral of f over [0, 1] by Simpson's rule, in float64 (an oracle independent of any closed form)."""
    x = torch.linspace(0, 1, points, dtype=torch.float64)
    w = torch.ones(points, dtype=torch.float64)
    w[1:-1:2], w[2:-1:2] = 4, 2
    return float((w * f(x)).sum() / (3 * (points - 1)))


@pytest.mark.parametrize("lam", LAMBDAS)
def test_the_log_normaliser_and_the_mean_match_numerical_integration(lam):
    lam64 = torch.tensor(lam, dtype=torch.float64)
    density = lambda x: lam64**x * (1 - lam64) ** (1 - x)  # noqa: E731, the unnormalised continuous Bernoulli
    z = integrate(density)
    logits = torch.logit(lam64)
    assert cb_log_normalizer(logits).item() == pytest.approx(-math.log(z), abs=1e-9)
    assert cb_mean(logits).item() == pytest.approx(integrate(lambda x: x * density(x)) / z, abs=1e-9)
    # float32, as in training: still accurate near λ = 1/2, where the closed form would divide 0 by 0
    assert cb_log_normalizer(logits.float()).item() == pytest.approx(-math.log(z), abs=1e-6)
    assert cb_mean(logits.float()).item() == pytest.approx(integrate(lambda x: x * density(x)) / z, abs=1e-6)


def test_the_continuous_bernoulli_term_is_a_normalised_density_as_in_torch_distributions():
    x, logits, mu, logvar = random_terms()
    x, logits = x.double(), (logits / 3).double()  # torch's own log-normaliser is accurate in float64
    rec, kl = terms(x, logits, mu.double(), logvar.double(), likelihoods.ContinuousBernoulli())
    oracle = -ContinuousBernoulli(logits=logits).log_prob(x).sum(dim=1)
    torch.testing.assert_close(rec, oracle, rtol=0, atol=1e-6)
    bce, kl_b = terms(x, logits, mu.double(), logvar.double())
    assert torch.equal(kl, kl_b) and torch.all(rec < bce)  # log C > 0: the density is larger than the coin's odds
    grid = torch.linspace(0, 1, 100_001, dtype=torch.float64).view(-1, 1)  # one pixel's density integrates to 1
    pixel = torch.exp(-likelihoods.ContinuousBernoulli().nll(grid, torch.full_like(grid, 1.7)))
    assert float(torch.trapezoid(pixel, grid.flatten())) == pytest.approx(1.0, abs=1e-8)


def test_the_continuous_bernoulli_has_finite_gradients_at_lambda_one_half():
    logits = torch.tensor([0.0, 1e-8, -1e-4, 5e-3, 40.0, -40.0], requires_grad=True)
    (cb_log_normalizer(logits).sum() + cb_mean(logits).sum()).backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[0] == pytest.approx(1 / 12)  # d/dl of 1/2 + l/12 - ...; log C is even: 0 at l = 0
