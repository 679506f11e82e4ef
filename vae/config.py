"""The experiment's configuration: one validated dataclass, saved with every checkpoint and metrics file."""

import os
import re
from dataclasses import asdict, dataclass, fields

# The values allowed for the fields that take one of a few; all but the first are research variants (vae/research/).
CHOICES = dict(
    dataset=("fashion-mnist", "mnist"),
    variance_head=("logvar", "sigma", "softplus"),
    likelihood=("bernoulli", "continuous-bernoulli"),
    architecture=("mlp", "gated"),
    optimizer=("adam", "adam-normgrad"),
    precision=("fp32", "bf16"),
)
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
# The fields of research variants (vae/research/), which vae.fit refuses to train unless they keep their defaults.
RESEARCH_FIELDS = ("variance_head", "binarize", "likelihood", "architecture", "optimizer", "warmup_epochs")
RESEARCH_FIELDS += ("validation_images", "patience", "precision")
# Where a run happens, not what it computes: these may differ between a checkpoint and the config that reuses it.
RUNTIME_FIELDS = ("device", "data_dir")


class ConfigError(ValueError):
    """A config value is invalid; the message names the field, the value, and what it must be."""


@dataclass
class Config:
    """Defaults are the original report's experiment: MLP VAE, Adam 3e-4, batch 128, 10 epochs."""

    dataset: str = "fashion-mnist"  # MNIST is for the literature comparison
    data_dir: str = "data"  # torchvision layout: <data_dir>/FashionMNIST/raw/...
    input_dim: int = 784  # 28 x 28 pixels, flattened
    hidden_dim: int = 200  # one ReLU layer in the encoder and one in the decoder
    latent_dim: int = 20  # size of z
    lr: float = 3e-4  # Adam learning rate
    batch_size: int = 128  # images per Adam step
    num_epochs: int = 10  # passes over the training images
    seed: int = 0  # the RNG seed of the initial weights, the batches and every eps
    device: str = "auto"  # auto, cpu, cuda, cuda:N or mps; "auto" picks cuda > mps > cpu
    # Ablation switches (vae/lab/sweep.py); the defaults are the original report's model and data.
    beta: float = 1.0  # weight of the KL in the training loss only; every reported -ELBO uses beta = 1
    variance_head: str = "logvar"  # what the encoder's second head predicts: log sigma^2, sigma or softplus^-1(sigma)
    binarize: bool = False  # train on batches binarised afresh each step; test on one fixed binarisation
    likelihood: str = "bernoulli"  # "continuous-bernoulli": a normalised density for grey levels
    # The literature's protocol (vae.research.PRESETS, docs/literature-protocol.md); the defaults switch it off.
    architecture: str = "mlp"  # "gated": two gated layers on each side
    optimizer: str = "adam"  # "adam-normgrad" divides each weight's gradient by its norm
    warmup_epochs: int = 0  # the KL weight rises linearly to beta over this many epochs; 0: no warm-up
    validation_images: int = 0  # the last N training images are held out, scored each epoch, never trained on
    patience: int = 0  # stop after more than this many epochs without a lower validation loss; 0: never
    precision: str = "fp32"  # "bf16": the training step's forward pass under bfloat16 autocast; weights stay fp32

    def __post_init__(self):
        if isinstance(self.data_dir, os.PathLike):
            self.data_dir = os.fspath(self.data_dir)
        for f in fields(self):
            value = getattr(self, f.name)
            # bool is an int in Python; reject it where a number is expected.
            if f.type is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
                setattr(self, f.name, value)
            if not isinstance(value, f.type) or (isinstance(value, bool) and f.type is not bool):
                raise ConfigError(f"config.{f.name} must be {f.type.__name__}, got {value!r}")
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"config.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not DEVICE_PATTERN.fullmatch(self.device):
            raise ConfigError(f"config.device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        if self.input_dim != 784:
            raise ConfigError(f"config.input_dim must be 784 (28x28 images), got {self.input_dim!r}")
        for name in ("hidden_dim", "latent_dim", "batch_size", "num_epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"config.{name} must be >= 1, got {getattr(self, name)!r}")
        if not 0 < self.lr <= 1:
            raise ConfigError(f"config.lr must be in (0, 1], got {self.lr!r} (the original report uses 3e-4)")
        if not 0 <= self.seed < 2**63:  # torch's generators take a 64-bit seed
            raise ConfigError(f"config.seed must be in [0, 2**63), got {self.seed!r}")
        if not 0 <= self.beta < float("inf"):
            raise ConfigError(f"config.beta must be a finite number >= 0, got {self.beta!r} (1 is the true ELBO)")
        if self.architecture == "gated" and self.variance_head != "logvar":
            raise ConfigError(
                f"config.variance_head must be 'logvar' with the gated architecture, got {self.variance_head!r}"
            )
        for name in ("warmup_epochs", "validation_images", "patience"):
            if getattr(self, name) < 0:
                raise ConfigError(f"config.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.patience and not self.validation_images:
            raise ConfigError(
                "config.patience needs config.validation_images > 0: early stopping watches a "
                "validation split, never the test set"
            )
        if not self.data_dir:
            raise ConfigError(f"config.data_dir must be a non-empty path, got {self.data_dir!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        """Rebuild a config from `to_dict()` output; unknown keys are an error, naming them."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown config fields {unknown}; known fields are {sorted(names)}")
        return cls(**d)


def run_name(config: Config) -> str:
    """A folder name that says what shaped a run: the fields that differ from the defaults, then the seed.

    E.g. 'default,seed=0' or 'beta=2.0,variance_head=sigma,seed=1'; RUNTIME_FIELDS are left out.
    """
    default = Config()
    parts = [
        f"{f.name}={getattr(config, f.name)}"
        for f in sorted(fields(config), key=lambda f: f.name)
        if f.name not in (*RUNTIME_FIELDS, "seed") and getattr(config, f.name) != getattr(default, f.name)
    ]
    return ",".join([*(parts or ["default"]), f"seed={config.seed}"])
