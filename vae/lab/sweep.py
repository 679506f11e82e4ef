"""The ablations of the original report's choices: plan a grid of configs x seeds, run each one, store one result
per run, and tabulate them.

Each run trains with `train_or_load` (checkpoints in `<runs_dir>/<run_name>/`, shared with the report), is
evaluated with `evaluate_model`, and writes `<out>/runs/<name>.json`. A stored result is reused only when its
config, data subset and evaluation settings match the request; otherwise the sweep stops and says so. A run
whose loss becomes NaN is recorded as `"status": "diverged"`; the sweep goes on.

All reported losses are the true negative ELBO (beta = 1) in nats per image, whatever beta trained the model.
Binarised runs are scored on one fixed binarisation of the test set (`vae.research.training.Binarized`).
"""

import csv
import io
import json
import math
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from vae import plots
from vae.config import RUNTIME_FIELDS, Config, run_name
from vae.data import class_names, load_data, load_split
from vae.devices import on_model_device
from vae.evaluate import EvalSettings, evaluate_model, first_of_each_class
from vae.lab import figures as lab_figures
from vae.lab.checkpoint import RECORD, load_model
from vae.lab.files import DamagedFile, mismatch, read_json, shape_problem, staged_writes
from vae.lab.literature import ORIGINAL_REPORT_LOSS
from vae.lab.runs import CHECKPOINT_NAME, train_or_load
from vae.research.latent_space import manifold_grid
from vae.train import TrainingDiverged

# ablation -> [(label, overrides of the default Config)]; {} is the original report's setting, shared by all.
ABLATIONS = {
    "variance_head": [
        ("log σ² head (ours)", {}),
        ("raw σ head (tutorial)", {"variance_head": "sigma"}),
        ("softplus σ head", {"variance_head": "softplus"}),
        ("tutorial: raw σ and β=2", {"variance_head": "sigma", "beta": 2.0}),
    ],
    "kl_weight": [
        ("β=1 (the correct ½)", {}),
        ("β=2 (the missing ½)", {"beta": 2.0}),
        ("β=0.5", {"beta": 0.5}),
        ("β=4", {"beta": 4.0}),
    ],
    "latent_dim": [
        ("latent_dim=2", {"latent_dim": 2}),
        ("latent_dim=5", {"latent_dim": 5}),
        ("latent_dim=10", {"latent_dim": 10}),
        ("latent_dim=20 (original)", {}),
        ("latent_dim=50", {"latent_dim": 50}),
    ],
    "data_protocol": [
        ("grey-level BCE (original)", {}),
        ("dynamically binarised", {"binarize": True}),
        ("continuous Bernoulli", {"likelihood": "continuous-bernoulli"}),
    ],
    "training": [
        ("10 epochs, lr 3e-4 (original)", {}),
        ("10 epochs, lr 1e-3", {"lr": 1e-3}),
        ("50 epochs, lr 3e-4", {"num_epochs": 50}),
    ],
}
SEEDS = (0, 1, 2)
TABLE_NAME = "ablations.csv"
READINGS_NAME = "loss_readings.json"
METRICS = ("test_loss", "iwae_nll", "test_kl", "knn_accuracy", "active_units")  # the table's columns
TSNE_ABLATION = "kl_weight"  # its seed-0 runs store a t-SNE of test-set μ for the small multiples
MANIFOLD_RUN = {"latent_dim": 2}  # its seed-0 model draws the 2-D manifold
LIKELIHOOD_RUNS = ({}, {"likelihood": "continuous-bernoulli"})  # their seed-0 models' reconstructions side by side
SMOKE_IMAGES = {"train_images": 6000, "test_images": 1000}
# A stored result as run_one writes it: what `table` and `figures` read (a diverged run's metrics are None).
RESULT = {"name": str, "config": dict, "smoke": bool, "status": str, "history": [RECORD]}
OK_RESULT = RESULT | {
    "metrics": dict.fromkeys((*METRICS, "test_bce", "train_seconds"), float),
    "evaluation": {"iw_samples": int},
    "tsne": ({"xy": [[float]], "labels": [int]}, type(None)),
}
# In expectation the IWAE bound lies below the -ELBO (its K = 1); both are estimated with random z, and two one-sample
# estimates on 24 test images differ by at most 0.35 nats (measured, 8 seeds): 2 nats above the -ELBO is no noise.
IWAE_SLACK = 2.0  # nats per image


