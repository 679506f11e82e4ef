"""Evaluation: numbers a reader can trust, each with its unit and method.

- `test_elbo`: the -ELBO (BCE + KL) in nats per image, and in bits per dimension;
- `iwae_nll`: the importance-weighted estimate of -log p(x) (Burda et al., 2016), nats per image;
- latent quality: `knn_accuracy`, `tsne_embedding` + `trustworthiness`, `active_units`, `kl_per_dim`;
- `encode_mu`, and a content-keyed `.npz` cache (`file_sha256`, `cached_arrays`) for slow results.
"""

import hashlib
import math
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.manifold import trustworthiness as sk_trustworthiness
from sklearn.neighbors import KNeighborsClassifier
from torch.distributions import Normal, kl_divergence
from torch.nn import functional as F

from vae.files import atomic_path
from vae.loss import dataset_elbo

ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. (2016): unit j is active if Cov_x(E_q[z_j|x]) > 0.01
IWAE_ROWS = 8192  # decoder rows (images x samples) per step: big enough for fast matmuls, small enough for cache


@torch.no_grad()
def encode_mu(model, x: torch.Tensor, batch_size: int = 10000) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (mu, logvar) of q(z|x) for every row of x (N, 784), each (N, latent_dim), on x's device."""
    parts = [model.encode(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def bits_per_dim(nats_per_image: float, input_dim: int = 784) -> float:
    """Convert nats per image to bits per pixel: divide by input_dim * ln 2."""
    return nats_per_image / (input_dim * math.log(2))


def test_elbo(model, x: torch.Tensor, seed: int = 0) -> dict[str, float]:
    """-ELBO over all of x with one seeded z per image: loss, bce, kl in nats per image, and loss_bits_per_dim."""
    result = dataset_elbo(model, x, seed=seed)
    result["loss_bits_per_dim"] = bits_per_dim(result["loss"], x.shape[1])
    return result


test_elbo.__test__ = False  # a metric, not a pytest test, even when imported by name into a test module


@torch.no_grad()
def iwae_nll(model, x: torch.Tensor, num_samples: int = 100, seed: int = 0, rows: int = IWAE_ROWS) -> torch.Tensor:
    """Importance-weighted estimate of -log p(x) per image (N,), nats, with K = num_samples z ~ q(z|x) each.

    -log p(x) ~= -log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x)   (Burda et al., 2016, eq. 8).
    Its expectation is an upper bound on the true -log p(x) that tightens as K grows; K = 1 is the -ELBO.
    Images are processed `rows // K` at a time, so that each decoder matmul has about `rows` rows.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    generator = torch.Generator(device=x.device).manual_seed(seed)
    images_per_step = max(1, rows // num_samples)
    out = torch.empty(len(x), dtype=x.dtype, device=x.device)
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    prior = Normal(zero, zero + 1, validate_args=False)
    for start in range(0, len(x), images_per_step):
        xb = x[start : start + images_per_step]  # (B, 784)
        mu, logvar = model.encode(xb)  # (B, D)
        q = Normal(mu.unsqueeze(1), torch.exp(0.5 * logvar).unsqueeze(1), validate_args=False)  # batch shape (B, 1, D)
        eps = torch.randn((len(xb), num_samples, mu.shape[1]), generator=generator, dtype=x.dtype, device=x.device)
        z = q.loc + q.scale * eps  # (B, K, D)
        logits = model.decode(z.flatten(0, 1)).view(len(xb), num_samples, -1)  # (B, K, 784)
        # log p(x|z) = sum_i x_i l_i - softplus(l_i): the dot product as a batched matmul, then one elementwise pass.
        log_px_z = torch.bmm(logits, xb.unsqueeze(2)).squeeze(2) - F.softplus(logits).sum(dim=2)  # (B, K)
        log_w = log_px_z + prior.log_prob(z).sum(dim=2) - q.log_prob(z).sum(dim=2)  # (B, K)
        out[start : start + len(xb)] = math.log(num_samples) - torch.logsumexp(log_w, dim=1)
    return out


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
    classifier.fit(np.asarray(train_features), np.asarray(train_y))
    return float(classifier.score(np.asarray(test_features), np.asarray(test_y)))


def tsne_embedding(features, perplexity: float = 30.0, seed: int = 0, max_iter: int = 1000) -> np.ndarray:
    """2-D t-SNE (scikit-learn, Barnes-Hut, PCA initialisation) of features (N, d) -> (N, 2) float32."""
    tsne = TSNE(perplexity=perplexity, init="pca", random_state=seed, max_iter=max_iter, n_jobs=-1)
    return tsne.fit_transform(np.asarray(features, dtype=np.float32)).astype(np.float32)


def trustworthiness(features, embedding, n_neighbors: int = 5) -> float:
    """How well the embedding keeps each point's n_neighbors nearest neighbours (scikit-learn; 1 is perfect)."""
    return float(sk_trustworthiness(np.asarray(features), np.asarray(embedding), n_neighbors=n_neighbors))


def file_sha256(path) -> str:
    """Hex SHA-256 of a file's bytes: the cache key of a checkpoint."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_arrays(path, compute) -> dict[str, np.ndarray]:
    """Load the arrays saved at `path` (.npz, allow_pickle=False); else `compute()` them and save them atomically.

    `path` should name everything the arrays depend on (e.g. the checkpoint's hash and the parameters).
    An unreadable cache file is recomputed and replaced.
    """
    path = Path(path)
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                return {k: f[k] for k in f.files}
        except (OSError, ValueError, EOFError):
            pass  # truncated or foreign: recompute below
    arrays = {k: np.asarray(v) for k, v in compute().items()}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return arrays


# --- For the notebooks (issue 4): picking examples, and mu against pixels and PCA -------------------------------


def first_of_each_class(y: torch.Tensor, per_class: int = 1) -> torch.Tensor:
    """Indices (num_classes, per_class) of the first `per_class` images of each class 0..max(y), in order."""
    y = torch.as_tensor(y).cpu()
    return torch.stack([torch.nonzero(y == c).flatten()[:per_class] for c in range(int(y.max()) + 1)])


def pca_features(train_features, test_features, n_components: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """PCA (scikit-learn) fitted on the training features; both sets projected onto its first n_components."""
    pca = PCA(n_components=n_components, random_state=seed).fit(np.asarray(train_features))
    return pca.transform(np.asarray(train_features)), pca.transform(np.asarray(test_features))


def compare_representations(
    train_mu, test_mu, x_train, x_test, y_train, y_test, tsne_points: int, k: int = 5, seed: int = 0
) -> dict:
    """kNN accuracy on mu, on raw pixels, and on PCA of the pixels (as many components as mu has dims),
    and 2-D maps of the first `tsne_points` test images: t-SNE of mu, t-SNE of pixels, PCA of pixels.

    Returns {"knn": {name: accuracy}, "maps": {title: (n, 2) array}}; every input may be a tensor or an array.
    """
    train_mu, test_mu, x_train, x_test, y_train, y_test = (
        np.asarray(torch.as_tensor(a).cpu()) for a in (train_mu, test_mu, x_train, x_test, y_train, y_test)
    )
    d, n = train_mu.shape[1], min(tsne_points, len(x_test))
    train_pca, test_pca = pca_features(x_train, x_test, d, seed)
    knn = {
        f"μ ({d}-d)": knn_accuracy(train_mu, y_train, test_mu, y_test, k),
        f"pixels ({x_train.shape[1]}-d)": knn_accuracy(x_train, y_train, x_test, y_test, k),
        f"PCA of pixels ({d}-d)": knn_accuracy(train_pca, y_train, test_pca, y_test, k),
    }
    maps = {
        "t-SNE of μ": tsne_embedding(test_mu[:n], seed=seed),
        "t-SNE of pixels": tsne_embedding(x_test[:n], seed=seed),
        "PCA of pixels (first 2 components)": test_pca[:n, :2].astype(np.float32),
    }
    return {"knn": knn, "maps": maps}
