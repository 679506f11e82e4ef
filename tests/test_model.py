"""The model: the original report's architecture, shapes, the reparameterisation, its variance heads."""

import math

import pytest
import torch

from vae import VAE, Config
from vae.data import GreyLevels
from vae.loss import Bernoulli
from vae.model import LOGVAR_RANGE
from vae.research import PRESETS, build_model
from vae.research.likelihoods import ContinuousBernoulli
from vae.research.models import (
    GATED_LOGVAR_RANGE,
    BF16Autocast,
    GatedDense,
    GatedVAE,
    SigmaHeadVAE,
    SoftplusHeadVAE,
)
from vae.research.training import Binarized


def test_architecture_is_the_original_reports():
    model = VAE.from_config(Config())
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters() if name.endswith("weight")}
    assert shapes == {
        "enc.weight": (200, 784),
        "enc_mu.weight": (20, 200),
        "enc_logvar.weight": (20, 200),
        "dec.weight": (200, 20),
        "dec_out.weight": (784, 200),
    }
    expected = (784 * 200 + 200) + 2 * (200 * 20 + 20) + (20 * 200 + 200) + (200 * 784 + 784)
    assert sum(p.numel() for p in model.parameters()) == expected == 326_824


def test_shapes():
    model = VAE(hidden_dim=32, latent_dim=4)
    x = torch.rand(5, 784)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (5, 4)
    logits, mu2, _ = model(x)
    assert logits.shape == (5, 784)
    torch.testing.assert_close(mu, mu2)
    probs = torch.sigmoid(model.decode(torch.zeros(3, 4)))
    assert probs.shape == (3, 784) and probs.min() >= 0 and probs.max() <= 1


def test_gradients_reach_mu_and_logvar_through_the_sample():
    mu = torch.zeros(4, 3, requires_grad=True)
    logvar = torch.zeros(4, 3, requires_grad=True)
    g = torch.Generator().manual_seed(0)
    z = VAE().reparameterize(mu, logvar, g)
    z.pow(2).sum().backward()
    eps = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    # d/dmu (mu + sigma eps)^2 = 2 z ; d/dlogvar = 2 z * eps * sigma / 2
    torch.testing.assert_close(mu.grad, 2 * z.detach())
    torch.testing.assert_close(logvar.grad, z.detach() * eps)


def test_reparameterize_samples_the_right_gaussian():
    mu = torch.full((200_000, 1), 1.5)
    logvar = torch.full((200_000, 1), math.log(0.25))
    z = VAE().reparameterize(mu, logvar, torch.Generator().manual_seed(0))
    assert abs(z.mean().item() - 1.5) < 0.01
    assert abs(z.std().item() - 0.5) < 0.01


def test_same_generator_seed_gives_same_sample():
    model = VAE(hidden_dim=8, latent_dim=2)
    x = torch.rand(3, 784)
    a = model(x, torch.Generator().manual_seed(7))[0]
    b = model(x, torch.Generator().manual_seed(7))[0]
    c = model(x, torch.Generator().manual_seed(8))[0]
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("bias", [1e4, -1e4, 1e30, -1e30, math.inf, -math.inf])
def test_the_logvar_head_never_gives_an_infinite_or_zero_sigma(bias):
    torch.manual_seed(0)
    model = VAE()
    with torch.no_grad():
        model.enc_logvar.bias.fill_(bias)
        model.enc_logvar.weight.mul_(1e3)
    x = torch.cat([torch.zeros(1, 784), torch.ones(1, 784), torch.rand(6, 784)])  # inputs in [0, 1]
    mu, logvar = model.encode(x)
    sigma = model.std(logvar)
    assert torch.isfinite(sigma).all() and (sigma > 0).all()
    z = model.reparameterize(mu, logvar, torch.Generator().manual_seed(0))
    assert torch.isfinite(z).all() and torch.isfinite(model.decode(z)).all()
    logits, _, _ = model(x, torch.Generator().manual_seed(0))
    assert torch.isfinite(logits).all()


def test_the_clamp_changes_no_ordinary_sigma():
    logvar = torch.linspace(LOGVAR_RANGE[0], LOGVAR_RANGE[1], 101)
    torch.testing.assert_close(VAE.std(logvar), torch.exp(0.5 * logvar), rtol=0, atol=0)


# The ablation's variance heads (config.variance_head), each against its formula.


