"""What the notebooks need beyond the experiment itself: the project's folders, train-or-load, a latent widget.

The notebooks call these so that they stay short and run the same from `notebooks/`, from the repository
root, and from `/content` on Colab, without touching `sys.path`.
"""

import io
from pathlib import Path

import torch
from PIL import Image

from vae.checkpoint import load_checkpoint, load_model
from vae.config import Config
from vae.train import CHECKPOINT_NAME, fit, pick_device

# Config fields that do not change what a checkpoint's weights are.
IRRELEVANT_FIELDS = ("device", "data_dir")


def project_root(start=None) -> Path | None:
    """The repository checkout holding `start` (default: the working directory), or None (e.g. on Colab)."""
    start = Path(start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "vae" / "__init__.py").is_file():
            return folder
    return None


def project_dir(value: str | None, name: str, start=None) -> Path:
    """`value` if it is set; else `<repository root>/<name>`; outside a checkout, `<working directory>/<name>`."""
    if value:
        return Path(value)
    return (project_root(start) or Path.cwd()) / name


def _comparable(config: dict, drop: tuple[str, ...]) -> dict:
    return {k: v for k, v in config.items() if k not in IRRELEVANT_FIELDS + drop}


def finished_with(path: Path, config: Config) -> bool:
    """True if the checkpoint at `path` finished `config.num_epochs` epochs of this config (device aside)."""
    if not path.is_file():
        return False
    state = load_checkpoint(path)
    same = _comparable(state["config"], ()) == _comparable(config.to_dict(), ())
    return same and len(state["history"]) == config.num_epochs


def _resumable(path: Path, config: Config) -> bool:
    """True if the checkpoint at `path` is this config stopped early, so that `fit(resume=True)` continues it."""
    if not path.is_file():
        return False
    state = load_checkpoint(path)
    same = _comparable(state["config"], ("num_epochs",)) == _comparable(config.to_dict(), ("num_epochs",))
    return same and len(state["history"]) < config.num_epochs


def checkpoint_candidates(config: Config, runs_dir) -> list[Path]:
    """Where a finished run of `config` may already be: `make report`'s checkpoint, then the notebooks' own."""
    runs_dir = Path(runs_dir)
    return [
        runs_dir / "report" / f"seed{config.seed}" / CHECKPOINT_NAME,
        runs_dir / "notebooks" / f"latent{config.latent_dim}-seed{config.seed}" / CHECKPOINT_NAME,
    ]


def train_or_load(config: Config, x_train, x_test, runs_dir, progress: bool = True):
    """Load a finished checkpoint of `config` from `runs_dir` if there is one, else train it; (model, history, path).

    Training writes `<runs_dir>/notebooks/latent<D>-seed<S>/checkpoint.pt` after every epoch and resumes a run
    of the same config that stopped early; a checkpoint there of another config is replaced.
    """
    candidates = checkpoint_candidates(config, runs_dir)
    for path in candidates:
        if finished_with(path, config):
            model, _, history = load_model(path, pick_device(config.device))
            print(f"Loaded {path} ({len(history)} epochs); delete it to train again.")
            return model, history, path
    own = candidates[-1]
    model, history = fit(config, x_train, x_test, out_dir=own.parent, resume=_resumable(own, config), progress=progress)
    return model, history, own


def _png(image: torch.Tensor, size: int) -> bytes:
    """One image (784,) in [0, 1] as PNG bytes, scaled up to size x size pixels."""
    pixels = (image.detach().cpu().view(28, 28).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").resize((size, size), Image.NEAREST).save(buffer, format="PNG")
    return buffer.getvalue()


def traversal_widget(model, z: torch.Tensor, dims, limit: float = 3.0, size: int = 196):
    """Sliders on the latent dims `dims` of `z` (latent_dim,) beside the decoded image; None without ipywidgets."""
    try:
        import ipywidgets as widgets
    except ImportError:
        return None
    z = z.detach().clone()
    image = widgets.Image(format="png", width=size, height=size)
    sliders = [
        widgets.FloatSlider(value=float(z[d]), min=-limit, max=limit, step=0.1, description=f"z[{d}]") for d in dims
    ]

    def update(_change=None):
        for d, slider in zip(dims, sliders, strict=True):
            z[d] = slider.value
        with torch.no_grad():
            image.value = _png(torch.sigmoid(model.decode(z.unsqueeze(0)))[0], size)

    for slider in sliders:
        slider.observe(update, names="value")
    update()
    return widgets.HBox([widgets.VBox(sliders), image])
