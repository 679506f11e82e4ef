"""Training: `fit` runs Adam on the negative ELBO and returns the model and a per-epoch history. Unit of every loss:
nats per image (a mean over images, summed over pixels and latent dimensions; never a batch sum).

Research variants plug in as callbacks (`Callback`), which see and may change the training state (`Run`).
"""

import time
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from vae.config import RESEARCH_FIELDS, Config, ConfigError
from vae.data import check_images, iterate_batches
from vae.devices import pick_device
from vae.loss import elbo_terms, negative_elbo
from vae.model import VAE
from vae.progress import live_bar


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite `where` (at epoch e, batch b/n); `.history` holds the good epochs."""

    def __init__(self, where: str, lr: float, history: list, kept: str = "nothing was saved"):
        super().__init__(
            f"the loss became NaN or infinite {where}; {kept}. "
            f"Lower the learning rate (now {lr}) or check the data for NaNs."
        )
        self.where, self.lr, self.history = where, lr, history


def make_optimizer(model, lr: float, optimizer=torch.optim.Adam) -> torch.optim.Optimizer:
    """Adam, fused into one kernel where this torch supports it (on the CPU since torch 2.4)."""
    try:
        return optimizer(model.parameters(), lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return optimizer(model.parameters(), lr=lr)


@dataclass
class Run:
    """The state of a training run, which callbacks may read and change."""

    config: Config
    model: VAE
    optimizer: torch.optim.Optimizer
    generator: torch.Generator  # the batches' order and every eps, on the CPU
    train_x: torch.Tensor  # (N, 784), on the model's device
    test_x: torch.Tensor  # the images the test loss is computed on: model.protocol.scored(test_x)
    history: list = field(default_factory=list)  # one record per finished epoch
    epoch: int = 0  # the epoch running, from 1
    kl_weight: float = 1.0  # the KL's weight in this epoch's loss (config.beta)
    stop: bool = False  # set by a callback to end training before the next epoch


class Callback:
    """A training extra: each hook is called with the run, in the order the callbacks are given."""

    def on_fit_start(self, run: Run) -> None: ...
    def on_epoch_start(self, run: Run) -> None: ...
    def on_batch(self, run: Run, x: torch.Tensor) -> torch.Tensor:
        return x  # the batch to train on

    def on_epoch_end(self, run: Run, record: dict) -> None: ...


def fit(config: Config, train_x, test_x, callbacks=(), progress=True, label=None):
    """Train the original report's VAE on train_x (N, 784); return (model, history), one record per epoch.

    Each record holds train and test loss (the negative ELBO), bce and kl (train: averaged over the epoch's
    batches; test: the whole of test_x, one seeded z per image), and the seconds taken. `label` (e.g. "seed 1")
    names the progress bar, shown in a terminal or a notebook. Research configs train with vae.research.fit.
    """
    changed = [f"{f}={getattr(config, f)!r}" for f in RESEARCH_FIELDS if getattr(config, f) != getattr(Config(), f)]
    if changed:
        raise ConfigError(f"config.{changed[0]} is a research variant, not trained by vae.fit: use vae.research.fit")
    return train(start_run(config, train_x, test_x, VAE.from_config, make_optimizer), callbacks, progress, label)


def start_run(config: Config, train_x, test_x, build_model, build_optimizer) -> Run:
    """The run's state before its first epoch: the model's initial weights and the generator seeded by config.seed."""
    check_images(train_x, "train_x")
    check_images(test_x, "test_x")
    device = pick_device(config.device)
    torch.manual_seed(config.seed)  # the model's initial weights
    model = build_model(config).to(device)
    generator = torch.Generator().manual_seed(config.seed)  # on the CPU: the same draws on every device
    test_x = model.protocol.scored(test_x.to(device))
    optimizer = build_optimizer(model, config.lr)
    return Run(config, model, optimizer, generator, train_x.to(device), test_x, kl_weight=config.beta)


def train(run: Run, callbacks=(), progress=True, label=None):
    """Train `run` to config.num_epochs (or until a callback stops it); return (model, history)."""
    for callback in callbacks:
        callback.on_fit_start(run)
    config, steps = run.config, -(-len(run.train_x) // run.config.batch_size)
    if (size := config.batch_size) > (n := len(run.train_x)):
        raise ConfigError(f"config.batch_size ({size}) is larger than the dataset ({n} images): use at most {n}")
    live = progress and live_bar()
    with tqdm(total=config.num_epochs * steps, initial=len(run.history) * steps, disable=not live) as bar:
        for epoch in range(len(run.history) + 1, config.num_epochs + 1):
            run.epoch = epoch
            for callback in callbacks:
                callback.on_epoch_start(run)
            if run.stop:
                break
            bar.set_description(f"{label + ': ' if label else ''}epoch {epoch}/{config.num_epochs}")
            start = time.perf_counter()
            run.model.train()
            sums = torch.zeros(steps, 2, device=run.train_x.device)  # each batch's summed (nll, kl)
            for i, x in enumerate(iterate_batches(run.train_x, config.batch_size, run.generator)):
                for callback in callbacks:
                    x = callback.on_batch(run, x)
                nll, kl = elbo_terms(run.model, x, run.generator)
                loss = (nll + run.kl_weight * kl).mean()  # kl_weight = 1: the negative ELBO
                run.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                run.optimizer.step()
                sums[i, 0], sums[i, 1] = nll.detach().sum(), kl.detach().sum()
                bar.update()
            if not torch.isfinite(sums).all():
                batch = int((~torch.isfinite(sums).all(dim=1)).nonzero()[0]) + 1
                raise TrainingDiverged(f"at epoch {epoch}, batch {batch}/{steps}", config.lr, run.history)
            train_nll, train_kl = (sums.sum(dim=0) / len(run.train_x)).tolist()
            train_seconds = time.perf_counter() - start
            run.model.eval()
            test = negative_elbo(run.model, run.test_x, seed=config.seed)
            record = {"epoch": epoch, "train_loss": train_nll + train_kl, "train_bce": train_nll, "train_kl": train_kl}
            record |= {"test_loss": test["loss"], "test_bce": test["nll"], "test_kl": test["kl"]}
            record |= {"train_seconds": train_seconds, "seconds": time.perf_counter() - start}
            run.history.append(record)
            for callback in callbacks:
                callback.on_epoch_end(run, record)
            bar.set_postfix({k.removesuffix("_loss"): f"{v:.1f}" for k, v in record.items() if k.endswith("_loss")})
    return run.model.eval(), run.history
