"""Training: the loss falls, runs are deterministic and resume bit for bit, a checkpoint is never lost, replaced
unasked or mixed with another run, the log is calm, and a diverging run stops with a message. Killed processes
(tests/fault_runner.py) are at the end."""

import errno
import io
import math
import re
import shutil
import signal
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from fault_runner import assert_same_run, put_raw, start, wait_for
from torch.distributions import Bernoulli, Normal, kl_divergence

import vae
from vae import VAE, Config, TrainingDiverged, load_data
from vae import train as vtrain
from vae.config import RESEARCH_FIELDS, ConfigError, run_name
from vae.data import iterate_batches
from vae.lab import files as vfiles
from vae.lab import runs as vruns
from vae.lab.checkpoint import CheckpointError, load_checkpoint, load_model
from vae.lab.cli import main
from vae.lab.runs import CHECKPOINT_NAME, fit, train_or_load
from vae.loss import Bernoulli as BernoulliLikelihood
from vae.loss import negative_elbo
from vae.research import PRESETS
from vae.research import training as vresearch
from vae.research.likelihoods import ContinuousBernoulli
from vae.research.training import (
    TEST_BINARIZATION_SEED,
    VALIDATION_BINARIZATION_SEED,
    fixed_binarization,
)
from vae.train import make_optimizer

LOSS_KEYS = ("train_loss", "train_bce", "train_kl", "test_loss", "test_bce", "test_kl")


def losses(history: list) -> list:
    """The numbers of a history that a rerun must reproduce exactly (not the wall-clock seconds)."""
    return [[r[k] for k in LOSS_KEYS] for r in history]


def weights(model) -> list:
    return list(model.state_dict().values())


def same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(weights(a), weights(b), strict=True))


# Training ------------------------------------------------------------------------------------------------------


def test_loss_falls_and_history_is_per_image(tiny_config, images):
    model, history = fit(tiny_config, *images, progress=False)
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert history[-1]["test_loss"] < history[0]["test_loss"] - 20  # measured: 538.7 -> 497.8
    assert history[0]["test_loss"] < 784 * math.log(2) + 50  # near a uniform guess at first
    for r in history:
        assert r["train_loss"] == pytest.approx(r["train_bce"] + r["train_kl"])
        assert r["test_loss"] == pytest.approx(r["test_bce"] + r["test_kl"])
        assert r["seconds"] >= r["train_seconds"] > 0
    # The test loss is the whole test set's -ELBO with one seeded z per image.
    assert history[-1]["test_loss"] == pytest.approx(negative_elbo(model, images[1], seed=tiny_config.seed)["loss"])
    assert not model.training


def test_same_seed_gives_bit_identical_history_and_weights(tiny_config, images):
    m1, h1 = fit(tiny_config, *images, progress=False)
    m2, h2 = fit(tiny_config, *images, progress=False)
    assert losses(h1) == losses(h2) and same_weights(m1, m2)
    tiny_config.seed = 1
    _, h3 = fit(tiny_config, *images, progress=False)
    assert h3[0]["train_loss"] != h1[0]["train_loss"]


# One non-default value of each research field: vae.fit (the core) trains only the original report's model.
RESEARCH_CHANGES = {
    "variance_head": "sigma",
    "binarize": True,
    "likelihood": "continuous-bernoulli",
    "architecture": "gated",
    "optimizer": "adam-normgrad",
    "warmup_epochs": 2,
    "validation_images": 128,
    "patience": 1,
    "precision": "bf16",
}


@pytest.mark.parametrize("field", RESEARCH_CHANGES)
def test_the_core_fit_refuses_a_research_config_naming_research_fit(tiny_config, images, field, monkeypatch):
    assert set(RESEARCH_CHANGES) == set(RESEARCH_FIELDS)  # a new research field is tested here too
    changes = {field: RESEARCH_CHANGES[field], **({"validation_images": 128} if field == "patience" else {})}
    started = []
    monkeypatch.setattr(vtrain, "start_run", lambda *a: started.append(a))  # nothing may be built or trained
    named = next(f for f in RESEARCH_FIELDS if f in changes)  # patience needs a validation split, named first
    with pytest.raises(ConfigError, match=rf"^config\.{named}=.* is a research variant.*use vae\.research\.fit$"):
        vae.fit(replace(tiny_config, **changes), *images, progress=False)
    assert started == []


def test_the_core_fit_is_the_lab_fit_without_out_dir_on_the_default_config(tiny_config, images):
    core_model, core_history = vae.fit(tiny_config, *images, progress=False)
    lab_model, lab_history = fit(tiny_config, *images, progress=False)
    timeless = [[(k, v) for k, v in r.items() if k not in ("train_seconds", "seconds")] for r in core_history]
    assert timeless == [[(k, v) for k, v in r.items() if k not in ("train_seconds", "seconds")] for r in lab_history]
    assert [list(r) for r in core_history] == [list(r) for r in lab_history]  # the same keys, in the same order
    assert same_weights(core_model, lab_model) and type(core_model) is type(lab_model) is VAE


