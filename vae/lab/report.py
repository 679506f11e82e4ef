"""Every text the project writes: REPORT.md, rendered from templates/report.md, and the ablations section.

The template is filled with `string.Template` (standard library: Jinja2 would come only with the optional
notebook extra). The sentences that depend on the numbers ("the KL changes little") are the small `*_reading`
functions below; every number is read from metrics.json's dict or from the sweep's stored table. The sections on
the published numbers (the literature comparison and the IWAE bound against K) are vae.lab.literature_report's.
"""

import math
from pathlib import Path
from string import Template

from vae.config import Config
from vae.lab.formatting import pm, relative_link
from vae.lab.literature import GAUSSIAN_VAE_FASHION_MNIST_NLL, ORIGINAL_REPORT_LOSS
from vae.lab.literature_report import bounds_section, literature_section
from vae.lab.sweep import ABLATIONS

TEMPLATE = Path(__file__).with_name("templates") / "report.md"
DEFAULTS = Config()
UNIFORM_NATS = 784 * math.log(2)  # nats per image of a model that predicts 0.5 for every pixel


# --- Readings: the sentences that depend on the numbers ---------------------------------------------------------


def curves_reading(history: list[dict]) -> str:
    """What the loss curves show: the fall of the test loss, which term carries it, and any overfitting."""
    first, last = history[0], history[-1]
    kl_first, kl_last = first["test_kl"], last["test_kl"]
    if abs(kl_last - kl_first) < 0.1 * kl_first:
        kl = f"changes little ({kl_first:.1f} after epoch 1, {kl_last:.1f} at the end), so the fall in the loss is almost all better reconstruction"  # noqa: E501
    else:
        kl = f"goes from {kl_first:.1f} to {kl_last:.1f} as the encoder changes how much information z carries"
    gap = last["test_loss"] - last["train_loss"]
    fit = (
        "the test loss is no worse than the training loss, so there is no sign of overfitting"
        if gap <= 0
        else f"the test loss is {gap:.1f} nats per image above the training loss"
    )
    early = (
        " The training curve averages over an epoch while the weights change, so at epoch 1 it lies above the test"
        " curve, which is measured after the epoch."
        if first["train_loss"] > first["test_loss"]
        else ""
    )
    return (
        f"The test −ELBO falls from {first['test_loss']:.1f} nats per image after epoch 1 to {last['test_loss']:.1f} "
        f"after epoch {last['epoch']}. The BCE carries most of it ({last['test_bce']:.1f}); the KL {kl}. "
        f"After the last epoch {fit}.{early}"
    )


def knn_reading(m: dict) -> str:
    """Whether μ keeps more, less or about as much class information as the pixels, for a kNN classifier."""
    ours, pixels = 100 * m["summary"]["knn_accuracy"]["mean"], 100 * m["knn_accuracy_pixels"]
    amount = "more class information than" if ours > pixels else "less class information than"
    if abs(ours - pixels) < 1:  # percentage points
        amount = "about as much class information as"
    k, d = m["evaluation"]["knn_k"], m["config"]["latent_dim"]
    return (
        f"The {k}-NN accuracy on μ is {ours:.1f} % against {pixels:.1f} % on raw pixels: a {d}-number code keeps "
        f"{amount} the 784 pixels, for a nearest-neighbour classifier."
    )


def units_reading(m: dict) -> str:
    """How many latent units are used, and how much KL the faintest carry."""
    kl = m["runs"][str(m["figures_seed"])]["kl_per_dim"]
    units, d = m["summary"]["active_units"], m["config"]["latent_dim"]
    text = (
        f"{pm(units, 1)} of {d} units are active; for the figure's seed the KL per dimension ranges from "
        f"{min(kl):.2f} to {max(kl):.2f} nats; "
    )
    if units["mean"] < d:
        text += "the inactive units carry almost none: the model uses fewer dimensions than it is given."
    else:
        text += "all pass the activity test."
    faint = sum(v < 0.1 for v in kl)
    if faint:
        text += f" Still, {faint} of them carry less than 0.1 nats each: those dimensions are nearly unused."
    return text


