"""Evaluation: numbers a reader can trust, each with its unit and method.

`evaluate_model` returns every number for a trained model on a split; the report, the sweep and the
notebooks all call it. Its parts:
- the -ELBO (BCE + KL) in nats per image and bits per pixel (`vae.loss.negative_elbo`, `bits_per_dim`);
- `iwae_nll`: the importance-weighted estimate of -log p(x) (Burda et al., 2016), nats per image;
- latent quality: `knn_accuracy`, `active_units`, `kl_per_dim`, and `tsne_embedding` + `trustworthiness`.
The long steps name themselves on stderr while they run (`vae.progress.step`), unless given progress=False.
"""

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.manifold import TSNE
from sklearn.manifold import trustworthiness as sk_trustworthiness
from sklearn.neighbors import KNeighborsClassifier
from torch.distributions import Normal, kl_divergence

from vae.devices import on_model_device, to_numpy
from vae.loss import negative_elbo
from vae.progress import step

ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. (2016): unit j is active if Cov_x(E_q[z_j|x]) > 0.01
IWAE_ROWS = 8192  # decoder rows (images x samples) per step on a CPU: big enough for fast matmuls, small for cache
ACCELERATOR_ROWS = 2**17  # on a GPU: 26 images per step at K = 5000 rather than 1, ~2 GB (benchmarks/gpu_check.py)


