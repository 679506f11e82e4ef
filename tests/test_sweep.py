"""vae.lab.sweep: each run once, stored, skipped when done, refused when it would mix; the table and its figures."""

import csv
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import REPO, full_disk_on_write, write_gz
from test_progress import logged_steps

from vae import Config, progress
from vae import raw_files as vraw
from vae.evaluate import EvalSettings
from vae.lab import files as vfiles
from vae.lab import report
from vae.lab import runs as vruns
from vae.lab import sweep as sw
from vae.lab.checkpoint import RECORD
from vae.lab.cli import main
from vae.lab.literature import ORIGINAL_REPORT_LOSS
from vae.model import VAE

COMMITTED = REPO / "figures" / "experiments"


@pytest.fixture
def base(synthetic_dataset, tmp_path, monkeypatch) -> Config:
    """A 784-16-3 VAE on the synthetic fashion-mnist (96 train, 32 test images) as the Debian package's files;
    a smoke sweep takes its first 64 and 24 images."""
    write_gz(tmp_path / "debian", synthetic_dataset)
    monkeypatch.setitem(vraw.DEBIAN_DIR, "fashion-mnist", tmp_path / "debian")
    monkeypatch.setattr(sw, "SMOKE_IMAGES", {"train_images": 64, "test_images": 24})
    return Config(hidden_dim=16, latent_dim=3, batch_size=32, device="cpu", data_dir=str(tmp_path / "data"))


@pytest.fixture
def settings() -> EvalSettings:
    return EvalSettings(iw_samples=5, tsne_points=16, tsne_perplexity=5.0, tsne_max_iter=250)


def quiet(*args):
    pass


def refuse(*args, **kwargs):
    raise AssertionError("trained although it should not have")


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# --- The plan ---------------------------------------------------------------------------------------------------


def test_plan_runs_shared_variants_once_under_their_names():
    runs = sw.plan(Config(), seeds=(0, 1, 2))
    # 4 + 3 + 4 + 2 + 2 distinct variants, the original setting among them, times 3 seeds
    assert len(runs) == 15 * 3
    assert runs["default,seed=1"] == Config(seed=1)
    assert runs["beta=2.0,variance_head=sigma,seed=0"].variance_head == "sigma"
    assert runs["beta=2.0,variance_head=sigma,seed=0"].beta == 2.0
    assert {"latent_dim=2,seed=2", "binarize=True,seed=0", "lr=0.001,seed=1", "num_epochs=50,seed=0"} <= set(runs)
    assert runs["likelihood=continuous-bernoulli,seed=0"].likelihood == "continuous-bernoulli"
    assert len({tuple(c.to_dict().items()) for c in runs.values()}) == len(runs)
    smoke = sw.plan(Config(data_dir="d", device="cpu"), ["training"], seeds=(0,), smoke=True)
    assert list(smoke) == ["default,seed=0", "lr=0.001,seed=0", "num_epochs=50,seed=0"]
    assert [c.num_epochs for c in smoke.values()] == [1, 1, 5] and smoke["lr=0.001,seed=0"].data_dir == "d"
    assert sw.variant_name({"beta": 2.0, "variance_head": "sigma"}, 1) == "beta=2.0,variance_head=sigma,seed=1"
    with pytest.raises(ValueError, match=r"unknown ablations \['colour'\]"):
        sw.plan(Config(), ["colour"])


# --- Running, storing, reusing ------------------------------------------------------------------------------------


