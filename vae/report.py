"""The report: train (or load) one model per seed, evaluate, and write every figure, metrics.json and REPORT.md.

`make_report(config, options)` is what `python -m vae report` runs. Slow results (latents, the IWAE
estimate, the t-SNE embedding) are cached in `options.cache_dir` under the checkpoint's SHA-256 and the
parameters, so that re-running the report on finished checkpoints only re-plots (about a second).
"""

import json
import os
import platform
import statistics
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import matplotlib
import numpy as np
import sklearn
import torch
import torchvision

from vae import evaluate as ev
from vae import experiments, plots
from vae.checkpoint import load_checkpoint, load_model
from vae.config import Config
from vae.data import class_names, load_split
from vae.files import exclusive_lock, write_text_atomic
from vae.train import CHECKPOINT_NAME, fit, pick_device

METRICS_NAME = "metrics.json"
# Per-seed scalars, aggregated as mean and sd over seeds; each is (key, unit).
SCALARS = (
    ("test_loss", "nats per image"),
    ("test_bce", "nats per image"),
    ("test_kl", "nats per image"),
    ("test_bits_per_dim", "bits per pixel"),
    ("iwae_nll", "nats per image"),
    ("iwae_bits_per_dim", "bits per pixel"),
    ("iwae_gap", "nats per image"),
    ("train_loss", "nats per image"),
    ("knn_accuracy", "fraction"),
    ("active_units", "count"),
    ("trustworthiness", "0..1"),
    ("train_seconds", "s"),
)
HISTORY_KEYS = ("epoch", "train_loss", "train_bce", "train_kl", "test_loss", "test_bce", "test_kl")
INTERPOLATION_PAIRS = ((0, 1), (7, 9), (3, 8), (4, 6))  # (class, class) of the test images at each row's ends
SMOKE = {"train_images": 2000, "test_images": 500, "num_epochs": 1, "iw_samples": 10, "tsne_points": 500}


@dataclass
class ReportOptions:
    """What to evaluate and where to write it; the defaults are those of `make report`."""

    seeds: list[int] = field(default_factory=lambda: [0])
    iw_samples: int = 1000  # K of the IWAE estimate (the literature's standard is 5000)
    tsne_points: int = 10000  # the first N test images; 10000 is the whole test set
    tsne_perplexity: float = 30.0
    tsne_seed: int = 0
    tsne_max_iter: int = 1000
    knn_k: int = 5
    trust_neighbors: int = 5
    fig_dir: str = "figures"
    report_path: str = "REPORT.md"
    runs_dir: str = "runs/report"  # one checkpoint per seed: <runs_dir>/seed<N>/checkpoint.pt
    cache_dir: str = "runs/cache"
    from_checkpoint: str | None = None  # evaluate this checkpoint instead of training
    smoke: bool = False  # tiny and fast, for CI: see SMOKE

    def __post_init__(self):
        if not self.seeds or any(s < 0 for s in self.seeds) or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct non-negative integers, got {self.seeds}")
        if self.from_checkpoint is not None and len(self.seeds) > 1:
            raise ValueError("--from-checkpoint evaluates one model: give it without --seeds")
        if self.from_checkpoint is not None and not Path(self.from_checkpoint).is_file():
            raise ValueError(f"--from-checkpoint {self.from_checkpoint}: no such file")
        for name in ("iw_samples", "tsne_points", "knn_k", "trust_neighbors"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.tsne_points <= 3 * self.tsne_perplexity:
            raise ValueError(f"tsne_points ({self.tsne_points}) must exceed 3 x perplexity ({self.tsne_perplexity})")


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _versions() -> dict:
    commit = _git("rev-parse", "HEAD")
    changed = _git("status", "--porcelain", "--", "vae")  # uncommitted changes to the package's code
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "matplotlib": matplotlib.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "git_commit": commit,
        "git_vae_modified": None if changed is None else bool(changed),
    }


def _train_or_load(config: Config, options: ReportOptions, x_train, x_test):
    """(model, config, history, checkpoint path, epochs reused): trained into runs_dir/seed<N> (resumed), or loaded."""
    if options.from_checkpoint is not None:
        path = Path(options.from_checkpoint)
        model, config, history = load_model(path, pick_device(config.device))
        return model, config, history, path, len(history)
    path = Path(options.runs_dir) / f"seed{config.seed}" / CHECKPOINT_NAME
    reused = len(load_checkpoint(path)["history"]) if path.exists() else 0  # epochs trained by an earlier run
    model, history = fit(config, x_train, x_test, out_dir=path.parent, resume=True)
    return model, config, history, path, reused


