"""The loss: the closed-form KL and the BCE against torch.distributions, per image, over a dataset."""

import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from vae import VAE, dataset_elbo, elbo_terms, loss_per_image


def random_terms(batch=16, latent_dim=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 784, generator=g)
    logits = 6 * torch.randn(batch, 784, generator=g)
    mu = torch.randn(batch, latent_dim, generator=g)
    logvar = torch.randn(batch, latent_dim, generator=g)
    return x, logits, mu, logvar


def test_kl_matches_torch_distributions():
    x, logits, mu, logvar = random_terms()
    _, kl = elbo_terms(x, logits, mu, logvar)
    q = Normal(mu, torch.exp(0.5 * logvar))
    p = Normal(torch.zeros_like(mu), torch.ones_like(logvar))
    expected = kl_divergence(q, p).sum(dim=1)
    torch.testing.assert_close(kl, expected)


def test_kl_is_zero_only_at_the_prior():
    x, logits, mu, logvar = random_terms()
    _, kl = elbo_terms(x, logits, torch.zeros_like(mu), torch.zeros_like(logvar))
    assert torch.all(kl == 0)
    _, kl = elbo_terms(x, logits, mu, logvar)
    assert torch.all(kl > 0)


def test_bce_matches_bernoulli_log_prob_binary_and_grey():
    x, logits, mu, logvar = random_terms()
    for target in (x, (x > 0.5).float()):
        bce, _ = elbo_terms(target, logits, mu, logvar)
        # Grey-level targets are outside Bernoulli's support; the formula x log p + (1-x) log(1-p) still holds.
        expected = -Bernoulli(logits=logits, validate_args=False).log_prob(target).sum(dim=1)
        torch.testing.assert_close(bce, expected)


def test_bce_is_finite_for_extreme_logits():
    x = torch.tensor([[0.0, 1.0, 0.0, 1.0]])
    logits = torch.tensor([[-200.0, 200.0, 200.0, -200.0]])
    bce, _ = elbo_terms(x, logits, torch.zeros(1, 2), torch.zeros(1, 2))
    torch.testing.assert_close(bce, torch.tensor([400.0]))


def test_loss_is_a_per_image_mean_not_a_batch_sum():
    x, logits, mu, logvar = random_terms(batch=32)
    bce, kl = elbo_terms(x, logits, mu, logvar)
    loss = loss_per_image(x, logits, mu, logvar)
    torch.testing.assert_close(loss * 32, (bce + kl).sum())
    # the same images twice give the same per-image loss
    doubled = loss_per_image(*(torch.cat([t, t]) for t in (x, logits, mu, logvar)))
    torch.testing.assert_close(doubled, loss)


def test_dataset_elbo_recomputes_batchwise_terms():
    torch.manual_seed(0)
    model = VAE(hidden_dim=16, latent_dim=3)
    x = torch.rand(50, 784)
    result = dataset_elbo(model, x, batch_size=7, seed=3)
    g = torch.Generator().manual_seed(3)
    mu, logvar = model.encode(x)
    chunks = [model.reparameterize(m, lv, g) for m, lv in zip(mu.split(7), logvar.split(7), strict=True)]
    z = torch.cat(chunks)
    bce, kl = elbo_terms(x, model.decode(z), mu, logvar)
    assert abs(result["bce"] - bce.mean().item()) < 1e-3
    assert abs(result["kl"] - kl.mean().item()) < 1e-4
    assert abs(result["loss"] - (bce + kl).mean().item()) < 1e-3