def test_sweep_stores_each_run_and_skips_what_is_done(base, settings, tmp_path, monkeypatch):
    runs = sw.plan(base, ["training"], seeds=(0,), smoke=True)
    out, runs_dir = tmp_path / "experiments", tmp_path / "runs"
    sw.sweep(runs, out, runs_dir, settings, smoke=True, log=quiet)
    results = sw.load_results(out)
    assert sorted(results) == sorted(runs)
    for name, r in results.items():
        assert r["status"] == "ok" and r["config"] == runs[name].to_dict() and r["smoke"]
        m = r["metrics"]
        assert m["iwae_nll"] <= m["test_loss"] + 5  # IW bound (K=5) vs one-sample ELBO: close, and below on average
        assert m["test_loss"] == pytest.approx(r["history"][-1]["test_loss"])
        assert 0 <= m["knn_accuracy"] <= 1 and 0 <= m["active_units"] <= base.latent_dim
        assert r["evaluation"] == {"iw_samples": 5, "knn_k": 5, "test_images": 24, "binarized_test_set": False}
        assert len(r["history"]) == runs[name].num_epochs
    assert len(results["default,seed=0"]["tsne"]["xy"]) == 16 and results["lr=0.001,seed=0"]["tsne"] is None

    logs = []
    with monkeypatch.context() as patch:
        patch.setattr(sw, "train_or_load", refuse)
        sw.sweep(runs, out, runs_dir, settings, smoke=True, log=logs.append)
    assert logs == [f"{len(runs)} of {len(runs)} runs already done; 0 to run"]
    assert sw.load_results(out) == results

    # A lost result is recomputed from its finished checkpoint: the same numbers, without retraining.
    monkeypatch.setattr(vruns, "fit", refuse)
    before = results["num_epochs=50,seed=0"]
    (out / "runs" / "num_epochs=50,seed=0.json").unlink()
    sw.sweep(runs, out, runs_dir, settings, smoke=True, log=logs.append)
    after = sw.load_results(out)["num_epochs=50,seed=0"]
    assert after["metrics"]["iwae_nll"] == before["metrics"]["iwae_nll"] and after["history"] == before["history"]
    assert logs[-2] == f"{len(runs) - 1} of {len(runs)} runs already done; 1 to run"

    rows = sw.table(sw.load_results(out), seeds=(0,))
    assert [r["variant"] for r in rows] == [label for label, _ in sw.ABLATIONS["training"]]
    assert rows[0]["test_loss_mean"] == results["default,seed=0"]["metrics"]["test_loss"]
    assert rows[0]["runs"] == 1 and rows[0]["iw_samples"] == 5 and math.isnan(rows[0]["test_loss_sd"])


def test_in_a_log_each_run_is_named_with_its_number_in_its_epochs_and_evaluation(
    base, settings, tmp_path, capfd, monkeypatch
):
    monkeypatch.setattr(progress, "live_bar", lambda: False)
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)  # the epochs' log lines too
    runs = dict(list(sw.plan(base, ["kl_weight"], seeds=(0,), smoke=True).items())[:2])
    sw.sweep(runs, tmp_path / "experiments", tmp_path / "runs", settings, smoke=True, log=quiet)
    err = capfd.readouterr().err
    for i, name in enumerate(runs, 1):
        assert f"[{i}/2] {name}: epoch 1/1: train " in err
    steps = ["-ELBO of 24 test images", "IWAE K = 5 on 24 images", "5-NN accuracy on μ of 24 test images",
             "t-SNE of μ of 16 test images, 250 iterations"]  # fmt: skip
    assert logged_steps(err) == [f"[{i}/2] {name}: {step}" for i, name in enumerate(runs, 1) for step in steps]
    sw.sweep(runs, tmp_path / "other", tmp_path / "runs", settings, smoke=True, log=quiet, progress=False)
    assert capfd.readouterr() == ("", "")


def stored(config: Config, smoke: bool, **evaluation) -> dict:
    """A stored result in the shape run_one writes, its numbers made up; its config, smoke and evaluation decide."""
    key = {"iw_samples": 5, "knn_k": 5, "test_images": 24, "binarized_test_set": config.binarize} | evaluation
    history = [{k: 1 if k == "epoch" else 200.0 for k in RECORD}]
    metrics = {"test_loss": 300.0, "test_bce": 280.0, "test_kl": 20.0, "iwae_nll": 297.0, "knn_accuracy": 0.7,
               "active_units": 3, "train_seconds": 1.0}  # fmt: skip
    return {"name": "x", "config": config.to_dict(), "smoke": smoke, "status": "ok", "evaluation": key,
            "history": history, "metrics": metrics, "tsne": None}  # fmt: skip


