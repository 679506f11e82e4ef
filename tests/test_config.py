"""The config: the original report's defaults, a ConfigError naming the field for every bad value, run names."""

import math
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from vae import Config
from vae.config import RESEARCH_FIELDS, RUNTIME_FIELDS, ConfigError, run_name
from vae.research import PRESETS


def test_defaults_are_the_original_reports_experiment():
    c = Config()
    assert (c.input_dim, c.hidden_dim, c.latent_dim) == (784, 200, 20)
    assert (c.lr, c.batch_size, c.num_epochs, c.seed, c.dataset) == (3e-4, 128, 10, 0, "fashion-mnist")
    assert (c.beta, c.variance_head, c.binarize) == (1.0, "logvar", False)


BAD_VALUES = [
    ("dataset", "cifar10"),
    ("dataset", None),
    ("data_dir", ""),
    ("data_dir", 3),
    ("input_dim", 0),
    ("input_dim", 100),
    ("input_dim", "784"),
    ("hidden_dim", 0),
    ("hidden_dim", -5),
    ("hidden_dim", 2.5),
    ("hidden_dim", "200"),
    ("latent_dim", 0),
    ("latent_dim", -2),
    ("latent_dim", 2.5),
    ("latent_dim", 2.0),
    ("latent_dim", True),
    ("lr", 0.0),
    ("lr", -3e-4),
    ("lr", -1e-3),
    ("lr", 3e4),
    ("lr", math.nan),
    ("lr", math.inf),
    ("lr", "3e-4"),
    ("lr", True),
    ("batch_size", 0),
    ("batch_size", -128),
    ("batch_size", 12.8),
    ("batch_size", True),
    ("batch_size", False),
    ("num_epochs", 0),
    ("num_epochs", -1),
    ("num_epochs", "10"),
    ("seed", -1),
    ("seed", 0.5),
    ("seed", None),
    ("seed", 2**63),  # torch's generators take a 64-bit seed
    ("seed", 99999999999999999999),
    ("device", "tpu"),
    ("device", ""),
    ("device", "cpu:x"),
    ("device", "cuda:"),
    ("device", 0),
    ("beta", -1.0),
    ("beta", math.nan),
    ("beta", math.inf),
    ("beta", True),
    ("variance_head", "sd"),
    ("likelihood", "gaussian"),
    ("binarize", 1),
    ("architecture", "cnn"),
    ("optimizer", "sgd"),
    ("warmup_epochs", -1),
    ("validation_images", -10),
    ("patience", -1),
    ("patience", 1.5),
    ("precision", "fp16"),
]


@pytest.mark.parametrize("field, value", BAD_VALUES)
def test_every_bad_value_is_a_config_error_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=rf"^config\.{field} must ") as e:
        Config(**{field: value})
    assert isinstance(e.value, ValueError) and f"got {value!r}" in str(e.value)


def test_the_largest_seed_is_accepted():
    assert Config(seed=2**63 - 1).seed == 2**63 - 1


def test_an_int_is_accepted_for_a_float_field():
    assert Config(lr=1).lr == 1.0 and isinstance(Config(lr=1).lr, float)


def test_a_path_is_a_fine_data_dir():
    assert Config(data_dir=Path("some") / "where").data_dir == str(Path("some") / "where")


def test_round_trip_and_unknown_keys():
    c = Config(latent_dim=2, seed=3)
    assert Config.from_dict(asdict(c)) == c
    with pytest.raises(ValueError, match="unknown config fields \\['gamma'\\]"):
        Config.from_dict({**asdict(c), "gamma": 2.0})


def test_a_config_saved_before_the_ablation_fields_loads_with_the_original_values():
    old = {k: v for k, v in Config().to_dict().items() if k not in ("beta", "variance_head", "binarize", "likelihood")}
    c = Config.from_dict(old)
    assert (c.beta, c.variance_head, c.binarize, c.likelihood) == (1.0, "logvar", False, "bernoulli")


