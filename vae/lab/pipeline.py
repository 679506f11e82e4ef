"""The main job, `python -m vae report`: train (or load) one model per seed, evaluate it, and write the figures,
figures/metrics.json and REPORT.md as one set.

Checkpoints live in `<runs_dir>/<run_name>/` (vae.config.run_name), shared with the notebooks and the sweep.
Each evaluation is stored beside its checkpoint (evaluation.json), and the pixels' kNN baseline in runs_dir;
each is reused only when everything that shaped it matches (the checkpoint's SHA-256, the evaluation settings,
the data subset), so that a re-run only re-plots.
"""

import hashlib
import json
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import matplotlib
import numpy as np
import sklearn
import torch
import torchvision

from vae import plots
from vae.config import Config
from vae.data import class_names, load_data
from vae.evaluate import EvalSettings, evaluate_model, first_of_each_class, knn_accuracy
from vae.lab import report
from vae.lab.checkpoint import load_model
from vae.lab.files import DamagedFile, mismatch, read_json, shape_problem, staged_writes
from vae.lab.runs import data_sizes, train_or_load
from vae.lab.sweep import load_table, scores_problem
from vae.progress import step
from vae.train import pick_device

METRICS_NAME = "metrics.json"
EVALUATION_NAME = "evaluation.json"
# Per-seed numbers that metrics.json summarises as mean and sd over seeds, with their units.
UNITS = {
    "test_loss": "nats per image",
    "test_bce": "nats per image",
    "test_kl": "nats per image",
    "test_bits_per_dim": "bits per pixel",
    "iwae_nll": "nats per image",
    "iwae_bits_per_dim": "bits per pixel",
    "iwae_gap": "nats per image",
    "train_loss": "nats per image",
    "knn_accuracy": "fraction",
    "active_units": "count",
    "trustworthiness": "0..1",
    "train_seconds": "s",
}
# What a stored evaluation must hold to be reused: evaluate_model's numbers (the report's figures read all of them).
SCORES = (
    "test_loss",
    "test_bce",
    "test_kl",
    "test_bits_per_dim",
    "iwae_nll",
    "iwae_nll_se",
    "iwae_bits_per_dim",
    "iwae_gap",
    "knn_accuracy",
    "active_units",
)
EVALUATION = {
    **dict.fromkeys(SCORES, float),
    "kl_per_dim": [float],
    "latent_variance": [float],
    "tsne": {"embedding": [[float]], "labels": [int], "trustworthiness": float},
}
INTERPOLATION_PAIRS = ((0, 1), (7, 9), (3, 8), (4, 6))  # (class, class) of the test images at each row's ends
SMOKE = {"train_images": 2000, "test_images": 500, "num_epochs": 1, "iw_samples": 10, "tsne_points": 500}
SMOKE_DIR = "runs/smoke"  # smoke output never goes to the committed figures/ and REPORT.md


@dataclass
class ReportOptions:
    """What to evaluate and where to write it; the defaults are those of `make report` (scratch ones with smoke)."""

    seeds: list[int] = field(default_factory=lambda: [0])
    evaluation: EvalSettings = field(default_factory=lambda: EvalSettings(iw_samples=1000, tsne_points=10000))
    fig_dir: str | None = None  # default: figures, or runs/smoke/figures
    report_path: str | None = None  # default: REPORT.md, or runs/smoke/REPORT.md
    runs_dir: str | None = None  # default: runs, or runs/smoke
    sweep_dir: str = "figures/experiments"  # the stored sweep whose table REPORT.md includes, if it is there
    bounds_dir: str = "figures/literature"  # the stored K-convergence (python -m vae bounds), if it is there
    from_checkpoint: str | None = None  # evaluate this checkpoint instead of training
    smoke: bool = False  # tiny and fast, for CI: see SMOKE

    def __post_init__(self):
        if not self.seeds or any(not 0 <= s < 2**63 for s in self.seeds) or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"options.seeds must be distinct integers in [0, 2**63), got {self.seeds}")
        if self.from_checkpoint is not None and len(self.seeds) > 1:
            raise ValueError("options.from_checkpoint evaluates one model: give it a single seed in options.seeds")
        if self.from_checkpoint is not None and not Path(self.from_checkpoint).is_file():
            raise ValueError(f"options.from_checkpoint {self.from_checkpoint}: no such file")
        if not self.evaluation.tsne_points:
            raise ValueError("options.evaluation.tsne_points must be >= 1: the report draws a t-SNE")
        scratch = Path(SMOKE_DIR) if self.smoke else None
        self.fig_dir = self.fig_dir or str(scratch / "figures" if scratch else "figures")
        self.report_path = self.report_path or str(scratch / "REPORT.md" if scratch else "REPORT.md")
        self.runs_dir = self.runs_dir or str(scratch or "runs")


