"""Research variants of the original report's VAE, each plugged into one seam of the core: a `VAE` subclass
(models), a likelihood object (likelihoods), a training callback, a data protocol or an optimizer (training).

`build_model(config)` and `fit(config, ...)` honour every field of a Config; vae.fit trains the original only.
"""

from functools import partial

import torch

from vae.config import Config, ConfigError
from vae.model import VAE
from vae.research.likelihoods import ContinuousBernoulli
from vae.research.models import GatedVAE, SigmaHeadVAE, SoftplusHeadVAE, bf16_problem, with_bf16
from vae.research.training import (
    AdamNormGrad,
    Binarized,
    DynamicBinarization,
    EarlyStopping,
    KLWarmup,
    ValidationSplit,
)
from vae.train import make_optimizer, pick_device, start_run, train

# The Gaussian-prior VAE baseline of Norouzi et al. (2020), each setting sourced in docs/literature-protocol.md.
PRESETS = {  # name -> the Config fields it sets
    "literature": dict(
        architecture="gated",
        hidden_dim=300,
        latent_dim=40,
        optimizer="adam-normgrad",
        lr=5e-4,
        batch_size=100,
        num_epochs=2000,
        binarize=True,
        warmup_epochs=100,
        validation_images=10000,
        patience=50,
    ),
}


HEADS = {"logvar": VAE, "sigma": SigmaHeadVAE, "softplus": SoftplusHeadVAE}


def build_model(config: Config) -> VAE:
    """The untrained model of `config`: its class (architecture, variance head, precision), likelihood and protocol."""
    cls = GatedVAE if config.architecture == "gated" else HEADS[config.variance_head]
    if config.precision == "bf16":
        cls = with_bf16(cls)
    model = cls(config.input_dim, config.hidden_dim, config.latent_dim)
    if config.likelihood == "continuous-bernoulli":
        model.likelihood = ContinuousBernoulli()
    if config.binarize:
        model.protocol = Binarized()
    return model


def callbacks(config: Config) -> list:
    """The training callbacks of `config`'s research settings, in the order they must run."""
    found = [DynamicBinarization()] if config.binarize else []
    found += [KLWarmup()] if config.warmup_epochs else []
    found += [ValidationSplit()] if config.validation_images else []
    return found + ([EarlyStopping()] if config.patience else [])


def fit(config: Config, train_x, test_x, extra_callbacks=(), progress=True, label=None):
    """vae.fit for any config: its model, optimizer and callbacks (then `extra_callbacks`); returns (model, history)."""
    if config.precision == "bf16" and (why := bf16_problem(pick_device(config.device))):
        raise ConfigError(f"config.precision='bf16' is refused here: {why}, and slower than fp32. Use 'fp32'.")
    optimizer = AdamNormGrad if config.optimizer == "adam-normgrad" else torch.optim.Adam
    run = start_run(config, train_x, test_x, build_model, partial(make_optimizer, optimizer=optimizer))
    return train(run, [*callbacks(config), *extra_callbacks], progress, label)
