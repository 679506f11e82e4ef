"""The continuous Bernoulli (Loaiza-Ganem & Cunningham, 2019): a likelihood for grey levels that is a normalised
density on [0, 1], unlike the Bernoulli's cross-entropy. Its -log p(x|z) is the BCE less the log-normaliser."""

import math

import torch

from vae.loss import Bernoulli

SMALL_LOGIT = 1e-3  # below this |logit|, log C uses its Taylor series: the closed form cancels there


def cb_log_normalizer(logits: torch.Tensor) -> torch.Tensor:
    """log C(λ) of the continuous Bernoulli with λ = sigmoid(logits), elementwise; C makes its density integrate to 1.

    C(λ) = 2 atanh(1 - 2λ) / (1 - 2λ), which in the logit l is l / tanh(l / 2): even in l, and 2 at l = 0 (λ = 1/2).
    log C = log|l| - log(1 - e^-|l|) + log(1 + e^-|l|), stable for large |l|; near 0, log 2 + l^2 / 12.
    """
    a = logits.abs()
    small = a < SMALL_LOGIT
    safe = torch.where(small, torch.ones_like(a), a)  # no log(0) in the unused branch, so no NaN gradient
    exact = torch.log(safe) - torch.log(-torch.expm1(-safe)) + torch.log1p(torch.exp(-safe))
    return torch.where(small, math.log(2) + a.pow(2) / 12, exact)


def cb_mean(logits: torch.Tensor) -> torch.Tensor:
    """The mean E[x] of the continuous Bernoulli with λ = sigmoid(logits): λ / (2λ - 1) + 1 / (2 atanh(1 - 2λ)).

    In the logit l it is λ / tanh(l / 2) - 1 / l; near l = 0, 1/2 + l / 12 - l^3 / 720. It is not λ.
    """
    small = logits.abs() < 0.1
    safe = torch.where(small, torch.ones_like(logits), logits)
    exact = torch.sigmoid(safe) / torch.tanh(safe / 2) - 1 / safe
    return torch.where(small, 0.5 + logits / 12 - logits.pow(3) / 720, exact)


class ContinuousBernoulli(Bernoulli):
    """p(x|z) = C(λ) λ^x (1 - λ)^(1 - x) on [0, 1] per pixel, λ = sigmoid(logits)."""

    def nll(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return super().nll(x, logits) - cb_log_normalizer(logits).sum(dim=-1)

    def log_prob_samples(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return super().log_prob_samples(x, logits) + cb_log_normalizer(logits).sum(dim=2)

    def mean(self, logits: torch.Tensor) -> torch.Tensor:
        return cb_mean(logits)
