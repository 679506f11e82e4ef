"""The one device rule: pick the device, and move data to where the model is; seeded draws stay on the CPU."""

import numpy as np
import torch

from vae.config import ConfigError


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda if available, else mps, else cpu; an explicit device must exist."""
    if name == "auto":
        available = torch.cuda.is_available(), torch.backends.mps.is_available()
        return torch.device("cuda" if available[0] else "mps" if available[1] else "cpu")
    device = torch.device(name)
    count = {"cuda": torch.cuda.device_count(), "mps": int(torch.backends.mps.is_available()), "cpu": 1}[device.type]
    if (device.index or 0) >= count:
        found = f"{count or 'no'} {device.type} device{'s' * (count != 1)}"
        raise ConfigError(f"config.device is {name!r}, but this machine has {found}; use 'auto' or 'cpu'")
    return device


def on_model_device(model, x: torch.Tensor) -> torch.Tensor:
    """x on the device of the model's weights: the one rule for where data meets a model (a no-op if it is there)."""
    return x.to(next(model.parameters()).device)


def to_numpy(a) -> np.ndarray:
    """An array of a tensor on any device (copied to the CPU), or of a list or an array."""
    return a.detach().cpu().numpy() if torch.is_tensor(a) else np.asarray(a)
