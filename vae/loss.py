"""The original report's loss, "BCE + KL": the negative ELBO as two terms per image. Unit: nats per image."""

import torch
from torch.nn import functional as F

from vae.devices import on_model_device


class Bernoulli:
    """p(x|z) of the original report: pixel i is 1 with probability sigmoid(logits_i). For grey levels x in [0, 1],
    -log p(x|z) is the binary cross-entropy: a cross-entropy, not a normalised log-likelihood (the continuous
    Bernoulli, in vae/research/likelihoods.py, is one)."""

    def nll(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) (B,), summed over pixels; from logits, stable where sigmoid(logits) rounds to 0 or 1."""
        return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=-1)

    def log_prob_samples(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """log p(x|z_k) (B, K) of x (B, 784) under logits (B, K, 784), for the IWAE estimate. log p(x|z) =
        sum_i x_i l_i - softplus(l_i): the dot product as a batched matmul, then one elementwise pass."""
        return torch.bmm(logits, x.unsqueeze(2)).squeeze(2) - F.softplus(logits).sum(dim=2)

    def mean(self, logits: torch.Tensor) -> torch.Tensor:
        """E[x|z], the image a decoder draws: sigmoid(logits)."""
        return torch.sigmoid(logits)


def elbo_terms(model, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (nll, kl), each (B,): -log p(x|z) for one z ~ q(z|x) per image, and KL(q(z|x) || p(z)). The negative
    ELBO is nll + kl. For the original report's model, nll is the BCE (model.likelihood: Bernoulli)."""
    logits, mu, logvar = model(x, generator)
    nll = model.likelihood.nll(x, logits)
    # KL(q(z|x) || N(0, I)) in closed form, Kingma & Welling (2013) App. B:
    #   -1/2 * sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2). Without the 1/2 it is silently beta = 2.
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)
    return nll, kl


@torch.no_grad()
def negative_elbo(model, x: torch.Tensor, batch_size: int = 2000, seed: int = 0) -> dict[str, float]:
    """The mean negative ELBO ("loss") and its terms ("nll", "kl") over all of `x`, one seeded z per image."""
    x, generator = on_model_device(model, x), torch.Generator().manual_seed(seed)
    nll_sum = kl_sum = 0.0
    for start in range(0, len(x), batch_size):
        nll, kl = elbo_terms(model, x[start : start + batch_size], generator)
        nll_sum += nll.sum().item()
        kl_sum += kl.sum().item()
    return {"loss": (nll_sum + kl_sum) / len(x), "nll": nll_sum / len(x), "kl": kl_sum / len(x)}
