"""Run `python -m vae ...` in a child process on a small synthetic dataset, for the fault tests to signal or kill.

Usage: python tests/fault_runner.py MODE MARKER -- <vae command line>
  MODE "pause":          in epoch 2, before its second batch (epoch 1 is saved), the child writes the file MARKER
                         and waits for a line on its stdin: the parent signals it at that known point, or lets it go
                         on by closing stdin (`communicate`);
  MODE "pause-in-save":  the same, halfway through the first checkpoint save (its temporary file written);
  MODE "die-in-save":    the second checkpoint save writes half its temporary file, then the process dies
                         (os._exit, as a power cut or SIGKILL would leave it).
The child first sets its own signal dispositions (SIGINT raises KeyboardInterrupt, SIGTERM is the default), so
that a parent started with SIGINT ignored (`bash -c '... & wait'`, nohup, cron) cannot leak that into it.
The dataset's raw files must already be in <data-dir>/FashionMNIST/raw (`put_raw`); their item counts are read
from their headers. The tests import `put_raw`, `start`, `wait_for` and `assert_same_run` from here.
"""

import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import torch

import vae.lab.files
import vae.raw_files
import vae.train
from vae.lab.checkpoint import load_checkpoint
from vae.lab.cli import main
from vae.lab.runs import CHECKPOINT_NAME

REPO = Path(__file__).resolve().parents[1]


def put_raw(files: dict, data_dir) -> Path:
    """Write {name: bytes} as the decompressed raw files of fashion-mnist in `data_dir`; return their folder."""
    raw = vae.raw_files.raw_dir("fashion-mnist", data_dir)
    raw.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (raw / name).write_bytes(data)
    return raw


def start(mode: str, marker, argv: list, ignore_sigint: bool = False) -> subprocess.Popen:
    """Start this script as a child process running `python -m vae <argv>` in `mode`.

    ignore_sigint: start it as a shell without job control starts `cmd &`, with SIGINT ignored.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, str(Path(__file__).resolve()), mode, str(marker), "--", *argv]
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None
    pipe = subprocess.PIPE
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdin=pipe, stdout=pipe, stderr=pipe, text=True, preexec_fn=ignore
    )


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 120.0) -> None:
    """Wait until `path` exists, failing if `process` ends first or the time runs out."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


TIMING_KEYS = ("train_seconds", "seconds")


def assert_same_run(a: Path, b: Path, epochs: int) -> None:
    """The checkpoints in folders a and b: `epochs` epochs, bit-identical weights, Adam state and history (but
    for wall-clock seconds)."""
    sa, sb = load_checkpoint(a / CHECKPOINT_NAME), load_checkpoint(b / CHECKPOINT_NAME)
    assert sa["epoch"] == sb["epoch"] == epochs
    assert sa["model"].keys() == sb["model"].keys()
    assert all(torch.equal(sa["model"][k], sb["model"][k]) for k in sa["model"])
    adam_a, adam_b = sa["optimizer"]["state"], sb["optimizer"]["state"]
    assert adam_a.keys() == adam_b.keys()
    assert all(torch.equal(adam_a[i][k], adam_b[i][k]) for i in adam_a for k in adam_a[i])
    assert torch.equal(sa["rng_state"], sb["rng_state"])
    strip = [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in sa["history"]]
    assert strip == [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in sb["history"]]


def use_the_raw_files_there(data_dir: str) -> None:
    raw = vae.raw_files.raw_dir("fashion-mnist", data_dir)
    counts = {
        name: struct.unpack(">I", (raw / name).read_bytes()[4:8])[0]
        for name in vae.raw_files.RAW_FILES["fashion-mnist"]
    }
    vae.raw_files.RAW_FILES["fashion-mnist"] = counts
    vae.raw_files.DEBIAN_DIR["fashion-mnist"] = Path(data_dir) / "no-debian-package"


def pause(marker: Path) -> None:
    """Say so in `marker`, then wait for the parent: a signal, or a line (or end of file) on stdin."""
    marker.write_text("paused")
    sys.stdin.readline()


def pause_in_epoch_2(marker: Path) -> None:
    iterate, epochs = vae.train.iterate_batches, []

    def paused(x, batch_size, generator):
        epochs.append(1)
        for i, batch in enumerate(iterate(x, batch_size, generator)):
            if len(epochs) == 2 and i == 1:
                pause(marker)
            yield batch

    vae.train.iterate_batches = paused


def pause_in_first_save(marker: Path) -> None:
    write_bytes = Path.write_bytes

    def written_then_paused(self, data):
        n = write_bytes(self, data)
        if self.name.startswith(f".{CHECKPOINT_NAME}.") and not marker.exists():
            pause(marker)
        return n

    Path.write_bytes = written_then_paused


def die_in_second_save() -> None:
    replace, calls = os.replace, []

    def half_then_die(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            size = os.path.getsize(src)
            os.truncate(src, size // 2)
            os._exit(137)
        replace(src, dst)

    vae.lab.files.os.replace = half_then_die


if __name__ == "__main__":
    mode, marker, sep, *argv = sys.argv[1:]
    signal.signal(signal.SIGINT, signal.default_int_handler)  # whatever the parent had: Ctrl-C is KeyboardInterrupt
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    use_the_raw_files_there(argv[argv.index("--data-dir") + 1])
    if mode == "pause":
        pause_in_epoch_2(Path(marker))
    elif mode == "pause-in-save":
        pause_in_first_save(Path(marker))
    elif mode == "die-in-save":
        die_in_second_save()
    sys.exit(main(argv))
