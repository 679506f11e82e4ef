"""Safe outputs: atomic writes (a reader sees the old file or the new one, never a half-written one), and a lock
so that two runs never write into one folder at once."""

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

LOCK_NAME = ".lock"


class OutputError(OSError):
    """An output cannot be written (disk full, read-only, not a folder) or its folder is in use by another run."""


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; on success fsync it and rename it over `path`, else delete it.

    Any OSError (disk full, read-only folder) becomes an OutputError naming `path`; the previous file is intact.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(tmp)
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OutputError:
        raise
    except OSError as e:
        raise OutputError(
            f"cannot write {path} ({e.strerror or e}). Free some disk space or choose a writable folder; "
            f"any previous {path.name} is unchanged."
        ) from e
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def write_text_atomic(path, text: str) -> None:
    """Write `text` to `path` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def remove_stale_temporaries(folder) -> None:
    """Delete the temporary files that a killed atomic write left in `folder`; call it only under its lock."""
    for tmp in Path(folder).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def _holder(f) -> str:
    """The 'pid N' that the lock's holder wrote into it, if it can be read."""
    try:
        f.seek(0)
        return f.read().strip() or "pid unknown"
    except OSError:  # Windows forbids reading a locked region
        return "pid unknown"


@contextmanager
def exclusive_lock(folder, option: str = "--out"):
    """Hold `folder`/.lock while the block runs, creating `folder`; if another process holds it, OutputError.

    The operating system releases the lock when its process ends, even by SIGKILL, so no stale lock remains.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        f = open(folder / LOCK_NAME, "a+")  # held open, and so locked, for the whole block
    except OSError as e:
        raise OutputError(
            f"cannot use {folder} as an output folder ({e.strerror or e}): choose another {option}."
        ) from e
    try:
        try:
            f.seek(0)  # msvcrt locks bytes from the current position: byte 0 for every process
            if fcntl is not None:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:
                msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError as e:
            raise OutputError(
                f"{folder} is in use by another run ({_holder(f)}). Wait for it to finish, or choose another {option}."
            ) from e
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}")
        f.flush()
        yield folder
    finally:
        f.close()
