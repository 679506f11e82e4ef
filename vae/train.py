"""Training: `fit` runs Adam on the negative ELBO and returns the model and a per-epoch history."""

import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

import vae.progress
from vae.config import RUNTIME_FIELDS, Config, ConfigError, run_name
from vae.data import VALIDATION_BINARIZATION_SEED, check_images, fixed_binarization, iterate_batches
from vae.lab.checkpoint import CheckpointError, load_checkpoint, load_model, load_weights, save_checkpoint
from vae.lab.files import exclusive_lock, remove_stale_temporaries
from vae.loss import dataset_elbo, elbo_terms
from vae.model import VAE

CHECKPOINT_NAME = "checkpoint.pt"
BEST_NAME = "best.pt"  # with a validation split: the checkpoint of the epoch with the lowest validation loss


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


def normalize_gradients(model) -> None:
    """AdamNormGrad's step (the literature's optimizer): each parameter's gradient divided by its L2 norm."""
    for p in model.parameters():
        if p.grad is not None:
            p.grad.div_(p.grad.norm() + 1e-7)


def kl_weight(config: Config, epoch: int) -> float:
    """The KL's weight in epoch `epoch` (from 1): beta, reached linearly over `warmup_epochs` (epoch / warmup)."""
    return config.beta * min(1.0, epoch / config.warmup_epochs) if config.warmup_epochs else config.beta


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


def epoch_seed(seed: int, epoch: int) -> int:
    """A seed for epoch `epoch` of the run of `seed`: fresh noise every epoch, the same on every rerun and resume."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0] >> 1)  # < 2**63, as torch takes


# How a validation split is scored, stored with the data sizes of a run that has one: 2, its own binarisation seed
# and a fresh z each epoch; 1 (before 2026-12-02), the test set's binarisation and the same z every epoch.
VALIDATION_PROTOCOL = 2


def data_sizes(train_x, test_x, config: Config | None = None) -> dict[str, int]:
    """The data subset a run is trained and scored on, as stored in its checkpoint; with a validation split, its
    VALIDATION_PROTOCOL too, so that a run is never continued under another protocol than it began with."""
    sizes = {"train_images": len(train_x), "test_images": len(test_x)}
    if config is not None and config.validation_images:
        sizes["validation_protocol"] = VALIDATION_PROTOCOL
    return sizes


def reuse_problem(state: dict, config: Config, sizes: dict, any_epochs: bool = True) -> str | None:
    """Why a checkpoint cannot continue (or, with any_epochs=False, stand for) a run of `config`; None if it can."""
    keep = (*RUNTIME_FIELDS, "num_epochs")
    saved = {k: v for k, v in Config.from_dict(state["config"]).to_dict().items() if k not in keep}  # defaults filled
    wanted = {k: v for k, v in config.to_dict().items() if k not in keep}
    if saved != wanted:
        diff = {k: (saved.get(k), wanted.get(k)) for k in saved.keys() | wanted.keys() if saved.get(k) != wanted.get(k)}
        return f"it was trained with another config: (checkpoint, requested) = {diff}"
    found, ours = (d.get("validation_protocol") for d in (state["data_sizes"], sizes))
    if found != ours:  # before protocol 2, none was stored
        return f"its validation split was scored by protocol {found or 1}, this code scores it by protocol {ours}"
    if state["data_sizes"] != sizes:
        return f"it was trained on another data subset: {state['data_sizes']}, requested {sizes}"
    epochs = len(state["history"])
    finished = epochs == config.num_epochs or stopped_early(state["history"], config)
    if epochs > config.num_epochs or (not any_epochs and not finished):
        return f"it holds {epochs} epochs, and {config.num_epochs} were asked for"
    return None


def _previous_state(path: Path, config: Config, sizes: dict, resume: bool, overwrite: bool) -> dict | None:
    """The checkpoint to continue from, None to start afresh; an existing one is replaced only on request."""
    if overwrite or not path.exists():
        return None
    if not resume:
        raise CheckpointError(
            f"{path} already holds a run. Add --resume to continue it, --overwrite to replace it, "
            "or choose another --out."
        )
    state = load_checkpoint(path)
    problem = reuse_problem(state, config, sizes)
    if problem:
        raise CheckpointError(
            f"cannot resume {path}: {problem}. Resume with the same settings, or write into another folder "
            "(train: --out; report and sweep: --runs-dir)."
        )
    return state


def fit(
    config: Config,
    train_x,
    test_x,
    out_dir=None,
    resume=False,
    overwrite=False,
    callback=None,
    progress=True,
    label=None,
):
    """Train a VAE on `train_x` (N, 784); return (model, history), one history record per epoch.

    Each record holds train/test loss, bce and kl in nats per image (train: averaged over the epoch's
    batches; test: the whole of `test_x`, one seeded z per image), and wall-clock seconds.
    With `out_dir`, a checkpoint is saved atomically after every epoch; `resume=True` continues it, and an
    existing checkpoint is otherwise refused unless `overwrite=True`. The folder is locked meanwhile, so that
    a second run into it fails at once. `callback(record)` is called after each epoch.
    With `config.validation_images`, the last N images of `train_x` are held out: each record gets their
    -ELBO as `val_loss` (a fresh z per image each epoch), `best.pt` keeps the epoch where it is lowest, and
    `config.patience` stops training early. `label` (e.g. "seed 1") prefixes the progress bar and log lines.
    """
    check_images(train_x, "train_x")
    check_images(test_x, "test_x")
    if config.validation_images >= len(train_x):
        raise ConfigError(
            f"config.validation_images ({config.validation_images}) leaves no training images out of {len(train_x)}"
        )
    n_train, held = len(train_x) - config.validation_images, config.validation_images
    if config.batch_size > n_train:
        held_out = f" once {held} are held out for validation" if held else ""
        raise ConfigError(
            f"config.batch_size ({config.batch_size}) is larger than the dataset ({n_train} images{held_out}): "
            f"use at most {n_train}"
        )
    device = pick_device(config.device)
    if out_dir is None:
        return _train(config, device, train_x, test_x, None, None, callback, progress, label)
    path = Path(out_dir) / CHECKPOINT_NAME
    with exclusive_lock(out_dir):
        remove_stale_temporaries(out_dir)  # what a run killed mid-save left behind
        state = _previous_state(path, config, data_sizes(train_x, test_x, config), resume, overwrite)
        return _train(config, device, train_x, test_x, path, state, callback, progress, label)


def _restore(path, state, model, optimizer, generator) -> list:
    """Load a checkpoint's weights, optimizer and RNG state; return its history."""
    load_weights(model, path, state)
    shapes = [p.shape for group in optimizer.param_groups for p in group["params"]]
    moments = state["optimizer"]["state"]  # their form was checked by load_checkpoint; here, that they fit
    if set(moments) != set(range(len(shapes))) or any(moments[i]["exp_avg"].shape != s for i, s in enumerate(shapes)):
        raise CheckpointError(  # fused Adam would crash the process on moments of another shape
            f"{path} has an optimizer state that does not fit its weights: it was edited or damaged. "
            "Retrain, or resume from a copy."
        )
    try:
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["rng_state"])
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path} has a damaged optimizer or RNG state ({e}). Retrain.") from e
    return list(state["history"])


