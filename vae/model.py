"""The original report's MLP VAE: 784 -> 200 -> (mu, logvar) in R^20 -> 200 -> 784 Bernoulli logits.

`architecture="gated"` is the literature's baseline instead (docs/literature-protocol.md): two gated layers of
`hidden_dim` units on each side, log sigma^2 clamped to [-6, 2], He-normal weights.
"""

import torch
from torch import nn
from torch.nn import functional as F

from vae.config import Config

# To sample, log sigma^2 is clamped to this range, so that sigma = exp(logvar / 2) lies in [3e-7, 2.2e4], never
# 0 or inf, whatever the weights. Training never comes near it (seed 0, 10 epochs: logvar in [-6.6, 1.6]), so
# the clamp changes no result. The KL still sees the raw logvar: a diverging run still becomes NaN and is
# stopped with a message, rather than training on at a finite but meaningless loss.
LOGVAR_RANGE = (-30.0, 20.0)
GATED_LOGVAR_RANGE = (-6.0, 2.0)  # the gated baseline's Hardtanh on its log-variance head, in the loss too


class GatedDense(nn.Module):
    """h = (W_h x + b_h) * sigmoid(W_g x + b_g): a linear layer with a learned gate, and no other activation."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.h = nn.Linear(in_dim, out_dim)
        self.g = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.h(x) * torch.sigmoid(self.g(x))


def hidden_layers(in_dim: int, hidden_dim: int, architecture: str) -> nn.Module:
    """The hidden part of the encoder or decoder: one Linear (its ReLU is applied in `VAE._hidden`), or two gated."""
    if architecture == "gated":
        return nn.Sequential(GatedDense(in_dim, hidden_dim), GatedDense(hidden_dim, hidden_dim))
    return nn.Linear(in_dim, hidden_dim)


class VAE(nn.Module):
    """Encoder Linear(784,200)+ReLU with two Linear(200,20) heads; decoder Linear(20,200)+ReLU, Linear(200,784).

    With architecture="gated", each Linear+ReLU is two GatedDense layers instead.
    """

    def __init__(self, input_dim=784, hidden_dim=200, latent_dim=20, variance_head="logvar", architecture="mlp"):
        super().__init__()
        self.variance_head = variance_head  # one of config.VARIANCE_HEADS; the original report's is "logvar"
        self.architecture = architecture  # one of config.ARCHITECTURES
        self.latent_dim = latent_dim
        self.enc = hidden_layers(input_dim, hidden_dim, architecture)
        self.enc_mu = nn.Linear(hidden_dim, latent_dim)
        # The second head predicts log sigma^2, not sigma: a linear layer's output can be any real number,
        # and every real number is a valid log-variance, whereas a raw "sigma" can be <= 0, where log(sigma^2)
        # and the KL are undefined. exp(0.5 * logvar) is then always a positive standard deviation.
        self.enc_logvar = nn.Linear(hidden_dim, latent_dim)
        self.dec = hidden_layers(latent_dim, hidden_dim, architecture)
        self.dec_out = nn.Linear(hidden_dim, input_dim)
        if architecture == "gated":  # He-normal weights, std sqrt(2 / fan_in), on every Linear; default biases
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")

    @classmethod
    def from_config(cls, config: Config) -> "VAE":
        return cls(config.input_dim, config.hidden_dim, config.latent_dim, config.variance_head, config.architecture)

    def _hidden(self, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return layer(x) if self.architecture == "gated" else F.relu(layer(x))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, 784) in [0, 1] -> mu, logvar, each (B, latent_dim): the Gaussian q(z|x)."""
        h = self._hidden(self.enc, x)  # (B, hidden_dim)
        out = self.enc_logvar(h)  # (B, latent_dim)
        if self.architecture == "gated":
            return self.enc_mu(h), F.hardtanh(out, *GATED_LOGVAR_RANGE)
        if self.variance_head == "sigma":
            # The tutorial's head, kept for the ablation: the raw output is sigma and its KL takes
            # log(sigma^2) with no guard, so sigma = 0 gives -inf. Sampling with exp(0.5 * logvar) = |sigma|
            # instead of sigma gives the same distribution of z, as eps is symmetric.
            return self.enc_mu(h), torch.log(out.pow(2))
        if self.variance_head == "softplus":
            return self.enc_mu(h), 2 * torch.log(F.softplus(out))  # sigma = softplus(out) > 0
        return self.enc_mu(h), out

    def reparameterize(self, mu, logvar, generator: torch.Generator | None = None) -> torch.Tensor:
        """z = mu + sigma * eps with eps ~ N(0, I): a sample of q(z|x) that gradients flow through."""
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + self.sigma(logvar) * eps

    @staticmethod
    def sigma(logvar: torch.Tensor) -> torch.Tensor:
        """The standard deviation exp(logvar / 2), with logvar clamped to LOGVAR_RANGE: finite and > 0."""
        return torch.exp(0.5 * logvar.clamp(*LOGVAR_RANGE))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, latent_dim) -> logits (B, 784) of the pixel Bernoullis; sigmoid(logits) is the image."""
        return self.dec_out(self._hidden(self.dec, z))

    def forward(self, x, generator: torch.Generator | None = None):
        """Return (logits, mu, logvar) for one sample z ~ q(z|x) per image."""
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar, generator)), mu, logvar
