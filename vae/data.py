"""Fashion-MNIST (and MNIST) as whole tensors on a device, and the shuffled minibatches that training draws.
The four raw files are fetched and checked by vae/raw_files.py (the Debian package, a .gz, or torchvision)."""

from typing import NamedTuple

import torch

from vae.raw_files import TORCHVISION_CLASS, DataError, ensure_raw_files  # noqa: F401 (DataError: vae.data's too)


class Data(NamedTuple):
    """The two splits: x (N, 784) float32 pixels in [0, 1], y (N,) int64 class numbers."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


class GreyLevels:
    """The original report's data protocol: a model is trained and scored on the grey levels as loaded."""

    def scored(self, x: torch.Tensor) -> torch.Tensor:
        """The images a model of this protocol is scored on, from grey levels x (N, 784)."""
        return x


def class_names(dataset: str) -> list[str]:
    """The 10 class names, indexed by label (e.g. 0 -> 'T-shirt/top')."""
    return list(TORCHVISION_CLASS[dataset].classes)


def load_split(dataset: str, split: str, data_dir="data", device="cpu", download: bool = True):
    """Return (x, y) for a whole split: x (N, 784) float32 in [0, 1], y (N,) int64, both on `device`."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    ensure_raw_files(dataset, data_dir, download=download)
    ds = TORCHVISION_CLASS[dataset](str(data_dir), train=split == "train", download=False)
    x = ds.data.reshape(len(ds.data), -1).to(device=device, dtype=torch.float32).div_(255.0)  # (N, 784)
    return x, ds.targets.to(device)


def load_data(dataset: str, data_dir="data", device="cpu", train_images=None, test_images=None) -> Data:
    """Both splits, each cut to its first `train_images` / `test_images` if given."""
    out = []
    for split, n, option in (("train", train_images, "train_images"), ("test", test_images, "test_images")):
        x, y = load_split(dataset, split, data_dir, device)
        if n is not None and not (type(n) is int and 1 <= n <= len(x)):
            raise ValueError(f"{option} must be an int in [1, {len(x)}] (the {split} split's size), got {n!r}")
        out += [x, y] if n is None else [x[:n].clone(), y[:n].clone()]  # a copy frees the whole split
    return Data(*out)


def check_images(x: torch.Tensor, name: str = "x") -> None:
    """Raise ValueError unless `x` is (N, 784) floating-point pixels in [0, 1], as `load_split` returns them."""
    if x.dim() != 2 or x.shape[1] != 784 or not x.is_floating_point():
        raise ValueError(f"{name} must be (N, 784) floats in [0, 1], got {tuple(x.shape)} {x.dtype}: use load_split")
    lo, hi = torch.aminmax(x)  # NaN if any pixel is NaN
    if not (0 <= lo.item() and hi.item() <= 1):  # NaN fails every comparison
        i = int((~((x >= 0) & (x <= 1)).all(dim=1)).nonzero()[0])
        found = "NaN" if x[i].isnan().any() else f"values in [{x[i].min().item()}, {x[i].max().item()}]"
        raise ValueError(
            f"{name} must hold pixel values in [0, 1], but image {i} has {found}: "
            "divide 0-255 pixels by 255, and remove images with NaNs."
        )


def iterate_batches(x: torch.Tensor, batch_size: int, generator: torch.Generator):
    """Yield shuffled minibatches of `x` (the last may be smaller), in an order drawn on the generator's device."""
    order = torch.randperm(len(x), generator=generator, device=generator.device).to(x.device)
    for start in range(0, len(x), batch_size):
        yield x[order[start : start + batch_size]]
