"""The literature comparison: published numbers with their sources, and `figures/literature/results.json`.

`python -m vae literature --run-dir DIR` scores a run of the literature preset (vae.research.PRESETS): the
checkpoint of its best validation epoch, by IWAE at K = 1 ... 5000 on the fixed binarised test set, beside the published
test NLL of the same protocol (docs/literature-protocol.md). Each dataset's entry keeps every scored run, one per
seed and validation protocol, and the mean and sd over the runs of its newest protocol.
"""

import json
import math
import statistics
from pathlib import Path

from vae.config import Config
from vae.evaluate import iwae_nll

# The original report's loss curve, first and last epoch, as printed there, units unstated.
ORIGINAL_REPORT_LOSS = (17_900, 10_700)
# Test NLL in nats per image on dynamically binarised Fashion-MNIST, importance sampling with K = 5000: Norouzi,
# Fleet & Norouzi (2020), "Exemplar VAE: Linking Generative Models, Nearest Neighbor Retrieval, and Data
# Augmentation", NeurIPS 2020, arXiv:2004.04795. Source: the authors' README image, images/density_estimation.png
# in sajadn/Exemplar-VAE ("VAE w/ Gaussian prior ... Fashion MNIST -228.70 +- 0.15"), a mean over training runs,
# +- their spread. The paper's Table 1 itself was not readable here (docs/literature-protocol.md).
GAUSSIAN_VAE_FASHION_MNIST_NLL = 228.70  # the Gaussian-prior VAE baseline (two 300-unit gated layers, z = 40)
# The same image's dynamically binarised MNIST value for that baseline ("Dynamic MNIST -84.45 +- 0.12").
GAUSSIAN_VAE_MNIST_NLL = 84.45
PUBLISHED_NLL = {"fashion-mnist": GAUSSIAN_VAE_FASHION_MNIST_NLL, "mnist": GAUSSIAN_VAE_MNIST_NLL}
# The same image's +- beside each mean: the spread of the NLL over their training runs (not a standard error).
GAUSSIAN_VAE_FASHION_MNIST_NLL_SD = 0.15
GAUSSIAN_VAE_MNIST_NLL_SD = 0.12
PUBLISHED_SD = {"fashion-mnist": GAUSSIAN_VAE_FASHION_MNIST_NLL_SD, "mnist": GAUSSIAN_VAE_MNIST_NLL_SD}
PUBLISHED_K = 5000
PLANNED_SEEDS = (0, 1, 2)  # the runs of each dataset that the comparison is to hold, of the current protocol


def model_label(dataset: str) -> str:
    """The literature model's name in k_convergence.json and the figures."""
    return f"gated 300-300, z = 40 (literature preset), {dataset}"


def data_label(config: Config) -> str:
    """What a model's bounds are measured on: its dataset and pixels. Bounds on other data are not comparable."""
    return f"{config.dataset}, {'binarised' if config.binarize else 'grey levels'}"


def how_it_ended(entry: dict) -> str:
    """A results.json entry's training: "stopped early", "epoch limit" (all of num_epochs) or "cut short"."""
    if entry["stopped_early"]:
        return "stopped early"
    return "epoch limit" if entry["epochs"] >= entry["config"]["num_epochs"] else "cut short"


def update_records(path: Path, label: str, data: str, found: list[dict]) -> list[dict]:
    """k_convergence.json's records with `label`'s replaced by `found` on `data` (a data_label); others stay."""
    kept = [r for r in json.loads(path.read_text()) if r["model"] != label] if path.exists() else []
    return kept + [{"model": label, "dataset": data, **r} for r in found]


def run_entry(
    config: Config, history: list[dict], best_epoch: int, records: list[dict], stopped: bool, protocol: int
) -> dict:
    """One run of results.json: the K = 5000 NLL of its best validation epoch, and how training went."""
    final = max(records, key=lambda r: r["k"])
    return {
        "seed": config.seed,
        "validation_protocol": protocol,  # vae.train.VALIDATION_PROTOCOL of its checkpoint; 1 where none is stored
        "iwae_nll": final["bound"],  # on the fixed binarised test set
        "iwae_nll_se": final["se"],  # standard error over the test images
        "iw_samples": final["k"],
        "epochs": len(history),  # trained so far; the protocol allows up to config.num_epochs
        "best_epoch": best_epoch,  # the lowest validation -ELBO: the checkpoint scored here
        "stopped_early": stopped,  # True: the protocol's early stopping ended the run; False: it was cut short
        "train_seconds": sum(r["seconds"] for r in history),  # wall clock of all epochs, with their val/test -ELBO
        "config": config.to_dict(),
        "curve": {key: [round(r[key], 3) for r in history] for key in ("val_loss", "test_loss")},  # -ELBO per epoch
    }


