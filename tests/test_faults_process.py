"""Faults that need a real process to kill (issue 6, items 3 and 4): SIGINT, SIGKILL, and death mid-save.

Each run trains a tiny VAE on 96 synthetic images in a child process (tests/fault_runner.py), kills it, resumes,
and compares with an uninterrupted run: the weights and history must be bit-identical on CPU.
"""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import REPO
from test_faults import put_raw

from vae import files as vfiles
from vae import load_checkpoint
from vae.__main__ import main
from vae.train import CHECKPOINT_NAME

EPOCHS = 5
TIMING_KEYS = ("train_seconds", "seconds")


@pytest.fixture
def cli(synthetic_dataset, tmp_path):
    """`python -m vae train` options for a tiny run on the synthetic data, without --out."""
    data_dir = tmp_path / "data"
    put_raw(synthetic_dataset, data_dir)
    return ["train", "--data-dir", str(data_dir), "--batch-size", "32", "--hidden-dim", "16", "--latent-dim", "2"] + [
        "--device",
        "cpu",
        "--epochs",
        str(EPOCHS),
    ]


def start(mode: str, seconds: float, argv: list) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, str(REPO / "tests" / "fault_runner.py"), mode, str(seconds), "--", *argv]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path, process, timeout=120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def assert_same_run(a, b) -> None:
    """Bit-identical weights, optimizer state and history (but for wall-clock seconds)."""
    sa, sb = load_checkpoint(a / CHECKPOINT_NAME), load_checkpoint(b / CHECKPOINT_NAME)
    assert sa["epoch"] == sb["epoch"] == EPOCHS
    assert sa["model"].keys() == sb["model"].keys()
    assert all(torch.equal(sa["model"][k], sb["model"][k]) for k in sa["model"])
    adam_a, adam_b = sa["optimizer"]["state"], sb["optimizer"]["state"]
    assert all(torch.equal(adam_a[i][k], adam_b[i][k]) for i in adam_a for k in adam_a[i])
    strip = [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in sa["history"]]
    assert strip == [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in sb["history"]]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_killed_mid_epoch_then_resumed_is_bit_identical(sig, cli, tmp_path):
    run = tmp_path / "run"
    child = start("slow", 0.15, [*cli, "--out", str(run)])  # 3 batches of 0.15 s per epoch
    wait_for(run / CHECKPOINT_NAME, child)
    time.sleep(0.2)  # into epoch 2 (or later on a busy machine), mid-epoch
    child.send_signal(sig)
    out, err = child.communicate(timeout=60)
    done = load_checkpoint(run / CHECKPOINT_NAME)["epoch"]
    assert 1 <= done < EPOCHS, "the run finished before the signal"
    if sig == signal.SIGINT:
        assert child.returncode == 130 and "Traceback" not in err
        assert (
            err.strip().splitlines()[-1]
            == f"interrupted: finished epochs are saved in {run}/; add --resume to continue."
        )
    else:
        assert child.returncode == -signal.SIGKILL
    assert main([*cli, "--out", str(run), "--resume"]) == 0
    assert main([*cli, "--out", str(tmp_path / "reference")]) == 0
    assert_same_run(run, tmp_path / "reference")


def test_death_mid_save_keeps_the_previous_checkpoint_and_poisons_nothing(cli, tmp_path):
    run = tmp_path / "run"
    child = start("die-in-save", 0, [*cli, "--out", str(run)])
    out, err = child.communicate(timeout=120)
    assert child.returncode == 137, err
    state = load_checkpoint(run / CHECKPOINT_NAME)  # the save after epoch 1, intact and loadable
    assert state["epoch"] == 1 and [r["epoch"] for r in state["history"]] == [1]
    temps = [p for p in run.iterdir() if p.name.endswith(".tmp")]
    assert len(temps) == 1 and temps[0].name.startswith(f".{CHECKPOINT_NAME}.")  # the half-written epoch 2
    assert main([*cli, "--out", str(run), "--resume"]) == 0
    assert sorted(p.name for p in run.iterdir()) == sorted([CHECKPOINT_NAME, vfiles.LOCK_NAME])  # cleaned up
    assert main([*cli, "--out", str(tmp_path / "reference")]) == 0
    assert_same_run(run, tmp_path / "reference")


def test_a_second_training_into_a_busy_folder_fails_clearly(cli, tmp_path, capsys):
    run = tmp_path / "run"
    child = start("slow", 0.15, [*cli, "--out", str(run)])
    try:
        wait_for(run / CHECKPOINT_NAME, child)
        assert main([*cli, "--out", str(run), "--resume"]) == 1
        err = capsys.readouterr().err
        assert f"error: {run} is in use by another run (pid {child.pid}" in err
        assert child.poll() is None
    finally:
        child.kill()
        child.communicate()