def reuse_note(m: dict) -> str:
    """What this run took from earlier runs (finished checkpoints, stored evaluations), so its time excludes it."""
    runs = m["runs"].values()
    reused, epochs = sum(r["epochs_reused"] for r in runs), sum(r["epochs"] for r in runs)
    evaluations = sum(r["evaluation_reused"] for r in runs)
    notes = []
    if reused:
        notes.append(f"{reused} of the {epochs} epochs were trained by an earlier run (its checkpoints were reused)")
    if evaluations:
        notes.append(f"{evaluations} of {len(m['runs'])} evaluations were read from an earlier run's stored results")
    if not notes:
        return "."
    return f"; {' and '.join(notes)}, so that time excludes them. The training times below are the checkpoints' own."


def smoke_note(m: dict) -> str:
    if not m["smoke"]:
        return ""
    return (
        "\n> **Smoke run** (`--smoke`): a few thousand images and one epoch, to test the pipeline. "
        "Its numbers say nothing about the model.\n"
    )


def spread_note(seeds: list) -> str:
    return "The seed-to-seed spread (± sd) is given beside every number;" if len(seeds) > 1 else "One seed:"


def fields(m: dict, fig: str, report_path) -> dict:
    """Every value the template names, as text."""
    s, c, e, seeds = m["summary"], m["config"], m["evaluation"], m["seeds"]
    over = f"mean ± sd over {len(seeds)} seeds ({', '.join(map(str, seeds))})" if len(seeds) > 1 else f"seed {seeds[0]}"
    return {
        "docs": relative_link("docs", report_path),
        "date": m["date"],
        "commit": m["versions"]["git_commit"],
        "fig": fig,
        "smoke_note": smoke_note(m),
        "dataset": m["data"]["dataset"],
        "train_images": m["data"]["train_images"],
        "test_images": m["data"]["test_images"],
        "device": m["device"],
        "torch": m["versions"]["torch"],
        "lr": f"{c['lr']:g}",
        "seed_list": ", ".join(map(str, seeds)),
        "over": over,
        "perplexity": f"{e['tsne_perplexity']:g}",
        "total_seconds": f"{m['timings']['total_seconds']:.0f}",
        "reuse_note": reuse_note(m),
        "uniform": f"{UNIFORM_NATS:.1f}",
        "test_loss_1": f"{s['test_loss']['mean']:.1f}",
        "batch_sum": f"{c['batch_size'] * s['test_loss']['mean']:.0f}",
        "knn_pixels": f"{m['knn_accuracy_pixels']:.4f}",
        "test_bce_1": f"{s['test_bce']['mean']:.1f}",
        "trustworthiness_3": pm(s["trustworthiness"], 3),
        "curves_reading": curves_reading(m["runs"][str(m["figures_seed"])]["history"]),
        "knn_reading": knn_reading(m),
        "units_reading": units_reading(m),
        "test_loss_short": pm(s["test_loss"], 1),
        "bits_short": pm(s["test_bits_per_dim"], 3),
        "iwae_short": pm(s["iwae_nll"], 1),
        "gap_short": f"{s['iwae_gap']['mean']:.1f}",
        "knn_percent": f"{100 * s['knn_accuracy']['mean']:.1f}",
        "spread_note": spread_note(seeds),
        "figures_seed": m["figures_seed"],
        **{k: c[k] for k in ("latent_dim", "hidden_dim", "batch_size", "num_epochs")},
        **{k: e[k] for k in ("iw_samples", "knn_k", "tsne_seed", "tsne_points", "trust_neighbors")},
        **{k: pm(s[k], 2) for k in ("test_loss", "test_bce", "test_kl", "iwae_nll", "iwae_gap", "train_loss")},
        **{k: pm(s[k], 4) for k in ("test_bits_per_dim", "iwae_bits_per_dim", "knn_accuracy", "trustworthiness")},
        "active_units": pm(s["active_units"], 1),
        "train_seconds": pm(s["train_seconds"], 1),
    }


