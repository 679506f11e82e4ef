"""The notebook's path and the command line's give the same numbers for research configs: the model carries its
likelihood and data protocol, so no path can score it as another (the binarised run: tests/test_pipeline.py)."""

import json
from dataclasses import asdict, replace

import pytest
import torch
from conftest import write_gz

from vae import Config, EvalSettings, evaluate_model, load_data, negative_elbo
from vae import raw_files as vraw
from vae.lab.checkpoint import load_model
from vae.lab.cli import main
from vae.lab.runs import BEST_NAME, CHECKPOINT_NAME, train_or_load
from vae.research import build_model, fit
from vae.research.likelihoods import ContinuousBernoulli
from vae.research.models import GatedVAE
from vae.research.training import Binarized


@pytest.fixture
def config(synthetic_dataset, tmp_path, monkeypatch) -> Config:
    """A 784-16-3 VAE, 2 epochs, on the synthetic fashion-mnist (96 train, 32 test images) as the Debian files."""
    write_gz(tmp_path / "debian", synthetic_dataset)
    monkeypatch.setitem(vraw.DEBIAN_DIR, "fashion-mnist", tmp_path / "debian")
    monkeypatch.chdir(tmp_path)  # the CLI's default --sweep-dir and --bounds-dir: none there
    return Config(
        hidden_dim=16, latent_dim=3, batch_size=32, num_epochs=2, device="cpu", data_dir=str(tmp_path / "data")
    )


def flags(config: Config) -> list[str]:
    """The command-line options that give `config`."""
    return [
        *("--data-dir", config.data_dir, "--device", config.device, "--seed", str(config.seed)),
        *("--hidden-dim", str(config.hidden_dim), "--latent-dim", str(config.latent_dim)),
        *("--batch-size", str(config.batch_size), "--epochs", str(config.num_epochs)),
    ]


def test_a_continuous_bernoulli_run_scores_the_same_in_the_notebook_and_from_the_command_line(config, tmp_path):
    config = replace(config, likelihood="continuous-bernoulli")
    settings = EvalSettings(iw_samples=10, tsne_points=100)
    data = load_data(config.dataset, config.data_dir, device="cpu")
    model, history, _ = train_or_load(config, data.x_train, data.x_test, tmp_path / "notebook", progress=False)
    assert isinstance(model.likelihood, ContinuousBernoulli)
    notebook = evaluate_model(model, data, settings, seed=config.seed, progress=False)
    assert notebook["test_loss"] == history[-1]["test_loss"]
    as_bce = build_model(replace(config, likelihood="bernoulli"))
    as_bce.load_state_dict(model.state_dict())
    assert notebook["test_loss"] < negative_elbo(as_bce, data.x_test, seed=config.seed)["loss"]  # log C(λ) > 0
    cli = tmp_path / "cli"
    argv = ["report", *flags(config), "--likelihood", "continuous-bernoulli", "--iw-samples", "10"]
    argv += ["--tsne-points", "100", "--fig-dir", str(cli / "figures"), "--report-path", str(cli / "REPORT.md")]
    assert main([*argv, "--runs-dir", str(cli / "runs")]) == 0
    m = json.loads((cli / "figures" / "metrics.json").read_text())
    assert Config.from_dict(m["config"]) == config and m["evaluation"] == asdict(settings)
    run = m["runs"][str(config.seed)]
    assert run["epochs_reused"] == 0 and not run["evaluation_reused"]  # trained and scored afresh
    assert (run["test_loss"], run["iwae_nll"]) == (notebook["test_loss"], notebook["iwae_nll"])


def test_the_gated_preset_trains_and_scores_the_same_in_the_notebook_and_from_the_command_line(config, tmp_path):
    config = replace(
        config, architecture="gated", optimizer="adam-normgrad", lr=5e-4, num_epochs=4, binarize=True,
        warmup_epochs=2, validation_images=32, patience=1,
    )  # fmt: skip
    data = load_data(config.dataset, config.data_dir, device="cpu")
    model, history = fit(config, data.x_train, data.x_test, progress=False)  # the notebook's: no checkpoints
    assert isinstance(model, GatedVAE) and isinstance(model.protocol, Binarized)
    run = tmp_path / "cli"
    argv = ["train", "--preset", "literature", *flags(config), "--lr", "5e-4", "--warmup-epochs", "2"]
    assert main([*argv, "--validation-images", "32", "--patience", "1", "--out", str(run)]) == 0
    trained, saved, saved_history = load_model(run / CHECKPOINT_NAME)
    assert saved == config
    without_seconds = [
        [{k: v for k, v in r.items() if "seconds" not in k} for r in h] for h in (history, saved_history)
    ]
    assert without_seconds[0] == without_seconds[1]  # every loss, epoch by epoch, the validation loss included
    assert all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), trained.state_dict().values(), strict=True)
    )
    settings = EvalSettings(iw_samples=10)
    ours, theirs = (evaluate_model(m, data, settings, seed=config.seed, progress=False) for m in (model, trained))
    assert (ours["test_loss"], ours["iwae_nll"]) == (theirs["test_loss"], theirs["iwae_nll"])
    binary = negative_elbo(model, Binarized().scored(data.x_test), seed=config.seed)["loss"]
    assert ours["test_loss"] == binary  # scored on the fixed binarised test set, as in training
    assert (run / BEST_NAME).is_file()
