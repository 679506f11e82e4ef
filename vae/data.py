"""Fashion-MNIST (and MNIST) as whole tensors, found locally, in the Debian package, or downloaded.

The raw files live in torchvision's layout, `<data_dir>/FashionMNIST/raw/train-images-idx3-ubyte` etc.
They are looked for in this order:
  1. already there (checked against known checksums of the decompressed bytes);
  2. the Debian package `dataset-fashion-mnist`, decompressed from /usr/share/datasets/fashion-mnist;
  3. torchvision's download.
Every file is checked (IDX header, item count, size, MD5) before use, and every file is written to a
temporary name and renamed only once it is verified, so that an interrupted run leaves nothing half-written.
"""

import gzip
import hashlib
import struct
import tempfile
from pathlib import Path

import torch
from torchvision import datasets

from vae.files import OutputError, atomic_path

# name -> (MD5 of the decompressed file, number of items). torchvision checks the .gz files' MD5s, but the
# Debian package recompressed them, so the decompressed bytes are what we can verify for every source.
RAW_FILES = {
    "fashion-mnist": {
        "train-images-idx3-ubyte": ("f4a8712d7a061bf5bd6d2ca38dc4d50a", 60000),
        "train-labels-idx1-ubyte": ("9018921c3c673c538a1fc5bad174d6f9", 60000),
        "t10k-images-idx3-ubyte": ("8181f5470baa50b63fa0f6fddb340f0a", 10000),
        "t10k-labels-idx1-ubyte": ("15d484375f8d13e6eb1aabb0c3f46965", 10000),
    },
    "mnist": {
        "train-images-idx3-ubyte": ("6bbc9ace898e44ae57da46a324031adb", 60000),
        "train-labels-idx1-ubyte": ("a25bea736e30d166cdddb491f175f624", 60000),
        "t10k-images-idx3-ubyte": ("2646ac647ad5339dbf082846283269ea", 10000),
        "t10k-labels-idx1-ubyte": ("27ae3e4e09519cfbb04c329615203637", 10000),
    },
}
TORCHVISION_CLASS = {"fashion-mnist": datasets.FashionMNIST, "mnist": datasets.MNIST}
DEBIAN_DIR = {"fashion-mnist": Path("/usr/share/datasets/fashion-mnist")}
DEBIAN_PACKAGE = {"fashion-mnist": "dataset-fashion-mnist"}
SPLIT_PREFIX = {"train": "train", "test": "t10k"}
IDX_MAGIC = {"images": 0x0803, "labels": 0x0801}  # uint8 data, 3 dims (N, 28, 28) or 1 dim (N,)


class DataError(RuntimeError):
    """The dataset is missing, corrupt, or cannot be written; the message says which file and what to do."""


def class_names(dataset: str) -> list[str]:
    """The 10 class names, indexed by label (e.g. 0 -> 'T-shirt/top')."""
    return list(TORCHVISION_CLASS[dataset].classes)


def raw_dir(dataset: str, data_dir) -> Path:
    """Where torchvision keeps the decompressed files, e.g. data/FashionMNIST/raw."""
    return Path(data_dir) / TORCHVISION_CLASS[dataset].__name__ / "raw"


def _remedy(dataset: str, data_dir) -> str:
    how = f"connect to the internet (torchvision downloads it into {raw_dir(dataset, data_dir)})"
    if dataset in DEBIAN_PACKAGE:
        how += f", or run `sudo apt-get install {DEBIAN_PACKAGE[dataset]}`"
    return f"To get {dataset}: {how}."


def check_idx(data: bytes, name: str, md5: str, count: int) -> None:
    """Raise DataError unless `data` is an IDX file of `count` 28x28 images or labels with this MD5."""
    kind = "images" if "images" in name else "labels"
    shape = (count, 28, 28) if kind == "images" else (count,)
    header_size = 4 + 4 * len(shape)
    if len(data) < 4 or struct.unpack(">I", data[:4])[0] != IDX_MAGIC[kind]:
        raise DataError(f"{name} is not an IDX {kind} file (magic bytes {data[:4].hex()})")
    dims = struct.unpack(f">{len(shape)}I", data[4:header_size].ljust(header_size - 4, b"\0"))
    if dims[0] != count:
        raise DataError(f"{name} holds {dims[0]} {kind}, expected {count}")
    expected_size = header_size + count * (784 if kind == "images" else 1)
    if dims != shape or len(data) != expected_size:
        raise DataError(f"{name} is truncated or malformed ({len(data)} bytes, expected {expected_size})")
    digest = hashlib.md5(data).hexdigest()
    if digest != md5:
        raise DataError(f"{name} has MD5 {digest}, expected {md5}: its contents are corrupt")


