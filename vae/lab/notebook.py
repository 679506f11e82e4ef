"""What the notebooks need beyond the experiment itself: strict parameters, the project's folders, a latent widget.

The notebooks call these so that they stay short and run the same from `notebooks/`, from the repository
root, and from a clone on Colab, without touching `sys.path`.
"""

import io
import os
import re
from pathlib import Path

import torch
from PIL import Image

TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def env_param(name: str, default):
    """A notebook parameter: the environment variable VAE_<name> parsed strictly as the default's type, or `default`.

    Booleans accept 1/true/yes/on and 0/false/no/off (any case); anything else is a ValueError naming the variable.
    """
    key = f"VAE_{name}"
    raw = os.environ.get(key)
    if raw is None:
        return default
    if isinstance(default, bool):
        if raw.strip().lower() in TRUE + FALSE:
            return raw.strip().lower() in TRUE
        raise ValueError(f"{key}={raw!r}: use one of {', '.join(TRUE)} or {', '.join(FALSE)}")
    try:
        return type(default)(raw)
    except ValueError:
        raise ValueError(f"{key}={raw!r} is not a valid {type(default).__name__}") from None


def from_params(cls, params: dict, **fixed):
    """cls(**params, **fixed), where each key of `params` is the field that the notebook parameter VAE_<KEY> sets.

    A bad value is a ValueError naming that variable, e.g. "VAE_NUM_EPOCHS must be >= 1, got -1": the library
    names its field instead (config.num_epochs), which a notebook reader never typed.
    """
    try:
        return cls(**params, **fixed)
    except ValueError as e:
        message = str(e)
        for name in params:  # the field as the library spells it: config.num_epochs, settings.iw_samples
            message = re.sub(rf"\b(config|settings)\.{name}\b", f"VAE_{name.upper()}", message)
        raise type(e)(message) from None


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


@torch.no_grad()
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
            image.value = _png(model.likelihood.mean(model.decode(z.unsqueeze(0)))[0], size)

    for slider in sliders:
        slider.observe(update, names="value")
    update()
    return widgets.HBox([widgets.VBox(sliders), image])