def test_a_damaged_stored_result_is_recomputed_by_the_sweep_and_refused_by_load_results(
    base, settings, tmp_path, capsys
):
    runs = {"default,seed=0": sw.plan(base, ["training"], seeds=(0,), smoke=True)["default,seed=0"]}
    out, runs_dir = tmp_path / "experiments", tmp_path / "runs"
    sw.sweep(runs, out, runs_dir, settings, smoke=True, log=quiet)
    path = out / "runs" / "default,seed=0.json"
    good = json.loads(path.read_text())
    for damaged, why in [({**good, "metrics": {**good["metrics"], "iwae_nll": 1e4}}, "its IWAE NLL 10000.00 exceeds"),
                         ("garbage", "the value is 'garbage', not a dict"),
                         ({**good, "history": [{"epoch": 1}]}, "the value['history'][0] lacks")]:  # fmt: skip
        path.write_text(json.dumps(damaged))
        with pytest.raises(ValueError) as e:
            sw.load_results(out)
        assert str(e.value).startswith(f"{path} is damaged or was edited ({why}") and "\n" not in str(e.value)
        capsys.readouterr()
        sw.sweep(runs, out, runs_dir, settings, smoke=True, log=quiet)  # recomputed from the checkpoint
        assert f"{path} is damaged or was edited ({why}" in capsys.readouterr().err
        assert sw.load_results(out)["default,seed=0"]["metrics"]["iwae_nll"] == good["metrics"]["iwae_nll"]


@pytest.mark.parametrize(
    "change, says",
    [
        ({"iw_samples": 7}, ["'iw_samples': (7, 5)"]),  # another K
        ({"knn_k": 3}, ["'knn_k': (3, 5)"]),
        ({"test_images": 32}, ["'test_images': (32, 24)"]),  # another data subset
        ({"smoke": False}, ["'smoke': (False, True)"]),  # a full-size result in a smoke sweep
        ({"hidden_dim": 8}, ["hidden_dim"]),  # another config
        ({"beta": 3.0}, ["beta"]),
    ],
)
def test_a_stored_result_of_anything_else_is_refused_before_any_training(
    change, says, base, settings, tmp_path, monkeypatch
):
    runs = sw.plan(base, ["data_protocol"], seeds=(0,), smoke=True)  # default,seed=0 then binarize=True,seed=0
    config = runs["binarize=True,seed=0"]
    smoke = change.pop("smoke", True)
    config_change = {k: change.pop(k) for k in list(change) if k in Config.__dataclass_fields__}
    path = tmp_path / "experiments" / "runs" / "binarize=True,seed=0.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(stored(replace(config, **config_change), smoke, **change)))
    trained = []
    monkeypatch.setattr(sw, "train_or_load", lambda *a, **k: trained.append(a) or refuse())
    with pytest.raises(ValueError) as e:
        sw.sweep(runs, tmp_path / "experiments", tmp_path / "runs", settings, smoke=True, log=quiet)
    message = str(e.value)
    assert str(path) in message and "another out_dir" in message
    for text in says:
        assert text in message, f"{text!r} not in {message!r}"
    assert trained == [] and not (tmp_path / "runs").exists()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # nothing else written


def test_a_stored_result_of_another_device_or_data_dir_is_reused(base, settings, tmp_path, monkeypatch):
    runs = sw.plan(base, ["data_protocol"], seeds=(0,), smoke=True)
    elsewhere = replace(runs["binarize=True,seed=0"], device="cuda", data_dir="/elsewhere")  # where, not what
    path = tmp_path / "experiments" / "runs" / "binarize=True,seed=0.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(stored(elsewhere, True)))
    done, logs = [], []
    monkeypatch.setattr(sw, "run_one", lambda name, *a: done.append(name) or {"metrics": None})
    sw.sweep(runs, tmp_path / "experiments", tmp_path / "runs", settings, smoke=True, log=logs.append)
    assert done == ["default,seed=0", "likelihood=continuous-bernoulli,seed=0"]
    assert logs[0] == "1 of 3 runs already done; 2 to run"


