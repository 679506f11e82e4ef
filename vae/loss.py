"""The negative ELBO of the original report's loss, "BCE + KL", as two per-image terms in nats.

The pixels are grey levels in [0, 1], for which the Bernoulli's BCE is a cross-entropy, not a normalised
log-likelihood. `likelihood="continuous-bernoulli"` adds the continuous Bernoulli's log-normaliser
(Loaiza-Ganem & Cunningham, 2019), whose density on [0, 1] does integrate to 1.
"""

import math

import torch
from torch.nn import functional as F

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


def elbo_terms(x, logits, mu, logvar, likelihood: str = "bernoulli") -> tuple[torch.Tensor, torch.Tensor]:
    """Return (bce, kl), each (B,): summed over pixels and latent dims, one value per image; nats per image.

    bce = -log p(x|z) for Bernoulli pixels with probabilities sigmoid(logits) and grey-level targets x
    (with "continuous-bernoulli", minus the log-normaliser too: a true negative log-density on [0, 1]^784).
    Computed from logits, which is stable where sigmoid(logits) rounds to 0 or 1.
    """
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1)
    if likelihood == "continuous-bernoulli":
        bce = bce - cb_log_normalizer(logits).sum(dim=1)
    # KL(q(z|x) || N(0, I)) in closed form, Kingma & Welling (2013) App. B:
    #   -1/2 * sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2). Without the 1/2 it is silently beta = 2.
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)
    return bce, kl


def loss_per_image(x, logits, mu, logvar) -> torch.Tensor:
    """The training loss: the negative ELBO averaged over the batch, in nats per image (not a batch sum)."""
    bce, kl = elbo_terms(x, logits, mu, logvar)
    return (bce + kl).mean()


@torch.no_grad()
def dataset_elbo(model, x, batch_size: int = 2000, seed: int = 0, likelihood: str = "bernoulli") -> dict[str, float]:
    """Mean BCE, KL and loss (= -ELBO) over all of `x`, nats per image, with one seeded z per image."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    bce_sum = kl_sum = 0.0
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size]
        bce, kl = elbo_terms(xb, *model(xb, generator), likelihood)
        bce_sum += bce.sum().item()
        kl_sum += kl.sum().item()
    n = len(x)
    return {"loss": (bce_sum + kl_sum) / n, "bce": bce_sum / n, "kl": kl_sum / n}
