"""A small, tested Variational Autoencoder for Fashion-MNIST: config -> data -> model -> train -> evaluate."""

from vae.config import Config, ConfigError
from vae.data import DataError, class_names, load_data, load_split
from vae.evaluate import EvalSettings, evaluate_model
from vae.lab.checkpoint import CheckpointError, load_checkpoint, load_model, load_weights, save_checkpoint
from vae.loss import dataset_elbo, elbo_terms, loss_per_image
from vae.model import VAE
from vae.train import TrainingDiverged, fit, pick_device, train_or_load

__all__ = [
    "VAE",
    "CheckpointError",
    "Config",
    "ConfigError",
    "DataError",
    "EvalSettings",
    "TrainingDiverged",
    "class_names",
    "dataset_elbo",
    "elbo_terms",
    "evaluate_model",
    "fit",
    "load_checkpoint",
    "load_data",
    "load_model",
    "load_split",
    "load_weights",
    "loss_per_image",
    "pick_device",
    "save_checkpoint",
    "train_or_load",
]
