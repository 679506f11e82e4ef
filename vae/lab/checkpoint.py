"""Checkpoints: written atomically, their zip CRC32s checked, read with `torch.load(weights_only=True)`, validated."""

import io
import pickle
import re
import zipfile
from pathlib import Path

import torch

from vae.config import Config
from vae.lab.files import atomic_path, shape_problem
from vae.model import VAE
from vae.research import build_model

FORMAT_VERSION = 2
KEYS = ("format_version", "config", "model", "optimizer", "history", "epoch", "rng_state", "data_sizes")
RETRAIN = "Retrain, or resume from a copy."
# What every history record holds (vae.train.fit writes them): losses in nats per image, seconds; "val_loss" too
# with a validation split.
RECORD = {
    "epoch": int,
    **dict.fromkeys(("train_loss", "train_bce", "train_kl", "test_loss", "test_bce", "test_kl", "seconds"), float),
}
ADAM_STATE = {"step": torch.Tensor, "exp_avg": torch.Tensor, "exp_avg_sq": torch.Tensor}  # per parameter


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, damaged, unsafe, of another format, or of another model."""


def save_checkpoint(path, *, model, optimizer, config: Config, history: list, rng_state, data_sizes: dict) -> None:
    """Atomically save what resuming needs; a failed write (disk full) is an OutputError and keeps the old file."""
    state = {
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "history": history,  # one dict per epoch: {"epoch", "train_loss", "test_loss", ...}
        "epoch": len(history),
        "rng_state": rng_state,  # (S,) uint8: the generator's state after the last epoch
        "data_sizes": data_sizes,  # e.g. {"train_images": 60000, "test_images": 10000}
    }
    buffer = io.BytesIO()  # torch.save reports a failed file write as a vague RuntimeError; a file write is clear
    torch.save(state, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def _check_crcs(path: Path) -> None:
    """torch.load ignores the zip's CRC32s: check them first, so that flipped bytes never load silently."""
    if not path.exists():
        raise CheckpointError(
            f"no checkpoint at {path}: train one first with `python -m vae train --out {path.parent}`."
        )
    try:
        is_zip = zipfile.is_zipfile(path)  # False without an end record; BadZipFile if that record is damaged
        if is_zip:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()  # reads every record: None, or the first whose CRC32 mismatches
    except Exception as e:  # BadZipFile, EOFError...: the archive's directory or a record cannot even be read
        raise CheckpointError(f"{path} is damaged ({type(e).__name__}: {e}): retrain, or resume from a copy.") from e
    if not is_zip:
        raise CheckpointError(f"{path} is truncated or not a checkpoint (not a zip archive). {RETRAIN}")
    if bad:
        raise CheckpointError(f"{path} is damaged (checksum mismatch in {bad}): retrain, or resume from a copy.")


def _refusal_reason(error: pickle.UnpicklingError) -> str:
    """The part of torch's message that names what was refused (its advice to load unsafely is left out)."""
    found = re.search(r"unsupported (?:global: )?GLOBAL (\S+)", str(error), re.IGNORECASE)
    return f"a reference to `{found.group(1)}`" if found else "data that is not plain tensors"


def _describe(state) -> str:
    if isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values()):
        return (
            "it looks like a bare state_dict; load that with model.load_state_dict(torch.load(path, "
            "weights_only=True)) into a model of its shape, or train one with `python -m vae train`"
        )
    return f"it holds a {type(state).__name__}; train one with `python -m vae train`"


def _history_problem(history, epoch, config: Config) -> str | None:
    """What is wrong with a checkpoint's history: it needs one RECORD per epoch 1..n, where n is its `epoch`."""
    record = RECORD | ({"val_loss": float} if config.validation_images else {})
    found = shape_problem(history, [record], "history")
    if found:
        return found
    epochs = [r["epoch"] for r in history]
    if not history or epochs != list(range(1, len(history) + 1)) or epoch != len(history):
        return f"records of epochs {epochs} in a checkpoint of epoch {epoch!r}: one per epoch from 1 is needed"
    return None


def _optimizer_problem(optimizer) -> str | None:
    """What is wrong with an Adam state_dict: each parameter's state needs its step and two moments of one shape."""
    found = shape_problem(optimizer, {"state": dict, "param_groups": [dict]}, "optimizer")
    for i, moments in {} if found else optimizer["state"].items():
        found = shape_problem(moments, ADAM_STATE, f"optimizer['state'][{i!r}]")
        if not found and moments["exp_avg"].shape != moments["exp_avg_sq"].shape:
            found = f"optimizer['state'][{i!r}] holds moments of two shapes"
        if found:
            break
    return found


