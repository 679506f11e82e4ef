"""Runs on disk: `fit` with a checkpoint after every epoch (atomic, resumable bit for bit, locked against a second
run into the same folder), and `train_or_load`, which reuses a finished run of the same config."""

import sys
from pathlib import Path

from vae import research
from vae.config import RUNTIME_FIELDS, Config, run_name
from vae.lab.checkpoint import CheckpointError, load_checkpoint, load_model, load_weights, save_checkpoint
from vae.lab.files import OUTPUT_ARGS, exclusive_lock, mismatch, remove_stale_temporaries
from vae.progress import live_bar
from vae.research.training import VALIDATION_PROTOCOL, stopped_early
from vae.train import Callback, Run, TrainingDiverged, pick_device

CHECKPOINT_NAME = "checkpoint.pt"
BEST_NAME = "best.pt"  # with a validation split: the checkpoint of the epoch with the lowest validation loss


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
    if diff := mismatch(saved, wanted):
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
            f"{path} already holds a run. Pass resume=True to continue it, overwrite=True to replace it, "
            "or choose another out_dir."
        )
    state = load_checkpoint(path)
    problem = reuse_problem(state, config, sizes)
    if problem:
        raise CheckpointError(
            f"cannot resume {path}: {problem}. Resume with the same settings, or write into another folder "
            f"{OUTPUT_ARGS}."
        )
    return state


class Checkpointing(Callback):
    """Restores a checkpoint's weights, optimizer, RNG state and history; saves one atomically after every epoch,
    and best.pt too when the validation loss is the lowest so far."""

    def __init__(self, path: Path, state: dict | None, sizes: dict):
        self.path, self.state, self.sizes = path, state, sizes

    def on_fit_start(self, run: Run) -> None:
        if self.state is None:
            return
        load_weights(run.model, self.path, self.state)
        shapes = [p.shape for group in run.optimizer.param_groups for p in group["params"]]
        moments = self.state["optimizer"]["state"]  # checked by load_checkpoint; here, that they fit the weights
        if set(moments) != set(range(len(shapes))) or any(
            moments[i]["exp_avg"].shape != s for i, s in enumerate(shapes)
        ):
            raise CheckpointError(  # fused Adam would crash the process on moments of another shape
                f"{self.path} has an optimizer state that does not fit its weights: it was edited or damaged. "
                "Retrain, or resume from a copy."
            )
        try:
            run.optimizer.load_state_dict(self.state["optimizer"])
            run.generator.set_state(self.state["rng_state"])
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{self.path} has a damaged optimizer or RNG state ({e}). Retrain.") from e
        run.history = list(self.state["history"])

    def on_epoch_end(self, run: Run, record: dict) -> None:
        best = "val_loss" in record and record["val_loss"] <= min(r["val_loss"] for r in run.history)
        state = dict(model=run.model, optimizer=run.optimizer, config=run.config, history=run.history)
        for name in [BEST_NAME, CHECKPOINT_NAME] if best else [CHECKPOINT_NAME]:
            save_checkpoint(
                self.path.parent / name, **state, rng_state=run.generator.get_state(), data_sizes=self.sizes
            )


class EpochLog(Callback):
    """Where there is no live progress bar (a log file), one line per epoch on stderr; with a validation split, it
    names the best validation epoch so far: the one best.pt holds."""

    def __init__(self, label: str | None):
        self.prefix = f"{label}: " if label else ""

    def on_epoch_end(self, run: Run, record: dict) -> None:
        val = ""
        if "val_loss" in record:
            best = min(run.history, key=lambda r: r["val_loss"])["epoch"]
            val = f"val {record['val_loss']:.1f} (best: epoch {best}), "
        print(
            f"{self.prefix}epoch {record['epoch']}/{run.config.num_epochs}: train {record['train_loss']:.1f}, {val}"
            f"test {record['test_loss']:.1f} nats per image ({record['seconds']:.1f} s)",
            file=sys.stderr,
            flush=True,
        )


class EachEpoch(Callback):
    """Calls `function(record)` after each epoch."""

    def __init__(self, function):
        self.function = function

    def on_epoch_end(self, run: Run, record: dict) -> None:
        self.function(record)


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
    """vae.research.fit with a checkpoint in `out_dir` after every epoch; return (model, history).

    `resume=True` continues a checkpoint of the same config and data; an existing checkpoint is otherwise refused
    unless `overwrite=True`. The folder is locked meanwhile, so that a second run into it fails at once.
    `callback(record)` is called after each epoch; `label` (e.g. "seed 1") names the progress bar and log lines.
    """
    extra = [EpochLog(label)] if progress and not live_bar() else []
    extra += [EachEpoch(callback)] if callback else []
    if out_dir is None:
        return research.fit(config, train_x, test_x, extra, progress, label)
    path = Path(out_dir) / CHECKPOINT_NAME
    with exclusive_lock(out_dir):
        remove_stale_temporaries(out_dir)  # what a run killed mid-save left behind
        sizes = data_sizes(train_x, test_x, config)
        state = _previous_state(path, config, sizes, resume, overwrite)
        try:
            return research.fit(config, train_x, test_x, [Checkpointing(path, state, sizes), *extra], progress, label)
        except TrainingDiverged as e:
            kept = f"the checkpoint of epoch {len(e.history)} in {path} is kept" if e.history else "nothing was saved"
            raise TrainingDiverged(e.where, e.lr, e.history, kept) from None


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