def _sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu() -> str:
    """The processor's model name (Linux), else what platform knows: results differ slightly between CPUs."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def versions() -> dict:
    """The versions of everything that shaped the numbers, and the git commit of the code."""
    changed = _git("status", "--porcelain", "--", "vae")  # uncommitted changes to the package's code
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "matplotlib": matplotlib.__version__,
        "platform": platform.platform(),
        "processor": _cpu(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "mps": torch.backends.mps.is_available(),
        "torch_threads": torch.get_num_threads(),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_vae_modified": None if changed is None else bool(changed),
    }


def reuse_or_compute(path: Path, key: dict, compute, problem) -> tuple:
    """(compute(), False), or (the value an earlier run stored at `path` under the same key, True).

    A stored value is reused only when everything that shaped it, `key`, matches and `problem(value)` finds nothing
    wrong with it (returns None); otherwise it is recomputed and replaced. A damaged or edited file is named on
    stderr: the right value is one computation away, so it is recomputed rather than refused. The value must be JSON.
    """

    def check(found):  # a value of another key is no damage: it is recomputed without a word
        return shape_problem(found, {"key": dict, "value": object}) or (
            None if mismatch(found["key"], key) else problem(found["value"])
        )

    try:
        found = read_json(path, check)
        if not mismatch(found["key"], key):
            return found["value"], True
    except DamagedFile as e:
        print(f"{e}: recomputing it.", file=sys.stderr)
    except OSError:
        pass  # none yet, or unreadable: compute it afresh
    value = compute()
    with staged_writes() as stage:
        stage(path).write_text(json.dumps({"key": key, "value": value}) + "\n")
    return value, False


def evaluate_stored(model, config: Config, checkpoint: Path, sha256: str, data, settings: EvalSettings, progress=True):
    """evaluate_model, stored beside the checkpoint and reused for the same checkpoint, settings and data."""
    key = {
        "checkpoint_sha256": sha256,
        "settings": asdict(settings),
        "data_sizes": data_sizes(data[0], data[2]),
        "seed": config.seed,
        "binarize": config.binarize,
        "likelihood": config.likelihood,
        "device": next(model.parameters()).device.type,  # the rounding differs between device types
    }

    def compute():
        values = evaluate_model(model, data, settings, config.seed, progress)
        tsne = values["tsne"]
        return values | {"tsne": tsne | {"embedding": tsne["embedding"].tolist(), "labels": tsne["labels"].tolist()}}

    values, reused = reuse_or_compute(checkpoint.parent / EVALUATION_NAME, key, compute, _evaluation_problem)
    values["tsne"]["embedding"] = np.asarray(values["tsne"]["embedding"], dtype=np.float32)
    return values, reused


def _evaluation_problem(values) -> str | None:
    """What is wrong with a stored evaluation: its shape (EVALUATION), an impossible score, a ragged t-SNE; or None."""
    if found := shape_problem(values, EVALUATION) or scores_problem(values):
        return found
    tsne = values["tsne"]
    if len(tsne["embedding"]) != len(tsne["labels"]) or any(len(xy) != 2 for xy in tsne["embedding"]):
        return "its t-SNE is not one (x, y) per label"
    return None


def _accuracy_problem(value) -> str | None:
    """What is wrong with a stored accuracy: not a number in [0, 1]; or None."""
    return shape_problem(value, float) or (None if 0 <= value <= 1 else f"the accuracy {value} is not in [0, 1]")


def pixels_knn(data, dataset: str, k: int, runs_dir) -> float:
    """The kNN accuracy on raw pixels (the baseline for mu), stored in runs_dir and reused for the same data and k."""
    key = {"dataset": dataset, "data_sizes": data_sizes(data[0], data[2]), "knn_k": k}
    x_train, y_train, x_test, y_test = (t.cpu() for t in data)
    path = Path(runs_dir) / "knn_pixels.json"
    return reuse_or_compute(path, key, lambda: knn_accuracy(x_train, y_train, x_test, y_test, k), _accuracy_problem)[0]


def _run_seed(config: Config, options: ReportOptions, data, device, progress: bool) -> dict:
    """Train (or load) and evaluate one seed: its model, history, values, and what was reused."""
    start, trained = time.perf_counter(), []
    if options.from_checkpoint is not None:
        checkpoint = Path(options.from_checkpoint)
        model, config, history = load_model(checkpoint, device)
    else:
        model, history, checkpoint = train_or_load(
            config, data[0], data[2], options.runs_dir, trained.append, progress, label=f"seed {config.seed}"
        )
    train_wall, sha256 = time.perf_counter() - start, _sha256(checkpoint)
    values, reused = evaluate_stored(model, config, checkpoint, sha256, data, options.evaluation, progress)
    tsne = values.pop("tsne")
    run = {
        **{k: v for k, v in values.items() if k != "seconds"},
        "trustworthiness": tsne["trustworthiness"],
        "train_loss": history[-1]["train_loss"],
        "train_seconds": sum(r["seconds"] for r in history),
        "epochs": len(history),
        "epochs_reused": len(history) - len(trained),
        "evaluation_reused": reused,
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": sha256,
        "history": history,
    }
    seconds = values["seconds"] if not reused else {}
    return {"model": model, "config": config, "run": run, "tsne": tsne, "seconds": seconds | {"train": train_wall}}


def make_figures(model, history, tsne: dict, run: dict, x_test, y_test, names, settings: EvalSettings) -> dict:
    """Every figure of the report, from one seed's model and results: name -> Figure."""
    first = first_of_each_class(y_test)[:, 0]  # (10,): the first test image of each class
    starts = torch.stack([first[a] for a, _ in INTERPOLATION_PAIRS])
    ends = torch.stack([first[b] for _, b in INTERPOLATION_PAIRS])
    pair_names = [f"{names[a]} → {names[b]}" for a, b in INTERPOLATION_PAIRS]
    tsne_args = (settings.tsne_perplexity, settings.tsne_seed, tsne["trustworthiness"])
    return {
        "loss_curves": plots.loss_curves(history),
        "reconstructions": plots.reconstructions(model, x_test[first], y_test[first], names),
        "prior_samples": plots.prior_samples(model, n=64, seed=0),
        "interpolation": plots.interpolation(model, x_test[starts], x_test[ends], pair_names),
        "tsne": plots.tsne(tsne["embedding"], tsne["labels"], names, *tsne_args),
        "kl_per_dim": plots.kl_per_dim(run["kl_per_dim"], run["latent_variance"]),
    }


