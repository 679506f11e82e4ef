"""A small, tested Variational Autoencoder for Fashion-MNIST: config -> data -> model -> loss -> train -> evaluate.

The core, vae/*.py, is the original report's experiment. Research variants are in vae/research/, and the
reproduction machinery (runs on disk, checkpoints, the report, the sweep, the command line) in vae/lab/.
"""

from vae.config import Config, ConfigError
from vae.data import Data, DataError, class_names, load_data, load_split
from vae.evaluate import EvalSettings, evaluate_model
from vae.loss import Bernoulli, elbo_terms, negative_elbo
from vae.model import VAE
from vae.train import Callback, Run, TrainingDiverged, fit, pick_device