def test_callback_sees_every_epoch(tiny_config, images):
    seen = []
    _, history = fit(tiny_config, *images, progress=False, callback=seen.append)
    assert [r["epoch"] for r in seen] == [1, 2, 3] and seen == history


def one_epoch_by_hand(config: Config, train_x, oracle_loss: bool):
    """Re-run fit's first epoch outside fit; with oracle_loss, the loss comes from torch.distributions."""
    torch.manual_seed(config.seed)
    model = VAE.from_config(config)
    optimizer = make_optimizer(model, config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    for x in iterate_batches(train_x, config.batch_size, generator):
        if config.binarize:
            x = torch.bernoulli(x, generator=generator)
        mu, logvar = model.encode(x)
        z = model.reparameterize(mu, logvar, generator)
        logits = model.decode(z)
        if oracle_loss:
            nll = -Bernoulli(logits=logits, validate_args=False).log_prob(x).sum(dim=1)
            prior = Normal(torch.zeros_like(mu), torch.ones_like(mu))
            kl = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), prior).sum(dim=1)
            loss = (nll + config.beta * kl).mean()
        else:  # the original report's loss, with the KL's 1/2, exactly as it was written before beta existed
            loss = (
                torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
                + 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
            ).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model


@pytest.fixture
def one_epoch(tiny_config):
    tiny_config.num_epochs = 1
    return tiny_config


def test_default_training_is_bit_identical_to_the_original_loss(one_epoch, images):
    model, _ = fit(one_epoch, *images, progress=False)
    assert same_weights(model, one_epoch_by_hand(one_epoch, images[0], oracle_loss=False))