@dataclass
class EvalSettings:
    """How a trained model is evaluated; stored with every result, so that results of other settings never mix."""

    iw_samples: int = 1000  # K of the IWAE estimate (the literature's standard is 5000)
    knn_k: int = 5
    tsne_points: int = 0  # the first N test images get a t-SNE of their mu; 0: no t-SNE
    tsne_perplexity: float = 30.0
    tsne_seed: int = 0
    tsne_max_iter: int = 1000
    trust_neighbors: int = 5

    def __post_init__(self):
        for name in ("iw_samples", "knn_k", "tsne_max_iter", "trust_neighbors"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"settings.{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if self.tsne_points < 0 or 0 < self.tsne_points <= 3 * self.tsne_perplexity:
            raise ValueError(
                f"settings.tsne_points must be 0 (no t-SNE) or exceed 3 x perplexity ({self.tsne_perplexity:g}), "
                f"got {self.tsne_points}"
            )


@torch.no_grad()
def encode_posterior(model, x: torch.Tensor, batch_size: int = 10000) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (mu, logvar) of q(z|x) for every row of x (N, 784), each (N, latent_dim), on the model's device."""
    parts = [model.encode(on_model_device(model, x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def bits_per_dim(nats_per_image: float, input_dim: int = 784) -> float:
    """Convert nats per image to bits per pixel: divide by input_dim * ln 2."""
    return nats_per_image / (input_dim * math.log(2))


@torch.no_grad()
def iwae_nll(
    model,
    x: torch.Tensor,
    num_samples: int = 100,
    seed: int = 0,
    rows: int | None = None,
    progress: bool = True,
    label: str | None = None,
) -> torch.Tensor:
    """Importance-weighted estimate of -log p(x) per image (N,), nats, on the CPU, with K = num_samples z ~ q(z|x) each.

    -log p(x) ~= -log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x)   (Burda et al., 2016, eq. 8).
    Its expectation is an upper bound on the true -log p(x) that tightens as K grows; K = 1 estimates the -ELBO.
    The z are drawn from a seeded CPU generator in blocks of IWAE_ROWS // K images, so that they are the same on
    every device and for any `rows`. Each step decodes whole blocks, about `rows` rows (images x K) or one block:
    by default IWAE_ROWS on a CPU, ACCELERATOR_ROWS on a GPU. A bar counts the images (vae.progress.step, its name
    prefixed with `label`) unless progress=False.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    rows = rows or (IWAE_ROWS if next(model.parameters()).device.type == "cpu" else ACCELERATOR_ROWS)
    generator = torch.Generator().manual_seed(seed)
    block, images_per_step = iwae_steps(num_samples, rows)
    parts = []
    with step(f"IWAE K = {num_samples} on {len(x)} images", label, total=len(x), unit="image", show=progress) as bar:
        for start in range(0, len(x), images_per_step):
            xb = on_model_device(model, x[start : start + images_per_step])  # (B, 784)
            shapes = [(len(b), num_samples, model.latent_dim) for b in xb.split(block)]
            eps = torch.cat([torch.randn(shape, generator=generator, dtype=xb.dtype) for shape in shapes])
            parts.append(_iwae_batch(model, xb, eps.to(xb.device)))  # a GPU decodes while the CPU draws the next
            bar.update(len(xb))
    return torch.cat(parts).cpu()


def iwae_steps(num_samples: int, rows: int) -> tuple[int, int]:
    """(images per draw, images per step) of iwae_nll: blocks of IWAE_ROWS // K images, as many as `rows` holds."""
    block = max(1, IWAE_ROWS // num_samples)
    return block, block * max(1, rows // (block * num_samples))


def _iwae_batch(model, xb: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """iwae_nll of one batch of images xb (B, 784) -> (B,), with the K standard normal draws eps (B, K, latent_dim)."""
    mu, logvar = model.encode(xb)  # (B, D)
    q = Normal(mu.unsqueeze(1), torch.exp(0.5 * logvar).unsqueeze(1), validate_args=False)  # batch shape (B, 1, D)
    z = q.loc + q.scale * eps  # (B, K, D)
    logits = model.decode(z.flatten(0, 1)).view(*eps.shape[:2], -1)  # (B, K, 784)
    log_px_z = model.likelihood.log_prob_samples(xb, logits)  # (B, K)
    prior = Normal(torch.zeros((), dtype=xb.dtype, device=xb.device), 1.0, validate_args=False)  # N(0, I)
    log_w = log_px_z + prior.log_prob(z).sum(dim=2) - q.log_prob(z).sum(dim=2)  # (B, K)
    return math.log(eps.shape[1]) - torch.logsumexp(log_w, dim=1)


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z_j|x) || N(0, 1)) for each latent dim j (latent_dim,), averaged over images; nats per image."""
    q = Normal(mu, torch.exp(0.5 * logvar))
    return kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(mu))).mean(dim=0)


def latent_variance(mu: torch.Tensor) -> torch.Tensor:
    """Cov_x(E_q[z_j|x]) for each latent dim j (latent_dim,): the variance of mu over the images."""
    return mu.var(dim=0)


def active_units(mu: torch.Tensor, threshold: float = ACTIVE_UNIT_THRESHOLD) -> int:
    """Number of latent dims whose mean moves with the input: Cov_x(E_q[z_j|x]) > threshold (Burda et al.)."""
    return int((latent_variance(mu) > threshold).sum())


def knn_accuracy(train_features, train_y, test_features, test_y, k: int = 5) -> float:
    """Accuracy (0..1) on the test set of a k-nearest-neighbour classifier fitted on the training features."""
    classifier = KNeighborsClassifier(n_neighbors=k, n_jobs=-1)
    classifier.fit(to_numpy(train_features), to_numpy(train_y))
    return float(classifier.score(to_numpy(test_features), to_numpy(test_y)))


def tsne_embedding(features, perplexity: float = 30.0, seed: int = 0, max_iter: int = 1000) -> np.ndarray:
    """2-D t-SNE (scikit-learn, Barnes-Hut, PCA initialisation) of features (N, d) -> (N, 2) float32."""
    tsne = TSNE(perplexity=perplexity, init="pca", random_state=seed, max_iter=max_iter, n_jobs=-1)
    return tsne.fit_transform(to_numpy(features).astype(np.float32)).astype(np.float32)


def trustworthiness(features, embedding, n_neighbors: int = 5) -> float:
    """How well the embedding keeps each point's n_neighbors nearest neighbours (scikit-learn; 1 is perfect)."""
    return float(sk_trustworthiness(to_numpy(features), to_numpy(embedding), n_neighbors=n_neighbors))


def first_of_each_class(y: torch.Tensor, per_class: int = 1) -> torch.Tensor:
    """Indices (num_classes, per_class) of the first `per_class` images of each class 0..max(y), in order."""
    y = torch.as_tensor(y).cpu()
    return torch.stack([torch.nonzero(y == c).flatten()[:per_class] for c in range(int(y.max()) + 1)])


def evaluate_model(model, data, settings: EvalSettings, seed=0, progress=True, label=None) -> dict:
    """Every number for a trained model: data = (x_train, y_train, x_test, y_test), scored on the test split.

    Losses are the true -ELBO (beta = 1) and the IWAE estimate, in nats per image (and bits per pixel).
    The images are those of the model's data protocol (model.protocol.scored), as in training. With
    settings.tsne_points, "tsne" holds the embedding of the first test images' mu and its trustworthiness.
    "seconds" holds the wall-clock time of each part. While it runs, each part is named on stderr as
    "label: IWAE K = ..." (vae.progress.step; label defaults to "seed <seed>"), unless progress=False.
    """
    label = f"seed {seed}" if label is None else label
    x_train, y_train, x_test, y_test = data
    x_train, x_test = model.protocol.scored(x_train), model.protocol.scored(x_test)  # as in training
    seconds, start = {}, time.perf_counter()

    def lap(name):
        nonlocal start
        seconds[name] = time.perf_counter() - start
        start = time.perf_counter()

    with step(f"-ELBO of {len(x_test)} test images", label, show=progress):
        elbo = negative_elbo(model, x_test, seed=seed)
        train_mu, _ = encode_posterior(model, x_train)
        mu, logvar = encode_posterior(model, x_test)  # (N, latent_dim) each
    lap("elbo")
    nll = iwae_nll(model, x_test, settings.iw_samples, seed=seed, progress=progress, label=label).double()  # (N,)
    lap("iwae")
    with step(f"{settings.knn_k}-NN accuracy on μ of {len(x_test)} test images", label, show=progress):
        knn = knn_accuracy(train_mu, y_train, mu, y_test, settings.knn_k)
    lap("knn")
    iwae = nll.mean().item()
    result = {
        "test_loss": elbo["loss"],
        "test_bce": elbo["nll"],
        "test_kl": elbo["kl"],
        "test_bits_per_dim": bits_per_dim(elbo["loss"], x_test.shape[1]),
        "iwae_nll": iwae,
        "iwae_nll_se": (nll.std() / math.sqrt(len(nll))).item(),  # standard error over the test images
        "iwae_bits_per_dim": bits_per_dim(iwae, x_test.shape[1]),
        "iwae_gap": elbo["loss"] - iwae,
        "knn_accuracy": knn,
        "active_units": active_units(mu),
        "kl_per_dim": kl_per_dim(mu, logvar).tolist(),
        "latent_variance": latent_variance(mu).tolist(),
    }
    if settings.tsne_points:
        n = min(settings.tsne_points, len(x_test))
        features = to_numpy(mu[:n])
        with step(f"t-SNE of μ of {n} test images, {settings.tsne_max_iter} iterations", label, show=progress):
            embedding = tsne_embedding(features, settings.tsne_perplexity, settings.tsne_seed, settings.tsne_max_iter)
            trust = trustworthiness(features, embedding, settings.trust_neighbors)
        result["tsne"] = {"embedding": embedding, "labels": to_numpy(y_test[:n]), "trustworthiness": trust}
        lap("tsne")
    return result | {"seconds": seconds}
