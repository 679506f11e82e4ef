"""Safe outputs: a set of files replaced together or not at all, and a lock so that two runs never share a folder.
Stored values: read back only in the shape that their reader needs."""

import contextlib
import json
import math
import os
import reprlib
from pathlib import Path

from vae.raw_files import TEMPORARY, remove_stale_temporaries, temporary  # noqa: F401 (the lab's too)

try:
    import fcntl
except ImportError:  # Windows: exclusive_lock takes no lock
    fcntl = None

LOCK_NAME = ".lock"
OUTPUT_ARGS = "(fit: out_dir; make_report: options.runs_dir; sweep: runs_dir)"  # the arguments naming the folder
ELSEWHERE = f"write elsewhere {OUTPUT_ARGS}"


class OutputError(OSError):
    """An output cannot be written (disk full, read-only, not a folder) or its folder is in use."""


class DamagedFile(ValueError):
    """A stored file that is not JSON, or whose value lacks the shape its reader needs; the message names the file."""


def shape_problem(value, shape, where: str = "the value") -> str | None:
    """What in `value` does not have `shape`, or None. A shape is a type (float: a finite int or float; a bool is
    never a number), a dict of shapes (a dict with at least those keys), [shape] (a list of those), or a tuple of
    alternatives."""
    if isinstance(shape, tuple):
        problems = [shape_problem(value, s, where) for s in shape]
        return None if None in problems else problems[0]
    if isinstance(shape, dict) and isinstance(value, dict):
        missing = [k for k in shape if k not in value]
        found = (shape_problem(value[k], s, f"{where}[{k!r}]") for k, s in shape.items())
        return f"{where} lacks {missing}" if missing else next(filter(None, found), None)
    if isinstance(shape, list) and isinstance(value, list):
        return next(filter(None, (shape_problem(v, shape[0], f"{where}[{i}]") for i, v in enumerate(value))), None)
    kind = type(shape) if isinstance(shape, (dict, list)) else shape
    if kind is float:
        fits = type(value) in (int, float) and math.isfinite(value)
    else:
        fits = isinstance(value, kind) and not (isinstance(value, bool) and kind is int)
    name = {float: "a finite number", int: "an integer"}.get(kind, f"a {kind.__name__}")
    return None if fits else f"{where} is {reprlib.repr(value)}, not {name}"


def mismatch(found: dict, wanted: dict) -> dict:
    """What differs between what shaped a stored thing and what is asked for: {key: (found, wanted)}, nested dicts
    compared key by key (e.g. {"config": {"beta": (2.0, 1.0)}}). Empty: it may be reused, as everything matches."""
    out = {}
    for key in sorted(found.keys() | wanted.keys()):
        a, b = found.get(key), wanted.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            if inner := mismatch(a, b):
                out[key] = inner
        elif a != b:
            out[key] = (a, b)
    return out


def read_json(path, problem):
    """The JSON value stored at `path` if `problem(value)` finds nothing wrong with it (returns None); else
    DamagedFile naming the file and what is wrong. FileNotFoundError if there is no file."""
    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:  # json.JSONDecodeError, UnicodeDecodeError
        raise DamagedFile(f"{path} is damaged or was edited (not JSON: {e})") from e
    found = problem(value)
    if found:
        raise DamagedFile(f"{path} is damaged or was edited ({found})")
    return value


@contextlib.contextmanager
def staged_writes():
    """Yield stage(path) -> a temporary beside `path`; if the block succeeds rename each over its path, else none.

    Each file is replaced atomically: a reader sees its old or its new version, whole. The set is renamed file by
    file, without a lock: two processes writing the same paths at once (two reports into one fig_dir) each
    leave whole files, but possibly a mix of both sets.
    """
    staged = {}  # temporary -> destination, in the order staged

    def stage(path) -> Path:
        path = Path(path)
        tmp = temporary(path)
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
