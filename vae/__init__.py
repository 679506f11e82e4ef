"""A small, tested VAE for Fashion-MNIST. The core, vae/*.py: the original report; vae/research/, vae/lab/ above."""

from vae.config import Config, ConfigError
from vae.data import Data, DataError, class_names, load_data, load_split
from vae.evaluate import EvalSettings, evaluate_model
from vae.loss import Bernoulli, elbo_terms, negative_elbo
from vae.model import VAE
from vae.train import Callback, Run, TrainingDiverged, fit, pick_device
