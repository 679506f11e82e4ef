"""Checkpoints: written atomically, read with `torch.load(weights_only=True)`, checked before use."""

import pickle
import zipfile
from pathlib import Path

import torch

from vae.config import Config
from vae.files import atomic_path
from vae.model import VAE

FORMAT_VERSION = 1
KEYS = ("format_version", "config", "model", "optimizer", "history", "epoch", "rng_state")


class CheckpointError(RuntimeError):
    """A checkpoint that is unreadable, unsafe, of another format, or of another model."""


def save_checkpoint(path, *, model, optimizer, config: Config, history: list, rng_state: torch.Tensor) -> None:
    """Atomically save everything needed to resume: a crash mid-save leaves the previous file intact."""
    state = {
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "history": history,
        "epoch": len(history),
        "rng_state": rng_state,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path) -> dict:
    """Load a checkpoint onto the CPU without running any code from it (weights_only=True), and check it."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"refused to load {path}: it holds objects that plain weights never need, and loading them could "
            f"run code. Use only checkpoints written by this package. ({str(e).splitlines()[0]})"
        ) from e
    except (EOFError, RuntimeError, zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(f"{path} is truncated or not a checkpoint ({e}). Retrain, or resume from a copy.") from e
    if not isinstance(state, dict) or "format_version" not in state:
        raise CheckpointError(f"{path} is not a checkpoint of this package (no format_version).")
    if state["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {state['format_version']}, this package reads format {FORMAT_VERSION}. "
            "Retrain with this version, or load it with the package version that wrote it."
        )
    missing = [k for k in KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path} lacks {missing}: it is incomplete. Retrain.")
    return state


def load_model(path, device="cpu") -> tuple[VAE, Config, list]:
    """Rebuild the trained model from a checkpoint: (model in eval mode on `device`, its config, its history)."""
    state = load_checkpoint(path)
    config = Config.from_dict(state["config"])
    model = VAE.from_config(config)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), config, state["history"]
