"""The command line: every option is checked before any work (exit 2, one line naming it); an output that cannot
be written, or a run already there, is refused before training (exit 1); each command writes where it is told,
or in its defaults, never elsewhere."""

import errno
import json
import math
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import remount_read_only, write_gz
from fault_runner import assert_same_run, put_raw, start, wait_for
from test_notebook import make_checkout

import vae.lab.cli as cli_module
from vae import data as vdata
from vae import raw_files as vraw
from vae.config import Config, run_name
from vae.evaluate import EvalSettings
from vae.lab import pipeline
from vae.lab import sweep as vsweep
from vae.lab.checkpoint import load_checkpoint
from vae.lab.cli import main
from vae.lab.literature import model_label
from vae.lab.runs import CHECKPOINT_NAME
from vae.research import PRESETS
from vae.research.training import VALIDATION_PROTOCOL

TINY = ["--batch-size", "32", "--hidden-dim", "16", "--latent-dim", "2", "--device", "cpu"]
TRACEBACK = "Traceback"


@pytest.fixture
def no_work(monkeypatch, tmp_path):
    """Run in an empty tmp_path where loading the data fails the test: an option must be refused before any work."""

    def refuse(*args, **kwargs):
        pytest.fail("the data was loaded: an option was checked only after the work began")

    for module in (vdata, cli_module, pipeline, vsweep):
        monkeypatch.setattr(module, "load_data", refuse)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def data_dir(synthetic_dataset, tmp_path) -> Path:
    """The synthetic fashion-mnist (96 train, 32 test images) as raw files in tmp_path/data."""
    put_raw(synthetic_dataset, tmp_path / "data")
    return tmp_path / "data"


