"""The ablation sweep: each run once, stored, skipped when done, failures recorded; the table and figures."""

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import make_images

from vae import VAE
from vae import experiments as ex
from vae.__main__ import main
from vae.report import ablations_markdown


@pytest.fixture
def data():
    """(x_train, y_train, x_test, y_test): 512 + 128 synthetic images; labels are the image's prototype."""
    x = make_images(640)
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (640,), generator=g)
    return x[:512], y[:512], x[512:], y[512:]


@pytest.fixture
def settings():
    return ex.SweepSettings(iw_samples=5, tsne_points=60, smoke=True)


def test_plan_runs_shared_variants_once():
    runs = ex.plan(ex.Config(), seeds=(0, 1, 2))
    # 4 + 3 + 4 + 1 + 2 distinct variants beyond or including the seed's config, times 3 seeds
    assert len(runs) == 14 * 3
    assert runs["default,seed=1"] == ex.Config(seed=1)
    assert runs["beta=2.0,variance_head=sigma,seed=0"].variance_head == "sigma"
    assert len({tuple(c.to_dict().items()) for c in runs.values()}) == len(runs)
    assert ex.plan(ex.Config(), ["training"], seeds=(0,), smoke=True)["num_epochs=50,seed=0"].num_epochs == 5
    with pytest.raises(ValueError, match="unknown ablations \\['colour'\\]"):
        ex.plan(ex.Config(), ["colour"])


def test_sweep_stores_each_run_and_skips_what_is_done(tiny_config, data, settings, tmp_path):
    runs = ex.plan(tiny_config, ["kl_weight", "training"], seeds=(0,), smoke=True)
    runs_dir, ckpt_dir = tmp_path / "runs", tmp_path / "ckpt"
    ex.sweep(runs, runs_dir, ckpt_dir, settings, data=data, log=lambda *a: None)
    results = ex.load_results(runs_dir)
    assert sorted(results) == sorted(runs)
    for name, r in results.items():
        assert r["status"] == "ok" and r["config"] == runs[name].to_dict()
        m = r["metrics"]
        assert m["iwae_nll"] <= m["test_loss"] + 5  # IW bound (K=5) vs one-sample ELBO: close, and below on average
        assert m["test_loss"] == pytest.approx(r["history"][-1]["test_loss"])
        assert 0 <= m["knn_accuracy"] <= 1 and 0 <= m["active_units"] <= tiny_config.latent_dim
    assert len(results["beta=2.0,seed=0"]["tsne"]["xy"]) == 60 and results["lr=0.001,seed=0"]["tsne"] is None

    logs = []
    assert ex.sweep(runs, runs_dir, ckpt_dir, settings, data=data, log=logs.append) == 0.0
    assert logs == [f"{len(runs)} of {len(runs)} runs already done; 0 to run with 1 process(es)"]
    # A lost result is recomputed from its finished checkpoint: the same numbers, without retraining.
    before = results["beta=4.0,seed=0"]
    (runs_dir / "beta=4.0,seed=0.json").unlink()
    ex.sweep(runs, runs_dir, ckpt_dir, settings, data=data, log=logs.append)
    after = ex.load_results(runs_dir)["beta=4.0,seed=0"]
    assert after["metrics"]["iwae_nll"] == before["metrics"]["iwae_nll"] and after["history"] == before["history"]

    # Another config's results in the same folder are refused, not mixed in.
    other = ex.plan(ex.Config(**{**tiny_config.to_dict(), "hidden_dim": 8}), ["kl_weight"], seeds=(0,), smoke=True)
    with pytest.raises(ValueError, match="holds the result of another config"):
        ex.sweep(other, runs_dir, ckpt_dir, settings, data=data, log=logs.append)

    rows = ex.table(results, seeds=(0,))
    assert [r["variant"] for r in rows] == [label for a in ("kl_weight", "training") for label, _ in ex.ABLATIONS[a]]
    assert rows[0]["test_loss_mean"] == results["default,seed=0"]["metrics"]["test_loss"]
    md = ex.markdown_table(rows)
    assert md.count("\n") == 2 + len(rows) and "β=2 (the missing ½)" in md
    out = tmp_path / "figs" / ex.OUT_NAME
    written = ex.write_outputs(results, out, seeds=(0,), ckpt_dir=ckpt_dir)
    names = {p.name for p in written}
    assert {"ablations.csv", "ablation_kl_weight.png", "tsne_kl_weight.png", "training_length.png"} <= names
    assert "loss_readings.json" in names  # from the seed config's run
    back = ex.read_table(out / "ablations.csv")
    assert [r["variant"] for r in back] == [r["variant"] for r in rows]
    assert back[0]["iwae_nll_mean"] == pytest.approx(rows[0]["iwae_nll_mean"], abs=1e-4)
    # REPORT.md's section, linked relative to the report's folder; none without a stored table.
    section = ablations_markdown(tmp_path / "figs", tmp_path / "REPORT.md")
    assert section.startswith("\n## Ablations") and "](figs/experiments/ablation_kl_weight.png)" in section
    assert f"{rows[1]['iwae_nll_mean']:.2f}" in section and "17,900" in section
    assert ablations_markdown(tmp_path / "nothing", tmp_path / "REPORT.md") == ""