def summarise(runs: dict) -> dict:
    """Mean, sd (None for one seed) and unit over seeds of each number in UNITS."""
    summary = {}
    for key, unit in UNITS.items():
        xs = [run[key] for run in runs.values()]
        summary[key] = {"mean": statistics.fmean(xs), "sd": statistics.stdev(xs) if len(xs) > 1 else None, "unit": unit}
    return summary


def render_report(metrics: dict, options: ReportOptions) -> str:
    """REPORT.md's text: the metrics, and the stored sweep, K-convergence and literature results where they exist."""
    found = [Path(options.bounds_dir) / name for name in ("k_convergence.json", "results.json")]  # bounds, literature
    bounds, literature = (json.loads(path.read_text()) if path.exists() else None for path in found)
    return report.render(
        metrics,
        options.fig_dir,
        options.report_path,
        load_table(options.sweep_dir),
        options.sweep_dir,
        bounds,
        options.bounds_dir,
        literature,
    )


def smoke_sized(config: Config, options: ReportOptions) -> tuple[Config, ReportOptions]:
    """With options.smoke, the config and evaluation settings cut to SMOKE's sizes; else both unchanged."""
    if not options.smoke:
        return config, options
    settings = options.evaluation
    small = {"iw_samples": min(settings.iw_samples, SMOKE["iw_samples"]), "tsne_max_iter": 250}
    small["tsne_points"] = min(settings.tsne_points, SMOKE["tsne_points"])
    return replace(config, num_epochs=SMOKE["num_epochs"]), replace(options, evaluation=replace(settings, **small))