def variant_name(overrides: dict, seed: int) -> str:
    """A run's name: 'default,seed=0', 'beta=2.0,variance_head=sigma,seed=1', ... (vae.config.run_name)."""
    return run_name(replace(Config(), **overrides, seed=seed))


def plan(base: Config, ablations=None, seeds=SEEDS, smoke: bool = False) -> dict[str, Config]:
    """The distinct runs of the chosen ablations: name -> config (variants shared by ablations run once)."""
    unknown = sorted(set(ablations or ()) - set(ABLATIONS))
    if unknown:
        raise ValueError(f"unknown ablations {unknown}; choose from {list(ABLATIONS)}")
    runs = {}
    for ablation in ablations or ABLATIONS:
        for _, overrides in ABLATIONS[ablation]:
            for seed in seeds:
                config = replace(base, **overrides, seed=seed)
                if smoke:
                    config = replace(config, num_epochs=max(1, config.num_epochs // 10))
                runs[variant_name(overrides, seed)] = config
    return runs


def _evaluation_key(settings: EvalSettings, test_images: int, binarize: bool) -> dict:
    return {
        "iw_samples": settings.iw_samples,
        "knn_k": settings.knn_k,
        "test_images": test_images,
        "binarized_test_set": binarize,
    }


def run_one(
    name: str, config: Config, data, out_dir, runs_dir, settings: EvalSettings, smoke: bool, progress=True, label=None
) -> dict:
    """Train (resuming a checkpoint if there is one), evaluate, and store `<out_dir>/runs/<name>.json`.

    Its epochs and evaluation steps are named on stderr as "label: ..." (default: the name), unless progress=False.
    """
    label = name if label is None else label
    x_train, _, x_test, y_test = data
    seen, start = [], time.perf_counter()
    result = {"name": name, "config": config.to_dict(), "smoke": smoke, "torch": torch.__version__}
    try:
        model, history, _ = train_or_load(
            config, x_train, x_test, runs_dir, callback=seen.append, progress=progress, label=label
        )
    except TrainingDiverged as e:
        result |= {"status": "diverged", "error": str(e), "history": seen, "metrics": None}
    else:
        train_seconds = time.perf_counter() - start
        with_tsne = name in {variant_name(o, 0) for _, o in ABLATIONS[TSNE_ABLATION]}  # the small multiples
        start = time.perf_counter()
        values = evaluate_model(
            model, data, settings if with_tsne else replace(settings, tsne_points=0), config.seed, progress, label
        )
        tsne = values.pop("tsne", None)
        keep = ("test_loss", "test_bce", "test_kl", "iwae_nll", "knn_accuracy", "active_units")
        metrics = {k: values[k] for k in keep} | {"train_seconds": train_seconds}
        metrics["eval_seconds"] = time.perf_counter() - start
        if tsne is not None:
            tsne = {"xy": tsne["embedding"].round(2).tolist(), "labels": tsne["labels"].tolist()}
        result |= {"status": "ok", "error": None, "history": history, "metrics": metrics, "tsne": tsne}
        result["evaluation"] = _evaluation_key(settings, len(x_test), config.binarize)
    with staged_writes() as stage:
        stage(Path(out_dir) / "runs" / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def scores_problem(scores: dict) -> str | None:
    """What makes stored scores impossible, or None: a -ELBO that is not BCE + KL; an IWAE NLL above the -ELBO
    (beyond IWAE_SLACK), or not the -ELBO less the IWAE gap stored beside it; a kNN accuracy outside [0, 1]."""
    loss, iwae = scores["test_loss"], scores["iwae_nll"]
    if not math.isclose(loss, scores["test_bce"] + scores["test_kl"], rel_tol=1e-9, abs_tol=1e-9):
        return f"its -ELBO {loss:.2f} is not its BCE {scores['test_bce']:.2f} + KL {scores['test_kl']:.2f}"
    if iwae > loss + IWAE_SLACK:
        return f"its IWAE NLL {iwae:.2f} exceeds its -ELBO {loss:.2f}, which bounds it from above"
    if not math.isclose(scores.get("iwae_gap", loss - iwae), loss - iwae, rel_tol=1e-9, abs_tol=1e-9):
        return f"its IWAE NLL {iwae:.2f} is not its -ELBO {loss:.2f} less its IWAE gap {scores['iwae_gap']:.2f}"
    if not 0 <= scores["knn_accuracy"] <= 1:
        return f"its kNN accuracy {scores['knn_accuracy']} is not in [0, 1]"
    return None


def _result_problem(result) -> str | None:
    """What is wrong with a stored run result: its shape (RESULT, OK_RESULT), its config, its scores; or None."""
    ok = isinstance(result, dict) and result.get("status") == "ok"
    if found := shape_problem(result, OK_RESULT if ok else RESULT):
        return found
    try:
        Config.from_dict(result["config"])
    except (ValueError, TypeError) as e:  # ConfigError is a ValueError
        return f"its config is invalid: {e}"
    return scores_problem(result["metrics"]) if ok else None


def _done(path: Path, config: Config, smoke: bool, evaluation: dict) -> bool:
    """True if `path` holds this run's result; False if none, or a damaged one (recomputed, as pipeline does);
    an error if it holds a result of anything else, so none mix."""
    try:
        stored = read_json(path, _result_problem)
    except FileNotFoundError:
        return False
    except DamagedFile as e:
        print(f"{e}: recomputing it.", file=sys.stderr)
        return False
    wanted = {"config": config.to_dict(), "smoke": smoke, "evaluation": evaluation}
    found = {"config": Config.from_dict(stored["config"]).to_dict(), "smoke": stored["smoke"]}  # defaults filled in
    found["evaluation"] = stored.get("evaluation", evaluation)
    for d in (wanted["config"], found["config"]):
        for key in RUNTIME_FIELDS:
            d.pop(key, None)
    if diff := mismatch(found, wanted):
        raise ValueError(
            f"{path} holds a result of another config, data subset or evaluation: (stored, requested) = {diff}. "
            "Write this sweep into another out_dir, or delete that file to recompute it."
        )
    return True


def sweep(
    runs: dict[str, Config], out_dir, runs_dir, settings: EvalSettings, smoke=False, log=print, progress=True
) -> float:
    """Run every run whose result is not yet stored in `<out_dir>/runs/`; return the seconds taken.

    Each run's training and evaluation steps are named on stderr as "[3/15] <name>: ...", unless progress=False.
    """
    if not runs:
        return 0.0
    first = next(iter(runs.values()))
    data = load_data(first.dataset, first.data_dir, **(SMOKE_IMAGES if smoke else {}))
    todo = {}
    for name, config in runs.items():
        evaluation = _evaluation_key(settings, len(data[2]), config.binarize)
        if not _done(Path(out_dir) / "runs" / f"{name}.json", config, smoke, evaluation):
            todo[name] = config
    # Seed 0 of every variant first, so that a sweep cut short covers every ablation; then the longest runs first.
    todo = dict(sorted(todo.items(), key=lambda item: (item[1].seed, -item[1].num_epochs)))
    log(f"{len(runs) - len(todo)} of {len(runs)} runs already done; {len(todo)} to run")
    start = time.perf_counter()
    for i, (name, config) in enumerate(todo.items(), 1):
        result = run_one(name, config, data, out_dir, runs_dir, settings, smoke, progress, f"[{i}/{len(todo)}] {name}")
        m = result["metrics"]
        log(
            f"[{i}/{len(todo)}] {name}: "
            + (f"-ELBO {m['test_loss']:.2f}, IWAE {m['iwae_nll']:.2f}" if m else "diverged")
        )
    return time.perf_counter() - start


def load_results(out_dir) -> dict[str, dict]:
    """Every stored run result in `<out_dir>/runs/`: name -> result; FileNotFoundError if there is none, DamagedFile
    (a ValueError) naming one that is damaged."""
    paths = sorted((Path(out_dir) / "runs").glob("*.json"))
    if not paths:
        raise FileNotFoundError(f"no stored sweep results in {out_dir}/runs: run `python -m vae sweep` first")
    try:
        return {p.stem: read_json(p, _result_problem) for p in paths}
    except DamagedFile as e:
        raise DamagedFile(f"{e}: delete it, and run the sweep again to recompute it.") from None


def ablations_present(results: dict[str, dict], seeds=SEEDS) -> list[str]:
    """The ablations with a stored result for a variant other than the original setting (shared by all)."""
    return [a for a, v in ABLATIONS.items() if any(variant_name(o, s) in results for _, o in v if o for s in seeds)]


def table(results: dict[str, dict], seeds=SEEDS) -> list[dict]:
    """One row per (ablation, variant): mean and sd over the seeds' runs of each metric, and failures."""
    rows = []
    for ablation in ablations_present(results, seeds):
        for label, overrides in ABLATIONS[ablation]:
            found = [results[n] for n in (variant_name(overrides, s) for s in seeds) if n in results]
            if not found:
                continue
            ok = [r["metrics"] for r in found if r["status"] == "ok"]
            row = {"ablation": ablation, "variant": label, "runs": len(found), "diverged": len(found) - len(ok)}
            row["iw_samples"] = max((r["evaluation"]["iw_samples"] for r in found if r["status"] == "ok"), default=0)
            for key in (*METRICS, "test_bce", "train_seconds"):
                values = [m[key] for m in ok]
                row[f"{key}_mean"] = statistics.fmean(values) if values else math.nan
                row[f"{key}_sd"] = statistics.stdev(values) if len(values) > 1 else math.nan
            rows.append(row)
    return rows


def table_csv(rows: list[dict]) -> str:
    """The table as CSV text, floats with 4 decimals."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(rows[0])
    writer.writerows([[f"{v:.4f}" if isinstance(v, float) else v for v in row.values()] for row in rows])
    return buffer.getvalue()


def load_table(out_dir) -> dict | None:
    """What a sweep stored in out_dir: {"rows": table, numbers as floats, "readings", "figures": names}; or None."""
    out_dir = Path(out_dir)
    if not (out_dir / TABLE_NAME).exists():
        return None
    with open(out_dir / TABLE_NAME, newline="", encoding="utf-8") as f:
        rows = [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]
    readings = json.loads((out_dir / READINGS_NAME).read_text()) if (out_dir / READINGS_NAME).exists() else []
    return {"rows": rows, "readings": readings, "figures": sorted(p.stem for p in out_dir.glob("*.png"))}


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def loss_readings(results: dict[str, dict]) -> list[dict]:
    """Readings of the original report's '17,900 -> 10,700': our first- and last-epoch train losses, scaled."""
    runs = {
        "the original report's model (grey, β=1)": variant_name({}, 0),
        "the tutorial's loss (raw σ, β=2)": variant_name({"variance_head": "sigma", "beta": 2.0}, 0),
        "binarised data": variant_name({"binarize": True}, 0),
    }
    readings = []
    for what, name in runs.items():
        r = results.get(name)
        if not r or not r["history"]:
            continue
        h, beta = r["history"], r["config"]["beta"]
        # The loss the training printed: bce + beta * kl (the tutorial's own KL, not the true ELBO).
        first, last = (e["train_bce"] + beta * e["train_kl"] for e in (h[0], h[-1]))
        for scale, how in ((1, "per image"), (128, "sum over a batch of 128"), (32, "sum over a batch of 32")):
            readings.append(
                {
                    "model": what,
                    "reading": how,
                    "first_epoch": first * scale,
                    "last_epoch": last * scale,
                    "epochs": len(h),
                    "first_error": first * scale / ORIGINAL_REPORT_LOSS[0] - 1,
                    "last_error": last * scale / ORIGINAL_REPORT_LOSS[1] - 1,
                }
            )
    return readings


def figures(results: dict[str, dict], seeds=SEEDS, runs_dir=None, dataset="fashion-mnist") -> dict:
    """Every figure that the stored results allow: name -> Figure (the manifold needs its checkpoint in runs_dir)."""
    present = ablations_present(results, seeds)

    def runs_of(ablation):  # [(label, [stored result or None, per seed])]
        return [(label, [results.get(variant_name(o, s)) for s in seeds]) for label, o in ABLATIONS[ablation]]

    out = {f"ablation_{a}": lab_figures.ablation(runs_of(a), a, seeds) for a in present}
    if TSNE_ABLATION in present:
        runs = [(label, results.get(variant_name(o, 0))) for label, o in ABLATIONS[TSNE_ABLATION]]
        out["tsne_kl_weight"] = lab_figures.tsne_small_multiples(runs, class_names(dataset))
    if "training" in present:
        out["training_length"] = lab_figures.training_length(runs_of("training"))
    readings = loss_readings(results)
    if readings:
        out["loss_readings"] = lab_figures.loss_readings(readings, ORIGINAL_REPORT_LOSS)
    manifold = _model(results.get(variant_name(MANIFOLD_RUN, 0)), runs_dir)
    if manifold is not None:
        out["manifold_latent2"] = manifold_grid(manifold)
    bernoulli, continuous = (_model(results.get(variant_name(o, 0)), runs_dir) for o in LIKELIHOOD_RUNS)
    if bernoulli is not None and continuous is not None:
        out["reconstructions_likelihood"] = likelihood_reconstructions(bernoulli, continuous, results, dataset)
    return out


def _model(result: dict | None, runs_dir):
    """The trained model of a stored result, from its checkpoint in `<runs_dir>/<run_name>/`; None if absent."""
    if result is None or runs_dir is None:
        return None
    path = Path(runs_dir) / run_name(Config.from_dict(result["config"])) / CHECKPOINT_NAME
    return load_model(path)[0] if path.exists() else None


@torch.no_grad()
def likelihood_reconstructions(bernoulli, continuous, results: dict, dataset: str):
    """The first test image of each class, decoded from μ by the Bernoulli and the continuous-Bernoulli models."""
    data_dir = next(iter(results.values()))["config"]["data_dir"]
    x, y = load_split(dataset, "test", data_dir)
    first = first_of_each_class(y)[:, 0]
    x = x[first]  # (10, 784)
    logits_b, logits_c = (
        model.decode(model.encode(on_model_device(model, x))[0]).cpu() for model in (bernoulli, continuous)
    )
    rows = {
        "test image": x,
        "Bernoulli: its mean λ": torch.sigmoid(logits_b),
        "cont. Bernoulli: its mean": continuous.likelihood.mean(logits_c),
        "cont. Bernoulli: its λ": torch.sigmoid(logits_c),
    }
    names = [class_names(dataset)[int(c)] for c in y[first]]
    return plots.image_rows(rows, names, "Reconstructions from μ: the mean of each likelihood (and the λ it is not)")


def write_outputs(results: dict[str, dict], out_dir, runs_dir=None, seeds=SEEDS, dataset="fashion-mnist") -> list:
    """The table (CSV), the loss readings (JSON) and every figure that the stored results allow, as one set."""
    out_dir, readings = Path(out_dir), loss_readings(results)
    written = [out_dir / TABLE_NAME]
    with staged_writes() as stage:
        stage(out_dir / TABLE_NAME).write_text(table_csv(table(results, seeds)), encoding="utf-8")
        if readings:
            stage(out_dir / READINGS_NAME).write_text(json.dumps(readings, indent=1) + "\n")
            written.append(out_dir / READINGS_NAME)
        for name, fig in figures(results, seeds, runs_dir, dataset).items():
            written.append(plots.save_figure(fig, name, out_dir, stage))
    return written
