"""Run `python -m vae ...` in a child process on a small synthetic dataset, for the fault tests to kill.

Usage: python tests/fault_runner.py MODE SECONDS -- <vae command line>
  MODE "slow":         each training batch sleeps SECONDS, so that a signal lands mid-epoch;
  MODE "die-in-save":  the second checkpoint save writes half its temporary file, then the process dies
                       (os._exit, as a power cut or SIGKILL would leave it).
The dataset's raw files must already be in <data-dir>/FashionMNIST/raw; their checksums are read from them.
"""

import hashlib
import os
import struct
import sys
import time
from pathlib import Path

import vae.data
import vae.files
import vae.train
from vae.__main__ import main


def use_the_raw_files_there(data_dir: str) -> None:
    raw = vae.data.raw_dir("fashion-mnist", data_dir)
    table = {}
    for name in vae.data.RAW_FILES["fashion-mnist"]:
        data = (raw / name).read_bytes()
        table[name] = (hashlib.md5(data).hexdigest(), struct.unpack(">I", data[4:8])[0])
    vae.data.RAW_FILES["fashion-mnist"] = table
    vae.data.DEBIAN_DIR["fashion-mnist"] = Path(data_dir) / "no-debian-package"


def slow_batches(seconds: float) -> None:
    iterate = vae.train.iterate_batches

    def slow(x, batch_size, generator):
        for batch in iterate(x, batch_size, generator):
            time.sleep(seconds)
            yield batch

    vae.train.iterate_batches = slow


def die_in_second_save() -> None:
    replace, calls = os.replace, []

    def half_then_die(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            size = os.path.getsize(src)
            os.truncate(src, size // 2)
            os._exit(137)
        replace(src, dst)

    vae.files.os.replace = half_then_die


if __name__ == "__main__":
    mode, seconds, sep, *argv = sys.argv[1:]
    use_the_raw_files_there(argv[argv.index("--data-dir") + 1])
    if mode == "slow":
        slow_batches(float(seconds))
    elif mode == "die-in-save":
        die_in_second_save()
    sys.exit(main(argv))
