"""The negative ELBO of the original report's loss, "BCE + KL", as two per-image terms in nats."""

import torch
from torch.nn import functional as F


def elbo_terms(x, logits, mu, logvar) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (bce, kl), each (B,): summed over pixels and latent dims, one value per image; nats per image.

    bce = -log p(x|z) for Bernoulli pixels with probabilities sigmoid(logits) and grey-level targets x.
    Computed from logits, which is stable where sigmoid(logits) rounds to 0 or 1.
    """
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1)
    # KL(q(z|x) || N(0, I)) in closed form, Kingma & Welling (2013) App. B:
    #   -1/2 * sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2). Without the 1/2 it is silently beta = 2.
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)
    return bce, kl


def loss_per_image(x, logits, mu, logvar) -> torch.Tensor:
    """The training loss: the negative ELBO averaged over the batch, in nats per image (not a batch sum)."""
    bce, kl = elbo_terms(x, logits, mu, logvar)
    return (bce + kl).mean()


@torch.no_grad()
def dataset_elbo(model, x, batch_size: int = 2000, seed: int = 0) -> dict[str, float]:
    """Mean BCE, KL and loss (= -ELBO) over all of `x`, nats per image, with one seeded z per image."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    bce_sum = kl_sum = 0.0
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size]
        bce, kl = elbo_terms(xb, *model(xb, generator))
        bce_sum += bce.sum().item()
        kl_sum += kl.sum().item()
    n = len(x)
    return {"loss": (bce_sum + kl_sum) / n, "bce": bce_sum / n, "kl": kl_sum / n}