def test_a_diverged_run_is_recorded_and_the_sweep_goes_on(tiny_config, data, settings, tmp_path, monkeypatch):
    encode = VAE.encode

    def nan_logvar(self, x):  # a head whose log-variance is NaN: the loss is NaN from the first batch
        mu, logvar = encode(self, x)
        return mu, logvar * float("nan")

    monkeypatch.setattr(VAE, "encode", nan_logvar)
    runs = ex.plan(tiny_config, ["kl_weight"], seeds=(0,), smoke=True)
    ex.sweep(runs, tmp_path / "runs", tmp_path / "ckpt", settings, data=data, log=print)
    results = ex.load_results(tmp_path / "runs")
    assert len(results) == 4
    for r in results.values():  # every run diverges in its first epoch in their first epoch
        assert r["status"] == "diverged" and "NaN" in r["error"] and r["metrics"] is None
    row = ex.table(results, seeds=(0,))[0]
    assert row["diverged"] == 1 and math.isnan(row["test_loss_mean"])
    assert "| 1 (1) | — |" in ex.markdown_table([row])
    assert json.loads((tmp_path / "runs" / "default,seed=0.json").read_text())["status"] == "diverged"


def test_loss_readings_scale_the_per_image_losses(tiny_config, data, settings, tmp_path):
    runs = ex.plan(tiny_config, ["data_protocol"], seeds=(0,), smoke=True)
    ex.sweep(runs, tmp_path / "runs", tmp_path / "ckpt", settings, data=data, log=lambda *a: None)
    results = ex.load_results(tmp_path / "runs")
    readings = {(r["model"], r["reading"]): r for r in ex.loss_readings(results)}
    h = results["default,seed=0"]["history"]
    per_image = readings[("seed's model (grey, β=1)", "per image")]
    assert per_image["first_epoch"] == pytest.approx(h[0]["train_loss"])
    batch = readings[("seed's model (grey, β=1)", "sum over a batch of 128")]
    assert batch["last_epoch"] == pytest.approx(128 * h[-1]["train_loss"])
    assert batch["last_error"] == pytest.approx(128 * h[-1]["train_loss"] / 10_700 - 1)


def test_smoke_sweep_on_the_real_data_in_two_processes(real_data_dir, tmp_path, capsys):
    """CI's smoke run of `python -m vae sweep`: every ablation, one seed, 6000/1000 images, 1-5 epochs."""
    out = tmp_path / "experiments"
    args = ["sweep", "--smoke", "--jobs", "2", "--data-dir", str(real_data_dir), "--out", str(out)]
    assert main([*args, "--checkpoints", str(tmp_path / "ckpt")]) == 0
    rows = ex.read_table(out / "ablations.csv")
    assert len(rows) == sum(len(v) for v in ex.ABLATIONS.values())
    seed = rows[0]
    # One epoch on 6000 images (measured: -ELBO 416, IWAE 408): better than a uniform guess, 784 ln 2 = 543.
    assert seed["diverged"] == 0 and seed["iwae_nll_mean"] < seed["test_loss_mean"] < 784 * math.log(2)
    assert seed["knn_accuracy_mean"] > 0.3  # chance is 0.1
    assert (out / "manifold_latent2.png").exists() and (out / "tsne_kl_weight.png").exists()
    assert "sweep of 14 runs" in capsys.readouterr().out


def test_committed_table_is_recomputed_from_the_committed_runs(tmp_path):
    """figures/experiments/ablations.csv is what ex.table makes of the committed per-run results."""
    stored = Path(__file__).resolve().parents[1] / "figures" / ex.OUT_NAME
    results = ex.load_results(stored / "runs")
    assert len(results) == 42 and all(r["status"] == "ok" and not r["smoke"] for r in results.values())
    path = ex.write_table(ex.table(results), tmp_path)
    assert path.read_bytes() == (stored / ex.TABLE_NAME).read_bytes()


def test_no_stored_results_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m vae sweep"):
        ex.load_results(tmp_path)