def render(m: dict, fig_dir, report_path, sweep=None, sweep_dir=None, bounds=None, bounds_dir=None, literature=None):
    """REPORT.md from the metrics; with the stored sweep, K-convergence and literature results, their sections."""
    text = Template(TEMPLATE.read_text(encoding="utf-8")).substitute(
        fields(m, relative_link(fig_dir, report_path), report_path)
    )
    if sweep:
        text += "\n" + ablations_section(sweep, relative_link(sweep_dir, report_path))
    if bounds:
        text += "\n" + bounds_section(bounds, relative_link(bounds_dir, report_path))
    if literature:
        text += "\n" + literature_section(
            literature, relative_link(bounds_dir, report_path), relative_link("docs", report_path)
        )
    return text


# --- The ablations: the sweep's table and what it says -----------------------------------------------------------


def markdown_table(rows: list[dict]) -> str:
    """The ablations table in Markdown: mean ± sd over seeds; losses in nats per image on the test set."""
    header = (
        "| ablation | variant | runs (diverged) | test −ELBO | IWAE NLL | KL | kNN accuracy | active units |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- |\n"
    )

    def cell(r, key, digits):
        return pm({"mean": r[f"{key}_mean"], "sd": r[f"{key}_sd"]}, digits)

    body = "".join(
        f"| {r['ablation']} | {r['variant']} | {int(r['runs'])} ({int(r['diverged'])}) | {cell(r, 'test_loss', 2)} "
        f"| {cell(r, 'iwae_nll', 2)} | {cell(r, 'test_kl', 2)} | {cell(r, 'knn_accuracy', 3)} "
        f"| {cell(r, 'active_units', 1)} |\n"
        for r in rows
    )
    return header + body


def _row(rows: list[dict], ablation: str, overrides: dict) -> dict | None:
    """The table's row of the variant of `ablation` trained with these `overrides` of the default config."""
    label = next(label for label, o in ABLATIONS[ablation] if o == overrides)
    return next((r for r in rows if r["ablation"] == ablation and r["variant"] == label), None)


def variance_head_reading(rows: list[dict]) -> list[str]:
    """What the tutorial's σ head and its missing ½ cost, together and the head alone."""
    out, ours = [], _row(rows, "variance_head", {})
    tut = _row(rows, "variance_head", {"variance_head": "sigma", "beta": 2.0})
    raw = _row(rows, "variance_head", {"variance_head": "sigma"})
    if ours and tut and not math.isnan(tut["iwae_nll_mean"]):
        out.append(
            f"The tutorial's two choices together (a raw σ head and the KL without its ½, i.e. β=2) cost "
            f"{tut['iwae_nll_mean'] - ours['iwae_nll_mean']:.1f} nats per image of IWAE NLL "
            f"({tut['iwae_nll_mean']:.1f} vs {ours['iwae_nll_mean']:.1f}) and "
            f"{tut['test_loss_mean'] - ours['test_loss_mean']:.1f} nats of test −ELBO; "
            f"{int(tut['diverged'])} of {int(tut['runs'])} of its runs diverged."
        )
    if ours and raw:
        out.append(
            f"The raw σ head alone: {int(raw['diverged'])} of {int(raw['runs'])} runs diverged (NaN) in "
            f"{raw['runs']:.0f} × 10 epochs; its IWAE NLL is {raw['iwae_nll_mean']:.1f} nats per image against "
            f"{ours['iwae_nll_mean']:.1f}."
        )
    return out


def kl_weight_reading(rows: list[dict]) -> list[str]:
    """What β = 2 (the missing ½) costs, and the active units at each β."""
    ours, beta2 = _row(rows, "variance_head", {}), _row(rows, "kl_weight", {"beta": 2.0})
    if not (ours and beta2):
        return []
    betas = [(o.get("beta", DEFAULTS.beta), _row(rows, "kl_weight", o)) for _, o in ABLATIONS["kl_weight"]]
    units = ", ".join(f"β={beta:g}: {r['active_units_mean']:.1f}" for beta, r in betas if r)
    return [
        f"The missing ½ alone (β=2) costs {beta2['iwae_nll_mean'] - ours['iwae_nll_mean']:.1f} nats of IWAE NLL "
        f"and shrinks the KL from {ours['test_kl_mean']:.1f} to {beta2['test_kl_mean']:.1f} nats. "
        f"Active units of 20 by β: {units}."
    ]