@pytest.mark.parametrize("beta", [0.5, 2.0, 4.0])
def test_beta_weights_the_kl_in_the_training_loss_only(one_epoch, images, beta):
    one_epoch.beta = beta
    model, history = fit(one_epoch, *images, progress=False)
    expected = one_epoch_by_hand(one_epoch, images[0], oracle_loss=True)
    for a, b in zip(weights(model), weights(expected), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    baseline, _ = fit(Config(**{**one_epoch.to_dict(), "beta": 1.0}), *images, progress=False)
    assert not torch.equal(weights(model)[0], weights(baseline)[0])
    # The reported loss is the true negative ELBO (beta = 1), whatever beta trained the model.
    assert history[0]["test_loss"] == pytest.approx(history[0]["test_bce"] + history[0]["test_kl"])
    assert history[0]["train_loss"] == pytest.approx(history[0]["train_bce"] + history[0]["train_kl"])


def test_dynamic_binarisation_follows_the_training_generator(one_epoch, images):
    one_epoch.binarize = True
    model, history = fit(one_epoch, *images, progress=False)
    expected = one_epoch_by_hand(one_epoch, images[0], oracle_loss=True)
    for a, b in zip(weights(model), weights(expected), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # The test loss is scored on the one fixed binarisation of the test images.
    fixed = negative_elbo(model, fixed_binarization(images[1]), seed=one_epoch.seed)
    assert history[0]["test_loss"] == pytest.approx(fixed["loss"])
    one_epoch.binarize = False
    _, grey = fit(one_epoch, *images, progress=False)
    assert history[0]["test_loss"] != grey[0]["test_loss"]


def test_fixed_binarisation_is_binary_with_the_grey_level_as_mean():
    x = torch.full((200, 784), 0.3)
    b = fixed_binarization(x)
    assert set(b.unique().tolist()) == {0.0, 1.0}
    assert abs(b.mean().item() - 0.3) < 0.005  # sd of the mean is 0.0012
    assert torch.equal(b, fixed_binarization(x)) and not torch.equal(b, fixed_binarization(x, seed=1))
    edges = torch.tensor([[0.0, 1.0]])
    assert torch.equal(fixed_binarization(edges), edges)


# Bad settings and bad data: refused before any training ----------------------------------------------------


def test_batch_larger_than_the_dataset_is_refused(tiny_config, images):
    tiny_config.batch_size = 1000
    with pytest.raises(ConfigError, match=r"config.batch_size \(1000\) is larger than .*512.*at most 512"):
        fit(tiny_config, *images, progress=False)


def test_a_device_this_machine_lacks(tiny_config, images, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    tiny_config.device = "cuda"
    with pytest.raises(ConfigError, match=r"config.device is 'cuda', but this machine has no cuda.*'cpu'"):
        fit(tiny_config, *images, progress=False)


@pytest.mark.parametrize("what", ["nan", "0-255"])
def test_images_that_are_not_in_0_1_are_refused_before_training(what, tiny_config, images, tmp_path):
    train, test = images
    train = train.clone()
    if what == "nan":
        train[100, 7] = math.nan
        found = "image 100 has NaN"
    else:
        train = train * 255
        found = r"image 0 has values in \[\d.*\]"
    with pytest.raises(ValueError, match=rf"train_x must hold pixel values in \[0, 1\], but {found}: divide 0-255"):
        fit(tiny_config, train, test, out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"test_x must be \(N, 784\)"):
        fit(tiny_config, images[0], test.reshape(-1, 28, 28), progress=False)
    assert not (tmp_path / CHECKPOINT_NAME).exists()


# Numerics: a run that diverges stops, naming where, and keeps the last good checkpoint ----------------------


def poison_batch(monkeypatch, epoch: int, batch: int) -> None:
    """Make the `batch`-th training batch of `epoch` (both from 1) hold a NaN pixel."""
    iterate, epochs = vtrain.iterate_batches, []

    def poisoned(x, batch_size, generator):
        epochs.append(1)
        for i, xb in enumerate(iterate(x, batch_size, generator), start=1):
            if len(epochs) == epoch and i == batch:
                xb = xb.clone()
                xb[0, 0] = math.nan
            yield xb

    monkeypatch.setattr(vtrain, "iterate_batches", poisoned)


def test_a_poisoned_batch_stops_training_naming_epoch_and_batch(tiny_config, images, tmp_path, monkeypatch):
    poison_batch(monkeypatch, epoch=2, batch=5)
    with pytest.raises(TrainingDiverged, match=r"at epoch 2, batch 5/8; the checkpoint of epoch 1 in .* is kept") as e:
        fit(tiny_config, *images, out_dir=tmp_path, progress=False)
    assert "Lower the learning rate (now 0.001)" in str(e.value)
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert state["epoch"] == 1 and [r["epoch"] for r in state["history"]] == [1]
    assert e.value.history == state["history"]  # also kept for a caller without out_dir
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_an_lr_so_large_it_diverges(images):
    config = Config(lr=1.0, batch_size=64, num_epochs=2, device="cpu")  # the original report's 784-200-20 model
    with pytest.raises(TrainingDiverged, match=r"at epoch 1, batch \d+/8; nothing was saved.*\(now 1.0\)") as e:
        fit(config, *images, progress=False)
    assert e.value.history == []


# Checkpoints: saved every epoch, resumed bit for bit, never replaced unasked nor mixed with another run ------


def test_checkpoint_round_trip(tiny_config, images, tmp_path):
    model, history = fit(tiny_config, *images, out_dir=tmp_path, progress=False)
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert state["epoch"] == 3 and state["history"] == history
    assert state["data_sizes"] == {"train_images": 512, "test_images": 128}
    loaded, config, loaded_history = load_model(tmp_path / CHECKPOINT_NAME)
    assert config == tiny_config and loaded_history == history
    x = images[1][:8]
    torch.testing.assert_close(loaded.encode(x), model.encode(x), rtol=0, atol=0)


def test_an_existing_checkpoint_is_refused_without_resume_or_overwrite(tiny_config, images, tmp_path):
    fit(tiny_config, *images, out_dir=tmp_path, progress=False)
    path = tmp_path / CHECKPOINT_NAME
    before, seen = path.read_bytes(), []
    with pytest.raises(CheckpointError) as e:
        fit(tiny_config, *images, out_dir=tmp_path, progress=False, callback=seen.append)
    assert str(e.value).startswith(f"{path} already holds a run")
    assert all(option in str(e.value) for option in ("resume=True", "overwrite=True", "out_dir"))
    assert seen == [] and path.read_bytes() == before


def test_overwrite_trains_afresh(tiny_config, images, tmp_path):
    fit(tiny_config, *images, out_dir=tmp_path, progress=False)
    other = Config(**{**tiny_config.to_dict(), "seed": 1, "num_epochs": 2})  # resuming this would be refused
    model, history = fit(other, *images, out_dir=tmp_path, overwrite=True, progress=False)
    fresh_model, fresh_history = fit(other, *images, progress=False)
    assert losses(history) == losses(fresh_history) and same_weights(model, fresh_model)
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert state["config"] == other.to_dict() and state["history"] == history and state["epoch"] == 2


def test_resume_gives_the_same_final_weights(tiny_config, images, tmp_path):
    full_model, full_history = fit(tiny_config, *images, progress=False)
    tiny_config.num_epochs = 1
    fit(tiny_config, *images, out_dir=tmp_path, progress=False)
    tiny_config.num_epochs = 3
    seen = []
    model, history = fit(tiny_config, *images, out_dir=tmp_path, resume=True, progress=False, callback=seen.append)
    assert [r["epoch"] for r in history] == [1, 2, 3] and [r["epoch"] for r in seen] == [2, 3]
    assert losses(history) == losses(full_history)
    assert same_weights(model, full_model)


def test_resuming_a_finished_run_trains_nothing(tiny_config, images, tmp_path):
    model, history = fit(tiny_config, *images, out_dir=tmp_path, progress=False)
    before, seen = (tmp_path / CHECKPOINT_NAME).read_bytes(), []
    again, again_history = fit(
        tiny_config, *images, out_dir=tmp_path, resume=True, progress=False, callback=seen.append
    )
    assert seen == [] and again_history == history and same_weights(again, model)
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == before


def test_resume_refuses_another_config(tiny_config, images, tmp_path):
    tiny_config.num_epochs = 1
    fit(tiny_config, *images, out_dir=tmp_path, progress=False)
    before = (tmp_path / CHECKPOINT_NAME).read_bytes()
    other = Config(**{**tiny_config.to_dict(), "latent_dim": 8})
    with pytest.raises(CheckpointError, match=r"another config.*'latent_dim': \(4, 8\).*another folder \(fit: out_dir"):
        fit(other, *images, out_dir=tmp_path, resume=True, progress=False)
    other = Config(**{**tiny_config.to_dict(), "beta": 2.0})  # same shapes: it would load, and mix two runs
    with pytest.raises(CheckpointError, match=r"another config.*'beta': \(1.0, 2.0\)"):
        fit(other, *images, out_dir=tmp_path, resume=True, progress=False)
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == before


def test_resume_refuses_an_optimizer_state_that_does_not_fit_the_model(tiny_config, images, tmp_path):
    tiny_config.num_epochs = 1
    fit(tiny_config, *images, out_dir=tmp_path, progress=False)
    path = tmp_path / CHECKPOINT_NAME
    state = torch.load(path, weights_only=True)
    moments = state["optimizer"]["state"]
    moments[0], moments[1] = moments[1], moments[0]  # a well-formed state, of the wrong parameters
    torch.save(state, path)
    tiny_config.num_epochs = 2
    with pytest.raises(CheckpointError) as e:
        fit(tiny_config, *images, out_dir=tmp_path, resume=True, progress=False)
    assert str(e.value) == (
        f"{path} has an optimizer state that does not fit its weights: it was edited or damaged. "
        "Retrain, or resume from a copy."
    )
    del moments[1]  # one parameter's state missing
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=rf"^{path} has an optimizer state that does not fit its weights"):
        fit(tiny_config, *images, out_dir=tmp_path, resume=True, progress=False)


def test_resume_refuses_a_checkpoint_with_more_epochs_than_asked(tiny_config, images, tmp_path):
    tiny_config.num_epochs = 2
    fit(tiny_config, *images, out_dir=tmp_path, progress=False)
    before = (tmp_path / CHECKPOINT_NAME).read_bytes()
    tiny_config.num_epochs = 1
    with pytest.raises(CheckpointError, match=r"cannot resume .*: it holds 2 epochs, and 1 were asked for"):
        fit(tiny_config, *images, out_dir=tmp_path, resume=True, progress=False)
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == before


def test_resume_refuses_a_checkpoint_of_another_data_subset(tiny_config, images, tmp_path):
    tiny_config.num_epochs = 1
    fit(tiny_config, *images, out_dir=tmp_path, progress=False)
    before = (tmp_path / CHECKPOINT_NAME).read_bytes()
    tiny_config.num_epochs = 2
    with pytest.raises(CheckpointError, match=r"another data subset: .*'train_images': 512.*requested .*256"):
        fit(tiny_config, images[0][:256], images[1], out_dir=tmp_path, resume=True, progress=False)
    with pytest.raises(CheckpointError, match=r"another data subset: .*'test_images': 128.*requested .*64"):
        fit(tiny_config, images[0], images[1][:64], out_dir=tmp_path, resume=True, progress=False)
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == before


def test_an_out_dir_that_is_a_file_fails_before_training(tiny_config, images, tmp_path):
    (tmp_path / "run").write_text("a file")
    epochs = []
    with pytest.raises(vfiles.OutputError, match=r"cannot use .*run as an output folder.*\(fit: out_dir; make_report"):
        fit(tiny_config, *images, out_dir=tmp_path / "run", progress=False, callback=epochs.append)
    assert epochs == [] and (tmp_path / "run").read_text() == "a file"


def test_a_missing_out_dir_is_created(tiny_config, images, tmp_path):
    tiny_config.num_epochs = 1
    fit(tiny_config, *images, out_dir=tmp_path / "a" / "b", progress=False)
    assert (tmp_path / "a" / "b" / CHECKPOINT_NAME).exists()


def test_disk_full_during_a_checkpoint_keeps_the_previous_one(tiny_config, images, tmp_path, monkeypatch):
    tiny_config.num_epochs = 1
    fit(tiny_config, *images, out_dir=tmp_path, progress=False)
    before = (tmp_path / CHECKPOINT_NAME).read_bytes()
    write_bytes = Path.write_bytes

    def full_disk(self, data):  # the save after epoch 2 fails; epoch 3 is never reached
        if self.name.startswith(f".{CHECKPOINT_NAME}."):
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    tiny_config.num_epochs = 3
    seen = []
    with pytest.raises(vfiles.OutputError, match=rf"cannot write {tmp_path}/checkpoint.pt \(No space left on dev"):
        fit(tiny_config, *images, out_dir=tmp_path, resume=True, progress=False, callback=seen.append)
    assert seen == [] and (tmp_path / CHECKPOINT_NAME).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != vfiles.LOCK_NAME) == [CHECKPOINT_NAME]


def test_two_trainings_into_one_folder_do_not_interleave(tiny_config, images, tmp_path):
    tiny_config.num_epochs = 1
    seen = []
    with vfiles.exclusive_lock(tmp_path):  # another run holds the folder
        with pytest.raises(vfiles.OutputError, match=r"is in use by another run.*\(fit: out_dir; make_report"):
            fit(tiny_config, *images, out_dir=tmp_path, progress=False, callback=seen.append)
        assert seen == [] and not (tmp_path / CHECKPOINT_NAME).exists()
    fit(tiny_config, *images, out_dir=tmp_path, progress=False)  # free again once the other run ends
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["epoch"] == 1


# The log: a live bar in a terminal or notebook, else one line per epoch ------------------------------------

EPOCH_LINE = re.compile(r"epoch (\d+)/3: train (\d+\.\d), test (\d+\.\d) nats per image \(\d+\.\d s\)")


def test_without_a_terminal_the_log_is_one_line_per_epoch(tiny_config, images, capfd, monkeypatch):
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)  # not in a notebook
    _, history = fit(tiny_config, *images, progress=True)
    out, err = capfd.readouterr()
    assert out == "" and "\r" not in err
    lines = err.splitlines()
    assert len(lines) == 3 and all(EPOCH_LINE.fullmatch(line) for line in lines)
    numbers = [EPOCH_LINE.fullmatch(line).groups() for line in lines]
    assert numbers == [(str(r["epoch"]), f"{r['train_loss']:.1f}", f"{r['test_loss']:.1f}") for r in history]


