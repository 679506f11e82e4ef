from dataclasses import asdict

import pytest

from vae import Config


def test_defaults_are_the_seed_experiment():
    c = Config()
    assert (c.input_dim, c.hidden_dim, c.latent_dim) == (784, 200, 20)
    assert (c.lr, c.batch_size, c.num_epochs, c.seed, c.dataset) == (3e-4, 128, 10, 0, "fashion-mnist")


@pytest.mark.parametrize(
    "field, value",
    [
        ("lr", 0.0),
        ("lr", -1e-3),
        ("lr", 3e4),
        ("lr", "3e-4"),
        ("latent_dim", 0),
        ("latent_dim", -2),
        ("latent_dim", 2.5),
        ("hidden_dim", 0),
        ("batch_size", 0),
        ("batch_size", True),
        ("num_epochs", 0),
        ("num_epochs", -1),
        ("seed", -1),
        ("dataset", "cifar10"),
        ("device", "tpu"),
        ("input_dim", 100),
        ("data_dir", ""),
        ("beta", -1.0),
        ("beta", float("nan")),
        ("beta", True),
        ("variance_head", "sd"),
        ("binarize", 1),
    ],
)
def test_bad_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"config.{field}"):
        Config(**{field: value})


def test_int_is_accepted_for_a_float_field():
    assert Config(lr=1).lr == 1.0 and isinstance(Config(lr=1).lr, float)


def test_round_trip_and_unknown_keys():
    c = Config(latent_dim=2, seed=3)
    assert Config.from_dict(asdict(c)) == c
    with pytest.raises(ValueError, match="unknown config fields \\['gamma'\\]"):
        Config.from_dict({**asdict(c), "gamma": 2.0})


def test_a_config_saved_before_the_ablation_fields_loads_with_the_seeds_values():
    old = {k: v for k, v in Config().to_dict().items() if k not in ("beta", "variance_head", "binarize")}
    c = Config.from_dict(old)
    assert (c.beta, c.variance_head, c.binarize) == (1.0, "logvar", False)