def exit_2(argv: list, capsys) -> str:
    """Run `python -m vae <argv>`, expecting argparse's exit 2; return the last line of stderr."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert TRACEBACK not in err
    return err.strip().splitlines()[-1]


# Exit 2: a bad option, before any work ------------------------------------------------------------------------

BAD_CONFIG_OPTIONS = [
    (["--lr", "3e4"], "lr"),
    (["--lr", "nan"], "lr"),
    (["--latent-dim", "0"], "latent_dim"),
    (["--hidden-dim", "-3"], "hidden_dim"),
    (["--dataset", "cifar"], "dataset"),
    (["--epochs", "-1"], "num_epochs"),
    (["--device", "cpu:x"], "device"),
    (["--seed", "-1"], "seed"),
    (["--seed", "99999999999999999999"], "seed"),
    (["--beta", "-1"], "beta"),
    (["--variance-head", "sd"], "variance_head"),
]


@pytest.mark.parametrize("command", ["train", "report"])
@pytest.mark.parametrize("args, field", BAD_CONFIG_OPTIONS)
def test_a_bad_config_option_is_one_line_and_exit_2_before_any_work(command, args, field, no_work, capsys):
    assert exit_2([command, *args], capsys).startswith(f"python -m vae: error: config.{field} must ")
    assert list(no_work.iterdir()) == []  # no folder created, no data, no checkpoint


BAD_EVALUATION_OPTIONS = [
    (["report", "--iw-samples", "0"], "--iw-samples must be an integer >= 1, got 0"),
    (["report", "--tsne-points", "0"], "--tsne-points must be >= 1"),
    (["report", "--tsne-points", "50"], "--tsne-points must be 0 (no t-SNE) or exceed 3 x perplexity (30)"),
    (["report", "--seeds", "1", "1"], "--seeds must be distinct"),
    (["report", "--seeds", "-1"], "--seeds must be distinct integers in [0, 2**63), got [-1]"),
    (["report", "--from-checkpoint", "nowhere.pt"], "--from-checkpoint nowhere.pt: no such file"),
    (["report", "--from-checkpoint", "nowhere.pt", "--seeds", "0", "1"], "--from-checkpoint evaluates one model"),
    (["sweep", "--iw-samples", "0"], "--iw-samples must be an integer >= 1, got 0"),
    (["sweep", "--ablations", "nonsense"], "unknown --ablations ['nonsense']; choose from"),
    (["sweep", "--seeds", "-1"], "config.seed must be in [0, 2**63), got -1"),
    (["sweep", "--device", "tpu"], "config.device must be auto, cpu, cuda, cuda:N or mps"),
]


@pytest.mark.parametrize("argv, message", BAD_EVALUATION_OPTIONS)
def test_a_bad_report_or_sweep_option_is_one_line_and_exit_2_before_any_work(argv, message, no_work, capsys):
    assert exit_2(argv, capsys).startswith(f"python -m vae: error: {message}")
    assert list(no_work.iterdir()) == []


def test_a_bad_value_in_a_real_process_has_no_traceback(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "vae", "train", "--lr", "3e4"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 2 and TRACEBACK not in run.stderr and run.stdout == ""
    last = run.stderr.strip().splitlines()[-1]
    assert last == "python -m vae: error: config.lr must be in (0, 1], got 30000.0 (the original report uses 3e-4)"
    assert list(tmp_path.iterdir()) == []  # not even the default --out, runs/train


@pytest.mark.parametrize(
    "args, message",
    [
        (["--batch-size", "1000"], "config.batch_size (1000) is larger than the dataset (96 images): use at most 96"),
        (["--device", "cuda"], "config.device is 'cuda', but this machine has no cuda device"),
    ],
)
def test_a_value_known_bad_only_with_the_data_or_device_is_exit_2_before_training(
    args, message, data_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv = ["train", "--data-dir", str(data_dir), "--out", str(tmp_path / "run"), *TINY, "--epochs", "1", *args]
    assert exit_2(argv, capsys).startswith(f"python -m vae: error: {message}")
    assert not (tmp_path / "run" / CHECKPOINT_NAME).exists()


# Exit 1: outputs that cannot be written, and runs already there, refused before training ----------------------


@pytest.mark.parametrize(
    "command, option, inside",
    [
        ("train", "--out", ""),
        ("report", "--fig-dir", ""),
        ("report", "--report-path", "REPORT.md"),  # its folder is the file
        ("report", "--runs-dir", ""),
        ("sweep", "--out", ""),
        ("sweep", "--runs-dir", ""),
    ],
)
def test_an_output_folder_that_is_a_file_is_exit_1_before_any_work(command, option, inside, no_work, capsys):
    blocker = no_work / "blocker"
    blocker.write_text("a file, where a folder should be")  # fails even for root, unlike chmod
    assert main([command, option, str(blocker / inside) if inside else str(blocker)]) == 1
    err = capsys.readouterr().err
    assert err == f"error: cannot write in {blocker} (not a folder): choose another {option}.\n"
    assert blocker.read_text() == "a file, where a folder should be"


def test_a_read_only_out_is_exit_1_before_any_work(tmpfs, no_work, capsys):
    remount_read_only(tmpfs)
    assert main(["train", "--out", str(tmpfs / "run")]) == 1
    err = capsys.readouterr().err
    assert err == f"error: cannot write in {tmpfs / 'run'} (Read-only file system): choose another --out.\n"


def test_train_writes_a_checkpoint_and_resumes(data_dir, tmp_path, capsys):
    common = ["train", "--data-dir", str(data_dir), "--out", str(tmp_path / "run"), *TINY]
    assert main([*common, "--epochs", "1"]) == 0
    assert load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)["epoch"] == 1
    assert main([*common, "--epochs", "2", "--resume"]) == 0
    out = capsys.readouterr().out
    assert "epoch 2: test -ELBO" in out and "nats per image" in out and f"checkpoint in {tmp_path / 'run'}/" in out
    assert load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)["epoch"] == 2


def test_training_twice_into_one_out_is_refused_and_overwrite_replaces_it(data_dir, tmp_path, capsys):
    common = ["train", "--data-dir", str(data_dir), "--out", str(tmp_path / "run"), *TINY, "--epochs", "1"]
    path = tmp_path / "run" / CHECKPOINT_NAME
    assert main(common) == 0
    before = path.read_bytes()
    capsys.readouterr()
    assert main(common) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path} already holds a run") and len(err.splitlines()) == 1
    assert all(option in err for option in ("--resume", "--overwrite", "--out"))
    assert path.read_bytes() == before
    assert main([*common, "--overwrite", "--seed", "1"]) == 0
    state = load_checkpoint(path)
    assert state["config"]["seed"] == 1 and state["epoch"] == 1


def test_a_library_error_reaches_the_user_naming_the_flag_not_the_argument(tmp_path, capsys):
    data = tmp_path / "data"
    data.write_text("a file, where the data folder should be")
    assert main(["train", "--data-dir", str(data), "--out", str(tmp_path / "run"), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err == f"error: --data-dir {data} is a file, not a folder: pass a folder as --data-dir (e.g. data).\n"
    assert not (tmp_path / "run").exists()
    # Whole words only: not a name inside a path, a field (config.data_dir) or a quoted key ('runs_dir').
    message = "cannot write /x/out_dir/y ({'runs_dir': 1}), config.data_dir: choose another out_dir"
    assert cli_module.in_flags(ValueError(message)) == message.replace("another out_dir", "another --out")


@pytest.mark.parametrize(
    "make, names",
    [
        (lambda p: vdata.load_data("fashion-mnist", p.parent / "data"), ["data_dir"]),
        (lambda p: EvalSettings(iw_samples=0), ["settings.iw_samples"]),
        (lambda p: EvalSettings(tsne_points=50), ["settings.tsne_points"]),
        (lambda p: pipeline.ReportOptions(seeds=[1, 1]), ["options.seeds"]),
        (lambda p: pipeline.ReportOptions(from_checkpoint=str(p)), ["options.from_checkpoint"]),
        (lambda p: vsweep.plan(Config(), ["colour"]), ["ablations"]),
    ],
)
def test_a_library_error_names_its_argument_or_setting_not_a_flag(make, names, tmp_path):
    (tmp_path / "data").write_text("a file, where the data folder should be")
    with pytest.raises((ValueError, vdata.DataError)) as e:
        make(tmp_path / "nowhere.pt")
    assert all(name in str(e.value) for name in names) and "--" not in str(e.value)
    assert "--" in cli_module.in_flags(e.value)  # which the command line writes as its flag


def test_missing_data_is_a_clear_error(synthetic_dataset, tmp_path, monkeypatch, capsys):
    def no_network(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: no route to host")

    monkeypatch.setitem(vdata.TORCHVISION_CLASS, "fashion-mnist", no_network)
    assert main(["train", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no route to host" in err and "apt-get install dataset-fashion-mnist" in err
    assert TRACEBACK not in err and not (tmp_path / "run" / CHECKPOINT_NAME).exists()


def test_disk_full_through_the_cli_is_one_line_exit_1(data_dir, tmp_path, monkeypatch, capsys):
    write_bytes = Path.write_bytes

    def full_disk(self, data):
        if self.name.startswith(f".{CHECKPOINT_NAME}."):
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    argv = ["train", "--data-dir", str(data_dir), "--out", str(tmp_path / "run"), *TINY, "--epochs", "1"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write {tmp_path / 'run' / CHECKPOINT_NAME} (No space left on device)")
    assert len(err.splitlines()) == 1 and TRACEBACK not in err


# Where the report writes ---------------------------------------------------------------------------------------


def test_from_a_subfolder_of_a_checkout_defaults_are_under_its_root_and_typed_paths_under_the_current_folder(
    synthetic_dataset, tmp_path, monkeypatch, capsys
):
    root = make_checkout(tmp_path / "repo")
    write_gz(tmp_path / "debian", synthetic_dataset)  # the Debian package's files: decompressed into --data-dir
    monkeypatch.setitem(vraw.DEBIAN_DIR, "fashion-mnist", tmp_path / "debian")
    (root / "docs").mkdir()
    monkeypatch.chdir(root / "docs")
    assert main(["train", *TINY, "--epochs", "1", "--out", "x"]) == 0
    assert vraw.raw_dir("fashion-mnist", root / "data").is_dir()  # the data in the checkout's data/
    assert [p.name for p in (root / "docs").iterdir()] == ["x"]  # the checkpoint where the user said: docs/x
    assert (root / "docs" / "x" / CHECKPOINT_NAME).is_file()

    parser = cli_module.build_parser()
    assert parser.parse_args(["train"]).out == "../runs/train" and parser.parse_args(["train"]).data_dir == "../data"
    options = cli_module.report_options(parser.parse_args(["report"]))
    assert (options.fig_dir, options.report_path, options.runs_dir, options.sweep_dir, options.bounds_dir) == (
        "../figures", "../REPORT.md", "../runs", "../figures/experiments", "../figures/literature"
    )  # fmt: skip
    smoke = cli_module.report_options(parser.parse_args(["report", "--smoke", "--fig-dir", "f"]))
    assert (smoke.fig_dir, smoke.report_path, smoke.runs_dir) == ("f", "../runs/smoke/REPORT.md", "../runs/smoke")
    args = parser.parse_args(["sweep"])
    cli_module.sweep_options(args)
    assert (args.out, args.runs_dir, args.data_dir) == ("../figures/experiments", "../runs", "../data")
    assert parser.parse_args(["bounds", "--checkpoint", "c"]).out == "../figures/literature"
    args = parser.parse_args(["literature", "--run-dir", "r"])
    assert (args.out, args.sweep_dir, args.data_dir) == ("../figures/literature", "../figures/experiments", "../data")
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "(default: ../runs/train)" in help_text and "paths you type are read, relative to the current" in help_text

    monkeypatch.chdir(tmp_path)  # outside a checkout: under the current folder
    assert cli_module.build_parser().parse_args(["train"]).out == "runs/train"


def test_a_smoke_report_writes_only_under_runs_smoke(data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(pipeline.SMOKE, "train_images", 96)  # all of the synthetic data
    monkeypatch.setitem(pipeline.SMOKE, "test_images", 32)
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--smoke", "--data-dir", str(data_dir), *TINY]) == 0
    assert (tmp_path / "runs" / "smoke" / "REPORT.md").is_file()
    assert (tmp_path / "runs" / "smoke" / "figures" / "metrics.json").is_file()
    assert not (tmp_path / "REPORT.md").exists() and not (tmp_path / "figures").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "runs"]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["smoke"]
    assert "Wrote runs/smoke/figures/*.png" in capsys.readouterr().out


def test_figures_written_into_a_run_folder_do_not_block_the_report(data_dir, tmp_path, monkeypatch, capsys):
    # Once, a report whose --fig-dir was its own checkpoint's folder blamed "another run" (its own pid) for the lock.
    monkeypatch.setitem(pipeline.SMOKE, "train_images", 96)
    monkeypatch.setitem(pipeline.SMOKE, "test_images", 32)
    runs = tmp_path / "runs"
    folder = runs / run_name(Config(num_epochs=1, hidden_dim=16, latent_dim=2, batch_size=32, seed=0))
    common = ["report", "--smoke", "--data-dir", str(data_dir), *TINY, "--runs-dir", str(runs)]
    assert main([*common, "--fig-dir", str(folder), "--report-path", str(tmp_path / "R.md")]) == 0
    assert (folder / CHECKPOINT_NAME).is_file() and (folder / "metrics.json").is_file()
    assert "in use" not in capsys.readouterr().err


def test_the_removed_jobs_option_is_a_one_line_usage_error(no_work, capsys):
    with pytest.raises(SystemExit) as e:
        main(["sweep", "--jobs", "0"])
    assert e.value.code == 2 and "unrecognized arguments: --jobs 0" in capsys.readouterr().err


# Interrupted ---------------------------------------------------------------------------------------------------

EPOCHS = 5


@pytest.mark.parametrize(
    "sent, ignore_sigint, how, code",
    [
        (signal.SIGINT, False, "interrupted", 130),  # Ctrl-C
        (signal.SIGINT, True, "interrupted", 130),  # from a parent that ignores SIGINT (`bash -c '... & wait'`)
        (signal.SIGTERM, False, "terminated", 143),  # kill, a CI runner's time-out, a shutdown
    ],
    ids=["sigint", "sigint-from-a-parent-that-ignores-it", "sigterm"],
)
def test_an_interrupted_training_says_what_is_saved_and_resumes_bit_identically(
    sent, ignore_sigint, how, code, data_dir, tmp_path
):
    cli = ["train", "--data-dir", str(data_dir), *TINY, "--epochs", str(EPOCHS)]
    run = tmp_path / "run"
    child = start("pause", tmp_path / "paused", [*cli, "--out", str(run)], ignore_sigint=ignore_sigint)
    wait_for(tmp_path / "paused", child)  # the child waits in epoch 2, before its second batch
    child.send_signal(sent)
    _, err = child.communicate(timeout=60)
    assert child.returncode == code and TRACEBACK not in err, err
    assert err.strip().splitlines()[-1] == f"{how}: 1 finished epoch saved in {run}/; add --resume to continue."
    assert sorted(p.name for p in run.iterdir()) == [".lock", CHECKPOINT_NAME]  # no temporary left behind
    assert load_checkpoint(run / CHECKPOINT_NAME)["epoch"] == 1
    assert main([*cli, "--out", str(run), "--resume"]) == 0
    assert main([*cli, "--out", str(tmp_path / "reference")]) == 0
    assert_same_run(run, tmp_path / "reference", EPOCHS)


@pytest.mark.parametrize(
    "sent, how", [(signal.SIGINT, "interrupted"), (signal.SIGTERM, "terminated")], ids=["sigint", "sigterm"]
)
def test_an_interruption_during_the_first_save_says_that_nothing_was_saved(sent, how, data_dir, tmp_path):
    run = tmp_path / "run"
    cli = ["train", "--data-dir", str(data_dir), *TINY, "--epochs", "2", "--out", str(run)]
    child = start("pause-in-save", tmp_path / "paused", cli)
    wait_for(tmp_path / "paused", child)  # its temporary file is written, not yet renamed into place
    assert [p.name for p in run.iterdir() if p.name.endswith(".tmp")] == [f".{CHECKPOINT_NAME}.{child.pid}.tmp"]
    child.send_signal(sent)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 128 + sent and TRACEBACK not in err, err
    assert err.strip().splitlines()[-1] == (
        f"{how}: no epoch had finished, so nothing was saved in {run}/; run the same command again to start."
    )
    assert [p.name for p in run.iterdir()] == [".lock"]  # the temporary is removed


def test_bounds_adds_a_models_records_and_keeps_the_others(data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data-dir", str(data_dir), "--out", str(run), *TINY, "--epochs", "1"]) == 0
    out = tmp_path / "literature"
    common = ["bounds", "--checkpoint", str(run / CHECKPOINT_NAME), "--data-dir", str(data_dir), "--out", str(out)]
    assert main([*common, "--ks", "1", "3", "--label", "a", "--device", "cpu"]) == 0
    assert main([*common, "--ks", "2", "--label", "b", "--device", "cpu"]) == 0
    assert main([*common, "--ks", "1", "--label", "a", "--device", "cpu"]) == 0  # replaces a's records
    records = json.loads((out / "k_convergence.json").read_text())
    assert [(r["model"], r["k"]) for r in records] == [("b", 2), ("a", 1)]
    assert {r["dataset"] for r in records} == {"fashion-mnist, grey levels"}  # what the bounds are measured on
    assert all(math.isfinite(r["bound"]) and r["se"] > 0 for r in records)
    assert (out / "k_convergence.png").is_file() and "a: K=1: " in capsys.readouterr().out


def test_bad_bounds_options_are_refused_before_any_work(no_work, capsys):
    for argv, says in ((["--ks", "0"], "--ks must be integers >= 1"), ([], "no such file")):
        with pytest.raises(SystemExit) as e:
            main(["bounds", "--checkpoint", "missing.pt", *argv])
        assert e.value.code == 2 and says in capsys.readouterr().err


def test_the_literature_preset_sets_the_defaults_and_options_override_it(no_work, monkeypatch):
    seen = {}
    monkeypatch.setattr(cli_module, "train", lambda args, config: seen.setdefault("config", config))
    assert main(["train", "--preset", "literature", "--epochs", "10", "--no-binarize"]) == 0
    expected = Config(**{**PRESETS["literature"], "num_epochs": 10, "binarize": False})
    assert seen["config"] == expected  # an option equal to the plain default still overrides the preset
    assert "literature" not in str(seen["config"])  # the preset is a set of values, not a field


def test_an_unknown_preset_is_a_usage_error(no_work, capsys):
    assert "invalid choice: 'published'" in exit_2(["train", "--preset", "published"], capsys)


@pytest.mark.parametrize("dataset", ["fashion-mnist", "mnist"])
def test_literature_scores_the_best_epoch_and_writes_results_for_each_dataset(
    dataset, synthetic_dataset, tmp_path, monkeypatch, capsys
):
    # A smoke run of the literature protocol on the synthetic images (as MNIST too: the same files in its folder).
    monkeypatch.setitem(vraw.RAW_FILES, "mnist", vraw.RAW_FILES["fashion-mnist"])
    raw = vraw.raw_dir(dataset, tmp_path / "data")
    raw.mkdir(parents=True)
    for name, data in synthetic_dataset.items():
        (raw / name).write_bytes(data)
    run, out = tmp_path / "run", tmp_path / "literature"
    small = ["--batch-size", "16", "--hidden-dim", "8", "--latent-dim", "2", "--validation-images", "32"]
    train = ["train", "--preset", "literature", "--dataset", dataset, "--data-dir", str(tmp_path / "data"), *small]
    assert main([*train, "--epochs", "3", "--out", str(run), "--device", "cpu"]) == 0
    common = ["literature", "--run-dir", str(run), "--data-dir", str(tmp_path / "data"), "--out", str(out)]
    assert main([*common, "--ks", "1", "4", "--sweep-dir", str(tmp_path / "no-sweep"), "--device", "cpu"]) == 0
    results = json.loads((out / "results.json").read_text())
    entry = results[dataset]
    (one,) = entry["runs"]
    history = load_checkpoint(run / CHECKPOINT_NAME)["history"]
    val = [r["val_loss"] for r in history]
    assert one["epochs"] == 3 and one["best_epoch"] == 1 + val.index(min(val)) and one["stopped_early"] is False
    assert one["curve"]["val_loss"] == [round(v, 3) for v in val]
    assert one["iw_samples"] == 4 and entry["published_nll"] == {"fashion-mnist": 228.70, "mnist": 84.45}[dataset]
    assert (one["seed"], one["validation_protocol"]) == (0, VALIDATION_PROTOCOL)  # the checkpoint's protocol
    assert (entry["n_runs"], entry["iwae_nll_mean"], entry["iwae_nll_sd"]) == (1, one["iwae_nll"], None)
    assert one["config"]["architecture"] == "gated" and one["config"]["dataset"] == dataset
    assert {r["dataset"] for r in results["k_convergence"]} == {f"{dataset}, binarised"}
    k = {r["k"]: r for r in results["k_convergence"]}
    assert (k[4]["bound"], k[4]["se"]) == (one["iwae_nll"], one["iwae_nll_se"]) and k[4]["bound"] <= k[1]["bound"] + 1
    assert results["continuous_bernoulli"] is None  # no stored sweep here
    assert {p.name for p in out.iterdir()} == {
        "results.json",
        "k_convergence.json",
        "k_convergence.png",
        "training.png",
    }
    assert f"{dataset}, seed 0, protocol {VALIDATION_PROTOCOL}: test NLL " in capsys.readouterr().out


def test_literature_keeps_a_run_per_seed_and_averages_only_the_newest_protocol(data_dir, tmp_path):
    # results.json as committed before runs were kept: one run per dataset, of protocol 1, its fields at the top.
    out, label = tmp_path / "literature", model_label("fashion-mnist")
    out.mkdir()
    old = {"iwae_nll": 999.0, "iwae_nll_se": 1.0, "iw_samples": 5000, "published_nll": 228.7, "epochs": 2,
           "best_epoch": 2, "stopped_early": False, "train_seconds": 1.0, "config": {"seed": 0, "num_epochs": 2000},
           "curve": {"val_loss": [1000.0, 999.0], "test_loss": [1000.0, 999.0]}}  # fmt: skip
    records = [{"model": label, "dataset": "fashion-mnist, binarised", "k": 5000, "bound": 999.0, "se": 1.0}]
    (out / "results.json").write_text(json.dumps({"fashion-mnist": old, "mnist": {**old, "published_nll": 84.45}}))
    (out / "k_convergence.json").write_text(json.dumps(records))
    small = ["--batch-size", "16", "--hidden-dim", "8", "--latent-dim", "2", "--validation-images", "32"]
    common = ["--data-dir", str(data_dir), "--device", "cpu"]
    for seed in (0, 1):
        train = ["train", "--preset", "literature", *small, "--epochs", "2", "--seed", str(seed), *common]
        assert main([*train, "--out", str(tmp_path / f"seed{seed}")]) == 0

    def score(seed, *ks):
        argv = ["literature", "--run-dir", str(tmp_path / f"seed{seed}"), "--out", str(out), "--ks", *ks, *common]
        assert main([*argv, "--sweep-dir", str(tmp_path / "no-sweep")]) == 0
        return json.loads((out / "results.json").read_text())

    assert json.loads((out / "k_convergence.json").read_text()) == score(1, "1", "4")["k_convergence"] == records
    results = score(0, "1", "4")  # seed 0 of the newest protocol: its K-convergence replaces protocol 1's
    assert [r["k"] for r in results["k_convergence"]] == [1, 4]
    entry = results["fashion-mnist"]
    assert [(r["seed"], r["validation_protocol"]) for r in entry["runs"]] == [(0, 2), (1, 2), (0, 1)]
    a, b = (r["iwae_nll"] for r in entry["runs"][:2])
    assert (entry["protocol"], entry["n_runs"]) == (VALIDATION_PROTOCOL, 2)  # protocol 1's 999 is not averaged
    assert entry["iwae_nll_mean"] == pytest.approx((a + b) / 2) and entry["iwae_nll_sd"] == pytest.approx(
        abs(a - b) / math.sqrt(2)
    )  # the sample sd of two numbers
    assert results["k_convergence"][1]["bound"] == a
    entry = score(0, "1", "2")["fashion-mnist"]  # re-scoring seed 0 replaces its entry
    assert [(r["seed"], r["iw_samples"]) for r in entry["runs"]] == [(0, 2), (1, 4), (0, 5000)]
    assert entry["runs"][2]["iwae_nll"] == 999.0 and entry["n_runs"] == 2
    mnist = json.loads((out / "results.json").read_text())["mnist"]  # written back in the runs schema, unchanged
    assert [(r["seed"], r["validation_protocol"], r["iwae_nll"]) for r in mnist["runs"]] == [(0, 1, 999.0)]


def test_literature_refuses_a_run_without_a_best_checkpoint(no_work, capsys):
    assert "--run-dir nowhere has no best.pt" in exit_2(["literature", "--run-dir", "nowhere"], capsys)