def check_idx_file(path: Path, md5: str, count: int) -> None:
    """check_idx on a file already in place; the error says to delete it so the next run fetches it again."""
    try:
        check_idx(path.read_bytes(), str(path), md5, count)
    except (OSError, DataError) as e:
        raise DataError(f"{e}. Delete {path} and run again to fetch a fresh copy.") from e


def _install(source: Path, target: Path, md5: str, count: int, remedy: str) -> None:
    """Decompress (if .gz) and verify `source`, then write it atomically as `target`."""
    try:
        with (gzip.open if source.suffix == ".gz" else open)(source, "rb") as f:
            data = f.read()
        check_idx(data, target.name, md5, count)
    except (OSError, EOFError, DataError) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{source} is truncated or corrupt ({e}): {remedy}.") from e
    try:
        with atomic_path(target) as tmp:
            tmp.write_bytes(data)
    except OutputError as e:
        raise DataError(f"{e} (The data folder is --data-dir.)") from e


def _download(dataset: str, data_dir) -> None:
    """Download with torchvision into a scratch folder, then install the verified files into the raw folder."""
    raw = raw_dir(dataset, data_dir)
    try:
        scratch_dir = tempfile.TemporaryDirectory(dir=raw.parent, prefix=".download-")
    except OSError as e:
        raise DataError(f"cannot write in {raw.parent} ({e.strerror or e}): choose a writable --data-dir.") from e
    with scratch_dir as scratch:
        try:
            TORCHVISION_CLASS[dataset](scratch, train=True, download=True)
        except Exception as e:  # torchvision raises RuntimeError or URLError, or OSError on a network fault
            raise DataError(
                f"{dataset} is not in {raw} and the download failed: {e}. {_remedy(dataset, data_dir)}"
            ) from e
        for name, (md5, count) in RAW_FILES[dataset].items():
            _install(raw_dir(dataset, scratch) / name, raw / name, md5, count, "run again to download it afresh")


def is_available_locally(dataset: str, data_dir) -> bool:
    """True if the raw files, or the Debian package's files, are on this machine (no download needed)."""
    names = RAW_FILES[dataset]
    raw = raw_dir(dataset, data_dir)
    debian = DEBIAN_DIR.get(dataset)
    return all((raw / n).exists() or (debian is not None and (debian / f"{n}.gz").exists()) for n in names)


def ensure_raw_files(dataset: str, data_dir, download: bool = True) -> Path:
    """Make sure the four verified raw files are in `raw_dir(dataset, data_dir)`; return that folder."""
    raw = raw_dir(dataset, data_dir)
    if Path(data_dir).exists() and not Path(data_dir).is_dir():
        raise DataError(f"data_dir {data_dir} is a file, not a folder: pass a folder (e.g. --data-dir data).")
    try:
        raw.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create {raw}: {e}. Choose a writable --data-dir.") from e
    missing = {n: v for n, v in RAW_FILES[dataset].items() if not (raw / n).exists()}
    debian = DEBIAN_DIR.get(dataset)
    for name, (md5, count) in list(missing.items()):
        if debian is not None and (debian / f"{name}.gz").exists():
            fix = f"reinstall it with `sudo apt-get install --reinstall {DEBIAN_PACKAGE[dataset]}`"
            _install(debian / f"{name}.gz", raw / name, md5, count, fix)
            del missing[name]
    if missing:
        if not download:
            raise DataError(f"missing {', '.join(sorted(missing))} in {raw}. {_remedy(dataset, data_dir)}")
        _download(dataset, data_dir)
    for name, (md5, count) in RAW_FILES[dataset].items():
        check_idx_file(raw / name, md5, count)
    return raw


def load_split(dataset: str, split: str, data_dir="data", device="cpu", download: bool = True):
    """Return (x, y) for a whole split: x (N, 784) float32 in [0, 1], y (N,) int64, both on `device`."""
    if split not in SPLIT_PREFIX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    ensure_raw_files(dataset, data_dir, download=download)
    ds = TORCHVISION_CLASS[dataset](str(data_dir), train=split == "train", download=False)
    x = ds.data.reshape(len(ds.data), -1).to(device=device, dtype=torch.float32).div_(255.0)  # (N, 784)
    return x, ds.targets.to(device)


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
    """Yield shuffled minibatches of `x` (the last may be smaller), drawn with `generator` on x's device."""
    order = torch.randperm(len(x), generator=generator, device=x.device)
    for start in range(0, len(x), batch_size):
        yield x[order[start : start + batch_size]]


BINARIZATION_SEED = 0  # fixed, so that every run and seed is scored on the same binary images


def fixed_binarization(x: torch.Tensor, seed: int = BINARIZATION_SEED) -> torch.Tensor:
    """One seeded binarisation of x (N, 784) in [0, 1]: each pixel is 1 with probability its grey level."""
    return torch.bernoulli(x, generator=torch.Generator(device=x.device).manual_seed(seed))
