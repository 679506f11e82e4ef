"""The figures of the ablation sweep, the K-convergence and the literature runs, from their stored results."""

import matplotlib.patches
import numpy as np
from matplotlib.figure import Figure

from vae.lab.literature import PUBLISHED_NLL, current_runs, how_it_ended, upgraded
from vae.plots import class_scatter

ABLATION_TITLES = {
    "variance_head": "What the encoder's second head predicts",
    "kl_weight": "The weight β of the KL term in the training loss",
    "latent_dim": "The size of the latent code z",
    "data_protocol": "The data and its likelihood: grey-level BCE, binarised images, continuous Bernoulli",
    "training": "Training length and learning rate",
}
DENSITY_KEYS = ("test_loss", "iwae_nll")  # of a continuous-Bernoulli model: another quantity than the BCE's
METRIC_LABELS = {
    "test_loss": "test −ELBO, nats per image",
    "iwae_nll": "IWAE NLL, nats per image",
    "test_kl": "KL, nats per image",
    "knn_accuracy": "5-NN accuracy on μ",
    "active_units": "active units",
}


def ablation(runs: list, ablation_name: str, seeds) -> Figure:
    """One panel per metric: for each (label, [stored result per seed]), each seed's value and their mean."""
    fig = Figure(figsize=(10.2, 7.2), layout="constrained")
    axes = fig.subplots(2, 3).flatten()
    for ax, (key, label) in zip(axes, METRIC_LABELS.items(), strict=False):
        for i, (_, found) in enumerate(runs):
            if key in DENSITY_KEYS and any(
                r and r["config"].get("likelihood") == "continuous-bernoulli" for r in found
            ):
                ax.annotate("a density:\nsee the table", (i, 0.5), xycoords=("data", "axes fraction"), ha="center")
                continue  # nats of a density on [0, 1], not comparable with a cross-entropy's
            values = [r["metrics"][key] for r in found if r and r["status"] == "ok"]
            if values:
                ax.plot([i] * len(values), values, "o", color="C0", ms=5, alpha=0.7)
                ax.hlines(sum(values) / len(values), i - 0.3, i + 0.3, color="C3", lw=2)
            failed = sum(1 for r in found if r and r["status"] != "ok")
            if failed:
                ax.annotate(
                    f"{failed} diverged", (i, 0.02), xycoords=("data", "axes fraction"), ha="center", color="C3"
                )
        ax.set_xticks(range(len(runs)), [label for label, _ in runs], rotation=30, ha="right", fontsize=9)
        ax.set_xlim(-0.6, len(runs) - 0.4)
        ax.set_ylabel(label, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        if key == "active_units":  # a count: from 0, so that lost units show
            ax.set_ylim(0, ax.get_ylim()[1] * 1.05)
    axes[-1].axis("off")
    note = (
        f"Dots: one run per seed ({', '.join(map(str, seeds))}).\nRed line: mean over seeds.\nTest set, true ELBO "
        "(β = 1).\nThe y-axes other than active units\ndo not start at 0: they span the\nruns' values."
    )
    axes[-1].text(0, 0.5, note, fontsize=10, va="center")
    fig.suptitle(f"Ablation: {ABLATION_TITLES.get(ablation_name, ablation_name)}", fontsize=12)
    return fig


def tsne_small_multiples(runs: list, class_names: list[str]) -> Figure:
    """The t-SNE of test-set μ of each (label, stored result) side by side, 10 classes in 10 colours."""
    runs = [(label, r) for label, r in runs if r and r.get("tsne")]
    fig = Figure(figsize=(10.5, 3.9), layout="constrained")
    axes = fig.subplots(1, max(1, len(runs)), squeeze=False)[0]
    for ax, (label, r) in zip(axes, runs, strict=False):
        class_scatter(ax, r["tsne"]["xy"], r["tsne"]["labels"], class_names)
        m = r["metrics"]
        ax.set_title(f"{label}\n{m['active_units']} active units, 5-NN {m['knn_accuracy']:.3f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    handles, texts = axes[0].get_legend_handles_labels()
    fig.legend(handles, texts, loc="outside lower center", ncol=5, markerscale=5, fontsize=9)
    n = len(runs[0][1]["tsne"]["labels"]) if runs else 0
    fig.suptitle(f"t-SNE of the μ of {n} test images for each KL weight β (seed 0)", fontsize=11)
    return fig


def training_length(runs: list) -> Figure:
    """Test −ELBO per epoch of each (label, [stored result per seed]), one line per seed."""
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    later = [e["test_loss"] for _, results in runs for r in results if r for e in r["history"][1:]]
    for i, (label, results) in enumerate(runs):
        for j, r in enumerate(x for x in results if x and x["history"]):
            h = r["history"]
            style = {"ls": "--", "lw": 2.5, "zorder": 3} if i == 0 else {}  # on top of the 50 epochs' start
            shown = label if j == 0 else None
            ax.plot([e["epoch"] for e in h], [e["test_loss"] for e in h], color=f"C{i}", label=shown, **style)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test −ELBO, nats per image (axis not from 0)")
    if later:  # leave the first epoch's loss off the top, so that the later epochs' differences show
        ax.set_ylim(top=max(later) + 0.1 * (max(later) - min(later)))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    ax.set_title("Longer training and a larger learning rate (one line per seed)")
    return fig


def k_convergence(records: list[dict]) -> Figure:
    """The IWAE bound against K (log scale), ± its standard error: a panel per test data, a line per model."""
    datasets = list(dict.fromkeys(r["dataset"] for r in records))
    models = list(dict.fromkeys(r["model"] for r in records))  # a model keeps its color across panels
    fig = Figure(figsize=(7, 1 + 3.2 * len(datasets)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(datasets), 1, sharex=True))
    for ax, dataset in zip(axes, datasets, strict=True):
        here = [r for r in records if r["dataset"] == dataset]
        for model in dict.fromkeys(r["model"] for r in here):
            mine = [r for r in here if r["model"] == model]
            ks, bounds, ses = ([r[key] for r in mine] for key in ("k", "bound", "se"))
            ax.errorbar(ks, bounds, yerr=ses, fmt="o-", color=f"C{models.index(model)}", capsize=4, label=model)
            for k, bound in zip(ks, bounds, strict=True):
                ax.annotate(
                    f"{bound:.2f}", (k, bound), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=9
                )
        ax.set_xscale("log")
        ax.margins(y=0.15)  # room for the labels above the points
        ax.set_ylabel("bound on −log p(x),\nnats per image\n(axis not from 0)")
        ax.set_title(f"test set: {dataset}", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=9)
    axes[-1].set_xlabel("K, importance samples per image (log scale; K = 1 is the −ELBO)")
    fig.suptitle("How far the IWAE bound falls as K grows (bars: ± standard error over test images)", fontsize=10)
    return fig


def loss_readings(readings: list[dict], original: tuple) -> Figure:
    """Each reading's first- and last-epoch loss as a ratio to the original report's numbers; 1 is a match."""
    fig = Figure(figsize=(8, 6), layout="constrained")
    ax = fig.subplots()
    models = list(dict.fromkeys(r["model"] for r in readings))
    marks = dict(zip(dict.fromkeys(r["reading"] for r in readings), "os^D", strict=False))
    ax.add_patch(matplotlib.patches.Rectangle((0.9, 0.9), 0.2, 0.2, color="C2", alpha=0.25, label="within 10 %"))
    for r in readings:
        x, y = 1 + r["first_error"], 1 + r["last_error"]
        i = models.index(r["model"])  # concentric hollow markers, so that coinciding readings all show
        ax.plot(x, y, marks[r["reading"]], color=f"C{i}", ms=14 - 4 * i, mfc="none", mew=2)
    for i, model in enumerate(models):  # legend entries: color = model, marker = reading
        ax.plot([], [], "o", color=f"C{i}", label=model)
    for reading, mark in marks.items():
        ax.plot([], [], mark, color="0.4", label=reading)
    ax.plot(1, 1, "k*", ms=14, label=f"the original report: ≈{original[0]:,} → ≈{original[1]:,}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"first-epoch loss ÷ {original[0]:,} (log scale)")
    ax.set_ylabel(f"last-epoch loss ÷ {original[1]:,} (log scale)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=9, loc="upper left")
    ax.set_title("Which reading of the original report's loss numbers fits? (the star is a perfect fit)")
    return fig


def literature_training(results: dict) -> Figure:
    """Per dataset of results.json: each run's validation and test −ELBO per epoch and K = 5000 NLL, for the runs
    of its newest protocol, and the published NLL with its spread over runs."""
    datasets = [d for d in PUBLISHED_NLL if d in results]
    fig = Figure(figsize=(5.2 * len(datasets), 4.2), layout="constrained")
    for ax, dataset in zip(np.atleast_1d(fig.subplots(1, len(datasets))), datasets, strict=True):
        entry = upgraded(dataset, results[dataset])
        runs, later = current_runs(entry), []
        for r in runs:
            who = f"seed {r['seed']}: " if len(runs) > 1 else ""
            epochs = range(1, len(r["curve"]["test_loss"]) + 1)
            (line,) = ax.plot(epochs, r["curve"]["val_loss"], lw=1, label=f"{who}validation −ELBO")
            color = line.get_color()
            ax.plot(epochs, r["curve"]["test_loss"], lw=1, ls=":", color=color, label=f"{who}test −ELBO")
            nll = f"{who}test NLL, IWAE K = {r['iw_samples']}: {r['iwae_nll']:.2f}"
            ax.errorbar(
                r["best_epoch"],
                r["iwae_nll"],
                yerr=r["iwae_nll_se"],
                fmt="o",
                color=color,
                mec="k",
                capsize=4,
                label=nll,
            )
            later += r["curve"]["test_loss"][len(epochs) // 10 :]  # leave the first epochs off the top
        published, spread = entry["published_nll"], entry["published_sd"]
        ax.axhline(published, color="C3", ls="--", label=f"published: {published:.2f} ± {spread:.2f} over runs")
        ax.axhspan(published - spread, published + spread, color="C3", alpha=0.15, lw=0)
        ax.set_ylim(min(published - spread, *(r["iwae_nll"] for r in runs)) - 2, max(later) + 2)
        ax.set_xlabel("epoch")
        ax.set_ylabel("nats per image (axis not from 0)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9 if len(runs) == 1 else 7)
        seeds = ", ".join(str(r["seed"]) for r in runs)
        title = f"{dataset}: {len(runs)} runs (seeds {seeds}) of protocol {entry['protocol']}"
        if len(runs) == 1:
            r, limit = runs[0], runs[0]["config"]["num_epochs"]
            ending = {"stopped early": "stopped early", "epoch limit": "the protocol's limit"}.get(
                how_it_ended(r), f"cut short (limit {limit})"
            )
            title = f"{dataset}, seed {seeds}, protocol {entry['protocol']}: {r['epochs']} epochs, {ending}"
        ax.set_title(title, fontsize=10)
    fig.suptitle("The literature preset: −ELBO per epoch, and the NLL of the best validation epoch", fontsize=11)
    return fig