def _cached(options: ReportOptions, timings: dict, name: str, compute) -> dict:
    """ev.cached_arrays in options.cache_dir, noting in timings["from_cache"] what was read instead of computed."""
    path = Path(options.cache_dir) / name
    if path.exists():
        timings.setdefault("from_cache", []).append(name)
    return ev.cached_arrays(path, compute)


def _evaluate_seed(model, config: Config, history, checkpoint: Path, data: dict, options: ReportOptions, timings):
    """Every number for one trained model, and the arrays its figures need; slow parts cached by checkpoint hash."""
    x_train, y_train, x_test, y_test = data["x_train"], data["y_train"], data["x_test"], data["y_test"]
    checkpoint_sha256 = ev.file_sha256(checkpoint)
    key = f"{checkpoint_sha256[:16]}-train{len(x_train)}-test{len(x_test)}"

    def cached(name, compute):
        return _cached(options, timings, name, compute)

    def latents():
        train_mu, _ = ev.encode_mu(model, x_train)
        test_mu, test_logvar = ev.encode_mu(model, x_test)
        return {"train_mu": train_mu.cpu(), "test_mu": test_mu.cpu(), "test_logvar": test_logvar.cpu()}

    def iwae():
        return {"nll": ev.iwae_nll(model, x_test, options.iw_samples, seed=config.seed).cpu()}

    def knn():
        return {"accuracy": ev.knn_accuracy(z["train_mu"], y_train.cpu(), z["test_mu"], y_test.cpu(), options.knn_k)}

    def tsne():
        mu = z["test_mu"][:n]
        embedding = ev.tsne_embedding(mu, options.tsne_perplexity, options.tsne_seed, options.tsne_max_iter)
        with _timer(timings, "trustworthiness_seconds"):
            trust = ev.trustworthiness(mu, embedding, options.trust_neighbors)
        return {"embedding": embedding, "trustworthiness": trust}

    n = min(options.tsne_points, len(x_test))
    tsne_name = (
        f"n{n}-p{options.tsne_perplexity:g}-s{options.tsne_seed}-i{options.tsne_max_iter}-t{options.trust_neighbors}"
    )
    with _timer(timings, "encode_seconds"):
        z = cached(f"latents-{key}.npz", latents)
        elbo = ev.test_elbo(model, x_test, seed=config.seed)
    with _timer(timings, "iwae_seconds"):
        nll = cached(f"iwae-{key}-k{options.iw_samples}.npz", iwae)["nll"]
    with _timer(timings, "knn_seconds"):
        knn_accuracy = float(cached(f"knn-{key}-k{options.knn_k}.npz", knn)["accuracy"])
    with _timer(timings, "tsne_seconds"):  # with the trustworthiness
        embedded = cached(f"tsne-{key}-{tsne_name}.npz", tsne)
    mu, logvar = torch.from_numpy(z["test_mu"]), torch.from_numpy(z["test_logvar"])
    iwae_nll = float(nll.mean())
    values = {
        "test_loss": elbo["loss"],
        "test_bce": elbo["bce"],
        "test_kl": elbo["kl"],
        "test_bits_per_dim": elbo["loss_bits_per_dim"],
        "iwae_nll": iwae_nll,
        "iwae_bits_per_dim": ev.bits_per_dim(iwae_nll, x_test.shape[1]),
        "iwae_gap": elbo["loss"] - iwae_nll,
        "train_loss": history[-1]["train_loss"],
        "knn_accuracy": knn_accuracy,
        "active_units": ev.active_units(mu),
        "trustworthiness": float(embedded["trustworthiness"]),
        "train_seconds": sum(r["seconds"] for r in history),
        "epochs": len(history),
        "kl_per_dim": ev.kl_per_dim(mu, logvar).tolist(),
        "latent_variance": ev.latent_variance(mu).tolist(),
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": checkpoint_sha256,
    }
    return values, {"embedding": embedded["embedding"], "tsne_y": y_test[:n].cpu().numpy()}