def raw_head_output(model, x):
    return model.enc_logvar(torch.relu(model.enc(x)))


def test_sigma_head_is_the_raw_output_as_sigma():
    torch.manual_seed(0)
    model = SigmaHeadVAE(hidden_dim=16, latent_dim=3)
    x = torch.rand(8, 784)
    sigma = raw_head_output(model, x)
    assert (sigma < 0).any()  # a raw linear output is not a standard deviation
    mu, logvar = model.encode(x)
    torch.testing.assert_close(logvar, torch.log(sigma * sigma))
    # The sample's scale is |sigma|: z - mu = |sigma| * eps.
    z = model.reparameterize(mu, logvar, torch.Generator().manual_seed(1))
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(z - mu, sigma.abs() * eps)
    with torch.no_grad():  # sigma = 0 exactly: the tutorial's log(sigma^2) is -inf; nothing guards it
        model.enc_logvar.weight.zero_()
        model.enc_logvar.bias.zero_()
    assert torch.isneginf(model.encode(x)[1]).all()


def test_softplus_head_gives_a_positive_sigma():
    torch.manual_seed(0)
    model = SoftplusHeadVAE(hidden_dim=16, latent_dim=3)
    x = torch.rand(8, 784)
    out = raw_head_output(model, x)
    sigma = torch.log1p(torch.exp(out))
    _, logvar = model.encode(x)
    torch.testing.assert_close(logvar, torch.log(sigma**2))


def test_default_head_is_the_raw_output_as_logvar():
    torch.manual_seed(0)
    model = VAE(hidden_dim=16, latent_dim=3)
    x = torch.rand(8, 784)
    assert torch.equal(model.encode(x)[1], raw_head_output(model, x))


def test_build_model_builds_the_configured_head_and_sizes():
    model = build_model(Config(hidden_dim=16, latent_dim=3, variance_head="softplus"))
    assert (type(model), model.latent_dim, model.enc.out_features) == (SoftplusHeadVAE, 3, 16)
    assert (VAE.from_config(Config(hidden_dim=16, latent_dim=3)).latent_dim, model.dec_out.in_features) == (3, 16)


@pytest.mark.parametrize(
    "changes, cls",
    [
        ({}, VAE),
        ({"variance_head": "sigma"}, SigmaHeadVAE),
        ({"variance_head": "softplus"}, SoftplusHeadVAE),
        ({"architecture": "gated"}, GatedVAE),
    ],
)
def test_build_model_gives_each_variant_its_class(changes, cls):
    config = Config(hidden_dim=16, latent_dim=3, **changes)
    model = build_model(config)
    assert type(model) is cls and not isinstance(model, BF16Autocast)
    bf16 = build_model(Config(**{**config.to_dict(), "precision": "bf16"}))
    assert isinstance(bf16, BF16Autocast) and isinstance(bf16, cls) and type(bf16) is not cls
    assert list(bf16.state_dict()) == list(model.state_dict())  # the same weights, so the same checkpoints
    x = torch.rand(4, 784)
    for m in (model, bf16):  # each gets its likelihood and protocol from the config; here the original report's
        assert isinstance(m.likelihood, Bernoulli) and not isinstance(m.likelihood, ContinuousBernoulli)
        assert isinstance(m.protocol, GreyLevels) and torch.equal(m.protocol.scored(x), x)


def test_build_model_sets_the_likelihood_and_the_protocol_of_its_config():
    cb = build_model(Config(hidden_dim=16, latent_dim=3, likelihood="continuous-bernoulli"))
    assert type(cb) is VAE and isinstance(cb.likelihood, ContinuousBernoulli) and isinstance(cb.protocol, GreyLevels)
    binarised = build_model(Config(hidden_dim=16, latent_dim=3, binarize=True))
    assert type(binarised) is VAE and isinstance(binarised.protocol, Binarized)
    assert type(binarised.likelihood) is Bernoulli
    assert isinstance(VAE().likelihood, Bernoulli)  # the class's own: other models keep theirs
    scored = binarised.protocol.scored(torch.full((4, 784), 0.5))
    assert set(scored.unique().tolist()) == {0.0, 1.0}


