"""Training: `fit` runs Adam on the negative ELBO and returns the model and a per-epoch history."""

import time
from contextlib import ExitStack
from pathlib import Path

import torch
from tqdm.auto import tqdm

from vae.checkpoint import CheckpointError, load_checkpoint, load_weights, save_checkpoint
from vae.config import Config, ConfigError
from vae.data import check_images, fixed_binarization, iterate_batches
from vae.files import exclusive_lock, remove_stale_temporaries
from vae.loss import dataset_elbo, elbo_terms
from vae.model import VAE

CHECKPOINT_NAME = "checkpoint.pt"
# Fields that may differ between a checkpoint and the config that resumes it.
RESUMABLE_CHANGES = ("num_epochs", "device", "data_dir")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept, and `.history` holds the good epochs."""

    def __init__(self, message: str, history: list):
        super().__init__(message)
        self.history = history


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda if available, else mps, else cpu; an explicit device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = name.split(":")[0]
    if (kind == "cuda" and not torch.cuda.is_available()) or (kind == "mps" and not torch.backends.mps.is_available()):
        raise ConfigError(f"config.device is {name!r}, but this machine has no {kind} device; use 'auto' or 'cpu'")
    return torch.device(name)


def make_optimizer(model, lr: float) -> torch.optim.Adam:
    """Adam, fused into one kernel where this torch supports it (CPU since 2.4): ~20% faster steps here."""
    try:
        return torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(model.parameters(), lr=lr)


def _resume_state(path: Path, config: Config) -> dict:
    state = load_checkpoint(path)
    saved = {k: v for k, v in state["config"].items() if k not in RESUMABLE_CHANGES}
    wanted = {k: v for k, v in config.to_dict().items() if k not in RESUMABLE_CHANGES}
    if saved != wanted:
        diff = {k: (saved.get(k), wanted.get(k)) for k in saved.keys() | wanted.keys() if saved.get(k) != wanted.get(k)}
        raise CheckpointError(
            f"{path} was trained with another config; (checkpoint, requested) = {diff}. "
            "Resume with the same settings, or train afresh into another --out folder."
        )
    return state


def fit(config: Config, train_x, test_x, out_dir=None, resume: bool = False, callback=None, progress: bool = True):
    """Train a VAE on `train_x` (N, 784); return (model, history), one history record per epoch.

    Each record holds train/test loss, bce and kl in nats per image (train: averaged over the epoch's
    batches; test: the whole of `test_x`, one seeded z per image), and wall-clock seconds.
    With `out_dir`, a checkpoint is saved atomically after every epoch, and `resume=True` continues from it;
    the folder is locked meanwhile, so that a second run into it fails at once (vae.files.OutputError).
    `callback(record)` is called after each epoch.
    """
    check_images(train_x, "train_x")
    check_images(test_x, "test_x")
    if config.batch_size > len(train_x):
        raise ConfigError(
            f"config.batch_size ({config.batch_size}) is larger than the dataset ({len(train_x)} images): "
            f"use at most {len(train_x)}"
        )
    device = pick_device(config.device)
    with ExitStack() as stack:  # what to release however training ends: the lock, the progress bar
        if out_dir is not None:
            stack.enter_context(exclusive_lock(out_dir))
            remove_stale_temporaries(out_dir)  # what a run killed mid-save left behind
        return _fit(config, device, train_x, test_x, out_dir, resume, callback, progress, stack)


def _fit(config: Config, device, train_x, test_x, out_dir, resume: bool, callback, progress: bool, stack):
    train_x, test_x = train_x.to(device), test_x.to(device)
    if config.binarize:
        test_x = fixed_binarization(test_x)  # the same binary test set for every run and seed
    torch.manual_seed(config.seed)  # the model's initial weights
    model = VAE.from_config(config).to(device)
    optimizer = make_optimizer(model, config.lr)
    generator = torch.Generator(device=device).manual_seed(config.seed)  # shuffling and eps
    history = []

    path = Path(out_dir) / CHECKPOINT_NAME if out_dir is not None else None
    if resume and path is not None and path.exists():
        state = _resume_state(path, config)
        load_weights(model, path, state)
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["rng_state"])
        history = state["history"]

    steps = -(-len(train_x) // config.batch_size)
    # Closed by `stack` on errors too, so that an error message starts on its own line.
    bar = stack.enter_context(
        tqdm(total=config.num_epochs * steps, initial=len(history) * steps, disable=not progress, unit="batch")
    )
    for epoch in range(len(history) + 1, config.num_epochs + 1):
        bar.set_description(f"epoch {epoch}/{config.num_epochs}")
        start = time.perf_counter()
        model.train()
        sums = torch.zeros(steps, 2, device=device)  # per batch: summed bce, kl; read once per epoch
        for i, x in enumerate(iterate_batches(train_x, config.batch_size, generator)):
            if config.binarize:
                x = torch.bernoulli(x, generator=generator)  # dynamic binarisation: pixel ~ Bernoulli(grey level)
            logits, mu, logvar = model(x, generator)
            bce, kl = elbo_terms(x, logits, mu, logvar)
            loss = (bce + config.beta * kl).mean()  # nats per image; beta = 1 is the negative ELBO
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sums[i, 0], sums[i, 1] = bce.detach().sum(), kl.detach().sum()
            bar.update()
        finite = torch.isfinite(sums).all(dim=1)
        if not finite.all():
            batch = int((~finite).nonzero()[0]) + 1
            kept = f"the checkpoint of epoch {epoch - 1} in {path} is kept" if path and history else "nothing was saved"
            raise TrainingDiverged(
                f"the loss became NaN or infinite at epoch {epoch}, batch {batch}/{steps}; {kept}. "
                f"Lower the learning rate (now {config.lr}) or check the data for NaNs.",
                history,
            )
        train_bce, train_kl = (sums.sum(dim=0) / len(train_x)).tolist()
        train_seconds = time.perf_counter() - start
        model.eval()
        test = dataset_elbo(model, test_x, seed=config.seed)
        record = {
            "epoch": epoch,
            "train_loss": train_bce + train_kl,
            "train_bce": train_bce,
            "train_kl": train_kl,
            "test_loss": test["loss"],
            "test_bce": test["bce"],
            "test_kl": test["kl"],
            "train_seconds": train_seconds,  # the optimisation steps alone
            "seconds": time.perf_counter() - start,  # with the test-set evaluation
        }
        history.append(record)
        if path is not None:
            save_checkpoint(
                path, model=model, optimizer=optimizer, config=config, history=history, rng_state=generator.get_state()
            )
        bar.set_postfix(train=f"{record['train_loss']:.1f}", test=f"{record['test_loss']:.1f}")
        if callback is not None:
            callback(record)
    return model.eval(), history