@contextmanager
def _timer(timings: dict, name: str):
    """Add the block's wall-clock seconds to timings[name]."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


def make_figures(model, history, arrays: dict, values: dict, data: dict, names: list[str], options: ReportOptions):
    """Build and save every figure of the report from one seed's model and cached arrays; return their paths."""
    x_test, y_test = data["x_test"], data["y_test"]
    first = ev.first_of_each_class(y_test)[:, 0]  # (10,): the first test image of each class
    starts = torch.stack([first[a] for a, _ in INTERPOLATION_PAIRS])
    ends = torch.stack([first[b] for _, b in INTERPOLATION_PAIRS])
    figures = {
        "loss_curves": plots.loss_curves(history),
        "reconstructions": plots.reconstructions(model, x_test[first], y_test[first], names),
        "prior_samples": plots.prior_samples(model, n=64, seed=0),
        "interpolation": plots.interpolation(
            model, x_test[starts], x_test[ends], [f"{names[a]} → {names[b]}" for a, b in INTERPOLATION_PAIRS]
        ),
        "tsne": plots.tsne(
            arrays["embedding"],
            arrays["tsne_y"],
            names,
            options.tsne_perplexity,
            options.tsne_seed,
            values["trustworthiness"],
        ),
        "kl_per_dim": plots.kl_per_dim(values["kl_per_dim"], values["latent_variance"]),
    }
    return [plots.save_figure(fig, name, options.fig_dir) for name, fig in figures.items()]


def _mean_sd(xs: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else None)


def make_report(config: Config, options: ReportOptions) -> dict:
    """Train/load, evaluate and write figures, metrics.json and REPORT.md; return the metrics (flat keys).

    The figures folder is locked meanwhile: a second report into it fails at once (vae.files.OutputError)
    instead of mixing its figures with this one's.
    """
    with exclusive_lock(options.fig_dir, "--fig-dir"):
        return _make_report(config, options)