def test_bf16_autocast_runs_the_training_pass_in_bfloat16_and_evaluates_in_float32():
    torch.manual_seed(0)
    fp32 = build_model(Config(hidden_dim=16, latent_dim=3))
    bf16 = build_model(Config(hidden_dim=16, latent_dim=3, precision="bf16"))
    bf16.load_state_dict(fp32.state_dict())
    x = torch.rand(4, 784)
    outputs = [m(x, torch.Generator().manual_seed(0)) for m in (fp32, bf16)]  # both in training mode
    assert all(t.dtype == torch.float32 for t in outputs[1])
    assert not torch.equal(outputs[0][0], outputs[1][0])  # autocast was on
    torch.testing.assert_close(outputs[1][0], outputs[0][0], rtol=0.05, atol=0.05)
    fp32.eval(), bf16.eval()
    evaluated = [m(x, torch.Generator().manual_seed(0)) for m in (fp32, bf16)]
    assert all(torch.equal(a, b) for a, b in zip(*evaluated, strict=True))


GATED_KEYS = [  # the state_dict of VAE(784, 300, 40, architecture="gated") before the variants became subclasses
    f"{side}.{layer}.{gate}.{p}"
    for side in ("enc",)
    for layer in (0, 1)
    for gate in ("h", "g")
    for p in ("weight", "bias")
]
GATED_KEYS += ["enc_mu.weight", "enc_mu.bias", "enc_logvar.weight", "enc_logvar.bias"]
GATED_KEYS += [f"dec.{layer}.{gate}.{p}" for layer in (0, 1) for gate in ("h", "g") for p in ("weight", "bias")]
GATED_KEYS += ["dec_out.weight", "dec_out.bias"]


def test_a_gated_vae_has_the_state_dict_keys_it_had_before():
    # Checkpoints of the literature's runs were written before GatedVAE existed: they must still load.
    assert GATED_KEYS[:4] == ["enc.0.h.weight", "enc.0.h.bias", "enc.0.g.weight", "enc.0.g.bias"]
    assert list(GatedVAE(784, 300, 40).state_dict()) == GATED_KEYS
    assert list(build_model(Config(**PRESETS["literature"])).state_dict()) == GATED_KEYS


def test_the_gated_architecture_is_the_literatures():
    # docs/literature-protocol.md: 784 -> GatedDense 300 -> GatedDense 300 -> 40 (mu, logvar); 40 -> 300 -> 300 -> 784.
    model = build_model(Config(**PRESETS["literature"]))
    assert type(model) is GatedVAE
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters() if name.endswith("weight")}
    assert shapes == {
        "enc.0.h.weight": (300, 784), "enc.0.g.weight": (300, 784),
        "enc.1.h.weight": (300, 300), "enc.1.g.weight": (300, 300),
        "enc_mu.weight": (40, 300), "enc_logvar.weight": (40, 300),
        "dec.0.h.weight": (300, 40), "dec.0.g.weight": (300, 40),
        "dec.1.h.weight": (300, 300), "dec.1.g.weight": (300, 300),
        "dec_out.weight": (784, 300),
    }  # fmt: skip


def test_a_gated_layer_is_a_linear_map_times_a_sigmoid_gate():
    layer = GatedDense(5, 3)
    x = torch.randn(4, 5)
    expected = (x @ layer.h.weight.T + layer.h.bias) * (1 / (1 + torch.exp(-(x @ layer.g.weight.T + layer.g.bias))))
    torch.testing.assert_close(layer(x), expected)


def test_gated_weights_are_he_normal():
    torch.manual_seed(0)
    model = build_model(Config(**PRESETS["literature"]))
    for name, p in model.named_parameters():
        if name.endswith("weight") and p.numel() >= 10_000:  # enough draws for a 5 % test of the spread
            std = math.sqrt(2 / p.shape[1])  # He et al. (2015): sqrt(2 / fan_in)
            assert abs(p.std().item() / std - 1) < 0.05, name
            assert abs(p.mean().item()) < 0.05 * std, name


def test_the_gated_logvar_is_clamped_to_the_hardtanh_range():
    model = GatedVAE(hidden_dim=8, latent_dim=3)
    with torch.no_grad():
        model.enc_logvar.bias.fill_(50.0)
        assert model.encode(torch.rand(4, 784))[1].max().item() == GATED_LOGVAR_RANGE[1]
        model.enc_logvar.bias.fill_(-50.0)
        assert model.encode(torch.rand(4, 784))[1].min().item() == GATED_LOGVAR_RANGE[0]
