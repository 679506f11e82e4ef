"""vae.lab.pipeline: `python -m vae report` end to end on a small synthetic dataset, and once on the real data."""

import hashlib
import json
import math
import statistics
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch
from conftest import REPO, full_disk_on_write, remount_read_only, write_gz
from test_progress import logged_steps

from vae import Config, evaluate_model, load_data, negative_elbo, progress
from vae import data as vdata
from vae import raw_files as vraw
from vae.config import run_name
from vae.evaluate import EvalSettings
from vae.lab import files as vfiles
from vae.lab import formatting, pipeline, report
from vae.lab import runs as vruns
from vae.lab.checkpoint import CheckpointError
from vae.lab.cli import main
from vae.lab.runs import fit, train_or_load
from vae.research.training import Binarized

FIGURES = ("loss_curves", "reconstructions", "prior_samples", "interpolation", "tsne", "kl_per_dim")
METRICS_KEYS = {"config", "evaluation", "smoke", "data", "device", "seeds", "figures_seed", "figures", "summary",
                "knn_accuracy_pixels", "runs", "versions", "date", "timings"}  # fmt: skip
SECTIONS = ("## Introduction", "## Architecture", "## Experiment", "## Results", "## Figures", "## Conclusion")


@pytest.fixture
def config(synthetic_dataset, tmp_path, monkeypatch) -> Config:
    """A 784-16-3 VAE, 1 epoch, on the synthetic fashion-mnist (96 train, 32 test images) as the Debian files."""
    write_gz(tmp_path / "debian", synthetic_dataset)
    monkeypatch.setitem(vraw.DEBIAN_DIR, "fashion-mnist", tmp_path / "debian")
    return Config(
        hidden_dim=16, latent_dim=3, batch_size=32, num_epochs=1, device="cpu", data_dir=str(tmp_path / "data")
    )


def options(root: Path, **kw) -> pipeline.ReportOptions:
    """Every output under `root`; K = 10, and a t-SNE of 20 points (perplexity 5) to be quick."""
    evaluation = EvalSettings(
        iw_samples=kw.pop("iw_samples", 10), tsne_points=20, tsne_perplexity=5.0, tsne_max_iter=250
    )
    paths = {"fig_dir": root / "figures", "report_path": root / "REPORT.md", "runs_dir": root / "runs",
             "sweep_dir": root / "experiments", "bounds_dir": root / "literature"}  # fmt: skip
    return pipeline.ReportOptions(evaluation=evaluation, **{k: str(v) for k, v in paths.items()} | kw)


def strict_json(path):
    """Parse JSON, refusing NaN and Infinity (which json.dumps(allow_nan=False) never writes)."""
    return json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in {path}"))


def outputs(root: Path) -> dict[str, bytes]:
    """Every file of a report's set: the figures, metrics.json and REPORT.md."""
    files = {p.name: p.read_bytes() for p in sorted((root / "figures").iterdir())}
    return files | {"REPORT.md": (root / "REPORT.md").read_bytes()}