def _make_report(config: Config, options: ReportOptions) -> dict:
    start = time.perf_counter()
    versions = _versions()  # before anything runs: the commit of the code that makes the numbers
    timings: dict[str, float] = {}
    if options.smoke:
        config = replace(config, num_epochs=SMOKE["num_epochs"])
        options = replace(options, iw_samples=min(options.iw_samples, SMOKE["iw_samples"]))
        options = replace(options, tsne_points=min(options.tsne_points, SMOKE["tsne_points"]), tsne_max_iter=250)
    with _timer(timings, "data_seconds"):
        x_train, y_train = load_split(config.dataset, "train", config.data_dir)
        x_test, y_test = load_split(config.dataset, "test", config.data_dir)
        if options.smoke:
            x_train, y_train = x_train[: SMOKE["train_images"]], y_train[: SMOKE["train_images"]]
            x_test, y_test = x_test[: SMOKE["test_images"]], y_test[: SMOKE["test_images"]]
    device = pick_device(config.device)
    data = {"x_train": x_train.to(device), "y_train": y_train, "x_test": x_test.to(device), "y_test": y_test}
    names = class_names(config.dataset)

    per_seed, shown = {}, None
    for seed in options.seeds:
        with _timer(timings, "train_seconds"):
            model, seed_config, history, checkpoint, reused = _train_or_load(
                replace(config, seed=seed), options, x_train, x_test
            )
        values, arrays = _evaluate_seed(model, seed_config, history, checkpoint, data, options, timings)
        values["epochs_reused"] = reused
        per_seed[seed_config.seed] = values
        if shown is None:
            shown = (model, seed_config, history, values, arrays)
    model, config, history, values, arrays = shown

    with _timer(timings, "knn_pixels_seconds"):
        pixels = _cached(
            options,
            timings,
            f"knn-pixels-{config.dataset}-train{len(x_train)}-test{len(x_test)}-k{options.knn_k}.npz",
            lambda: {"accuracy": ev.knn_accuracy(x_train, y_train, x_test, y_test, options.knn_k)},
        )["accuracy"]
    with _timer(timings, "figures_seconds"):
        figure_paths = make_figures(model, history, arrays, values, data, names, options)

    metrics = {f"config.{k}": v for k, v in config.to_dict().items() if k != "seed"}
    metrics |= {f"options.{k}": v for k, v in vars(options).items() if k not in ("seeds", "fig_dir", "report_path")}
    metrics |= {"seeds": list(per_seed), "figures_seed": config.seed, "device": str(device)}
    metrics |= {f"version.{k}": v for k, v in versions.items()}
    metrics["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    metrics["num_train_images"], metrics["num_test_images"] = len(x_train), len(x_test)
    metrics["knn_accuracy_pixels"] = float(pixels)
    # The loss curves' data (figures_seed), one list per history field; losses in nats per image.
    metrics |= {f"history.{k}": [r[k] for r in history] for k in history[0]}
    for seed, values in per_seed.items():
        metrics |= {f"seed{seed}.{k}": v for k, v in values.items()}
    for key, unit in SCALARS:
        mean, sd = _mean_sd([values[key] for values in per_seed.values()])
        metrics[f"{key}.mean"], metrics[f"{key}.sd"], metrics[f"{key}.unit"] = mean, sd, unit
    metrics["figures"] = [p.name for p in figure_paths]
    # Seconds per stage; wall.from_cache lists the results read from the cache instead of computed in this run.
    metrics |= {f"wall.{k}": v for k, v in timings.items()}
    metrics["wall.total_seconds"] = time.perf_counter() - start

    metrics_path = Path(options.fig_dir) / METRICS_NAME
    write_text_atomic(metrics_path, json.dumps(metrics, indent=1, allow_nan=False) + "\n")
    report = report_markdown(metrics, options.fig_dir, options.report_path)
    write_text_atomic(options.report_path, report + ablations_markdown(options.fig_dir, options.report_path))
    return metrics


def ablations_markdown(fig_dir, report_path) -> str:
    """The section 'Ablations', from the table that `python -m vae sweep` stored in fig_dir/experiments ('' if none)."""
    sweep_dir = Path(fig_dir) / experiments.OUT_NAME
    if not (sweep_dir / experiments.TABLE_NAME).exists():
        return ""
    link = os.path.relpath(sweep_dir.resolve(), Path(report_path).resolve().parent)
    return "\n" + experiments.report_section(sweep_dir, link)


def _pm(metrics: dict, key: str, digits: int = 1) -> str:
    """'mean ± sd' of a per-seed scalar, or the mean alone for one seed."""
    mean, sd = metrics[f"{key}.mean"], metrics[f"{key}.sd"]
    return f"{mean:.{digits}f}" if sd is None else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def report_markdown(m: dict, fig_dir: str, report_path: str) -> str:
    """REPORT.md from the metrics alone: every number in it is read from `m`."""
    fig = Path(fig_dir).resolve()
    try:
        fig = fig.relative_to(Path(report_path).resolve().parent)
    except ValueError:
        pass
    seeds = m["seeds"]
    over = f"mean ± sd over {len(seeds)} seeds ({', '.join(map(str, seeds))})" if len(seeds) > 1 else f"seed {seeds[0]}"
    h = [dict(zip(HISTORY_KEYS, r, strict=True)) for r in zip(*(m[f"history.{k}"] for k in HISTORY_KEYS), strict=True)]
    s = f"seed{m['figures_seed']}."
    kl = m[s + "kl_per_dim"]
    batch = m["config.batch_size"]
    smoke = (
        "\n> **Smoke run** (`--smoke`): a few thousand images and one epoch, to test the pipeline. "
        "Its numbers say nothing about the model.\n"
        if m["options.smoke"]
        else ""
    )
    gap = h[-1]["test_loss"] - h[-1]["train_loss"]
    fit_reading = (
        "the test loss is no worse than the training loss, so there is no sign of overfitting"
        if gap <= 0
        else f"the test loss is {gap:.1f} nats per image above the training loss"
    )
    spread = "The seed-to-seed spread (± sd) is given beside every number; " if len(seeds) > 1 else "One seed: "
    epochs = [(m[f"seed{seed}.epochs_reused"], m[f"seed{seed}.epochs"]) for seed in seeds]
    reuse_note = (
        f" {sum(r for r, _ in epochs)} of the {sum(e for _, e in epochs)} epochs were trained by an earlier run"
        " (finished checkpoints were resumed), so that time excludes them; the training times below are the"
        " checkpoints' own."
        if any(r for r, _ in epochs)
        else ""
    )
    reused = len(m.get("wall.from_cache", []))
    cache_note = f" ({reused} slow results were read from the cache of an earlier run)" if reused else ""
    notes = f"{cache_note}.{reuse_note}"
    kl_first, kl_last = h[0]["test_kl"], h[-1]["test_kl"]
    kl_reading = (
        f"changes little ({kl_first:.1f} after epoch 1, {kl_last:.1f} at the end), so the fall in the loss is"
        " almost all better reconstruction"
        if abs(kl_last - kl_first) < 0.1 * kl_first
        else f"goes from {kl_first:.1f} to {kl_last:.1f} as the encoder changes how much information z carries"
    )
    early = (
        " The training curve averages over an epoch while the weights change, so at epoch 1 it lies above the"
        " test curve, which is measured after the epoch."
        if h[0]["train_loss"] > h[0]["test_loss"]
        else ""
    )
    units = m["active_units.mean"]
    faint = sum(v < 0.1 for v in kl)
    unused = (
        "the inactive units carry almost none: the model uses fewer dimensions than it is given."
        if units < m["config.latent_dim"]
        else "all pass the activity test."
    )
    if faint:
        unused += f" Still, {faint} of them carry less than 0.1 nats each: those dimensions are nearly unused."
    pct = 100 * m["knn_accuracy.mean"]
    pix = 100 * m["knn_accuracy_pixels"]
    amount = "more class information than" if pct > pix else "less class information than"
    if abs(pct - pix) < 1:  # percentage points
        amount = "about as much class information as"
    return f"""# A VAE on Fashion-MNIST: report

Generated by `python -m vae report` on {m["date"]} (git commit `{m["version.git_commit"]}`); every number
below is read from [`{fig}/metrics.json`]({fig}/metrics.json), written by the same run. Re-run it with
`make report`.
{smoke}
## Introduction

A variational autoencoder (Kingma & Welling, 2013) learns an encoder q(z|x), a Gaussian over a
{m["config.latent_dim"]}-dimensional latent z, and a decoder p(x|z), by maximising the evidence lower bound
(ELBO) on log p(x). This report trains the seed report's model on {m["config.dataset"]}, measures how well it
models the test images and how useful its latent space is, and shows what it generates.

## Architecture

- Encoder: `Linear(784→{m["config.hidden_dim"]})` + ReLU, then two heads
  `Linear({m["config.hidden_dim"]}→{m["config.latent_dim"]})` for μ and log σ² (predicting log σ² keeps σ
  positive).
- Reparameterisation: z = μ + σ·ε with ε ~ N(0, I).
- Decoder: `Linear({m["config.latent_dim"]}→{m["config.hidden_dim"]})` + ReLU, `Linear({m["config.hidden_dim"]}→784)`
  giving the logits of 784 Bernoulli pixels.
- Loss: the negative ELBO, BCE + KL: the binary cross-entropy of the grey-level pixels summed over the 784
  pixels, plus the closed-form KL(q(z|x) ‖ N(0, I)) summed over the latent dims.

## Experiment

- Data: {m["num_train_images"]} training and {m["num_test_images"]} test images, grey levels scaled to [0, 1].
- Training: Adam, learning rate {m["config.lr"]:g}, batch size {batch}, {m["config.num_epochs"]} epochs;
  seeds {", ".join(map(str, seeds))}; device `{m["device"]}`; torch {m["version.torch"]}.
- Evaluation on the whole test set:
  - the −ELBO with one sample of z per image, in nats per image and in bits per pixel
    (nats ÷ (784 ln 2));
  - the importance-weighted estimate of −log p(x) (IWAE bound, Burda et al., 2016) with
    K = {m["options.iw_samples"]} samples per image;
  - a {m["options.knn_k"]}-nearest-neighbour classifier fitted on training-set μ and scored on test-set μ,
    against the same classifier on raw pixels;
  - active units (latent dims whose Cov_x(E[z_j|x]) exceeds 0.01) and the KL per latent dimension;
  - a t-SNE (scikit-learn, perplexity {m["options.tsne_perplexity"]:g}, PCA initialisation, seed
    {m["options.tsne_seed"]}) of the first {m["options.tsne_points"]} test-set μ, and its trustworthiness
    with {m["options.trust_neighbors"]} neighbours.
- The figures show seed {m["figures_seed"]}. The whole report took {m["wall.total_seconds"]:.0f} s{notes}

### Units: per image, not per batch

Every loss here is in **nats per image**: the BCE summed over the 784 pixels plus the KL summed over the
latent dims, averaged over images. Many VAE scripts (pytorch/examples among them) print the loss summed
over a batch instead (`reduction="sum"`). That number is the per-image loss times the batch size: with
batches of {batch}, a per-image test loss of {m["test_loss.mean"]:.1f} nats would print as about
{batch * m["test_loss.mean"]:.0f}, and it would change with the batch size (and be smaller on a short last
batch) although the model had not changed. Per-image values can be compared across batch sizes, epochs
and papers; for scale, a model that predicts 0.5 for every pixel scores 784 ln 2 ≈ 543.4 nats per image.

## Results ({over})

| quantity | value | unit |
| --- | --- | --- |
| test −ELBO | {_pm(m, "test_loss", 2)} | nats per image |
| of which BCE | {_pm(m, "test_bce", 2)} | nats per image |
| of which KL | {_pm(m, "test_kl", 2)} | nats per image |
| test −ELBO | {_pm(m, "test_bits_per_dim", 4)} | bits per pixel |
| IWAE estimate of −log p(x), K = {m["options.iw_samples"]} | {_pm(m, "iwae_nll", 2)} | nats per image |
| IWAE estimate of −log p(x) | {_pm(m, "iwae_bits_per_dim", 4)} | bits per pixel |
| −ELBO minus IWAE estimate | {_pm(m, "iwae_gap", 2)} | nats per image |
| train −ELBO, last epoch | {_pm(m, "train_loss", 2)} | nats per image |
| {m["options.knn_k"]}-NN accuracy on μ | {_pm(m, "knn_accuracy", 4)} | fraction of test images |
| {m["options.knn_k"]}-NN accuracy on raw pixels (baseline) | {m["knn_accuracy_pixels"]:.4f} | fraction of test images |
| active units | {_pm(m, "active_units", 1)} | of {m["config.latent_dim"]} |
| t-SNE trustworthiness | {_pm(m, "trustworthiness", 4)} | 0 to 1 |
| training time | {_pm(m, "train_seconds", 1)} | s |

The pixels are grey levels, not binary, so the BCE is a cross-entropy rather than the log-likelihood of a
discrete image, and these nats are not comparable with results on binarised MNIST.

## Figures

### Loss curves

![loss curves]({fig}/loss_curves.png)

The test −ELBO falls from {h[0]["test_loss"]:.1f} nats per image after epoch 1 to {h[-1]["test_loss"]:.1f}
after epoch {h[-1]["epoch"]}. The BCE carries most of it ({h[-1]["test_bce"]:.1f}); the KL {kl_reading}.
After the last epoch {fit_reading}.{early}

### Reconstructions

![reconstructions]({fig}/reconstructions.png)

The first test image of each class (top) and its reconstruction from the posterior mean μ (bottom). The
reconstructions keep each garment's shape and overall brightness but are blurred: fine texture, print and
logos are lost. The BCE of {m["test_bce.mean"]:.1f} nats per image is the price of that blur.

### Samples from the prior

![samples]({fig}/prior_samples.png)

64 images decoded from z ~ N(0, I), shown as pixel probabilities. Many are recognisable garments (tops,
trousers, shoes, bags); others are blurry blends of classes, from regions where the prior puts mass but the
encoder puts few training images.

### Latent interpolation

![interpolation]({fig}/interpolation.png)

Each row decodes points on the straight line between the μ of two test images of different classes. The
images change gradually, without jumps through noise: the decoder is smooth along these paths, and the
midpoints look like plausible in-between garments.

### t-SNE of the test-set μ

![t-SNE]({fig}/tsne.png)

Each colour is a class (all 10 shown, legend on the right). Classes with distinctive shapes (trousers, bags,
footwear) form their own clusters, while shirts, T-shirts/tops, pullovers and coats overlap, the same
confusion a classifier makes on this dataset. Trustworthiness {_pm(m, "trustworthiness", 3)} (1 is perfect)
says the map keeps most local neighbourhoods of the {m["config.latent_dim"]}-dimensional μ. The
{m["options.knn_k"]}-NN accuracy on μ is {pct:.1f} % against {pix:.1f} % on raw pixels: a
{m["config.latent_dim"]}-number code keeps {amount} the 784 pixels, for a nearest-neighbour classifier.

### KL per latent dimension

![KL per dimension]({fig}/kl_per_dim.png)

The KL of each latent dimension, averaged over test images, in nats per image; grey bars are inactive
units. {_pm(m, "active_units", 1)} of {m["config.latent_dim"]} units are active; for the figure's seed the
KL per dimension ranges from {min(kl):.2f} to {max(kl):.2f} nats; {unused}

## Conclusion

The model reaches a test −ELBO of {_pm(m, "test_loss", 1)} nats per image
({_pm(m, "test_bits_per_dim", 3)} bits per pixel) after {m["config.num_epochs"]} epochs; the importance-weighted
estimate with K = {m["options.iw_samples"]} puts −log p(x) at {_pm(m, "iwae_nll", 1)} nats per image, so the
ELBO is {m["iwae_gap.mean"]:.1f} nats per image loose. It uses {_pm(m, "active_units", 1)} of its
{m["config.latent_dim"]} latent dimensions, and its μ gives a {m["options.knn_k"]}-NN accuracy of {pct:.1f} %.
{spread}the figures come from seed {m["figures_seed"]}.
"""
