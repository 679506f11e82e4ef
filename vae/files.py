"""Safe outputs: a set of files replaced together or not at all, and a lock so that two runs never share a folder."""

import contextlib
import os
import re
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: exclusive_lock takes no lock, remove_stale_temporaries removes nothing
    fcntl = None

LOCK_NAME = ".lock"
TEMPORARY = re.compile(r"\..+\.([1-9]\d*)\.tmp")  # .<name>.<pid>.tmp, staged by process <pid>
ELSEWHERE = "write elsewhere (train: --out; report and sweep: --runs-dir)"


class OutputError(OSError):
    """An output cannot be written (disk full, read-only, not a folder) or its folder is in use."""


@contextlib.contextmanager
def staged_writes():
    """Yield stage(path) -> a temporary beside `path`; if the block succeeds rename each over its path, else none."""
    staged = {}  # temporary -> destination, in the order staged

    def stage(path) -> Path:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        staged[tmp] = path
        path.parent.mkdir(parents=True, exist_ok=True)
        return tmp

    try:
        yield stage
        for tmp, path in staged.items():  # renames within a folder need no space: by now the set is written
            os.replace(tmp, path)
    except OSError as e:  # disk full, read-only, not a folder: say which file, and that the old one is kept
        if isinstance(e, OutputError) or not staged:
            raise
        path = staged.get(Path(e.filename or ""), list(staged.values())[-1])  # the file that failed, or the last
        raise OutputError(
            f"cannot write {path} ({e.strerror or e}). Free some disk space or choose a writable folder; "
            f"the previous {path.name} is unchanged."
        ) from e
    finally:
        for tmp in staged:  # after success they are already gone
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`, renamed over it if the block succeeds (one staged_writes file)."""
    with staged_writes() as stage:
        yield stage(path)


def write_text_atomic(path, text: str) -> None:
    """Write `text` to `path` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def remove_stale_temporaries(folder) -> None:
    """Delete the .<name>.<pid>.tmp files in `folder` whose process has died (was killed mid-write)."""
    for tmp in Path(folder).glob(".*.tmp") if fcntl else []:  # on Windows os.kill(pid, 0) would end the process
        found = TEMPORARY.fullmatch(tmp.name)
        try:
            if found:
                os.kill(int(found.group(1)), 0)  # signal 0 only asks whether the process exists
        except (ProcessLookupError, OverflowError):  # it does not: it was killed mid-write
            tmp.unlink(missing_ok=True)
        except PermissionError:  # it exists, as another user's
            pass


@contextlib.contextmanager
def exclusive_lock(folder):
    """Hold an advisory flock on `folder`/.lock during the block, creating `folder`; on Windows (no fcntl), no lock.

    The operating system releases it when its holder exits, even by kill -9, so no stale lock remains.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = open(folder / LOCK_NAME, "a")  # held open, and so locked, for the whole block
    except OSError as e:
        raise OutputError(f"cannot use {folder} as an output folder ({e.strerror or e}): {ELSEWHERE}.") from e
    with lock:
        try:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise OutputError(f"{folder} is in use by another run: wait for it to finish, or {ELSEWHERE}.") from e
        yield folder
