"""Checkpoints: written atomically, their zip CRC32s checked, read with `torch.load(weights_only=True)`, validated."""

import io
import pickle
import re
import zipfile
from pathlib import Path

import torch

from vae.config import Config
from vae.files import atomic_path
from vae.model import VAE

FORMAT_VERSION = 2
KEYS = ("format_version", "config", "model", "optimizer", "history", "epoch", "rng_state", "data_sizes")
RETRAIN = "Retrain, or resume from a copy."


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
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is truncated or not a checkpoint (not a zip archive). {RETRAIN}")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()  # reads every record: None, or the first whose CRC32 mismatches
    except Exception as e:  # BadZipFile, EOFError...: a record cannot even be read
        raise CheckpointError(f"{path} is damaged (checksum mismatch: {e}): retrain, or resume from a copy.") from e
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


def _is_history(history) -> bool:
    """A list of per-epoch dicts, each with an int epoch and a number (not a bool) for train_loss and test_loss."""
    return isinstance(history, list) and all(
        isinstance(r, dict)
        and type(r.get("epoch")) is int
        and {type(r.get("train_loss")), type(r.get("test_loss"))} <= {int, float}
        for r in history
    )


def _malformed(path: Path, field: str) -> CheckpointError:
    return CheckpointError(f"{path} has a malformed {field}: it was edited or damaged. {RETRAIN}")


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
        Config.from_dict(state["config"])
    except (ValueError, TypeError) as e:  # ConfigError is a ValueError
        raise CheckpointError(f"{path} has an invalid config: {e}. Retrain.") from e
    rng, sizes = state["rng_state"], state["data_sizes"]
    if not _is_history(state["history"]):
        raise _malformed(path, "history (a list of dicts, each with an int epoch and numbers train_loss, test_loss)")
    if not (isinstance(rng, torch.Tensor) and rng.dtype == torch.uint8 and rng.dim() == 1):
        raise _malformed(path, "rng_state (a 1-D uint8 tensor)")
    if not (isinstance(sizes, dict) and all(type(n) is int and n >= 0 for n in sizes.values())):
        raise _malformed(path, "data_sizes (a dict of counts >= 0)")


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
    model = VAE.from_config(config)
    load_weights(model, path, state)
    return model.to(device).eval(), config, state["history"]
