"""The literature's training extras as callbacks of vae.train (KL warm-up, dynamic binarisation, a validation split,
early stopping), its data protocol (fixed binary test and validation sets) and its optimizer (AdamNormGrad)."""

import time

import numpy as np
import torch

from vae.config import Config, ConfigError
from vae.loss import negative_elbo
from vae.train import Callback, Run

# Fixed, so that every run and seed is scored on the same binary images; two seeds, so that the validation and test
# sets are binarised independently, as in the literature's protocol (their random numbers are not shared).
TEST_BINARIZATION_SEED = 0
VALIDATION_BINARIZATION_SEED = 1
# How a validation split is scored, stored with the data sizes of a run that has one: 2, its own binarisation seed
# and a fresh z each epoch; 1 (before 2026-12-02), the test set's binarisation and the same z every epoch.
VALIDATION_PROTOCOL = 2


def fixed_binarization(x: torch.Tensor, seed: int = TEST_BINARIZATION_SEED) -> torch.Tensor:
    """One seeded binarisation of x (N, 784) in [0, 1]: each pixel is 1 with probability its grey level.

    Drawn on the CPU, so that every device gets the same binary images.
    """
    return torch.bernoulli(x.cpu(), generator=torch.Generator().manual_seed(seed)).to(x.device)


class Binarized:
    """The data protocol of binarised runs: trained on batches binarised afresh (DynamicBinarization), scored on one
    fixed binarisation of the test images (and of the validation images, drawn independently)."""

    def scored(self, x: torch.Tensor) -> torch.Tensor:
        return fixed_binarization(x, TEST_BINARIZATION_SEED)

    def validation(self, x: torch.Tensor) -> torch.Tensor:
        return fixed_binarization(x, VALIDATION_BINARIZATION_SEED)


class DynamicBinarization(Callback):
    """Each batch binarised afresh: pixel ~ Bernoulli(grey level), drawn from the run's (CPU) generator."""

    def on_batch(self, run: Run, x: torch.Tensor) -> torch.Tensor:
        return torch.bernoulli(x.to(run.generator.device), generator=run.generator).to(x.device)


def kl_weight(config: Config, epoch: int) -> float:
    """The KL's weight in epoch `epoch` (from 1): beta, reached linearly over `warmup_epochs` (epoch / warmup)."""
    return config.beta * min(1.0, epoch / config.warmup_epochs) if config.warmup_epochs else config.beta


class KLWarmup(Callback):
    """The KL's weight rises linearly from beta / warmup_epochs to beta over the first warmup_epochs."""

    def on_epoch_start(self, run: Run) -> None:
        run.kl_weight = kl_weight(run.config, run.epoch)


def epoch_seed(seed: int, epoch: int) -> int:
    """A seed for epoch `epoch` of the run of `seed`: fresh noise every epoch, the same on every rerun and resume."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0] >> 1)  # < 2**63, as torch takes


class ValidationSplit(Callback):
    """The last validation_images training images are held out, unshuffled: never trained on, and scored after each
    epoch as record["val_loss"] (the negative ELBO, beta = 1, a fresh z per image each epoch)."""

    def on_fit_start(self, run: Run) -> None:
        n, held = len(run.train_x), run.config.validation_images
        if held >= n:
            raise ConfigError(f"config.validation_images ({held}) leaves no training images out of {n}")
        if run.config.batch_size > n - held:
            raise ConfigError(
                f"config.batch_size ({run.config.batch_size}) is larger than the dataset ({n - held} images once "
                f"{held} are held out for validation): use at most {n - held}"
            )
        run.train_x, self.val_x = run.train_x[: n - held], run.model.protocol.validation(run.train_x[n - held :])

    def on_epoch_end(self, run: Run, record: dict) -> None:
        start = time.perf_counter()
        record["val_loss"] = negative_elbo(run.model, self.val_x, seed=epoch_seed(run.config.seed, run.epoch))["loss"]
        record["seconds"] += time.perf_counter() - start


def stopped_early(history: list, config: Config) -> bool:
    """True once more than `patience` epochs have passed without a lower validation loss (not counted in warm-up)."""
    if not config.patience:
        return False
    best, waited = float("inf"), 0
    for record in history:
        best, waited = (record["val_loss"], 0) if record["val_loss"] < best else (best, waited + 1)
        if record["epoch"] < config.warmup_epochs:
            waited = 0
        if waited > config.patience:
            return True
    return False


class EarlyStopping(Callback):
    """Training stops once more than config.patience epochs have passed without a lower validation loss."""

    def on_epoch_start(self, run: Run) -> None:
        run.stop = stopped_early(run.history, run.config)


def normalize_gradients(params) -> None:
    """Each parameter's gradient divided by its L2 norm (+1e-7), as AdamNormGrad does before its Adam step."""
    for p in params:
        if p.grad is not None:
            p.grad.div_(p.grad.norm() + 1e-7)


class AdamNormGrad(torch.optim.Adam):
    """The literature's optimizer: Adam on normalised gradients (normalize_gradients)."""

    @torch.no_grad()
    def step(self, closure=None):
        normalize_gradients(p for group in self.param_groups for p in group["params"])
        return super().step(closure)