@pytest.mark.parametrize(
    "changes, name",
    [
        ({}, "default,seed=0"),
        ({"beta": 2.0, "variance_head": "sigma", "seed": 1}, "beta=2.0,variance_head=sigma,seed=1"),
        ({"num_epochs": 50}, "num_epochs=50,seed=0"),
        ({"lr": 1e-3, "latent_dim": 2, "seed": 2}, "latent_dim=2,lr=0.001,seed=2"),
        ({"binarize": True}, "binarize=True,seed=0"),
    ],
)
def test_run_name_lists_the_fields_that_differ_from_the_defaults_then_the_seed(changes, name):
    assert run_name(Config(**changes)) == name


@pytest.mark.parametrize("changes", [{}, {"beta": 2.0}, {"num_epochs": 50, "seed": 3}])
def test_device_and_data_dir_never_appear_in_a_run_name(changes):
    here = Config(**changes)
    elsewhere = replace(here, device="cuda:1", data_dir="/mnt/datasets/fashion")
    assert run_name(elsewhere) == run_name(here)
    assert not any(f in run_name(elsewhere) for f in (*RUNTIME_FIELDS, "cuda", "/mnt/datasets"))


def test_every_field_that_shapes_a_run_changes_its_name():
    changed = {
        "dataset": "mnist",
        "hidden_dim": 100,
        "latent_dim": 2,
        "lr": 1e-3,
        "batch_size": 64,
        "num_epochs": 1,
        "seed": 1,
        "beta": 2.0,
        "variance_head": "softplus",
        "binarize": True,
        "likelihood": "continuous-bernoulli",
        "architecture": "gated",
        "optimizer": "adam-normgrad",
        "warmup_epochs": 100,
        "validation_images": 10000,
        "patience": 0,  # stands in for the default below
        "precision": "bf16",
    }
    changed["patience"] = 5  # needs a validation split
    changed["validation_images"] = 5
    assert set(changed) == set(Config().to_dict()) - {*RUNTIME_FIELDS, "input_dim"}  # input_dim can only be 784
    needs = {"patience": {"validation_images": 5}}
    names = [run_name(Config(**{field: value}, **needs.get(field, {}))) for field, value in changed.items()]
    assert len(set(names)) == len(names) and run_name(Config()) not in names


def test_the_literature_preset_is_the_published_protocol():
    # docs/literature-protocol.md: gated 300-300, z = 40, AdamNormGrad 5e-4, batch 100, up to 2000 epochs, KL warm-up
    # over 100 epochs, early stopping after more than 50 epochs on the last 10,000 training images, binarised data.
    c = Config(**PRESETS["literature"])
    assert (c.architecture, c.hidden_dim, c.latent_dim, c.optimizer, c.lr, c.batch_size) == (
        "gated",
        300,
        40,
        "adam-normgrad",
        5e-4,
        100,
    )
    assert (c.num_epochs, c.warmup_epochs, c.patience, c.validation_images, c.binarize) == (2000, 100, 50, 10000, True)
    assert (c.likelihood, c.variance_head, c.precision, c.beta) == ("bernoulli", "logvar", "fp32", 1.0)


def test_early_stopping_needs_a_validation_split_never_the_test_set():
    with pytest.raises(ConfigError, match="patience needs config.validation_images > 0"):
        Config(patience=5)


def test_the_gated_architecture_has_only_the_logvar_head():
    with pytest.raises(ConfigError, match="variance_head must be 'logvar' with the gated architecture"):
        Config(architecture="gated", variance_head="sigma")


def test_the_research_fields_are_the_fields_beyond_the_original_reports_experiment():
    # vae.fit trains a config only while these keep their defaults; the rest are the original report's settings.
    original = {"dataset", "input_dim", "hidden_dim", "latent_dim", "lr", "batch_size", "num_epochs", "seed", "beta"}
    assert len(set(RESEARCH_FIELDS)) == len(RESEARCH_FIELDS)
    assert set(RESEARCH_FIELDS) == set(Config().to_dict()) - original - set(RUNTIME_FIELDS)
