import math

import pytest
import torch

from vae import CheckpointError, Config, fit, load_checkpoint, load_model
from vae.train import CHECKPOINT_NAME

LOSS_KEYS = ("train_loss", "train_bce", "train_kl", "test_loss", "test_bce", "test_kl")


def test_loss_falls_and_history_is_per_image(tiny_config, images):
    model, history = fit(tiny_config, *images, progress=False)
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert history[-1]["test_loss"] < history[0]["test_loss"] - 20  # measured: 538.7 -> 497.8
    assert history[0]["test_loss"] < 784 * math.log(2) + 50  # near a uniform guess at first
    for r in history:
        assert r["train_loss"] == pytest.approx(r["train_bce"] + r["train_kl"])
        assert r["test_loss"] == pytest.approx(r["test_bce"] + r["test_kl"])
        assert r["seconds"] > 0


def test_same_seed_gives_bit_identical_history_and_weights(tiny_config, images):
    m1, h1 = fit(tiny_config, *images, progress=False)
    m2, h2 = fit(tiny_config, *images, progress=False)
    assert [[r[k] for k in LOSS_KEYS] for r in h1] == [[r[k] for k in LOSS_KEYS] for r in h2]
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True))
    tiny_config.seed = 1
    _, h3 = fit(tiny_config, *images, progress=False)
    assert h3[0]["train_loss"] != h1[0]["train_loss"]


def test_checkpoint_round_trip(tiny_config, images, tmp_path):
    model, history = fit(tiny_config, *images, out_dir=tmp_path, progress=False)
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert state["epoch"] == 3 and state["history"] == history
    loaded, config, loaded_history = load_model(tmp_path / CHECKPOINT_NAME)
    assert config == tiny_config and loaded_history == history
    x = images[1][:8]
    torch.testing.assert_close(loaded.encode(x), model.encode(x), rtol=0, atol=0)


def test_resume_gives_the_same_final_weights(tiny_config, images, tmp_path):
    full_model, full_history = fit(tiny_config, *images, progress=False)
    tiny_config.num_epochs = 1
    fit(tiny_config, *images, out_dir=tmp_path, progress=False)
    tiny_config.num_epochs = 3
    model, history = fit(tiny_config, *images, out_dir=tmp_path, resume=True, progress=False)
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert [[r[k] for k in LOSS_KEYS] for r in history] == [[r[k] for k in LOSS_KEYS] for r in full_history]
    assert all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), full_model.state_dict().values(), strict=True)
    )


def test_resume_refuses_another_architecture(tiny_config, images, tmp_path):
    fit(tiny_config, *images, out_dir=tmp_path, progress=False)
    other = Config(**{**tiny_config.to_dict(), "latent_dim": 8})
    with pytest.raises(CheckpointError, match="latent_dim.*\\(4, 8\\)"):
        fit(other, *images, out_dir=tmp_path, resume=True, progress=False)


def test_callback_sees_every_epoch(tiny_config, images):
    seen = []
    fit(tiny_config, *images, progress=False, callback=seen.append)
    assert [r["epoch"] for r in seen] == [1, 2, 3]


def test_batch_larger_than_dataset_is_refused(tiny_config, images):
    tiny_config.batch_size = 1000
    with pytest.raises(ValueError, match="batch_size"):
        fit(tiny_config, *images, progress=False)