def test_a_diverged_run_is_recorded_and_the_sweep_goes_on(base, settings, tmp_path, monkeypatch):
    encode = VAE.encode

    def nan_logvar(self, x):  # a head whose log-variance is NaN: the loss is NaN from the first batch
        mu, logvar = encode(self, x)
        return mu, logvar * float("nan")

    monkeypatch.setattr(VAE, "encode", nan_logvar)
    runs = sw.plan(base, ["kl_weight"], seeds=(0,), smoke=True)
    logs = []
    sw.sweep(runs, tmp_path / "experiments", tmp_path / "runs", settings, smoke=True, log=logs.append)
    results = sw.load_results(tmp_path / "experiments")
    assert len(results) == 4 and logs[-1].endswith(": diverged")
    for r in results.values():  # every run diverges in its first epoch
        assert r["status"] == "diverged" and "NaN" in r["error"] and r["metrics"] is None
    row = sw.table(results, seeds=(0,))[0]
    assert row["diverged"] == 1 and math.isnan(row["test_loss_mean"])
    assert "| 1 (1) | — |" in report.markdown_table([row])
    path = tmp_path / "experiments" / "runs" / "default,seed=0.json"
    assert json.loads(path.read_text())["status"] == "diverged"
    written = sw.write_outputs(results, tmp_path / "experiments", seeds=(0,))  # a table of failures, and figures
    assert {p.name for p in written} == {"ablations.csv", "ablation_kl_weight.png", "tsne_kl_weight.png"}


def test_loss_readings_scale_the_losses_as_trained():
    def result(beta, first, last):  # (bce, kl) of the first and last epochs
        h = [{"train_bce": b, "train_kl": k, "train_loss": b + k} for b, k in (first, last)]
        return {"config": {"beta": beta}, "history": h}

    results = {"default,seed=0": result(1.0, (300.0, 10.0), (240.0, 15.0)),
               "beta=2.0,variance_head=sigma,seed=0": result(2.0, (305.0, 8.0), (245.0, 9.0))}  # fmt: skip
    readings = {(r["model"], r["reading"]): r for r in sw.loss_readings(results)}
    assert len(readings) == 2 * 3  # no binarised run stored: its readings are left out
    per_image = readings[("the original report's model (grey, β=1)", "per image")]
    assert per_image["first_epoch"] == 310.0 and per_image["last_epoch"] == 255.0 and per_image["epochs"] == 2
    batch = readings[("the original report's model (grey, β=1)", "sum over a batch of 128")]
    assert batch["last_epoch"] == 128 * 255.0
    assert batch["last_error"] == pytest.approx(128 * 255.0 / ORIGINAL_REPORT_LOSS[1] - 1)
    tutorial = readings[("the tutorial's loss (raw σ, β=2)", "sum over a batch of 32")]
    assert tutorial["first_epoch"] == 32 * (305.0 + 2 * 8.0)  # the loss it trained on: BCE + β KL
    assert tutorial["first_error"] == pytest.approx(32 * 321.0 / ORIGINAL_REPORT_LOSS[0] - 1)


# --- Outputs: the table and the figures, as one set -------------------------------------------------------------


def test_a_smoke_sweep_of_one_ablation_writes_its_table_and_figures_as_a_set(base, settings, tmp_path, monkeypatch):
    runs = sw.plan(base, ["kl_weight"], seeds=(0,), smoke=True)
    out, runs_dir = tmp_path / "experiments", tmp_path / "runs"
    sw.sweep(runs, out, runs_dir, settings, smoke=True, log=quiet)
    results = sw.load_results(out)
    assert len(results["beta=2.0,seed=0"]["tsne"]["xy"]) == 16  # the t-SNE small multiples' runs
    written = sw.write_outputs(results, out, runs_dir, seeds=(0,))
    names = {"ablations.csv", "loss_readings.json", "ablation_kl_weight.png", "tsne_kl_weight.png", "loss_readings.png"}
    assert {p.name for p in written} == names == set(contents(out)) and all(p.parent == out for p in written)

    back = sw.load_table(out)
    rows = sw.table(results, seeds=(0,))
    assert (
        [r["variant"] for r in back["rows"]]
        == [r["variant"] for r in rows]
        == [v for v, _ in sw.ABLATIONS["kl_weight"]]
    )
    assert back["rows"][0]["iwae_nll_mean"] == pytest.approx(rows[0]["iwae_nll_mean"], abs=1e-4)
    assert back["figures"] == sorted(n[:-4] for n in names if n.endswith(".png"))
    assert back["readings"] == json.loads(json.dumps(sw.loss_readings(results)))
    # REPORT.md's section from the stored table, linked relative to the report's folder.
    section = report.ablations_section(back, "figures/experiments")
    assert section.startswith("## Ablations") and "](figures/experiments/ablation_kl_weight.png)" in section
    assert f"{rows[1]['iwae_nll_mean']:.2f}" in section and "17,900" in section

    before = contents(out)
    del results["beta=4.0,seed=0"]  # a changed table and figure, whose third file cannot be written
    monkeypatch.setattr(sw, "staged_writes", full_disk_on_write(3))
    with pytest.raises(vfiles.OutputError, match=r"No space left on device"):
        sw.write_outputs(results, out, runs_dir, seeds=(0,))
    assert contents(out) == before and not list(out.glob(".*.tmp"))  # the previous set, and no temporary