def _malformed(path: Path, field: str, why: str) -> CheckpointError:
    return CheckpointError(f"{path} has a malformed {field} ({why}): it was edited or damaged. {RETRAIN}")


def _check_fields(path: Path, state) -> None:
    """Raise CheckpointError unless `state` is a checkpoint of this format whose fields train.py can use."""
    if not isinstance(state, dict) or "format_version" not in state:
        raise CheckpointError(f"{path} is not a checkpoint of this package: {_describe(state)}.")
    if state["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {state['format_version']!r}, this package reads format {FORMAT_VERSION}. "
            "Retrain with this version, or load it with the package version that wrote it."
        )
    missing = [k for k in KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path} lacks {missing}: it is incomplete. Retrain.")
    try:
        config = Config.from_dict(state["config"])
    except (ValueError, TypeError) as e:  # ConfigError is a ValueError
        raise CheckpointError(f"{path} has an invalid config: {e}. Retrain.") from e
    rng, sizes, weights = state["rng_state"], state["data_sizes"], state["model"]
    if found := _history_problem(state["history"], state["epoch"], config):
        raise _malformed(path, "history", found)
    if found := _optimizer_problem(state["optimizer"]):
        raise _malformed(path, "optimizer", found)
    if not (isinstance(rng, torch.Tensor) and rng.dtype == torch.uint8 and rng.dim() == 1):
        raise _malformed(path, "rng_state", "a 1-D uint8 tensor is needed")
    if not (isinstance(sizes, dict) and all(type(n) is int and n >= 0 for n in sizes.values())):
        raise _malformed(path, "data_sizes", "a dict of counts >= 0 is needed")
    if not (isinstance(weights, dict) and all(isinstance(w, torch.Tensor) for w in weights.values())):
        raise _malformed(path, "model", "a dict of tensors is needed")
    for name, w in weights.items():
        if not torch.isfinite(w).all():
            raise _malformed(path, "model", f"{name} holds NaN or infinite values")


def load_checkpoint(path) -> dict:
    """Load a checkpoint onto the CPU, checksummed and without running any code from it, and check its fields."""
    path = Path(path)
    _check_crcs(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"refused to load {path}: it holds {_refusal_reason(e)}, which plain weights never need, and loading "
            "it could run code. Use only checkpoints written by this package, or retrain."
        ) from e
    except Exception as e:  # RuntimeError, EOFError, UnicodeDecodeError...: not a checkpoint of ours
        raise CheckpointError(f"{path} is truncated or not a checkpoint ({type(e).__name__}: {e}). {RETRAIN}") from e
    _check_fields(path, state)
    return state


def _shape(model_state: dict) -> str:
    """'784-200-20' for the weights of a VAE (input-hidden-latent), from its state_dict; gated ones say so."""
    latent, hidden = model_state["enc_mu.weight"].shape
    gated = " gated" if "enc.0.h.weight" in model_state else ""
    return f"{model_state['dec_out.weight'].shape[0]}-{hidden}-{latent}{gated}"


def load_weights(model: VAE, path, state: dict | None = None) -> None:
    """Copy a checkpoint's weights into `model`; weights of another shape are a CheckpointError saying which."""
    state = load_checkpoint(path) if state is None else state
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, TypeError) as e:
        try:
            found = f"a {_shape(state['model'])} VAE"
        except (KeyError, AttributeError, ValueError, TypeError):
            found = "weights of another model"
        raise CheckpointError(
            f"{path} holds {found}, not {_shape(model.state_dict())} (input-hidden-latent). Rebuild the model "
            "from the checkpoint with load_model(path), or train one of this shape."
        ) from e


def load_model(path, device="cpu", state: dict | None = None) -> tuple[VAE, Config, list]:
    """Rebuild the trained model from a checkpoint: (model in eval mode on `device`, its config, its history).

    `state`, if given, is the checkpoint already read by `load_checkpoint(path)`, so the file is read once.
    """
    state = load_checkpoint(path) if state is None else state
    config = Config.from_dict(state["config"])
    model = build_model(config)
    load_weights(model, path, state)
    return model.to(device).eval(), config, state["history"]
