"""The IWAE bound at several K for a trained model (`python -m vae bounds`), and the literature comparison's score of
a run of the literature preset (`python -m vae literature`): each adds its records to k_convergence.json and redraws
k_convergence.png; the comparison writes results.json and training.png too. Every set is replaced together."""

import json
import time
from pathlib import Path

from vae import plots
from vae.data import load_data
from vae.lab import figures
from vae.lab import literature as lit
from vae.lab.checkpoint import load_checkpoint, load_model
from vae.lab.files import staged_writes
from vae.lab.pipeline import versions
from vae.lab.runs import BEST_NAME, CHECKPOINT_NAME
from vae.research.training import stopped_early

CONVERGENCE_NAME = "k_convergence.json"


def _scored(checkpoint, data_dir, device, literature: bool = False) -> tuple:
    """(model, its config, its history of best epochs, the whole test split as the model was scored in training);
    with `literature`, only from a run of the literature protocol, checked before the data is loaded."""
    model, trained, best = load_model(checkpoint, device)
    if literature and not (trained.binarize and trained.validation_images):
        run = Path(checkpoint).parent
        raise ValueError(f"{run} is not a run of the literature protocol (binarised, with a validation split)")
    return model, trained, best, model.protocol.scored(load_data(trained.dataset, data_dir)[2])


def _write(out: Path, records: list[dict], results: dict | None = None) -> None:
    """k_convergence.json and .png, and with `results` results.json and training.png: all replaced, or none."""
    with staged_writes() as stage:
        for name, value in ((CONVERGENCE_NAME, records), ("results.json", results)):
            if value is not None:
                stage(out / name).write_text(json.dumps(value, indent=1) + "\n", encoding="utf-8")
        plots.save_figure(figures.k_convergence(records), "k_convergence", out, stage)
        if results is not None:
            plots.save_figure(figures.literature_training(results), "training", out, stage)


def score_checkpoint(checkpoint, out_dir, ks, label: str, data_dir, device) -> list[dict]:
    """The bound at each K of `ks` (lit.k_convergence's records) for the model in `checkpoint`, on its dataset's test
    split; `label`'s records in `<out_dir>/k_convergence.json` are replaced by them (other models' stay)."""
    model, trained, _, x_test = _scored(checkpoint, data_dir, device)
    found = lit.k_convergence(model, x_test, ks, seed=trained.seed, label=label)
    path = Path(out_dir) / CONVERGENCE_NAME
    _write(Path(out_dir), lit.update_records(path, label, lit.data_label(trained), found))
    return found


def score_literature_run(run_dir, out_dir, ks, sweep_dir, data_dir, device) -> tuple[dict, dict]:
    """Score the best validation checkpoint of a literature run by the bound at each K of `ks`, and put it into
    `<out_dir>/results.json` with the continuous-Bernoulli row of the sweep stored in `sweep_dir`; return (the run's
    entry, its dataset's entry). The K-convergence records are replaced only for the run that they show."""
    run, out = Path(run_dir), Path(out_dir)
    model, trained, best, x_test = _scored(run / BEST_NAME, data_dir, device, literature=True)  # the best epoch
    state = load_checkpoint(run / CHECKPOINT_NAME)
    history = state["history"]  # every epoch so far
    protocol = state["data_sizes"].get("validation_protocol", 1)  # none was stored before protocol 2
    found = lit.k_convergence(model, x_test, ks, seed=trained.seed, label=trained.dataset)
    results = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {}
    results |= {d: lit.upgraded(d, results[d]) for d in lit.PUBLISHED_NLL if d in results}  # one schema in the file
    scored = lit.run_entry(trained, history, len(best), found, stopped_early(history, trained), protocol)
    entry = results[trained.dataset] = lit.with_run(trained.dataset, results.get(trained.dataset), scored)
    path = out / CONVERGENCE_NAME
    if lit.convergence_run(entry) == scored:  # seed 0 of the newest protocol: its records replace the model's
        records = lit.update_records(path, lit.model_label(trained.dataset), lit.data_label(trained), found)
    else:
        records = json.loads(path.read_text()) if path.exists() else []
    results |= {"k_convergence": records, "continuous_bernoulli": lit.continuous_bernoulli(Path(sweep_dir) / "runs")}
    results |= {"versions": versions(), "date": time.strftime("%Y-%m-%d")}
    _write(out, records, results)
    return scored, entry