def test_the_manifold_is_drawn_from_the_checkpoint_the_sweep_trained(base, settings, tmp_path):
    runs = {name: c for name, c in sw.plan(base, ["latent_dim"], seeds=(0,), smoke=True).items() if c.latent_dim == 2}
    assert list(runs) == ["latent_dim=2,seed=0"]
    sw.sweep(runs, tmp_path / "experiments", tmp_path / "runs", settings, smoke=True, log=quiet)
    written = sw.write_outputs(sw.load_results(tmp_path / "experiments"), tmp_path / "experiments", tmp_path / "runs",
                               seeds=(0,))  # fmt: skip
    assert "manifold_latent2.png" in {p.name for p in written}


def test_no_stored_results_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m vae sweep"):
        sw.load_results(tmp_path)
    assert sw.load_table(tmp_path) is None


# --- The committed sweep ------------------------------------------------------------------------------------------


def test_committed_table_is_recomputed_from_the_committed_runs():
    """figures/experiments/ablations.csv holds the numbers sw.table makes of the committed per-run results."""
    results = sw.load_results(COMMITTED)
    assert len(results) == 45 and all(r["status"] == "ok" and not r["smoke"] for r in results.values())
    ours = list(csv.DictReader(sw.table_csv(sw.table(results)).splitlines()))
    with open(COMMITTED / sw.TABLE_NAME, newline="", encoding="utf-8") as f:
        committed = list(csv.DictReader(f))
    assert len(ours) == len(committed) == sum(len(v) for v in sw.ABLATIONS.values())
    assert list(ours[0]) == list(committed[0])
    for a, b in zip(ours, committed, strict=True):
        assert a["ablation"] == b["ablation"] and a["variant"] == b["variant"].replace("(seed)", "(original)")
        numbers = [k for k in a if k not in ("ablation", "variant")]
        assert {k: float(a[k]) for k in numbers} == {k: float(b[k]) for k in numbers}, a["variant"]


@pytest.mark.real_data
def test_cli_smoke_sweep_on_the_real_data(real_data_dir, tmp_path, capsys):
    """CI's smoke run of `python -m vae sweep`: every ablation, one seed, 6000/1000 images, 1-5 epochs."""
    out = tmp_path / "experiments"
    args = ["sweep", "--smoke", "--data-dir", str(real_data_dir), "--out", str(out)]
    assert main([*args, "--runs-dir", str(tmp_path / "runs")]) == 0
    rows = sw.load_table(out)["rows"]
    assert len(rows) == sum(len(v) for v in sw.ABLATIONS.values())
    first = rows[0]
    # One epoch on 6000 images (measured: -ELBO 416, IWAE 408): better than a uniform guess, 784 ln 2 = 543.
    assert first["diverged"] == 0 and first["iwae_nll_mean"] < first["test_loss_mean"] < 784 * math.log(2)
    assert first["knn_accuracy_mean"] > 0.3  # chance is 0.1
    assert "sweep of 15 runs" in capsys.readouterr().out
    assert (out / "tsne_kl_weight.png").exists() and (out / "manifold_latent2.png").exists()