def binarised_reading(rows: list[dict]) -> list[str]:
    """The binarised run's NLL beside the published Gaussian-prior VAE, with what differs."""
    binar = _row(rows, "data_protocol", {"binarize": True})
    if not binar:
        return []
    nll = {"mean": binar["iwae_nll_mean"], "sd": binar["iwae_nll_sd"]}
    return [
        f"On dynamically binarised training with a fixed binarised test set, the original report's model reaches an "
        f"IWAE NLL of {pm(nll, 2)} nats per image, {binar['iwae_nll_mean'] - GAUSSIAN_VAE_FASHION_MNIST_NLL:.1f} nats "
        f"above the {GAUSSIAN_VAE_FASHION_MNIST_NLL} reported for a Gaussian-prior VAE (Norouzi et al., 2020). That "
        f"is not like for like: theirs is a larger MLP trained to convergence and scored with K = 5000, ours "
        f"784-200-20 after 10 epochs with K = {binar['iw_samples']:.0f} (a larger K can only lower it, in "
        "expectation). Only the binarised numbers are comparable to published NLLs; the grey-level BCE of the "
        "other rows is not the log-likelihood of any discrete data."
    ]


def likelihood_reading(rows: list[dict]) -> list[str]:
    """What the continuous Bernoulli gives, and why its numbers are not on the BCE's scale."""
    cb = _row(rows, "data_protocol", {"likelihood": "continuous-bernoulli"})
    ours = _row(rows, "data_protocol", {})
    if not (cb and ours):
        return []
    return [
        f"With the continuous-Bernoulli likelihood the test −ELBO is {cb['test_loss_mean']:.1f} and the IWAE NLL "
        f"{cb['iwae_nll_mean']:.1f} nats per image: negative, because a density on [0, 1]^784 can exceed 1. It "
        f"puts {cb['test_kl_mean']:.0f} nats of KL into z (the BCE model {ours['test_kl_mean']:.0f}), and its μ gives "
        f"a 5-NN accuracy of {cb['knn_accuracy_mean']:.3f} ({ours['knn_accuracy_mean']:.3f})."
    ]


def size_and_length_reading(rows: list[dict]) -> list[str]:
    """The IWAE NLL by latent size, and what longer training or a larger learning rate gains."""
    sizes = [o.get("latent_dim", DEFAULTS.latent_dim) for _, o in ABLATIONS["latent_dim"]]
    out, dims = [], [_row(rows, "latent_dim", o) for _, o in ABLATIONS["latent_dim"]]
    if all(dims):
        listing = ", ".join(f"{size}: {r['iwae_nll_mean']:.1f}" for size, r in zip(sizes, dims, strict=True))
        out.append(
            f"IWAE NLL by latent_dim ({listing}); active units at latent_dim=50: {dims[-1]['active_units_mean']:.1f}."
        )
    base, fast = _row(rows, "training", {}), _row(rows, "training", {"lr": 1e-3})
    long = _row(rows, "training", {"num_epochs": 50})
    if base and fast and long:
        out.append(
            f"Training: 50 epochs instead of 10 improve the IWAE NLL by "
            f"{base['iwae_nll_mean'] - long['iwae_nll_mean']:.1f} nats per image (to {long['iwae_nll_mean']:.1f}); "
            f"lr 1e-3 instead of 3e-4 for 10 epochs by {base['iwae_nll_mean'] - fast['iwae_nll_mean']:.1f} nats."
        )
    return out


def headlines(rows: list[dict]) -> list[str]:
    """The sweep's main findings as sentences, every number read from the table (mean over seeds)."""
    readings = (
        variance_head_reading,
        kl_weight_reading,
        binarised_reading,
        likelihood_reading,
        size_and_length_reading,
    )
    return [line for reading in readings for line in reading(rows)]


def loss_numbers_reading(readings: list[dict]) -> str:
    """Which reading of '≈17,900 → ≈10,700' fits the measured losses, and by how much; or that none does."""
    best = min(readings, key=lambda r: max(abs(r["first_error"]), abs(r["last_error"])))
    verdict = (
        f"The closest reading is the {best['reading']} of {best['model']}: {best['first_epoch']:,.0f} → "
        f"{best['last_epoch']:,.0f}, off by {100 * best['first_error']:+.0f} % and {100 * best['last_error']:+.0f} %."
    )
    if max(abs(best["first_error"]), abs(best["last_error"])) < 0.10:
        return verdict + " It fits within 10 % at both ends."
    ratio = ORIGINAL_REPORT_LOSS[0] / ORIGINAL_REPORT_LOSS[1]
    ours = max(r["first_epoch"] / r["last_epoch"] for r in readings)
    return verdict + (
        f" No reading fits both ends within 10 %: the original numbers fall by a factor {ratio:.2f} from first to "
        f"last, while every per-epoch training loss here falls by a factor of at most about {ours:.2f}, whatever the "
        "scale. Without units, the original numbers cannot be reproduced; we report nats per image."
    )


