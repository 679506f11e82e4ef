"""Checkpoints: written atomically, read with `torch.load(weights_only=True)`, checked before use."""

import io
import pickle
import re
import zipfile
from pathlib import Path

import torch

from vae.config import Config
from vae.files import atomic_path
from vae.model import VAE

FORMAT_VERSION = 1
KEYS = ("format_version", "config", "model", "optimizer", "history", "epoch", "rng_state")


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable, unsafe, of another format, or of another model."""


def save_checkpoint(path, *, model, optimizer, config: Config, history: list, rng_state: torch.Tensor) -> None:
    """Atomically save everything needed to resume: a crash mid-save leaves the previous file intact.

    A failed write (disk full) raises vae.files.OutputError.
    """
    state = {
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "history": history,
        "epoch": len(history),
        "rng_state": rng_state,
    }
    buffer = io.BytesIO()  # torch.save reports a failed file write as a vague RuntimeError; a file write is clear
    torch.save(state, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def _refusal_reason(error: pickle.UnpicklingError) -> str:
    """The part of torch's message that names what was refused (its advice to load unsafely is left out)."""
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
    return f"a reference to `{found.group(1)}`" if found else "data that is not plain tensors"


def _describe(state) -> str:
    if isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values()):
        return (
            "it looks like a bare state_dict; load that with model.load_state_dict(torch.load(path, "
            "weights_only=True)) into a model of its shape, or train one with `python -m vae train`"
        )
    return f"it holds a {type(state).__name__}; train one with `python -m vae train`"


def load_checkpoint(path) -> dict:
    """Load a checkpoint onto the CPU without running any code from it (weights_only=True), and check it."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise CheckpointError(
            f"no checkpoint at {path}: train one first with `python -m vae train --out {path.parent}`."
        ) from e
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"refused to load {path}: it holds {_refusal_reason(e)}, which plain weights never need, and loading "
            "it could run code. Use only checkpoints written by this package, or retrain."
        ) from e
    except (EOFError, RuntimeError, zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(f"{path} is truncated or not a checkpoint ({e}). Retrain, or resume from a copy.") from e
    if not isinstance(state, dict) or "format_version" not in state:
        raise CheckpointError(f"{path} is not a checkpoint of this package: {_describe(state)}.")
    if state["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {state['format_version']}, this package reads format {FORMAT_VERSION}. "
            "Retrain with this version, or load it with the package version that wrote it."
        )
    missing = [k for k in KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path} lacks {missing}: it is incomplete. Retrain.")
    try:
        Config.from_dict(state["config"])
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path} has an invalid config: {e}. Retrain.") from e
    return state


def _shape(model_state: dict) -> str:
    """'784-200-20' for the weights of a VAE (input-hidden-latent), from its state_dict."""
    hidden, inputs = model_state["enc.weight"].shape
    return f"{inputs}-{hidden}-{model_state['enc_mu.weight'].shape[0]}"


def load_weights(model: VAE, path, state: dict | None = None) -> None:
    """Copy a checkpoint's weights into `model`; weights of another shape are a CheckpointError saying which."""
    state = load_checkpoint(path) if state is None else state
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as e:
        try:
            found = f"a {_shape(state['model'])} VAE"
        except (KeyError, AttributeError, ValueError):
            found = "weights of another model"
        raise CheckpointError(
            f"{path} holds {found}, not {_shape(model.state_dict())} (input-hidden-latent). Rebuild the model "
            "from the checkpoint with load_model(path), or train one of this shape."
        ) from e


def load_model(path, device="cpu") -> tuple[VAE, Config, list]:
    """Rebuild the trained model from a checkpoint: (model in eval mode on `device`, its config, its history)."""
    state = load_checkpoint(path)
    config = Config.from_dict(state["config"])
    model = VAE.from_config(config)
    load_weights(model, path, state)
    return model.to(device).eval(), config, state["history"]