def temporaries(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.tmp"))


def check_outputs(root: Path, seeds: list[int]) -> tuple[dict, str]:
    """The set a report writes, and the facts that tie its numbers together."""
    fig_dir = root / "figures"
    assert sorted(p.name for p in fig_dir.iterdir()) == sorted([f"{n}.png" for n in FIGURES] + ["metrics.json"])
    m = strict_json(fig_dir / "metrics.json")
    assert set(m) == METRICS_KEYS and m["figures"] == [f"{n}.png" for n in FIGURES]
    assert m["seeds"] == seeds and list(m["runs"]) == [str(s) for s in seeds] and m["figures_seed"] == seeds[0]
    for key, stat in m["summary"].items():
        values = [m["runs"][str(s)][key] for s in seeds]
        assert math.isfinite(stat["mean"]) and stat["unit"], key
        assert stat["mean"] == pytest.approx(statistics.fmean(values)), key
        assert stat["sd"] == (pytest.approx(statistics.stdev(values)) if len(seeds) > 1 else None), key
    for s in seeds:
        run = m["runs"][str(s)]
        assert run["iwae_nll"] < run["test_loss"]
        assert run["test_loss"] == pytest.approx(run["test_bce"] + run["test_kl"])
        assert run["epochs"] == len(run["history"]) == m["config"]["num_epochs"]
        assert run["train_loss"] == run["history"][-1]["train_loss"]
        checkpoint = Path(run["checkpoint"])
        assert run["checkpoint_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
        assert (checkpoint.parent / pipeline.EVALUATION_NAME).is_file()
    assert m["versions"]["torch"] and m["date"] and m["timings"]["total_seconds"] > 0
    text = (root / "REPORT.md").read_text(encoding="utf-8")
    for section in SECTIONS:
        assert section in text
    for name in FIGURES:
        assert f"](figures/{name}.png)" in text
    s = m["summary"]
    assert formatting.pm(s["test_loss"], 2) in text and formatting.pm(s["iwae_nll"], 2) in text
    assert f"K = {m['evaluation']['iw_samples']}" in text and "nats per image" in text and "batch" in text
    assert temporaries(root) == []
    return m, text


# --- What a report writes, and what a second run reuses ------------------------------------------------------------


def make(config, root, **kw) -> dict:
    return pipeline.make_report(config, options(root, **kw), progress=False)


def test_report_writes_the_set_and_a_second_run_reuses_the_stored_evaluation(config, tmp_path, monkeypatch):
    make(config, tmp_path, seeds=[0, 1])
    m, text = check_outputs(tmp_path, [0, 1])
    assert m["summary"]["test_loss"]["sd"] > 0 and "mean ± sd over 2 seeds" in text
    assert m["config"]["num_epochs"] == 1 and m["evaluation"]["iw_samples"] == 10 and m["data"]["test_images"] == 32
    assert m["runs"]["1"]["checkpoint"] == str(tmp_path / "runs" / run_name(replace(config, seed=1)) / "checkpoint.pt")
    assert m["runs"]["1"]["epochs_reused"] == 0 and not m["runs"]["1"]["evaluation_reused"]
    before = outputs(tmp_path)

    # A second run loads the finished checkpoints and the stored evaluations: nothing slow is recomputed.
    def refuse(*args, **kwargs):
        raise AssertionError("trained or evaluated again instead of reusing the stored results")

    monkeypatch.setattr(pipeline, "evaluate_model", refuse)
    monkeypatch.setattr(vruns, "fit", refuse)
    again = make(config, tmp_path, seeds=[0, 1])
    assert all(r["evaluation_reused"] and r["epochs_reused"] == 1 for r in again["runs"].values())
    after = outputs(tmp_path)
    for name in FIGURES:
        assert after[f"{name}.png"] == before[f"{name}.png"], f"{name}.png differs"
    assert again["summary"] == m["summary"] and again["runs"]["0"]["kl_per_dim"] == m["runs"]["0"]["kl_per_dim"]
    text = (tmp_path / "REPORT.md").read_text(encoding="utf-8")
    assert "2 of the 2 epochs were trained by an earlier run" in text
    assert "2 of 2 evaluations were read from an earlier run's stored results" in text


def test_in_a_log_the_report_names_each_step_with_its_seed(config, tmp_path, capfd, monkeypatch):
    monkeypatch.setattr(progress, "live_bar", lambda: False)
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)  # the epochs' log lines too
    pipeline.make_report(config, options(tmp_path, seeds=[1]))
    err = capfd.readouterr().err
    assert err.splitlines()[0].startswith("seed 1: epoch 1/1: train ")
    later = ["5-NN accuracy on pixels (the baseline for μ)", "seed 1: drawing the figures",
             f"writing 6 figures, metrics.json and {tmp_path / 'REPORT.md'}"]  # fmt: skip
    assert logged_steps(err) == [
        "seed 1: -ELBO of 32 test images",
        "seed 1: IWAE K = 10 on 32 images",
        "seed 1: 5-NN accuracy on μ of 32 test images",
        "seed 1: t-SNE of μ of 20 test images, 250 iterations",
        *later,
    ]
    pipeline.make_report(config, options(tmp_path, seeds=[1]))  # the model and its evaluation are reused
    assert logged_steps(capfd.readouterr().err) == later


def test_a_damaged_or_other_evaluation_is_recomputed(config, tmp_path):
    m = make(config, tmp_path)
    stored = Path(m["runs"]["0"]["checkpoint"]).parent / pipeline.EVALUATION_NAME
    stored.write_text("{not json")  # damaged: recomputed, and the same numbers again
    again = make(config, tmp_path)
    assert not again["runs"]["0"]["evaluation_reused"] and again["summary"] == m["summary"]
    assert json.loads(stored.read_text())["value"]["iwae_nll"] == m["runs"]["0"]["iwae_nll"]
    assert make(config, tmp_path)["runs"]["0"]["evaluation_reused"]  # rewritten: now reused

    other = make(config, tmp_path, iw_samples=7)  # another K: recomputed, and the report says so
    assert not other["runs"]["0"]["evaluation_reused"] and other["evaluation"]["iw_samples"] == 7
    assert other["runs"]["0"]["iwae_nll"] != m["runs"]["0"]["iwae_nll"]
    assert other["runs"]["0"]["test_loss"] == m["runs"]["0"]["test_loss"]  # the same model
    text = (tmp_path / "REPORT.md").read_text(encoding="utf-8")
    assert "K = 7" in text and "K = 10" not in text
    assert temporaries(tmp_path) == []


def test_a_stored_value_that_cannot_be_right_is_recomputed_naming_the_file(config, tmp_path, capsys):
    m = make(config, tmp_path)
    evaluation = Path(m["runs"]["0"]["checkpoint"]).parent / pipeline.EVALUATION_NAME
    knn = tmp_path / "runs" / "knn_pixels.json"
    good = json.loads(evaluation.read_text())["value"]
    edits = [(evaluation, {**good, "iwae_nll": 1.0}, "its IWAE NLL 1.00 is not its -ELBO"),  # far below the -ELBO
             (evaluation, {**good, "iwae_nll": good["test_loss"] + 10}, "its IWAE NLL"),  # above its own bound
             (evaluation, {**good, "test_kl": -1.0}, "its -ELBO"),
             (evaluation, "garbage", "the value is 'garbage', not a dict"),
             (evaluation, {k: v for k, v in good.items() if k != "kl_per_dim"}, "the value lacks ['kl_per_dim']"),
             (knn, "garbage", "the value is 'garbage', not a finite number"),
             (knn, 7.0, "the accuracy 7.0 is not in [0, 1]")]  # fmt: skip
    for path, value, why in edits:
        path.write_text(json.dumps(json.loads(path.read_text()) | {"value": value}))  # the key still matches
        capsys.readouterr()
        again = make(config, tmp_path)
        said = [line for line in capsys.readouterr().err.splitlines() if str(path) in line]
        assert len(said) == 1 and said[0].startswith(f"{path} is damaged or was edited ({why}"), said
        assert said[0].endswith("): recomputing it.")
        assert again["summary"] == m["summary"] and again["knn_accuracy_pixels"] == m["knn_accuracy_pixels"]
        assert json.loads(path.read_text())["value"] != value  # replaced by the right value


def test_other_epochs_are_trained_not_reused(config, tmp_path):
    make(replace(config, num_epochs=2), tmp_path)  # --epochs 2
    m = make(config, tmp_path)  # then --epochs 1, into the same runs folder
    assert m["runs"]["0"]["epochs"] == 1 and len(m["runs"]["0"]["history"]) == 1 and m["config"]["num_epochs"] == 1
    assert not m["runs"]["0"]["evaluation_reused"] and m["runs"]["0"]["epochs_reused"] == 0
    assert "Adam, learning rate 0.0003, batch size 32, 1 epochs" in (tmp_path / "REPORT.md").read_text()


# --- A failure replaces nothing -------------------------------------------------------------------------------------


def test_a_full_disk_on_the_third_file_keeps_every_previous_output(config, tmp_path, monkeypatch):
    make(config, tmp_path)
    before = outputs(tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(pipeline, "staged_writes", full_disk_on_write(3))
        with pytest.raises(vfiles.OutputError, match=r"cannot write .*prior_samples.png \(No space left on devi"):
            make(config, tmp_path, seeds=[1])  # another model: every file of its set would differ
    assert outputs(tmp_path) == before  # byte-identical: the previous set, not a mix
    assert temporaries(tmp_path) == []
    assert make(config, tmp_path, seeds=[1])["seeds"] == [1]
    assert all(outputs(tmp_path)[f"{n}.png"] != before[f"{n}.png"] for n in FIGURES)  # the set would have changed


def test_a_failure_rendering_the_report_keeps_every_previous_output(config, tmp_path, monkeypatch):
    make(config, tmp_path)
    before = outputs(tmp_path)

    def broken(*args, **kwargs):
        raise KeyError("a placeholder the template names but the metrics lack")

    monkeypatch.setattr(report, "render", broken)
    with pytest.raises(KeyError, match="placeholder"):
        make(config, tmp_path, seeds=[1], iw_samples=7)
    assert outputs(tmp_path) == before
    assert temporaries(tmp_path) == []


def test_a_read_only_figures_folder_is_a_clear_error_and_keeps_the_set(config, tmp_path, tmpfs):
    make(config, tmp_path)  # warm the checkpoint store, outside the small disk
    first = options(tmp_path, fig_dir=str(tmpfs / "figures"), report_path=str(tmpfs / "REPORT.md"))
    pipeline.make_report(config, first, progress=False)
    before = outputs(tmpfs)
    remount_read_only(tmpfs)
    with pytest.raises(vfiles.OutputError, match=r"cannot write .*\.png \(Read-only file system\)\. Free"):
        pipeline.make_report(config, replace(first, seeds=[1]), progress=False)
    assert outputs(tmpfs) == before


# --- Where outputs go ------------------------------------------------------------------------------------------


def test_options_default_to_the_committed_paths_or_with_smoke_to_scratch_ones():
    full = pipeline.ReportOptions()
    assert (full.fig_dir, full.report_path, full.runs_dir) == ("figures", "REPORT.md", "runs")
    smoke = pipeline.ReportOptions(smoke=True)
    assert Path(smoke.fig_dir) == Path("runs/smoke/figures") and Path(smoke.report_path) == Path("runs/smoke/REPORT.md")
    assert Path(smoke.runs_dir) == Path("runs/smoke")
    given = pipeline.ReportOptions(smoke=True, fig_dir="f", report_path="r.md", runs_dir="c")
    assert (given.fig_dir, given.report_path, given.runs_dir) == ("f", "r.md", "c")


def test_a_smoke_report_writes_scratch_files_and_its_checkpoint_never_stands_for_a_full_run(
    config, tmp_path, monkeypatch
):
    monkeypatch.setitem(pipeline.SMOKE, "train_images", 64)  # the synthetic data has 96 and 32 images
    monkeypatch.setitem(pipeline.SMOKE, "test_images", 32)
    monkeypatch.chdir(tmp_path)
    evaluation = EvalSettings(iw_samples=50, tsne_points=20, tsne_perplexity=5.0)
    smoke = pipeline.make_report(
        replace(config, num_epochs=3), pipeline.ReportOptions(evaluation=evaluation, smoke=True)
    )
    assert not (tmp_path / "figures").exists() and not (tmp_path / "REPORT.md").exists()
    assert (tmp_path / "runs/smoke/REPORT.md").is_file() and (tmp_path / "runs/smoke/figures/tsne.png").is_file()
    assert smoke["smoke"] and smoke["config"]["num_epochs"] == 1 and smoke["evaluation"]["iw_samples"] == 10
    assert smoke["data"] == {"dataset": "fashion-mnist", "train_images": 64, "test_images": 32}
    assert "**Smoke run**" in (tmp_path / "runs/smoke/REPORT.md").read_text()
    checkpoint = Path(smoke["runs"]["0"]["checkpoint"])
    assert checkpoint.is_relative_to(Path("runs/smoke"))

    # A full-size run of the same config, pointed at the smoke run's store, must not report the smoke model.
    full = options(tmp_path / "full", runs_dir="runs/smoke")
    with pytest.raises(CheckpointError, match="another data subset"):
        pipeline.make_report(config, full, progress=False)
    assert not (tmp_path / "full").exists()


def test_report_from_a_checkpoint_trains_nothing(config, tmp_path, monkeypatch):
    x_train, _ = vdata.load_split("fashion-mnist", "train", config.data_dir)
    x_test, _ = vdata.load_split("fashion-mnist", "test", config.data_dir)
    fit(config, x_train, x_test, out_dir=tmp_path / "elsewhere", progress=False)
    checkpoint = tmp_path / "elsewhere" / vruns.CHECKPOINT_NAME
    monkeypatch.setattr(vruns, "fit", lambda *a, **k: pytest.fail("trained"))
    m = make(config, tmp_path, from_checkpoint=str(checkpoint), iw_samples=20)
    check_outputs(tmp_path, [0])
    assert list((tmp_path / "runs").glob("**/*.pt")) == []  # only the pixels' kNN baseline is stored there
    assert m["runs"]["0"]["checkpoint_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert m["summary"]["test_loss"]["sd"] is None and m["runs"]["0"]["epochs_reused"] == 1


def test_two_runs_into_new_folders_write_the_same_files(config, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b" / "deeper"  # neither exists yet
    make(config, first)
    make(config, second)  # trained and evaluated afresh: no shared store
    a, b = outputs(first), outputs(second)
    assert sorted(a) == sorted(b) == sorted([*(f"{n}.png" for n in FIGURES), "metrics.json", "REPORT.md"])
    for name in FIGURES:
        assert a[f"{name}.png"] == b[f"{name}.png"], f"{name}.png differs"
    ma, mb = json.loads(a["metrics.json"]), json.loads(b["metrics.json"])
    for m in (ma, mb):  # what differs between two runs of one experiment: clocks, dates and paths
        del m["date"], m["timings"]
        for run in m["runs"].values():
            del run["checkpoint"], run["checkpoint_sha256"], run["train_seconds"]  # the history holds times
            for record in run["history"]:
                del record["seconds"], record["train_seconds"]
        del m["summary"]["train_seconds"]
    assert ma == mb and ma["summary"]["test_loss"]["mean"] > 0


def test_a_binarised_run_scores_the_same_in_the_notebook_and_from_the_command_line(config, tmp_path, monkeypatch):
    """The notebook's path (train_or_load, then evaluate_model) and `python -m vae report`, each training its own
    run of one binarised config: the same -ELBO and IWAE NLL, both on the fixed binarisation of the test images."""
    config = replace(config, binarize=True)
    settings = EvalSettings(iw_samples=10, tsne_points=100)  # what `report --iw-samples 10 --tsne-points 100` uses
    data = load_data(config.dataset, config.data_dir, device="cpu")
    model, history, _ = train_or_load(config, data.x_train, data.x_test, tmp_path / "notebook", progress=False)
    assert isinstance(model.protocol, Binarized)
    notebook = evaluate_model(model, data, settings, seed=config.seed, progress=False)
    assert notebook["test_loss"] == history[-1]["test_loss"]  # the test set the training scored
    grey = negative_elbo(model, data.x_test, seed=config.seed)["loss"]
    assert notebook["test_loss"] != pytest.approx(grey)  # scored on binary images, not on the grey levels

    monkeypatch.chdir(tmp_path)  # the default --sweep-dir and --bounds-dir: none there
    cli = tmp_path / "cli"
    argv = ["report", "--binarize", "--data-dir", config.data_dir, "--device", "cpu", "--seed", str(config.seed)]
    argv += ["--hidden-dim", str(config.hidden_dim), "--latent-dim", str(config.latent_dim)]
    argv += ["--batch-size", str(config.batch_size), "--epochs", str(config.num_epochs)]
    argv += ["--iw-samples", str(settings.iw_samples), "--tsne-points", str(settings.tsne_points)]
    argv += ["--fig-dir", str(cli / "figures"), "--report-path", str(cli / "REPORT.md")]
    argv += ["--runs-dir", str(cli / "runs")]
    assert main(argv) == 0
    m = strict_json(cli / "figures" / "metrics.json")
    assert Config.from_dict(m["config"]) == config and m["evaluation"] == asdict(settings)
    run = m["runs"][str(config.seed)]
    assert run["epochs_reused"] == 0 and not run["evaluation_reused"]  # trained and scored afresh, not shared
    assert (run["test_loss"], run["iwae_nll"]) == (notebook["test_loss"], notebook["iwae_nll"])


# --- Options, and the command line --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"from_checkpoint": "nowhere.pt"}, "options.from_checkpoint nowhere.pt: no such file"),
        ({"from_checkpoint": __file__, "seeds": [0, 1]}, "one model"),
        ({"seeds": [1, 1]}, "distinct"),
        ({"seeds": [-1]}, r"distinct integers in \[0, 2\*\*63\)"),
        ({"seeds": []}, "options.seeds"),
        ({"evaluation": EvalSettings(tsne_points=0)}, "options.evaluation.tsne_points must be >= 1"),
    ],
)
def test_bad_report_options_name_the_option(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pipeline.ReportOptions(**kwargs)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--from-checkpoint", "nowhere.pt"], "nowhere.pt: no such file"),
        (["--iw-samples", "0"], "--iw-samples must be an integer >= 1, got 0"),
        (["--tsne-points", "50"], "--tsne-points must be 0"),
        (["--seeds", "1", "1"], "distinct"),
    ],
)
def test_bad_report_options_are_one_line_errors_before_any_work(args, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["report", "--fig-dir", str(tmp_path / "f"), "--runs-dir", str(tmp_path / "r"), *args])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("python -m vae: error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "f").exists() and not (tmp_path / "r").exists()


def test_a_figures_folder_that_cannot_be_created_fails_before_any_work(config, tmp_path, monkeypatch, capsys):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setattr(vruns, "fit", lambda *a, **k: pytest.fail("trained"))
    argv = ["report", "--fig-dir", str(tmp_path / "a-file" / "figures"), "--data-dir", config.data_dir]
    argv += ["--runs-dir", str(tmp_path / "runs"), "--report-path", str(tmp_path / "REPORT.md"), "--device", "cpu"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write in {tmp_path / 'a-file' / 'figures'}") and "--fig-dir" in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "REPORT.md").exists()


@pytest.mark.real_data
def test_cli_smoke_report_on_the_real_data(real_data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the default paths, inside tmp_path
    assert main(["report", "--smoke", "--data-dir", str(real_data_dir), "--device", "cpu"]) == 0
    scratch = tmp_path / "runs" / "smoke"
    m, _ = check_outputs(scratch, [0])
    assert not (tmp_path / "figures").exists() and not (tmp_path / "REPORT.md").exists()
    assert m["data"]["train_images"] == 2000 and m["data"]["test_images"] == 500
    assert m["evaluation"]["tsne_points"] == 500 and m["smoke"] and m["config"]["num_epochs"] == 1
    assert 0.5 < m["summary"]["knn_accuracy"]["mean"] <= 1 and 0.5 < m["knn_accuracy_pixels"] <= 1
    assert 300 < m["summary"]["test_loss"]["mean"] < 543  # better than a uniform guess (784 ln 2) after one epoch
    assert "nats per image" in capsys.readouterr().out


def test_the_pixels_baseline_is_stored_and_reused_only_for_the_same_data_and_k(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(pipeline, "knn_accuracy", lambda *a: calls.append((len(a[0]), a[-1])) or 0.25 * len(calls))
    data = (torch.rand(40, 784), torch.arange(40) % 10, torch.rand(20, 784), torch.arange(20) % 10)
    assert pipeline.pixels_knn(data, "fashion-mnist", 5, tmp_path) == 0.25
    assert pipeline.pixels_knn(data, "fashion-mnist", 5, tmp_path) == 0.25  # stored: not recomputed
    assert pipeline.pixels_knn(data, "fashion-mnist", 3, tmp_path) == 0.5  # another k
    smaller = (data[0][:30], data[1][:30], data[2], data[3])
    assert pipeline.pixels_knn(smaller, "fashion-mnist", 3, tmp_path) == 0.75  # another data subset
    assert calls == [(40, 5), (40, 3), (30, 3)]


def test_the_report_includes_the_stored_k_convergence_and_literature_results(config, tmp_path):
    records = [{"model": "gated", "dataset": "fashion-mnist, binarised", "k": k, "bound": 240.0 - k / 1000, "se": 0.2}
               for k in (1, 5000)]  # fmt: skip
    curve = [250.0 - e / 100 for e in range(120)]
    # results.json's first schema: one run, its fields at the top (read as that run, of protocol 1)
    entry = {"iwae_nll": 235.0, "iwae_nll_se": 0.2, "iw_samples": 5000, "published_nll": 228.7, "epochs": 120,
             "best_epoch": 120, "stopped_early": False, "train_seconds": 600.0, "config": {"num_epochs": 2000,
             "seed": 0}, "curve": {"val_loss": curve, "test_loss": curve}}  # fmt: skip
    (tmp_path / "literature").mkdir()
    (tmp_path / "literature" / "k_convergence.json").write_text(json.dumps(records))
    (tmp_path / "literature" / "results.json").write_text(
        json.dumps({"fashion-mnist": entry, "k_convergence": records})
    )
    make(config, tmp_path)
    text = (tmp_path / "REPORT.md").read_text(encoding="utf-8")
    assert "| gated | fashion-mnist, binarised | 5000 | 235.00 ± 0.20 |" in text  # the K-convergence section
    row = "| fashion-mnist | seed 0, protocol 1 | 235.00 ± 0.20 | 228.70 ± 0.15 | +6.30 (42.0 σ) | 120 (cut short) |"
    assert row in text  # the literature section
    assert "](literature/training.png)" in text


def test_the_committed_report_is_what_the_code_renders_from_the_committed_results(monkeypatch):
    # REPORT.md is never edited by hand: it is the template filled from figures/metrics.json, the stored sweep,
    # K-convergence and literature results. A changed template, reading or result must be re-rendered.
    monkeypatch.chdir(REPO)
    metrics = json.loads(Path("figures/metrics.json").read_text())
    text = pipeline.render_report(metrics, pipeline.ReportOptions())
    assert text == Path("REPORT.md").read_text(encoding="utf-8")