LIKELIHOOD_PARAGRAPH = (
    "The BCE of the grey-level rows treats each pixel value x in [0, 1] as the probability of a coin: "
    "−[x log λ + (1 − x) log(1 − λ)] is a cross-entropy, and exp(−BCE) is not a probability or a density of any "
    "image, as it does not sum or integrate to 1 over the possible images; its nats cannot be compared with "
    "log-likelihoods. The binarised rows are log-likelihoods of binary images, which the grey-level images are "
    "not. The continuous Bernoulli (Loaiza-Ganem & Cunningham, 2019) multiplies the same expression by C(λ) = "
    "2 atanh(1 − 2λ) / (1 − 2λ), which makes it a density on [0, 1]; only its −ELBO and IWAE NLL are negative "
    "log-likelihoods of the grey-level images themselves, in nats per image of a continuous density, which is why "
    "they are negative and on another scale. Its figure row shows each pixel's mean E[x], which is not λ: "
    "λ = sigmoid(logits) lies further from 1/2 than the mean, as the last row shows."
)

FIGURE_CAPTIONS = {
    "ablation_variance_head": "Variance head",
    "ablation_kl_weight": "KL weight β",
    "tsne_kl_weight": "t-SNE of test-set μ for each β",
    "ablation_latent_dim": "Latent size",
    "manifold_latent2": "latent_dim = 2: the decoded manifold",
    "ablation_data_protocol": "Data protocol and likelihood",
    "reconstructions_likelihood": "Reconstructions: the Bernoulli's mean, the continuous Bernoulli's mean and its λ",
    "ablation_training": "Training length and learning rate",
    "training_length": "Test −ELBO per epoch",
    "loss_readings": "The original report's loss numbers",
}


def ablations_section(sweep: dict, link: str) -> str:
    """The REPORT.md section 'Ablations', from the sweep's stored table, loss readings and figures (at `link`)."""
    rows, readings = sweep["rows"], sweep["readings"]
    k = max(r["iw_samples"] for r in rows)
    parts = [
        "## Ablations\n",
        "Each row is the mean ± sd over seeds (runs per row, and in brackets those that diverged) of the test-set "
        f"metrics: the −ELBO and its KL part, the IWAE NLL (K = {k:.0f} importance samples), all in nats per image; "
        "the accuracy of a 5-nearest-neighbour classifier on the latent means; and the active units "
        "(Cov_x(E[z|x]) > 0.01). Every model is scored with the true ELBO (β = 1), whatever β trained it. "
        "Produced by `python -m vae sweep`.\n",
        markdown_table(rows),
        *[f"- {s}" for s in headlines(rows)],
        "",
        *[
            f"![{caption}]({link}/{name}.png)\n"
            for name, caption in FIGURE_CAPTIONS.items()
            if name in sweep["figures"]
        ],
    ]
    if _row(rows, "data_protocol", {"likelihood": "continuous-bernoulli"}):
        parts += ["### Which of these numbers is a log-likelihood?\n", LIKELIHOOD_PARAGRAPH + "\n"]
    if readings:
        parts += [
            '### The original report\'s loss numbers, "≈17,900 → ≈10,700"\n',
            "The original report printed these without units. A per-image loss here is about 250–350 nats; a sum "
            "over a batch of B images is B times larger. We tried each reading on the first- and last-epoch "
            "training losses measured here (the loss as trained, β·KL included): per image, summed over a batch "
            "of 128 (the original report's batch size) and of 32 (the tutorial's), for the original report's "
            "model, the tutorial's loss (raw σ, β=2) and binarised data. " + loss_numbers_reading(readings) + "\n",
        ]
    return "\n".join(parts)