def dataset_entry(dataset: str, runs: list[dict]) -> dict:
    """A dataset's entry of results.json: its runs, newest protocol first, and the mean and sd over that protocol's."""
    runs = sorted(runs, key=lambda r: (-r["validation_protocol"], r["seed"]))
    protocol = runs[0]["validation_protocol"]  # runs of older protocols are kept, never averaged with these
    nll = [r["iwae_nll"] for r in runs if r["validation_protocol"] == protocol]
    return {
        "published_nll": PUBLISHED_NLL[dataset],  # mean over their runs
        "published_sd": PUBLISHED_SD[dataset],  # spread over their runs
        "protocol": protocol,  # the newest validation protocol among the runs
        "n_runs": len(nll),  # runs of `protocol`
        "iwae_nll_mean": statistics.fmean(nll),
        "iwae_nll_sd": statistics.stdev(nll) if len(nll) > 1 else None,  # sample sd (n - 1) over runs
        "runs": runs,
    }


def upgraded(dataset: str, entry: dict) -> dict:
    """A dataset's entry in the schema of dataset_entry; one of the first schema (one run, its fields at the top,
    before validation protocols were stored) becomes its run of protocol 1."""
    if "runs" in entry:
        return entry
    run = {k: v for k, v in entry.items() if k != "published_nll"}
    return dataset_entry(dataset, [{"seed": entry["config"]["seed"], "validation_protocol": 1, **run}])


def with_run(dataset: str, entry: dict | None, run: dict) -> dict:
    """A dataset's entry (of dataset_entry's schema) with `run` in place of the run of its seed and protocol; the
    other runs stay."""
    runs, same = entry["runs"] if entry else [], (run["seed"], run["validation_protocol"])
    return dataset_entry(dataset, [r for r in runs if (r["seed"], r["validation_protocol"]) != same] + [run])


def current_runs(entry: dict) -> list[dict]:
    """The runs that the mean and sd are over: those of the entry's newest protocol."""
    return [r for r in entry["runs"] if r["validation_protocol"] == entry["protocol"]]


def convergence_run(entry: dict) -> dict | None:
    """The run whose K-convergence k_convergence.json holds: seed 0 of the newest protocol that has one."""
    return next((r for r in entry["runs"] if r["seed"] == 0), None)  # runs are sorted newest protocol first


def continuous_bernoulli(sweep_runs: Path) -> dict | None:
    """The continuous-Bernoulli row of the sweep: mean test -ELBO and IWAE NLL over its stored seeds."""
    results = [
        json.loads(p.read_text()) for p in sorted(sweep_runs.glob("likelihood=continuous-bernoulli,seed=*.json"))
    ]
    results = [r for r in results if r["status"] == "ok" and not r["smoke"]]
    if not results:
        return None
    test_loss, iwae = (sum(r["metrics"][key] for r in results) / len(results) for key in ("test_loss", "iwae_nll"))
    return {
        "test_loss": test_loss,  # mean over seeds, on the [0, 1] grey-level test images
        "iwae_nll": iwae,
        "iw_samples": results[0]["evaluation"]["iw_samples"],
        "seeds": [r["config"]["seed"] for r in results],
        "source": str(sweep_runs),
    }


def k_convergence(model, x, ks=(1, 10, 100, 1000, 5000), seed: int = 0, progress=True, label=None) -> list[dict]:
    """The IWAE bound on -log p(x) at each K: {"k", "bound": mean over x, "se": its standard error}.

    K = 1 estimates the -ELBO; the bound falls towards -log p(x) as K grows, which is why a paper's K must be matched.
    Each K gets its own bar (iwae_nll's, prefixed with `label`), unless progress=False.
    """
    records = []
    for k in ks:
        nll = iwae_nll(model, x, k, seed=seed, progress=progress, label=label).double()  # (N,)
        records.append({"k": k, "bound": nll.mean().item(), "se": (nll.std() / math.sqrt(len(nll))).item()})
    return records