def test_in_a_terminal_a_live_bar_replaces_the_lines(tiny_config, images, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    fit(tiny_config, *images, progress=True)
    shown = terminal.getvalue()
    assert "\r" in shown and "epoch 3/3" in shown  # the bar, redrawn in place
    assert not any(EPOCH_LINE.fullmatch(line) for line in shown.replace("\r", "\n").splitlines())


def test_without_progress_nothing_is_printed(tiny_config, images, capfd, monkeypatch):
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    fit(tiny_config, *images, progress=False)
    assert capfd.readouterr() == ("", "")


# train_or_load: the store of runs shared by the report, the notebooks and the sweep ------------------------


def test_train_or_load_trains_once_then_loads(tiny_config, images, tmp_path):
    seen = []
    model, history, path = train_or_load(tiny_config, *images, tmp_path, callback=seen.append, progress=False)
    assert path == tmp_path / run_name(tiny_config) / CHECKPOINT_NAME and path.is_file()
    assert [r["epoch"] for r in seen] == [1, 2, 3] and load_checkpoint(path)["history"] == history
    before, seen = path.read_bytes(), []
    # Where a run happens (device, data_dir) does not change what it computes: the finished run is reused.
    elsewhere = Config(**{**tiny_config.to_dict(), "data_dir": str(tmp_path / "other-data")})
    again, again_history, again_path = train_or_load(elsewhere, *images, tmp_path, callback=seen.append)
    assert seen == [] and again_path == path and again_history == history
    assert same_weights(again, model) and not again.training and path.read_bytes() == before


def test_train_or_load_keeps_each_epoch_count_in_its_own_folder(tiny_config, images, tmp_path):
    two = Config(**{**tiny_config.to_dict(), "num_epochs": 2})  # `report --epochs 2`, then `report --epochs 1`
    one = Config(**{**tiny_config.to_dict(), "num_epochs": 1})
    _, history_two, path_two = train_or_load(two, *images, tmp_path, progress=False)
    seen = []
    model_one, history_one, path_one = train_or_load(one, *images, tmp_path, callback=seen.append, progress=False)
    assert path_one.parent != path_two.parent and path_two.is_file()
    assert [r["epoch"] for r in seen] == [1] and len(history_one) == 1  # trained, not the 2-epoch model
    assert losses(history_one) == losses(history_two[:1])
    assert load_checkpoint(path_one)["epoch"] == 1 and load_checkpoint(path_two)["epoch"] == 2


def test_train_or_load_resumes_a_run_that_stopped_early(tiny_config, images, tmp_path):
    _, full_history = fit(tiny_config, *images, progress=False)
    folder = tmp_path / run_name(tiny_config)
    fit(Config(**{**tiny_config.to_dict(), "num_epochs": 1}), *images, out_dir=folder, progress=False)  # stopped
    seen = []
    _, history, path = train_or_load(tiny_config, *images, tmp_path, callback=seen.append, progress=False)
    assert path.parent == folder and [r["epoch"] for r in seen] == [2, 3]
    assert losses(history) == losses(full_history)


def test_train_or_load_refuses_a_folder_holding_another_run(tiny_config, images, tmp_path):
    two = Config(**{**tiny_config.to_dict(), "num_epochs": 2})
    _, _, path_two = train_or_load(two, *images, tmp_path, progress=False)
    one = Config(**{**tiny_config.to_dict(), "num_epochs": 1})
    path_one = tmp_path / run_name(one) / CHECKPOINT_NAME
    path_one.parent.mkdir()
    shutil.copy(path_two, path_one)  # a 2-epoch checkpoint where a 1-epoch run belongs
    with pytest.raises(CheckpointError, match=r"it holds 2 epochs, and 1 were asked for"):
        train_or_load(one, *images, tmp_path, progress=False)
    with pytest.raises(CheckpointError, match=r"another data subset"):
        train_or_load(two, images[0][:256], images[1], tmp_path, progress=False)
    assert load_checkpoint(path_one)["epoch"] == load_checkpoint(path_two)["epoch"] == 2


# Killed processes: a child trains a tiny VAE on 96 synthetic images (tests/fault_runner.py), is killed, and its
# run resumes to the same bits as an uninterrupted one. -----------------------------------------------------

EPOCHS = 5


@pytest.fixture
def cli(synthetic_dataset, tmp_path):
    """`python -m vae train` options for a tiny run on the synthetic data, without --out."""
    data_dir = tmp_path / "data"
    put_raw(synthetic_dataset, data_dir)
    sizes = ["--batch-size", "32", "--hidden-dim", "16", "--latent-dim", "2"]
    return ["train", "--data-dir", str(data_dir), *sizes, "--device", "cpu", "--epochs", str(EPOCHS)]


def test_killed_mid_epoch_then_resumed_is_bit_identical(cli, tmp_path):
    run = tmp_path / "run"
    child = start("pause", tmp_path / "paused", [*cli, "--out", str(run)])
    wait_for(tmp_path / "paused", child)  # the child waits in epoch 2, before its second batch
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert load_checkpoint(run / CHECKPOINT_NAME)["epoch"] == 1
    assert main([*cli, "--out", str(run), "--resume"]) == 0
    assert main([*cli, "--out", str(tmp_path / "reference")]) == 0
    assert_same_run(run, tmp_path / "reference", EPOCHS)


def test_death_mid_save_keeps_the_previous_checkpoint_and_poisons_nothing(cli, tmp_path):
    run = tmp_path / "run"
    child = start("die-in-save", 0, [*cli, "--out", str(run)])
    _, err = child.communicate(timeout=120)
    assert child.returncode == 137, err
    state = load_checkpoint(run / CHECKPOINT_NAME)  # the save after epoch 1, intact and loadable
    assert state["epoch"] == 1 and [r["epoch"] for r in state["history"]] == [1]
    temps = [p for p in run.iterdir() if p.name.endswith(".tmp")]
    assert len(temps) == 1 and temps[0].name == f".{CHECKPOINT_NAME}.{child.pid}.tmp"  # the half-written epoch 2
    assert main([*cli, "--out", str(run), "--resume"]) == 0
    assert sorted(p.name for p in run.iterdir()) == sorted([CHECKPOINT_NAME, vfiles.LOCK_NAME])  # cleaned up
    assert main([*cli, "--out", str(tmp_path / "reference")]) == 0
    assert_same_run(run, tmp_path / "reference", EPOCHS)


def test_a_second_training_into_a_busy_folder_fails_clearly(cli, tmp_path, capsys):
    run = tmp_path / "run"
    child = start("pause", tmp_path / "paused", [*cli, "--out", str(run)])
    try:
        wait_for(tmp_path / "paused", child)  # the child holds the folder, in epoch 2
        assert main([*cli, "--out", str(run), "--resume"]) == 1
        err = capsys.readouterr().err
        assert err == (
            f"error: {run} is in use by another run: wait for it to finish, or write elsewhere "
            "(train: --out; report and sweep: --runs-dir).\n"
        )
        _, child_err = child.communicate(timeout=120)  # let go (stdin closed): undisturbed, it finishes
        assert child.returncode == 0, child_err
    finally:
        child.kill()
        child.communicate()
    assert load_checkpoint(run / CHECKPOINT_NAME)["epoch"] == EPOCHS
    assert main([*cli, "--out", str(tmp_path / "reference")]) == 0
    assert_same_run(run, tmp_path / "reference", EPOCHS)


def test_one_epoch_on_the_real_fashion_mnist(real_data_dir):
    x_train, _, x_test, _ = load_data("fashion-mnist", real_data_dir)
    _, history = fit(Config(num_epochs=1, device="cpu"), x_train, x_test, progress=False)
    # Measured: 282.9 nats per image after one epoch (seed 0); 784 ln 2 = 543 is a uniform guess.
    assert 260 < history[0]["test_loss"] < 300


def test_two_epochs_of_the_literature_preset_on_the_real_fashion_mnist(real_data_dir):
    x_train, _, x_test, _ = load_data("fashion-mnist", real_data_dir)
    config = Config(**{**PRESETS["literature"], "num_epochs": 2}, device="cpu", data_dir=str(real_data_dir))
    _, history = fit(config, x_train, x_test, progress=False)
    # Measured (seed 0, fixed binarised test set): 355.0 then 335.1 nats per image; 784 ln 2 = 543 is a uniform guess.
    assert 340 < history[0]["test_loss"] < 370 and 320 < history[1]["test_loss"] < history[0]["test_loss"]
    assert abs(history[1]["val_loss"] - history[1]["test_loss"]) < 5  # held-out training images score like test ones


def test_training_with_the_continuous_bernoulli_records_its_negative_log_density(tiny_config, images):
    tiny_config.likelihood = "continuous-bernoulli"
    model, history = fit(tiny_config, *images, progress=False)
    last = history[-1]
    assert all(math.isfinite(r["test_loss"]) for r in history)
    assert isinstance(model.likelihood, ContinuousBernoulli)
    again = negative_elbo(model, images[1], seed=tiny_config.seed)
    assert again["loss"] == pytest.approx(last["test_loss"], rel=1e-6)  # the test loss is the density's
    model.likelihood = BernoulliLikelihood()  # the same model, scored by the BCE
    assert again["loss"] < negative_elbo(model, images[1], seed=tiny_config.seed)["loss"]  # log C > 0 per pixel


# The literature protocol's training: AdamNormGrad, KL warm-up, a validation split, early stopping, bf16.


def test_normalize_gradients_gives_each_tensor_a_unit_gradient_in_the_same_direction():
    model = VAE(hidden_dim=8, latent_dim=2)
    x = torch.rand(16, 784)
    logits, mu, logvar = model(x)
    torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum").add(mu.pow(2).sum()).backward()
    before = {name: p.grad.clone() for name, p in model.named_parameters()}
    vresearch.normalize_gradients(model.parameters())
    for name, p in model.named_parameters():
        norm = torch.linalg.vector_norm(before[name])
        assert math.isclose(torch.linalg.vector_norm(p.grad).item(), 1.0, rel_tol=1e-5), name
        torch.testing.assert_close(p.grad, before[name] / (norm + 1e-7))


@pytest.mark.parametrize(
    "warmup, beta, weights", [(100, 1.0, {1: 0.01, 50: 0.5, 100: 1.0, 150: 1.0}), (0, 2.0, {1: 2.0, 9: 2.0}),
                              (4, 2.0, {1: 0.5, 2: 1.0, 4: 2.0})],
)  # fmt: skip
def test_the_kl_weight_rises_linearly_over_the_warm_up_to_beta(warmup, beta, weights):
    config = Config(warmup_epochs=warmup, beta=beta)
    assert {epoch: vresearch.kl_weight(config, epoch) for epoch in weights} == pytest.approx(weights)


@pytest.mark.parametrize(
    "val_losses, warmup, stops",
    [
        ([5, 4, 4, 4], 0, False),  # 2 epochs without a better loss: not more than the patience of 2
        ([5, 4, 4, 4, 4], 0, True),  # 3 > 2
        ([5, 4, 4, 4, 3, 3, 3], 0, False),  # a better loss restarts the count
        ([5, 4, 4, 4, 4], 5, False),  # the count is held at 0 while epoch < warm-up
        ([5, 4, 4, 4, 4, 4, 4, 4], 5, True),  # epochs 5, 6, 7 count once the warm-up is over
    ],
)
def test_early_stopping_follows_the_protocols_count(val_losses, warmup, stops):
    config = Config(patience=2, validation_images=10, warmup_epochs=warmup)
    history = [{"epoch": i + 1, "val_loss": v} for i, v in enumerate(val_losses)]
    assert vresearch.stopped_early(history, config) is stops
    assert vresearch.stopped_early(history, replace(config, patience=0)) is False  # 0: never


def literature_config(tiny_config, **changes) -> Config:
    preset = {**PRESETS["literature"], "hidden_dim": 16, "latent_dim": 2, "batch_size": 64, "num_epochs": 4}
    return replace(tiny_config, **{**preset, "validation_images": 128, "warmup_epochs": 2, "patience": 1, **changes})


def test_the_validation_split_is_scored_each_epoch_and_best_pt_holds_its_best_epoch(tiny_config, images, tmp_path):
    train_x, test_x = images
    config = literature_config(tiny_config, patience=0)
    _, history = fit(config, train_x, test_x, tmp_path, progress=False)
    best_model, _, best_history = load_model(tmp_path / vruns.BEST_NAME)
    val_losses = [r["val_loss"] for r in history]
    best = 1 + val_losses.index(min(val_losses))
    assert len(best_history) == best
    # Independent recomputation: the held-out images are the last 128, binarised once with their own seed; the model
    # of that epoch, with that epoch's own draws of z.
    val_x = fixed_binarization(train_x[-128:], VALIDATION_BINARIZATION_SEED)
    val = negative_elbo(best_model, val_x, seed=vresearch.epoch_seed(config.seed, best))
    assert val["loss"] == pytest.approx(min(val_losses), rel=1e-6)
    other_draws = negative_elbo(best_model, val_x, seed=vresearch.epoch_seed(config.seed, best + 1))
    assert other_draws["loss"] != pytest.approx(val["loss"], rel=1e-6)  # fresh noise each epoch


def test_a_run_of_the_earlier_validation_protocol_is_not_continued_under_this_one(tiny_config, images, tmp_path):
    train_x, test_x = images
    config = literature_config(tiny_config, num_epochs=2, patience=0)
    fit(replace(config, num_epochs=1), train_x, test_x, tmp_path, progress=False)
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert state["data_sizes"]["validation_protocol"] == vresearch.VALIDATION_PROTOCOL == 2
    del state["data_sizes"]["validation_protocol"]  # as protocol 1 wrote it: the test set's bits, one fixed z
    torch.save(state, tmp_path / CHECKPOINT_NAME)
    with pytest.raises(CheckpointError, match="scored by protocol 1, this code scores it by protocol 2"):
        fit(config, train_x, test_x, tmp_path, resume=True, progress=False)
    assert "validation_protocol" not in vruns.data_sizes(train_x, test_x, tiny_config)  # no split: as before


def test_the_validation_and_test_binarisations_are_independent():
    # Drawn with one seed, the two sets' bits would be coupled pixel by pixel (common random numbers): for grey
    # level 1/2 they would always agree. Independent draws agree on half of the pixels.
    x = torch.full((100, 784), 0.5)
    test, val = (fixed_binarization(x, seed) for seed in (TEST_BINARIZATION_SEED, VALIDATION_BINARIZATION_SEED))
    assert torch.equal(test, fixed_binarization(x)) and TEST_BINARIZATION_SEED != VALIDATION_BINARIZATION_SEED
    assert (test == val).float().mean().item() == pytest.approx(0.5, abs=0.01)  # sd 0.0018 over 78,400 pixels


def test_epoch_seeds_differ_by_epoch_and_by_run_and_repeat():
    seeds = {(s, e): vresearch.epoch_seed(s, e) for s in (0, 1, 2**63 - 1) for e in range(1, 2001)}
    assert len(set(seeds.values())) == len(seeds) and all(0 <= v < 2**63 for v in seeds.values())
    assert vresearch.epoch_seed(1, 5) == seeds[(1, 5)]


def test_validation_images_never_reach_the_training_step(tiny_config, images, monkeypatch):
    train_x, test_x = images
    train_x = train_x.clone()
    train_x[-128:] = 0.5  # the held-out images, recognisable in any batch
    seen = []
    monkeypatch.setattr(vtrain, "iterate_batches", lambda x, *a: (seen.append(x), iterate_batches(x, *a))[1])
    fit(literature_config(tiny_config, num_epochs=1), train_x, test_x, progress=False)
    assert len(seen[0]) == 512 - 128 and not (seen[0] == 0.5).all(dim=1).any()


def test_a_run_that_stopped_early_is_finished_and_reused(tiny_config, images, tmp_path, monkeypatch):
    train_x, test_x = images
    for module in (vresearch, vruns):  # early stopping while training, and whether a stored run is finished
        monkeypatch.setattr(module, "stopped_early", lambda history, config: len(history) >= 2)
    config = literature_config(tiny_config)
    _, history = fit(config, train_x, test_x, tmp_path / "run", progress=False)
    assert len(history) == 2  # of 4 epochs asked for
    _, again, _ = train_or_load(config, train_x, test_x, tmp_path / "store")  # trains, stops at 2
    _, reused, _ = train_or_load(config, train_x, test_x, tmp_path / "store", callback=pytest.fail)
    assert losses(reused) == losses(again) == losses(history)


def test_resuming_a_literature_run_is_bit_identical_and_keeps_its_best_epoch(tiny_config, images, tmp_path):
    # The long runs are resumed after interruptions: binarised batches, the warm-up and AdamNormGrad must continue
    # exactly, and best.pt must be the best epoch of the whole run, not of the resumed part.
    train_x, test_x = images
    config = literature_config(tiny_config, patience=0, num_epochs=6, lr=0.03)  # here epoch 6 is worse than 5
    full_model, full_history = fit(config, train_x, test_x, tmp_path / "full", progress=False)
    fit(replace(config, num_epochs=3), train_x, test_x, tmp_path / "split", progress=False)
    model, history = fit(config, train_x, test_x, tmp_path / "split", resume=True, progress=False)
    assert losses(history) == losses(full_history) and same_weights(model, full_model)
    val = [r["val_loss"] for r in history]
    assert val == [r["val_loss"] for r in full_history]
    best, _, best_history = load_model(tmp_path / "split" / vruns.BEST_NAME)
    full_best, _, full_best_history = load_model(tmp_path / "full" / vruns.BEST_NAME)
    assert losses(best_history) == losses(full_best_history) and same_weights(best, full_best)
    assert len(best_history) == 1 + val.index(min(val))


def test_adam_normgrad_normalises_every_step(tiny_config, images, monkeypatch):
    train_x, test_x = images
    calls = []
    monkeypatch.setattr(vresearch, "normalize_gradients", calls.append)
    fit(literature_config(tiny_config, num_epochs=1), train_x, test_x, progress=False)
    assert len(calls) == -(-(512 - 128) // 64)
    fit(literature_config(tiny_config, num_epochs=1, optimizer="adam"), train_x, test_x, progress=False)
    assert len(calls) == -(-(512 - 128) // 64)  # plain Adam: no more calls


def test_bf16_autocast_trains_the_same_model_to_within_rounding(tiny_config, images):
    train_x, test_x = images
    _, fp32 = fit(tiny_config, train_x, test_x, progress=False)
    _, bf16 = fit(replace(tiny_config, precision="bf16"), train_x, test_x, progress=False)
    assert losses(bf16) != losses(fp32)  # autocast was on
    assert bf16[-1]["test_loss"] == pytest.approx(fp32[-1]["test_loss"], rel=0.02)


def test_a_validation_split_as_large_as_the_data_is_refused(tiny_config, images):
    train_x, test_x = images
    with pytest.raises(ConfigError, match=r"validation_images \(512\) leaves no training images"):
        fit(replace(tiny_config, validation_images=512), train_x, test_x)
    with pytest.raises(
        ConfigError,
        match=r"batch_size \(64\) is larger than the dataset \(32 images once 480 are held out for validation\)",
    ):
        fit(replace(tiny_config, validation_images=480), train_x, test_x)