def _train(config: Config, device, train_x, test_x, path, state, callback, progress: bool, label):
    sizes = data_sizes(train_x, test_x, config)
    train_x, test_x = train_x.to(device), test_x.to(device)
    n_train = len(train_x) - config.validation_images
    train_x, val_x = train_x[:n_train], train_x[n_train:]  # the validation split: the last images, unshuffled
    if config.binarize:
        test_x = fixed_binarization(test_x)  # the same binary test set for every run and seed
        val_x = fixed_binarization(val_x, VALIDATION_BINARIZATION_SEED)  # drawn independently of the test set
    torch.manual_seed(config.seed)  # the model's initial weights
    model = VAE.from_config(config).to(device)
    optimizer = make_optimizer(model, config.lr)
    generator = torch.Generator(device=device).manual_seed(config.seed)  # shuffling and eps
    history = _restore(path, state, model, optimizer, generator) if state else []

    steps = -(-len(train_x) // config.batch_size)
    live = progress and vae.progress.live_bar()  # else one line per epoch
    bar = tqdm(total=config.num_epochs * steps, initial=len(history) * steps, disable=not live, unit="batch")
    with bar:
        for epoch in range(len(history) + 1, config.num_epochs + 1):
            if stopped_early(history, config):
                break
            bar.set_description(f"{label + ': ' if label else ''}epoch {epoch}/{config.num_epochs}")
            start = time.perf_counter()
            model.train()
            train = _train_epoch(model, optimizer, generator, config, train_x, bar, kl_weight(config, epoch))
            if not torch.isfinite(train).all():
                batch = int((~torch.isfinite(train).all(dim=1)).nonzero()[0]) + 1
                kept = (
                    f"the checkpoint of epoch {epoch - 1} in {path} is kept"
                    if path and history
                    else "nothing was saved"
                )
                raise TrainingDiverged(
                    f"the loss became NaN or infinite at epoch {epoch}, batch {batch}/{steps}; {kept}. "
                    f"Lower the learning rate (now {config.lr}) or check the data for NaNs.",
                    history,
                )
            train_bce, train_kl = (train.sum(dim=0) / len(train_x)).tolist()
            train_seconds = time.perf_counter() - start
            model.eval()
            test = dataset_elbo(model, test_x, seed=config.seed, likelihood=config.likelihood)
            record = {
                "epoch": epoch,
                "train_loss": train_bce + train_kl,
                "train_bce": train_bce,
                "train_kl": train_kl,
                "test_loss": test["loss"],
                "test_bce": test["bce"],
                "test_kl": test["kl"],
                "train_seconds": train_seconds,  # the optimisation steps alone
            }
            if len(val_x):  # the -ELBO (beta = 1) of the held-out images: what early stopping watches
                seed = epoch_seed(config.seed, epoch)
                record["val_loss"] = dataset_elbo(model, val_x, seed=seed, likelihood=config.likelihood)["loss"]
            record["seconds"] = time.perf_counter() - start  # with the evaluations
            history.append(record)
            if path is not None:
                best = len(val_x) and record["val_loss"] <= min(r["val_loss"] for r in history)
                for name in [BEST_NAME, CHECKPOINT_NAME] if best else [CHECKPOINT_NAME]:
                    save_checkpoint(path.parent / name, model=model, optimizer=optimizer, config=config,
                                    history=history, rng_state=generator.get_state(), data_sizes=sizes)  # fmt: skip
            _report_epoch(bar, history, config.num_epochs, progress and not live, label)
            if callback is not None:
                callback(record)
    return model.eval(), history


def _train_epoch(model, optimizer, generator, config: Config, train_x, bar, beta: float) -> torch.Tensor:
    """One pass over `train_x` in shuffled batches, KL weighted by `beta`; return each batch's summed (bce, kl)."""
    steps = -(-len(train_x) // config.batch_size)
    sums = torch.zeros(steps, 2, device=train_x.device)  # read once per epoch, not per batch
    for i, x in enumerate(iterate_batches(train_x, config.batch_size, generator)):
        if config.binarize:
            x = torch.bernoulli(x, generator=generator)  # dynamic binarisation: pixel ~ Bernoulli(grey level)
        with torch.autocast(train_x.device.type, torch.bfloat16, enabled=config.precision == "bf16"):
            logits, mu, logvar = model(x, generator)
        bce, kl = elbo_terms(x, logits.float(), mu.float(), logvar.float(), config.likelihood)  # the loss in fp32
        loss = (bce + beta * kl).mean()  # nats per image; beta = 1 is the negative ELBO
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.optimizer == "adam-normgrad":
            normalize_gradients(model)
        optimizer.step()
        sums[i, 0], sums[i, 1] = bce.detach().sum(), kl.detach().sum()
        bar.update()
    return sums


def _report_epoch(bar, history: list, num_epochs: int, as_line: bool, label) -> None:
    """The bar's postfix; or, where there is no live bar (a log file), one line per epoch on stderr.

    With a validation split, both say the best validation epoch so far: the one best.pt holds.
    """
    record = history[-1]
    train, test = f"{record['train_loss']:.1f}", f"{record['test_loss']:.1f}"
    val = {}
    if "val_loss" in record:
        best = min(history, key=lambda r: r["val_loss"])
        val = {"val": f"{record['val_loss']:.1f}", "best": f"epoch {best['epoch']}"}
    bar.set_postfix(train=train, **val, test=test)
    if as_line:
        shown = f"val {val['val']} (best: {val['best']}), " if val else ""
        print(
            f"{label + ': ' if label else ''}epoch {record['epoch']}/{num_epochs}: train {train}, {shown}"
            f"test {test} nats per image ({record['seconds']:.1f} s)",
            file=sys.stderr,
            flush=True,
        )


def train_or_load(config: Config, train_x, test_x, runs_dir, callback=None, progress: bool = True, label=None):
    """(model, history, checkpoint path) of `config`: loaded from `<runs_dir>/<run_name>/` if finished, else trained.

    A finished checkpoint is reused only when its config (device and data_dir aside), its epochs and its data
    subset all match; a run that stopped early is resumed; a checkpoint that matches neither is an error.
    """
    path = Path(runs_dir) / run_name(config) / CHECKPOINT_NAME
    state = load_checkpoint(path) if path.is_file() else None
    if state is not None and reuse_problem(state, config, data_sizes(train_x, test_x, config), False) is None:
        model, _, history = load_model(path, pick_device(config.device), state)
        return model, history, path
    model, history = fit(
        config, train_x, test_x, path.parent, resume=True, callback=callback, progress=progress, label=label
    )
    return model, history, path
