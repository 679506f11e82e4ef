"""Variants of the VAE, each a subclass that overrides one small method: the tutorial's raw sigma head, a softplus
sigma head, the literature's gated baseline, and bf16 autocast of the training step."""

import functools

import torch
from torch import nn
from torch.nn import functional as F

from vae.model import VAE

GATED_LOGVAR_RANGE = (-6.0, 2.0)  # the gated baseline's Hardtanh on its log-variance head, in the loss too


class SigmaHeadVAE(VAE):
    """The tutorial's head: the second output is sigma itself, and log(sigma^2) is taken with no guard.

    sigma = 0 gives logvar = -inf and a NaN loss. Sampling with exp(logvar / 2) = |sigma| instead of sigma gives
    the same distribution of z, as eps is symmetric.
    """

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, sigma = super().encode(x)
        return mu, torch.log(sigma.pow(2))


class SoftplusHeadVAE(VAE):
    """sigma = softplus(second output) > 0: a positive standard deviation, whatever the weights."""

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, out = super().encode(x)
        return mu, 2 * torch.log(F.softplus(out))


class GatedDense(nn.Module):
    """h = (W_h x + b_h) * sigmoid(W_g x + b_g): a linear layer with a learned gate, and no other activation."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.h = nn.Linear(in_dim, out_dim)
        self.g = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.h(x) * torch.sigmoid(self.g(x))


class GatedVAE(VAE):
    """The literature's baseline (docs/literature-protocol.md): two gated layers of hidden_dim units on each side,
    log sigma^2 clamped to GATED_LOGVAR_RANGE, He-normal weights."""

    def __init__(self, input_dim: int = 784, hidden_dim: int = 300, latent_dim: int = 40):
        super().__init__(input_dim, hidden_dim, latent_dim)
        for m in self.modules():  # He-normal weights, std sqrt(2 / fan_in), on every Linear; default biases
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")

    def hidden_layers(self, in_dim: int, out_dim: int) -> nn.Module:
        return nn.Sequential(GatedDense(in_dim, out_dim), GatedDense(out_dim, out_dim))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.enc(x)
        return self.enc_mu(h), F.hardtanh(self.enc_logvar(h), *GATED_LOGVAR_RANGE)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec_out(self.dec(z))


class BF16Autocast:
    """Mixed in before a VAE class: in training, its forward pass runs under bfloat16 autocast (benchmarks/bf16.py);
    the weights and the loss stay float32, and evaluation is float32."""

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        if not self.training:
            return super().forward(x, generator)
        with torch.autocast(x.device.type, torch.bfloat16):
            logits, mu, logvar = super().forward(x, generator)
        return logits.float(), mu.float(), logvar.float()


@functools.cache
def with_bf16(cls: type) -> type:
    """The class `cls` with BF16Autocast mixed in (one class per VAE class)."""
    return type(f"BF16{cls.__name__}", (BF16Autocast, cls), {})


def bf16_problem(device: torch.device) -> str | None:
    """Why bf16 autocast on `device` would not run on bfloat16 hardware (emulated, so slower than fp32, or turned off
    without a word); None where it does: CUDA of compute capability 8.0 or more, a CPU with AMX or AVX512-BF16, MPS
    with torch 2.6 or newer."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return None if major >= 8 else f"this GPU (compute capability {major}.{minor}) has no bf16 units (8.0 has)"
    if device.type == "mps":
        version = tuple(int(v) for v in torch.__version__.split("+")[0].split(".")[:2])
        return None if version >= (2, 6) else f"torch {torch.__version__} turns bf16 autocast off on MPS (2.6 does not)"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = set(next(line for line in f if line.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        return "this system does not say (no /proc/cpuinfo) whether its CPU has AMX or AVX512-BF16"
    return None if flags & {"amx_bf16", "avx512_bf16"} else "this CPU has neither AMX nor AVX512-BF16: bf16 is emulated"
