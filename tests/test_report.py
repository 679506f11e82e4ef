import json
import math

import pytest
from conftest import write_gz

from vae import Config, fit
from vae import data as vdata
from vae import evaluate as ev
from vae.__main__ import main
from vae.plots import FIGURE_NAMES
from vae.report import ReportOptions, make_report
from vae.train import CHECKPOINT_NAME


def strict_json(path):
    """Parse JSON, refusing NaN and Infinity (which json.dumps(allow_nan=False) never writes)."""
    return json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in {path}"))


def check_outputs(tmp_path, seeds):
    fig_dir = tmp_path / "figures"
    assert sorted(p.name for p in fig_dir.iterdir()) == sorted([f"{n}.png" for n in FIGURE_NAMES] + ["metrics.json"])
    m = strict_json(fig_dir / "metrics.json")
    assert m["seeds"] == seeds
    assert all(not isinstance(v, dict) for v in m.values())  # flat keys
    for key in ("test_loss", "iwae_nll", "knn_accuracy", "active_units", "trustworthiness"):
        assert math.isfinite(m[f"{key}.mean"]) and m[f"{key}.unit"]
        assert m[f"{key}.mean"] == pytest.approx(sum(m[f"seed{s}.{key}"] for s in seeds) / len(seeds))
    for s in seeds:
        assert m[f"seed{s}.iwae_nll"] < m[f"seed{s}.test_loss"]
        assert m[f"seed{s}.test_loss"] == pytest.approx(m[f"seed{s}.test_bce"] + m[f"seed{s}.test_kl"])
    assert m["version.torch"] and m["date"] and m["wall.total_seconds"] > 0
    report = (tmp_path / "REPORT.md").read_text()
    for section in ("## Introduction", "## Architecture", "## Experiment", "## Figures", "## Conclusion"):
        assert section in report
    for name in FIGURE_NAMES:
        assert f"](figures/{name}.png)" in report
    assert f"{m['test_loss.mean']:.2f}" in report and f"{m['iwae_nll.mean']:.2f}" in report
    assert "nats per image" in report and "batch" in report
    return m, report


@pytest.fixture
def synthetic_on_disk(synthetic_dataset, tmp_path, monkeypatch):
    """The synthetic fashion-mnist (96 train, 32 test images) as the Debian package's files."""
    debian = tmp_path / "debian"
    write_gz(debian, synthetic_dataset)
    monkeypatch.setitem(vdata.DEBIAN_DIR, "fashion-mnist", debian)


def options(tmp_path, **kw) -> ReportOptions:
    paths = {"fig_dir": "figures", "report_path": "REPORT.md", "runs_dir": "runs", "cache_dir": "cache"}
    defaults = {k: str(tmp_path / v) for k, v in paths.items()} | {"tsne_perplexity": 5.0, "smoke": True}
    return ReportOptions(**(defaults | kw))


def small_config(tmp_path) -> Config:
    return Config(hidden_dim=16, latent_dim=3, batch_size=32, device="cpu", data_dir=str(tmp_path / "data"))


def test_smoke_report_on_synthetic_data_writes_everything_and_replots_from_the_cache(
    synthetic_on_disk, tmp_path, monkeypatch
):
    make_report(small_config(tmp_path), options(tmp_path, seeds=[0, 1]))
    m, report = check_outputs(tmp_path, [0, 1])
    assert m["test_loss.sd"] > 0 and "mean ± sd over 2 seeds" in report
    assert m["config.num_epochs"] == 1 and m["options.iw_samples"] == 10 and m["num_test_images"] == 32
    assert (tmp_path / "runs" / "seed1" / CHECKPOINT_NAME).exists() and m["seed1.epochs_reused"] == 0

    # A second run reuses the finished checkpoints and every cached result: nothing slow is recomputed.
    def refuse(*args, **kwargs):
        raise AssertionError("recomputed instead of read from the cache")

    monkeypatch.setattr(ev, "tsne_embedding", refuse)
    monkeypatch.setattr(ev, "iwae_nll", refuse)
    monkeypatch.setattr(ev, "knn_accuracy", refuse)
    monkeypatch.setattr(ev, "trustworthiness", refuse)
    again = make_report(small_config(tmp_path), options(tmp_path, seeds=[0, 1]))
    assert again["test_loss.mean"] == m["test_loss.mean"] and again["iwae_nll.mean"] == m["iwae_nll.mean"]
    assert again["trustworthiness.mean"] == m["trustworthiness.mean"]
    assert "wall.from_cache" not in m and len(again["wall.from_cache"]) == 2 * 4 + 1  # 4 per seed, pixel kNN
    assert (
        again["seed1.epochs_reused"] == 1
        and "2 of the 2 epochs were trained by an earlier run" in (tmp_path / "REPORT.md").read_text()
    )


def test_report_from_a_checkpoint_trains_nothing(synthetic_on_disk, tmp_path, images):
    config = small_config(tmp_path)
    x_train, _ = vdata.load_split("fashion-mnist", "train", config.data_dir)
    x_test, _ = vdata.load_split("fashion-mnist", "test", config.data_dir)
    fit(config, x_train, x_test, out_dir=tmp_path / "elsewhere", progress=False)
    checkpoint = tmp_path / "elsewhere" / CHECKPOINT_NAME
    m = make_report(config, options(tmp_path, from_checkpoint=str(checkpoint), smoke=False, iw_samples=20))
    check_outputs(tmp_path, [0])
    assert not (tmp_path / "runs").exists()
    assert m["seed0.checkpoint_sha256"] == ev.file_sha256(checkpoint) and m["test_loss.sd"] is None


@pytest.mark.parametrize(
    "args, message",
    [
        (["--from-checkpoint", "nowhere.pt"], "nowhere.pt: no such file"),
        (["--from-checkpoint", "x.pt", "--seeds", "0", "1"], "one model"),
        (["--iw-samples", "0"], "iw_samples"),
        (["--seeds", "1", "1"], "distinct"),
    ],
)
def test_bad_report_options_are_one_line_errors(args, message, tmp_path, capsys):
    assert main(["report", "--fig-dir", str(tmp_path / "f"), *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "f").exists()


def test_cli_smoke_report_on_the_real_data(real_data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # REPORT.md and figures/ at their default places, inside tmp_path
    args = ["report", "--smoke", "--data-dir", str(real_data_dir), "--device", "cpu", "--cache-dir", "cache"]
    assert main(args) == 0
    m, _ = check_outputs(tmp_path, [0])
    assert m["num_train_images"] == 2000 and m["num_test_images"] == 500 and m["options.tsne_points"] == 500
    assert 0.5 < m["knn_accuracy.mean"] <= 1 and 0.5 < m["knn_accuracy_pixels"] <= 1
    assert 300 < m["test_loss.mean"] < 543  # better than a uniform guess (784 ln 2) after one epoch
    assert "nats per image" in capsys.readouterr().out