def make_report(config: Config, options: ReportOptions, progress: bool = True) -> dict:
    """Train/load, evaluate, and write figures, metrics.json and REPORT.md as one set; return the metrics.

    If anything fails (a full disk, an interruption) before the end, none of the previous outputs is replaced.
    """
    start, stamp = time.perf_counter(), versions()  # the commit of the code that makes the numbers
    config, options = smoke_sized(config, options)
    subset = {k: SMOKE[k] for k in ("train_images", "test_images")} if options.smoke else {}
    device = pick_device(config.device)
    x_train, y_train, x_test, y_test = load_data(config.dataset, config.data_dir, device=device, **subset)
    data, names = (x_train, y_train, x_test, y_test), class_names(config.dataset)

    results = [_run_seed(replace(config, seed=seed), options, data, device, progress) for seed in options.seeds]
    shown = results[0]
    runs = {r["config"].seed: r["run"] for r in results}
    knn_start = time.perf_counter()
    with step(f"{options.evaluation.knn_k}-NN accuracy on pixels (the baseline for μ)", show=progress):
        pixels = pixels_knn(data, config.dataset, options.evaluation.knn_k, options.runs_dir)
    timings = {f"seed{r['config'].seed}_{k}_seconds": v for r in results for k, v in r["seconds"].items()}
    timings["knn_pixels_seconds"] = time.perf_counter() - knn_start
    with step("drawing the figures", f"seed {shown['config'].seed}", show=progress):
        figures = make_figures(
            shown["model"],
            shown["run"]["history"],
            shown["tsne"],
            shown["run"],
            x_test,
            y_test,
            names,
            options.evaluation,
        )
    metrics = {
        "config": shown["config"].to_dict(),
        "evaluation": asdict(options.evaluation),
        "smoke": options.smoke,
        "data": {"dataset": config.dataset, **data_sizes(x_train, x_test)},
        "device": str(device),
        "seeds": list(runs),
        "figures_seed": shown["config"].seed,
        "figures": [f"{name}.png" for name in figures],
        "summary": summarise(runs),
        "knn_accuracy_pixels": pixels,
        "runs": {str(seed): run for seed, run in runs.items()},
        "versions": stamp,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "timings": timings | {"total_seconds": time.perf_counter() - start},
    }
    text = render_report(metrics, options)
    fig_dir = Path(options.fig_dir)
    writing = step(f"writing {len(figures)} figures, {METRICS_NAME} and {options.report_path}", show=progress)
    with writing, staged_writes() as stage:  # the whole set, or none of it
        for name, fig in figures.items():
            plots.save_figure(fig, name, fig_dir, stage)
        stage(fig_dir / METRICS_NAME).write_text(json.dumps(metrics, indent=1, allow_nan=False) + "\n")
        stage(Path(options.report_path)).write_text(text, encoding="utf-8")
    return metrics
