"""A small, tested Variational Autoencoder for Fashion-MNIST: config -> data -> model -> train."""

from vae.checkpoint import CheckpointError, load_checkpoint, load_model, load_weights, save_checkpoint
from vae.config import Config
from vae.data import DataError, class_names, load_split
from vae.loss import dataset_elbo, elbo_terms, loss_per_image
from vae.model import VAE
from vae.train import TrainingDiverged, fit, pick_device

__all__ = [
    "VAE",
    "CheckpointError",
    "Config",
    "DataError",
    "TrainingDiverged",
    "class_names",
    "dataset_elbo",
    "elbo_terms",
    "fit",
    "load_checkpoint",
    "load_model",
    "load_weights",
    "load_split",
    "loss_per_image",
    "pick_device",
    "save_checkpoint",
]
