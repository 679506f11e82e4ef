"""The ablation switches in Config (beta, variance_head, binarize), each against an independent oracle."""

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from vae import VAE, Config, fit
from vae.data import fixed_binarization, iterate_batches
from vae.train import make_optimizer


def one_epoch_by_hand(config: Config, train_x, oracle_loss: bool):
    """Re-run fit's first epoch outside fit; with oracle_loss, the loss comes from torch.distributions."""
    torch.manual_seed(config.seed)
    model = VAE.from_config(config)
    optimizer = make_optimizer(model, config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    for x in iterate_batches(train_x, config.batch_size, generator):
        if config.binarize:
            x = torch.bernoulli(x, generator=generator)
        mu, logvar = model.encode(x)
        z = model.reparameterize(mu, logvar, generator)
        logits = model.decode(z)
        if oracle_loss:
            nll = -Bernoulli(logits=logits, validate_args=False).log_prob(x).sum(dim=1)
            prior = Normal(torch.zeros_like(mu), torch.ones_like(mu))
            kl = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), prior).sum(dim=1)
            loss = (nll + config.beta * kl).mean()
        else:  # the seed's loss, exactly as it was written before beta existed
            loss = (
                torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
                + 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
            ).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model


def weights(model):
    return list(model.state_dict().values())


@pytest.fixture
def one_epoch(tiny_config):
    tiny_config.num_epochs = 1
    return tiny_config


def test_default_training_is_bit_identical_to_the_seeds_loss(one_epoch, images):
    model, _ = fit(one_epoch, *images, progress=False)
    expected = one_epoch_by_hand(one_epoch, images[0], oracle_loss=False)
    assert all(torch.equal(a, b) for a, b in zip(weights(model), weights(expected), strict=True))


@pytest.mark.parametrize("beta", [0.5, 2.0, 4.0])
def test_beta_weights_the_kl_in_the_training_loss_only(one_epoch, images, beta):
    one_epoch.beta = beta
    model, history = fit(one_epoch, *images, progress=False)
    expected = one_epoch_by_hand(one_epoch, images[0], oracle_loss=True)
    for a, b in zip(weights(model), weights(expected), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    baseline, _ = fit(Config(**{**one_epoch.to_dict(), "beta": 1.0}), *images, progress=False)
    assert not torch.equal(weights(model)[0], weights(baseline)[0])
    # The reported loss is the true negative ELBO (beta = 1), whatever beta trained the model.
    assert history[0]["test_loss"] == pytest.approx(history[0]["test_bce"] + history[0]["test_kl"])


def test_dynamic_binarisation_follows_the_training_generator(one_epoch, images):
    one_epoch.binarize = True
    model, history = fit(one_epoch, *images, progress=False)
    expected = one_epoch_by_hand(one_epoch, images[0], oracle_loss=True)
    for a, b in zip(weights(model), weights(expected), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # The test loss is scored on the fixed binarisation of the test images.
    one_epoch.binarize = False
    _, grey = fit(one_epoch, *images, progress=False)
    assert history[0]["test_loss"] != grey[0]["test_loss"]


def test_fixed_binarisation_is_binary_with_the_grey_level_as_mean():
    x = torch.full((200, 784), 0.3)
    b = fixed_binarization(x)
    assert set(b.unique().tolist()) == {0.0, 1.0}
    assert abs(b.mean().item() - 0.3) < 0.005  # sd of the mean is 0.0012
    assert torch.equal(b, fixed_binarization(x)) and not torch.equal(b, fixed_binarization(x, seed=1))
    edges = torch.tensor([[0.0, 1.0]])
    assert torch.equal(fixed_binarization(edges), edges)


def raw_head_output(model, x):
    return model.enc_logvar(torch.relu(model.enc(x)))


def test_sigma_head_is_the_raw_output_as_sigma():
    torch.manual_seed(0)
    model = VAE(hidden_dim=16, latent_dim=3, variance_head="sigma")
    x = torch.rand(8, 784)
    sigma = raw_head_output(model, x)
    assert (sigma < 0).any()  # a raw linear output is not a standard deviation
    _, logvar = model.encode(x)
    torch.testing.assert_close(logvar, torch.log(sigma * sigma))
    # The sample's scale is |sigma|: z - mu = |sigma| * eps.
    mu, _ = model.encode(x)
    z = model.reparameterize(mu, logvar, torch.Generator().manual_seed(1))
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(z - mu, sigma.abs() * eps)
    with torch.no_grad():  # sigma = 0 exactly: the tutorial's log(sigma^2) is -inf; nothing guards it
        model.enc_logvar.weight.zero_()
        model.enc_logvar.bias.zero_()
    assert torch.isneginf(model.encode(x)[1]).all()


def test_softplus_head_gives_a_positive_sigma():
    torch.manual_seed(0)
    model = VAE(hidden_dim=16, latent_dim=3, variance_head="softplus")
    x = torch.rand(8, 784)
    out = raw_head_output(model, x)
    sigma = torch.log1p(torch.exp(out))
    _, logvar = model.encode(x)
    torch.testing.assert_close(logvar, torch.log(sigma**2))


def test_default_head_is_unchanged():
    torch.manual_seed(0)
    model = VAE(hidden_dim=16, latent_dim=3)
    x = torch.rand(8, 784)
    assert torch.equal(model.encode(x)[1], raw_head_output(model, x))
