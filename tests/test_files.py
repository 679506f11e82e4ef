"""Safe outputs: a staged set of files is replaced entirely or not at all, with the usual file mode; temporaries
of killed writers are cleaned up; a folder is locked against a second process, and freed when it dies."""

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, remount_read_only

from vae.lab import files as vfiles

NAMES = ("a.png", "b.png", "metrics.json")


def write_set(folder: Path, tag: bytes) -> dict:
    """Write the three NAMES in one staged set; return what each should hold."""
    wanted = {name: tag + name.encode() for name in NAMES}
    with vfiles.staged_writes() as stage:
        for name, data in wanted.items():
            stage(folder / name).write_bytes(data)
    return wanted


def contents(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def full_disk_for(monkeypatch, name: str) -> None:
    """Writing the temporary file of `name` fails as a full disk does."""
    write_bytes, write_text = Path.write_bytes, Path.write_text

    def check(path):
        if path.name.startswith(f".{name}."):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", lambda self, data: check(self) or write_bytes(self, data))
    monkeypatch.setattr(Path, "write_text", lambda self, *a, **k: check(self) or write_text(self, *a, **k))


def test_a_staged_set_replaces_every_file_in_order(tmp_path, monkeypatch):
    write_set(tmp_path, b"old ")
    replace, order = os.replace, []
    monkeypatch.setattr(vfiles.os, "replace", lambda src, dst: order.append(Path(dst).name) or replace(src, dst))
    wanted = write_set(tmp_path / "new" / "deeper", b"new ")  # parent folders are created
    assert contents(tmp_path / "new" / "deeper") == wanted and order == list(NAMES)


def test_when_the_third_write_fails_no_file_of_the_set_changes(tmp_path, monkeypatch):
    before = write_set(tmp_path, b"old ")
    full_disk_for(monkeypatch, "metrics.json")
    with pytest.raises(vfiles.OutputError) as e:
        write_set(tmp_path, b"new ")
    assert str(e.value) == (
        f"cannot write {tmp_path / 'metrics.json'} (No space left on device). Free some disk space or choose a "
        "writable folder; the previous metrics.json is unchanged."
    )
    assert contents(tmp_path) == before  # byte-identical, and no temporary left


def test_a_real_full_disk_changes_no_file_of_the_set(tmpfs):
    before = write_set(tmpfs, b"old ")
    with pytest.raises(vfiles.OutputError, match=r"cannot write .*b.png \(No space left on device\)\. Free"):
        with vfiles.staged_writes() as stage:
            stage(tmpfs / "a.png").write_bytes(b"new a")
            stage(tmpfs / "b.png").write_bytes(bytes(2 * 2**20))  # 2 MiB on a 1 MiB disk
            stage(tmpfs / "metrics.json").write_bytes(b"new metrics")
    assert contents(tmpfs) == before


def test_an_error_that_is_not_an_os_error_passes_through_and_changes_nothing(tmp_path):
    before = write_set(tmp_path, b"old ")
    with pytest.raises(ValueError, match="a bug"):
        with vfiles.staged_writes() as stage:
            stage(tmp_path / "a.png").write_bytes(b"new a")
            raise ValueError("a bug in the caller")
    assert contents(tmp_path) == before


def test_disk_full_for_a_metrics_file_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    vfiles.write_text_atomic(path, '{"test_loss": 251.08}\n')
    full_disk_for(monkeypatch, "metrics.json")
    with pytest.raises(vfiles.OutputError, match=r"metrics.json \(No space left on device\)\. Free some disk space"):
        vfiles.write_text_atomic(path, '{"test_loss": 0}\n')
    assert path.read_text() == '{"test_loss": 251.08}\n' and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_get_the_mode_the_umask_allows(umask, tmp_path):
    old = os.umask(umask)
    try:
        vfiles.write_text_atomic(tmp_path / "REPORT.md", "# Report\n")
    finally:
        os.umask(old)
    assert (tmp_path / "REPORT.md").stat().st_mode & 0o777 == 0o666 & ~umask  # 0o644 for umask 0o022


def test_a_folder_that_cannot_be_created_names_the_file(tmp_path):
    (tmp_path / "figures").write_text("a file, not a folder")
    with pytest.raises(vfiles.OutputError, match=r"cannot write .*figures/a.png \(File exists\)"):
        vfiles.write_text_atomic(tmp_path / "figures" / "a.png", "x")


def test_a_read_only_file_system_names_the_file_and_keeps_the_old_one(tmpfs):
    vfiles.write_text_atomic(tmpfs / "metrics.json", "old")
    remount_read_only(tmpfs)
    with pytest.raises(vfiles.OutputError, match=rf"cannot write {tmpfs}/metrics.json \(Read-only file system\)"):
        vfiles.write_text_atomic(tmpfs / "metrics.json", "new")
    with pytest.raises(vfiles.OutputError, match=rf"cannot use {tmpfs}/run as an output folder \(Read-only file"):
        with vfiles.exclusive_lock(tmpfs / "run"):
            pass
    assert (tmpfs / "metrics.json").read_text() == "old"


def run_child(code: str, *args) -> subprocess.Popen:
    """A Python child process running `code`, its stdout a text pipe."""
    command = [sys.executable, "-c", code, *map(str, args)]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = run_child("import os; print(os.getpid())")
    return int(child.communicate()[0])


def test_temporaries_of_dead_writers_are_removed_and_of_live_ones_kept(tmp_path):
    live = run_child("import time; time.sleep(60)")
    try:
        names = [f".checkpoint.pt.{dead_pid()}.tmp", f".metrics.json.{live.pid}.tmp", f".a.png.{os.getpid()}.tmp"]
        names += ["checkpoint.pt", ".notes.tmp", ".b.png.x.tmp", "c.1.tmp"]  # not temporaries of staged_writes
        for name in names:
            (tmp_path / name).write_text(name)
        vfiles.remove_stale_temporaries(tmp_path)
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[1:])
    finally:
        live.kill()
        live.wait()


