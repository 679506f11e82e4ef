"""The original report's MLP VAE: 784 -> 200 -> (mu, logvar) in R^20 -> 200 -> 784 logits of Bernoulli pixels."""

import torch
from torch import nn
from torch.nn import functional as F

from vae.config import Config
from vae.data import GreyLevels
from vae.loss import Bernoulli

# sigma = exp(logvar / 2) is computed with logvar clamped to this range, so that it lies in [3e-7, 2.2e4], never 0 or
# inf. The KL sees the raw logvar, so that a diverging run still becomes NaN and is stopped with a message.
LOGVAR_RANGE = (-30.0, 20.0)


class VAE(nn.Module):
    """Encoder Linear(784, 200) + ReLU with two Linear(200, 20) heads; decoder Linear(20, 200) + ReLU, Linear(200, 784).
    It carries what shaped it: `likelihood` scores its images, `protocol` says which images it is trained and scored
    on. Research variants (vae/research/) subclass it or replace those two."""

    likelihood = Bernoulli()
    protocol = GreyLevels()

    def __init__(self, input_dim: int = 784, hidden_dim: int = 200, latent_dim: int = 20):
        super().__init__()
        self.latent_dim = latent_dim
        self.enc = self.hidden_layers(input_dim, hidden_dim)
        self.enc_mu = nn.Linear(hidden_dim, latent_dim)
        self.enc_logvar = nn.Linear(hidden_dim, latent_dim)  # log sigma^2, not sigma: any real is a valid logvar
        self.dec = self.hidden_layers(latent_dim, hidden_dim)
        self.dec_out = nn.Linear(hidden_dim, input_dim)

    @classmethod
    def from_config(cls, config: Config) -> "VAE":
        return cls(config.input_dim, config.hidden_dim, config.latent_dim)

    def hidden_layers(self, in_dim: int, out_dim: int) -> nn.Module:
        """The hidden layer of the encoder or the decoder, before its ReLU."""
        return nn.Linear(in_dim, out_dim)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, 784) -> mu, logvar, each (B, latent_dim): the Gaussian q(z|x)."""
        h = F.relu(self.enc(x))  # (B, hidden_dim)
        return self.enc_mu(h), self.enc_logvar(h)

    def reparameterize(self, mu, logvar, generator: torch.Generator | None = None) -> torch.Tensor:
        """z = mu + sigma * eps, eps ~ N(0, I) drawn on the generator's device (the CPU: the same on every device)."""
        device = mu.device if generator is None else generator.device
        eps = torch.randn(mu.shape, generator=generator, device=device, dtype=mu.dtype).to(mu.device)
        return mu + self.std(logvar) * eps

    @staticmethod
    def std(logvar: torch.Tensor) -> torch.Tensor:
        """The standard deviation sigma = exp(logvar / 2), logvar clamped to LOGVAR_RANGE: finite and > 0."""
        return torch.exp(0.5 * logvar.clamp(*LOGVAR_RANGE))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, latent_dim) -> logits (B, 784) of p(x|z); model.likelihood.mean(logits) is the image."""
        return self.dec_out(F.relu(self.dec(z)))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """Return (logits, mu, logvar) for one sample z ~ q(z|x) per image."""
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar, generator)), mu, logvar
