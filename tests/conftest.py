import contextlib
import errno
import gzip
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vae import Config
from vae import raw_files as vraw
from vae.lab import files as vfiles

REPO = Path(__file__).resolve().parents[1]
REAL_DATA_DIR = Path(os.environ.get("VAE_DATA_DIR", REPO / "data"))


def make_images(n: int, seed: int = 0) -> torch.Tensor:
    """n synthetic 'images' (n, 784) in [0, 1]: noisy copies of 4 random prototypes, so a VAE can learn them."""
    g = torch.Generator().manual_seed(seed)
    prototypes = (torch.rand(4, 784, generator=g) > 0.5).float()
    labels = torch.randint(0, 4, (n,), generator=g)
    return (0.9 * prototypes[labels] + 0.1 * torch.rand(n, 784, generator=g)).clamp(0, 1)


@pytest.fixture
def tiny_config(tmp_path) -> Config:
    """Small for testing efficiency: a 784-32-4 VAE, batch 64, 3 epochs on CPU."""
    return Config(
        hidden_dim=32, latent_dim=4, batch_size=64, num_epochs=3, lr=1e-3, device="cpu", data_dir=str(tmp_path / "data")
    )


@pytest.fixture
def images():
    """(train, test): 512 and 128 synthetic images of the same 4 prototypes."""
    x = make_images(640)
    return x[:512], x[512:]


def idx_bytes(array: torch.Tensor) -> bytes:
    """Encode a uint8 tensor as an IDX file: magic 0x08 (uint8) and ndim, then big-endian dims, then data."""
    header = struct.pack(">I", 0x0800 + array.dim()) + struct.pack(f">{array.dim()}I", *array.shape)
    return header + array.numpy().tobytes()


@pytest.fixture
def synthetic_dataset(monkeypatch, tmp_path):
    """Write a small fashion-mnist in IDX format (train 96, test 32 images); point vae.raw_files's table at it.

    Returns {file name: bytes}. The table of item counts is replaced by these files' counts, and the Debian
    folder by an empty one, so nothing real is read.
    """
    g = torch.Generator().manual_seed(0)
    files = {}
    for prefix, n in (("train", 96), ("t10k", 32)):
        files[f"{prefix}-images-idx3-ubyte"] = idx_bytes(
            torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8)
        )
        files[f"{prefix}-labels-idx1-ubyte"] = idx_bytes(torch.randint(0, 10, (n,), generator=g, dtype=torch.uint8))
    monkeypatch.setitem(
        vraw.RAW_FILES, "fashion-mnist", {name: 96 if name.startswith("train") else 32 for name in files}
    )
    monkeypatch.setitem(vraw.DEBIAN_DIR, "fashion-mnist", tmp_path / "no-debian-package")
    return files


def write_gz(folder: Path, files: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, b in files.items():
        (folder / f"{name}.gz").write_bytes(gzip.compress(b))


def available_locally(dataset: str, data_dir) -> bool:
    """True if the raw files, or the Debian package's files, are on this machine (no download needed)."""
    raw, debian = vraw.raw_dir(dataset, data_dir), vraw.DEBIAN_DIR.get(dataset)
    return all(
        (raw / n).exists() or (debian is not None and (debian / f"{n}.gz").exists()) for n in vraw.RAW_FILES[dataset]
    )


@pytest.fixture
def real_data_dir() -> Path:
    """The real Fashion-MNIST's data dir; skips without the data, unless VAE_REQUIRE_DATA=1 (then it fails)."""
    if not available_locally("fashion-mnist", REAL_DATA_DIR):
        message = (
            f"real Fashion-MNIST not found in {REAL_DATA_DIR} nor {vraw.DEBIAN_DIR['fashion-mnist']}: "
            "run `sudo apt-get install dataset-fashion-mnist` or `python -m vae train` once to download it"
        )
        if os.environ.get("VAE_REQUIRE_DATA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return REAL_DATA_DIR


@pytest.fixture
def tmpfs(tmp_path):
    """A real 1 MiB tmpfs folder (a disk that fills up), unmounted afterwards; skips where mounting is not allowed."""
    folder = tmp_path / "tmpfs"
    folder.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)]
    if sys.platform != "linux" or subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs Linux and root)")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def remount_read_only(folder: Path) -> None:
    """Make the `tmpfs` fixture's folder a read-only file system (where even root cannot write)."""
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)


def full_disk_on_write(n: int):
    """A staged_writes whose n-th staged file of a set fails half-written, as on a full disk."""

    @contextlib.contextmanager
    def staged_writes():
        with vfiles.staged_writes() as stage:
            count = 0

            def failing(path):
                nonlocal count
                tmp, count = stage(path), count + 1
                if count == n:
                    tmp.write_bytes(b"half a file")
                    raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
                return tmp

            yield failing

    return staged_writes