KILLED_MID_WRITE = """
import os, sys
from vae.lab.files import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half a checkpoint")
    os.kill(os.getpid(), 9)
"""


def test_a_writer_killed_mid_write_keeps_the_previous_file_and_its_temporary_is_cleaned(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"epoch 1")
    child = run_child(KILLED_MID_WRITE, path)
    child.communicate()
    assert child.returncode == -signal.SIGKILL
    assert path.read_bytes() == b"epoch 1"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".checkpoint.pt.{child.pid}.tmp", "checkpoint.pt"]
    vfiles.remove_stale_temporaries(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


HOLD_LOCK = """
import sys, time
from vae.lab.files import exclusive_lock
with exclusive_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_folder_locked_by_another_process_is_refused_until_it_is_killed(tmp_path):
    run = tmp_path / "run"
    holder = run_child(HOLD_LOCK, run)
    ran = []
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(vfiles.OutputError) as e:
            with vfiles.exclusive_lock(run):
                ran.append(1)
        assert ran == [] and holder.poll() is None  # refused at once; the holder runs on
        assert str(e.value) == (
            f"{run} is in use by another run: wait for it to finish, or write elsewhere "
            "(fit: out_dir; make_report: options.runs_dir; sweep: runs_dir)."
        )
    finally:
        holder.send_signal(signal.SIGKILL)  # no clean-up code runs: the operating system frees the lock
        holder.wait()
    with vfiles.exclusive_lock(run) as folder:
        assert folder == run and (run / vfiles.LOCK_NAME).exists()


def test_a_lock_is_refused_in_the_same_process_and_free_after_the_block(tmp_path):
    ran = []
    with vfiles.exclusive_lock(tmp_path):
        with pytest.raises(vfiles.OutputError, match="is in use by another run"):
            with vfiles.exclusive_lock(tmp_path):
                ran.append("second")
    with vfiles.exclusive_lock(tmp_path):
        ran.append("third")
    assert ran == ["third"]


def test_a_lock_folder_is_created_or_named_when_it_cannot_be(tmp_path):
    with vfiles.exclusive_lock(tmp_path / "a" / "b"):
        assert (tmp_path / "a" / "b").is_dir()
    (tmp_path / "run").write_text("a file")
    ran = []
    with pytest.raises(vfiles.OutputError, match=rf"cannot use {tmp_path}/run as an output folder \(File exists\)"):
        with vfiles.exclusive_lock(tmp_path / "run"):
            ran.append(1)
    assert ran == [] and (tmp_path / "run").read_text() == "a file"


# Stored values: read back only in the shape their reader needs ---------------------------------------------------


@pytest.mark.parametrize(
    "value, shape, problem",
    [
        (1, float, None),
        (2.5, float, None),
        (True, float, "x is True, not a finite number"),  # a bool is never a number
        (float("nan"), float, "x is nan, not a finite number"),
        ("1.0", float, "x is '1.0', not a finite number"),
        (3, int, None),
        (3.0, int, "x is 3.0, not an integer"),
        ({"a": 1, "b": "extra"}, {"a": int}, None),  # other keys may be there
        ({"b": 1}, {"a": int, "c": int}, "x lacks ['a', 'c']"),
        ([{"a": 1}, {"a": "1"}], [{"a": int}], "x[1]['a'] is '1', not an integer"),
        ([], [int], None),
        ("s", [int], "x is 's', not a list"),
        (None, ({"a": int}, type(None)), None),
        ([1], ({"a": int}, type(None)), "x is [1], not a dict"),  # the first alternative's problem
        (list(range(100)), float, "x is [0, 1, 2, 3, 4, 5, ...], not a finite number"),  # a long value, shortened
    ],
)
def test_shape_problem_names_the_first_part_that_does_not_fit(value, shape, problem):
    assert vfiles.shape_problem(value, shape, "x") == problem


def test_read_json_names_a_file_that_is_not_json_or_lacks_the_shape_its_reader_needs(tmp_path):
    path, integers = tmp_path / "value.json", lambda value: vfiles.shape_problem(value, [int])
    with pytest.raises(FileNotFoundError):
        vfiles.read_json(path, integers)
    path.write_text("[1, 2")
    with pytest.raises(vfiles.DamagedFile, match=rf"^{path} is damaged or was edited \(not JSON: Expecting"):
        vfiles.read_json(path, integers)
    path.write_text('[1, "2"]')
    with pytest.raises(vfiles.DamagedFile) as e:
        vfiles.read_json(path, integers)
    assert str(e.value) == f"{path} is damaged or was edited (the value[1] is '2', not an integer)"
    assert isinstance(e.value, ValueError)  # the command line prints it as one line
    path.write_text("[1, 2]")
    assert vfiles.read_json(path, integers) == [1, 2]
