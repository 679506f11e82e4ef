"""vae.lab.report: REPORT.md rendered from a metrics dict, and each sentence that depends on the numbers."""

import math
import re

import pytest

from vae.lab import formatting, literature_report, report
from vae.lab.literature import GAUSSIAN_VAE_FASHION_MNIST_NLL, ORIGINAL_REPORT_LOSS, dataset_entry

SECTIONS = ("## Introduction", "## Architecture", "## Experiment", "## Results", "## Figures", "## Conclusion")
FIGURES = ("loss_curves", "reconstructions", "prior_samples", "interpolation", "tsne", "kl_per_dim")
# The number of decimals REPORT.md's results table gives each summary entry.
DIGITS = {"test_loss": 2, "test_bce": 2, "test_kl": 2, "iwae_nll": 2, "iwae_gap": 2, "train_loss": 2,
          "test_bits_per_dim": 4, "iwae_bits_per_dim": 4, "knn_accuracy": 4, "trustworthiness": 4,
          "active_units": 1, "train_seconds": 1}  # fmt: skip


def history(epochs=3, kl=(16.0, 16.5), train_above_test=True, gap=-1.0) -> list[dict]:
    """Per-epoch records: the test loss falls by 10 a epoch, the KL goes from kl[0] to kl[1]."""
    records = []
    for e in range(1, epochs + 1):
        test_kl = kl[0] + (kl[1] - kl[0]) * (e - 1) / max(1, epochs - 1)
        test_loss = 280.0 - 10 * e
        train_loss = test_loss + (20.0 if e == 1 and train_above_test else gap)
        records.append({"epoch": e, "train_loss": train_loss, "test_loss": test_loss, "test_kl": test_kl,
                        "test_bce": test_loss - test_kl, "seconds": 2.0})  # fmt: skip
    return records


def metrics(seeds=(0, 1), **changes) -> dict:
    """A hand-made metrics dict with the nested structure of metrics.json (vae.lab.pipeline.make_report)."""
    runs = {
        str(s): {"epochs": 3, "epochs_reused": 0, "evaluation_reused": False, "history": history(),
                 "kl_per_dim": [0.05, 1.5, 2.0, 3.25], "latent_variance": [0.001, 0.5, 0.7, 1.0]}
        for s in seeds
    }  # fmt: skip
    means = {"test_loss": 251.12345, "test_bce": 234.98765, "test_kl": 16.13579, "test_bits_per_dim": 0.46217,
             "iwae_nll": 247.99221, "iwae_bits_per_dim": 0.45634, "iwae_gap": 3.13124, "train_loss": 250.54321,
             "knn_accuracy": 0.84971, "active_units": 3.5, "trustworthiness": 0.97531,
             "train_seconds": 61.25}  # fmt: skip
    sd = None if len(seeds) == 1 else 0.1234
    m = {
        "config": {"latent_dim": 4, "hidden_dim": 200, "batch_size": 128, "num_epochs": 3, "lr": 3e-4},
        "evaluation": {"iw_samples": 1000, "knn_k": 5, "tsne_points": 10000, "tsne_perplexity": 30.0,
                       "tsne_seed": 0, "trust_neighbors": 5},
        "smoke": False,
        "data": {"dataset": "fashion-mnist", "train_images": 60000, "test_images": 10000},
        "device": "cpu",
        "seeds": list(seeds),
        "figures_seed": seeds[0],
        "figures": [f"{name}.png" for name in FIGURES],
        "summary": {key: {"mean": v, "sd": sd, "unit": "u"} for key, v in means.items()},
        "knn_accuracy_pixels": 0.8554,
        "runs": runs,
        "versions": {"torch": "2.9.0", "git_commit": "abc1234"},
        "date": "2025-01-02T03:04:05+00:00",
        "timings": {"total_seconds": 123.4},
    }  # fmt: skip
    for key, value in changes.items():  # "summary.knn_accuracy.mean": 0.9 sets m["summary"]["knn_accuracy"]["mean"]
        *path, last = key.split(".")
        target = m
        for part in path:
            target = target[part]
        target[last] = value
    return m


def rows() -> list[dict]:
    """A hand-made ablations table (vae.lab.sweep.table's rows), every variant the readings look for."""
    values = {
        ("variance_head", "log σ² head (ours)"): (251.1, 248.0, 16.1, 20.0),
        ("variance_head", "raw σ head (tutorial)"): (252.2, 248.9, 15.5, 20.0),
        ("variance_head", "tutorial: raw σ and β=2"): (255.7, 250.7, 10.0, 20.0),
        ("kl_weight", "β=1 (the correct ½)"): (251.1, 248.0, 16.1, 20.0),
        ("kl_weight", "β=2 (the missing ½)"): (253.2, 248.7, 10.1, 14.0),
        ("latent_dim", "latent_dim=2"): (270.4, 269.5, 6.3, 2.0),
        ("latent_dim", "latent_dim=5"): (251.7, 250.4, 10.9, 5.0),
        ("latent_dim", "latent_dim=10"): (249.6, 247.3, 15.0, 10.0),
        ("latent_dim", "latent_dim=20 (original)"): (251.1, 248.0, 16.1, 20.0),
        ("latent_dim", "latent_dim=50"): (252.8, 249.0, 15.3, 21.3),
        ("data_protocol", "dynamically binarised"): (250.0, 246.2, 17.4, 20.0),
        ("training", "10 epochs, lr 3e-4 (original)"): (251.1, 248.0, 16.1, 20.0),
        ("training", "10 epochs, lr 1e-3"): (245.9, 243.3, 15.7, 20.0),
        ("training", "50 epochs, lr 3e-4"): (243.6, 241.2, 16.4, 20.0),
    }
    out = []
    for (ablation, variant), (loss, nll, kl, units) in values.items():
        diverged = 1 if variant.startswith("raw σ") else 0
        row = {"ablation": ablation, "variant": variant, "runs": 3.0, "diverged": float(diverged), "iw_samples": 100.0}
        for key, v in {"test_loss": loss, "iwae_nll": nll, "test_kl": kl, "knn_accuracy": 0.85,
                       "active_units": units}.items():  # fmt: skip
            row[f"{key}_mean"], row[f"{key}_sd"] = v, 0.25
        out.append(row)
    return out


def readings(first_error=0.3, last_error=-0.4) -> list[dict]:
    """Two readings of the original report's loss numbers: per image (far off), and a batch sum off by the errors."""
    model, (first, last) = "the original report's model (grey, β=1)", ORIGINAL_REPORT_LOSS
    return [
        {"model": model, "reading": "per image", "first_epoch": 290.0, "last_epoch": 250.0,
         "first_error": 290 / first - 1, "last_error": 250 / last - 1},
        {"model": model, "reading": "sum over a batch of 128", "first_epoch": (1 + first_error) * first,
         "last_epoch": (1 + last_error) * last, "first_error": first_error, "last_error": last_error},
    ]  # fmt: skip


def render(m, tmp_path, sweep=None, report_path="REPORT.md"):
    """REPORT.md's text for a report at tmp_path / report_path, figures in tmp_path / figures."""
    return report.render(m, tmp_path / "figures", tmp_path / report_path, sweep, tmp_path / "figures" / "experiments")


# --- The whole report -----------------------------------------------------------------------------------------------


def test_render_has_every_section_figure_and_summary_number(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the docs/ folder is the working directory's, as in a checkout
    m = metrics()
    text = render(m, tmp_path)
    for section in SECTIONS:
        assert section in text
    for name in FIGURES:
        assert f"](figures/{name}.png)" in text
    assert "](figures/metrics.json)" in text and "](docs/original-report.md)" in text
    for key, digits in DIGITS.items():
        s = m["summary"][key]
        assert f"{s['mean']:.{digits}f} ± {s['sd']:.{digits}f}" in text, key
    assert "K = 1000" in text and "5-NN accuracy on raw pixels (baseline) | 0.8554 |" in text
    assert "mean ± sd over 2 seeds (0, 1)" in text and "seeds 0, 1;" in text
    assert "abc1234" in text and "2025-01-02T03:04:05+00:00" in text and "60000 training and 10000 test" in text
    assert f"about {128 * 251.12345:.0f}" in text  # the per-image loss as a batch sum would print
    assert "took 123 s." in text
    assert not re.search(r"\$\w", text)  # every placeholder filled
    assert "Smoke run" not in text and "## Ablations" not in text


def test_render_links_relative_to_the_reports_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = render(metrics(), tmp_path, report_path="docs/REPORT.md")
    assert "](../figures/loss_curves.png)" in text and "](../figures/metrics.json)" in text
    assert re.search(r"\]\((\./)?original-report\.md\)", text)


def test_one_seed_gives_no_spread_and_a_smoke_run_says_so(tmp_path):
    m = metrics(seeds=(3,), smoke=True)
    text = render(m, tmp_path)
    assert f"| {m['summary']['test_loss']['mean']:.2f} | nats per image |" in text  # no ± with one seed
    assert "± " not in text.split("## Results")[1].split("## Figures")[0]
    assert "## Results (seed 3)" in text and "One seed: the figures come from seed\n3." in text
    assert "**Smoke run**" in text


def test_no_seed_report_phrase_anywhere(tmp_path):
    sweep = {"rows": rows(), "readings": readings(), "figures": list(report.FIGURE_CAPTIONS)}
    text = render(metrics(), tmp_path, sweep)
    assert "## Ablations" in text and "The original report's loss numbers" in text
    assert not re.search(r"seed report|seed's|\(seed\)", text, re.IGNORECASE)
    assert text.count("the original report") >= 3


# --- The readings: each branch, chosen by the numbers ------------------------------------------------------------


def test_curves_reading_says_whether_the_kl_changes(tmp_path):
    little = report.curves_reading(history(kl=(16.0, 17.0)))  # +6 %
    assert "the KL changes little (16.0 after epoch 1, 17.0 at the end)" in little
    much = report.curves_reading(history(kl=(16.0, 18.0)))  # +12.5 %
    assert "the KL goes from 16.0 to 18.0" in much and "changes little" not in much
    falls = report.curves_reading(history(kl=(16.0, 12.0)))
    assert "goes from 16.0 to 12.0" in falls
    assert "falls from 270.0 nats per image after epoch 1 to 250.0 after epoch 3" in little
    assert "The BCE carries most of it (232.0)" in much  # the last test BCE: 250 - 18
    metrics_text = render(metrics(**{"runs.0.history": history(kl=(10.0, 20.0))}), tmp_path)
    assert "the KL goes from 10.0 to 20.0" in metrics_text  # the report reads the first seed's history


def test_curves_reading_says_whether_the_model_overfits_and_why_epoch_1_is_above():
    fits = report.curves_reading(history(gap=1.5))
    assert "no worse than the training loss" in fits  # test 250.0, train 251.5
    over = report.curves_reading(history(gap=-2.5))
    assert "the test loss is 2.5 nats per image above the training loss" in over and "no sign" not in over
    assert "at epoch 1 it lies above the test curve" in fits
    assert "lies above" not in report.curves_reading(history(train_above_test=False))


@pytest.mark.parametrize(
    "ours, expected",
    [(0.87, "more class information than"), (0.80, "less class information than"),
     (0.8604, "about as much class information as"), (0.8505, "about as much class information as")],
)  # fmt: skip
def test_knn_reading_more_less_or_about_as_much(ours, expected):
    text = report.knn_reading(metrics(**{"summary.knn_accuracy.mean": ours}))
    assert f"a 4-number code keeps {expected} the 784 pixels" in text
    assert f"{100 * ours:.1f} % against 85.5 % on raw pixels" in text and text.startswith("The 5-NN")


def test_units_reading_all_active_or_fewer_and_the_faint_ones():
    fewer = report.units_reading(metrics())
    assert fewer.startswith("3.5 ± 0.1 of 4 units are active") and "from 0.05 to 3.25 nats" in fewer
    assert "uses fewer dimensions than it is given" in fewer and "1 of them carry less than 0.1 nats" in fewer
    m = metrics(**{"summary.active_units.mean": 4.0, "summary.active_units.sd": 0.0, "runs.0.kl_per_dim": [1.0] * 4})
    full = report.units_reading(m)
    assert "all pass the activity test" in full and "fewer dimensions" not in full and "Still" not in full
    m = metrics(**{"figures_seed": 1, "runs.1.kl_per_dim": [0.01, 0.02, 2.0, 3.0]})
    assert "2 of them carry less than 0.1" in report.units_reading(m)  # the figures' seed, not the first


def test_reuse_note_says_what_an_earlier_run_did():
    assert report.reuse_note(metrics()) == "."
    m = metrics(**{"runs.1.epochs_reused": 3})
    assert "3 of the 6 epochs were trained by an earlier run" in report.reuse_note(m)
    m = metrics(**{"runs.0.evaluation_reused": True, "runs.1.evaluation_reused": True})
    note = report.reuse_note(m)
    assert "2 of 2 evaluations were read from an earlier run's stored results" in note and "epochs" not in note


def test_pm_and_the_notes():
    assert formatting.pm({"mean": 1.23456, "sd": 0.1}, 2) == "1.23 ± 0.10"
    assert formatting.pm({"mean": 1.23456, "sd": None}, 3) == "1.235"
    assert formatting.pm({"mean": 1.0, "sd": math.nan}, 1) == "1.0"
    assert formatting.pm({"mean": math.nan, "sd": math.nan}) == "—"
    assert report.smoke_note(metrics()) == "" and "Smoke run" in report.smoke_note(metrics(smoke=True))
    assert report.spread_note([0]) == "One seed:" and "± sd" in report.spread_note([0, 1])


# --- The ablations section ----------------------------------------------------------------------------------------


def test_ablations_section_lists_only_the_figures_present():
    sweep = {"rows": rows(), "readings": [], "figures": ["ablation_kl_weight", "loss_readings", "unknown_figure"]}
    text = report.ablations_section(sweep, "figures/experiments")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links == ["figures/experiments/ablation_kl_weight.png", "figures/experiments/loss_readings.png"]
    assert "≈17,900" not in text  # no readings stored
    assert "K = 100 importance samples" in text and text.startswith("## Ablations")
    assert report.markdown_table(rows()) in text


def test_ablations_section_with_readings_reads_the_table():
    table = rows()
    text = report.ablations_section({"rows": table, "readings": readings(), "figures": []}, "x")
    assert "![" not in text and '"≈17,900 → ≈10,700"' in text
    assert "cost 2.7 nats per image of IWAE NLL (250.7 vs 248.0)" in text  # tutorial - ours
    assert "The raw σ head alone: 1 of 3 runs diverged" in text
    assert "The missing ½ alone (β=2) costs 0.7 nats of IWAE NLL and shrinks the KL from 16.1 to 10.1" in text
    assert f"{246.2 - GAUSSIAN_VAE_FASHION_MNIST_NLL:.1f} nats above the {GAUSSIAN_VAE_FASHION_MNIST_NLL}" in text
    assert "IWAE NLL by latent_dim (2: 269.5, 5: 250.4, 10: 247.3, 20: 248.0, 50: 249.0)" in text
    assert "improve the IWAE NLL by 6.8 nats per image (to 241.2); lr 1e-3 instead of 3e-4 for 10 epochs by 4.7" in text


def test_headlines_leave_out_what_the_table_lacks():
    table = [r for r in rows() if r["ablation"] == "kl_weight"]
    assert report.headlines(table) == []  # β=2 needs the original setting's row of variance_head
    table = [r for r in rows() if r["ablation"] in ("variance_head", "kl_weight")]
    lines = report.headlines(table)
    assert len(lines) == 3 and lines[2].startswith("The missing ½ alone")
    assert report.headlines(rows())[-1].startswith("Training: 50 epochs")


def test_markdown_table_shows_failures_and_a_dash_for_no_value():
    row = rows()[0] | {"diverged": 3.0, "test_loss_mean": math.nan, "test_loss_sd": math.nan}
    table = report.markdown_table([row, rows()[1]])
    assert table.count("\n") == 2 + 2
    assert "| variance_head | log σ² head (ours) | 3 (3) | — | 248.00 ± 0.25 |" in table
    assert "| 0.850 ± 0.250 | 20.0 ± 0.2 |" in table


def test_loss_numbers_reading_fits_or_says_none_does():
    none = report.loss_numbers_reading(readings(first_error=0.3, last_error=-0.4))
    assert "The closest reading is the sum over a batch of 128" in none and "+30 % and -40 %" in none
    assert "No reading fits both ends within 10 %" in none
    ratio = ORIGINAL_REPORT_LOSS[0] / ORIGINAL_REPORT_LOSS[1]
    assert f"a factor {ratio:.2f}" in none
    fits = report.loss_numbers_reading(readings(first_error=0.05, last_error=-0.08))
    assert fits.endswith("It fits within 10 % at both ends.") and "+5 % and -8 %" in fits


def test_the_bounds_section_tabulates_each_model_and_how_far_its_bound_falls():
    grey, binary = "fashion-mnist, grey levels", "fashion-mnist, binarised"
    records = [
        {"model": "small", "dataset": grey, "k": 1, "bound": 251.25, "se": 0.5},
        {"model": "small", "dataset": grey, "k": 100, "bound": 248.0, "se": 0.49},
        {"model": "large", "dataset": binary, "k": 1, "bound": 232.0, "se": 0.4},
        {"model": "large", "dataset": binary, "k": 5000, "bound": 229.5, "se": 0.41},
    ]
    text = literature_report.bounds_section(records, "figures/literature")
    assert (
        f"| small | {grey} | 100 | 248.00 ± 0.49 |" in text and f"| large | {binary} | 5000 | 229.50 ± 0.41 |" in text
    )
    assert "small: 3.25 nats per image from K = 1 to K = 100" in text
    assert "large: 2.50 nats per image from K = 1 to K = 5000" in text
    assert "![IWAE bound against K](figures/literature/k_convergence.png)" in text


# --- The literature section --------------------------------------------------------------------------------------


def lit_run(seed=0, nll=230.5, protocol=2, epochs=150, stopped=False, limit=2000) -> dict:
    """A run of results.json, as literature.run_entry writes it."""
    val = [300.0 - e / 10 for e in range(epochs)]  # falls 0.1 nats per epoch: 10 nats over the last 100
    return {"seed": seed, "validation_protocol": protocol, "iwae_nll": nll, "iwae_nll_se": 0.25, "iw_samples": 5000,
            "epochs": epochs, "best_epoch": epochs, "stopped_early": stopped, "train_seconds": 5400.0,
            "config": {"num_epochs": limit}, "curve": {"val_loss": val, "test_loss": val}}  # fmt: skip


def literature_results(*runs, **one) -> dict:
    """results.json with fashion-mnist's `runs`, or the one run lit_run(**one)."""
    cb = {"test_loss": -2062.76, "iwae_nll": -2079.92, "iw_samples": 100}
    entry = dataset_entry("fashion-mnist", list(runs) or [lit_run(**one)])
    return {"fashion-mnist": entry, "k_convergence": [], "continuous_bernoulli": cb}


def test_the_literature_section_compares_like_for_like_and_says_how_far_from_convergence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the docs/ folder is the working directory's, as in a checkout
    text = report.render(metrics(), tmp_path / "figures", tmp_path / "REPORT.md", literature=literature_results(),
                         bounds_dir=tmp_path / "figures" / "literature")  # fmt: skip
    section = text[text.index("## Like for like") :]
    row = "| fashion-mnist | seed 0, protocol 2 | 230.50 ± 0.25 | 228.70 ± 0.15 | +1.80 (12.0 σ) | 150 (cut short) |"
    assert row in section and "mean ± sd over" not in section  # one run: no mean row
    assert "fell 10.00 nats per image over the last 100 of 150 epochs (to 285.10)" in section  # 300 - 149 / 10
    assert "The fashion-mnist seed 0 run was cut short by this repository's time budget (1.5 hours of" in section
    assert "before the protocol's early stopping or its 2000 epochs" in section and "$" not in section  # all filled
    assert "the fashion-mnist run's +1.80 is about 12.0 σ. For fashion-mnist, 2 σ or more is what" in section
    assert "The table holds, for fashion-mnist, 1 run of protocol 2 (seed 0)." in section
    assert "IWAE NLL (K = 100) -2079.9 nats per image" in section
    assert "](figures/literature/training.png)" in section and "(docs/literature-protocol.md)" in section


def test_a_run_that_stopped_early_is_said_to_have_stopped(tmp_path):
    section = literature_report.literature_section(literature_results(epochs=50, stopped=True), "lit", "docs")
    assert "| 50 (stopped early) | 50 |" in section and "only 50 epochs, too few to judge" in section
    assert "The fashion-mnist seed 0 run ended by the protocol's early stopping, before its 2000 epochs." in section


def test_each_run_is_said_to_have_ended_as_it_did():
    results = literature_results(epochs=150, limit=150)
    results["mnist"] = dataset_entry("mnist", [lit_run(stopped=True)])
    section = literature_report.literature_section(results, "lit", "docs")
    assert "| seed 0, protocol 2 | 230.50 ± 0.25 | 228.70 ± 0.15 | +1.80 (12.0 σ) | 150 (epoch limit) |" in section
    assert "The fashion-mnist seed 0 run trained for all of the protocol's 150 epochs." in section
    assert "The mnist seed 0 run ended by the protocol's early stopping" in section and "cut short" not in section
    results["mnist"] = dataset_entry("mnist", [lit_run()])
    both = literature_report.literature_section({**results, "fashion-mnist": results["mnist"]}, "lit", "docs")
    assert "The fashion-mnist seed 0 and mnist seed 0 runs were cut short by this repository's time budget" in both


def test_the_table_holds_each_run_and_the_mean_and_sd_over_the_newest_protocol():
    runs = [lit_run(0, 228.6), lit_run(1, 229.0), lit_run(0, 228.83, protocol=1)]
    text = literature_report.literature_section(literature_results(*runs), "lit", "docs")
    # sd = sqrt((0.2^2 + 0.2^2) / (2 - 1)) = 0.28; protocol 1's run is listed, not averaged
    mean = "| fashion-mnist | **mean ± sd over 2 runs of protocol 2** | **228.80 ± 0.28** | 228.70 ± 0.15 | +0.10 |"
    assert mean in text
    for row in ("seed 0, protocol 2 | 228.60", "seed 1, protocol 2 | 229.00", "seed 0, protocol 1 | 228.83"):
        assert f"| fashion-mnist | {row} ± 0.25 | 228.70 ± 0.15 |" in text  # each run, ± its test-image se
    held = "for fashion-mnist, 2 runs of protocol 2 (seeds 0, 1) and 1 run of protocol 1 (seed 0)."
    assert f"The table holds, {held}" in text and "Ours: for fashion-mnist, 2 runs of protocol 2 (seeds 0, 1)." in text
    # 0.1 / (0.15 / √2) = 0.94: the mean of 2 runs against the spread of such a mean
    assert "the mean of the 2 fashion-mnist runs, +0.10, is about 0.9 σ/√2 (ours spread by 0.28" in text
    assert "Under 2 σ/√n is what run-to-run variation alone gives" in text
    assert "not yet scored: fashion-mnist seed 2; mnist seeds 0, 1, 2." in text
    assert text.count("the best validation −ELBO fell") == 2  # the runs of protocol 2


def test_the_distance_in_published_spreads_is_computed_from_the_results():
    entries = {"fashion-mnist": dataset_entry("fashion-mnist", [lit_run(nll=228.83)]),
               "mnist": dataset_entry("mnist", [lit_run(nll=84.61)])}  # fmt: skip
    assert literature_report.yardstick_reading(entries) == (
        "Against it, the fashion-mnist run's +0.13 is about 0.9 σ and the mnist run's +0.16 is about 1.3 σ. Under 2 σ "
        "is what run-to-run variation alone gives: it neither shows a protocol difference nor rules one out."
    )  # 0.13 / 0.15 and 0.16 / 0.12


def test_the_gap_is_also_measured_in_standard_errors_of_our_own_mean():
    two = {"fashion-mnist": dataset_entry("fashion-mnist", [lit_run(0, 228.6), lit_run(1, 229.0)])}
    # sd 0.283, se 0.283 / √2 = 0.20, gap 0.10 / 0.20 = 0.50; Student's t, 1 df, 97.5 %: 12.71 (any t table)
    assert literature_report.own_spread_reading(two) == (
        " Measured instead by our own spread, the gaps are 0.50 (fashion-mnist) standard errors of our mean (sd/√n: "
        "0.20); a t-test with n − 1 degrees of freedom puts the 1-in-20 line at 12.71 (2 runs): by it, our runs "
        "alone do not show a difference."
    )
    far = {"mnist": dataset_entry("mnist", [lit_run(s, nll) for s, nll in enumerate((85.0, 85.1, 85.2))])}
    text = literature_report.own_spread_reading(far)  # se 0.1 / √3 = 0.058, gap 0.65 / 0.058 = 11.26 > 4.30
    assert "the gaps are 11.26 (mnist)" in text and "4.30 (3 runs): by it, mnist shows a difference." in text
    one = {"mnist": dataset_entry("mnist", [lit_run(nll=84.61)])}
    assert literature_report.own_spread_reading(one) == ""  # one run has no spread


def test_the_planned_runs_not_yet_scored_are_named():
    entries = {"fashion-mnist": dataset_entry("fashion-mnist", [lit_run(0), lit_run(1, protocol=1)])}
    assert literature_report.planned_reading(entries) == (
        "\nPlanned: seeds 0, 1 and 2 of each dataset with protocol 2; not yet scored: fashion-mnist seeds 1, 2; "
        "mnist seeds 0, 1, 2."
    )  # a run of protocol 1 is not one of them
    done = {d: dataset_entry(d, [lit_run(s) for s in (0, 1, 2)]) for d in ("fashion-mnist", "mnist")}
    assert literature_report.planned_reading(done) == ""


def test_a_results_file_of_the_first_schema_is_read_as_its_protocol_1_run():
    first = {k: v for k, v in lit_run(nll=228.83).items() if k not in ("seed", "validation_protocol")}
    first["config"] = {**first["config"], "seed": 0}
    old = {**literature_results(), "fashion-mnist": {**first, "published_nll": 228.7}}
    new = literature_results(lit_run(nll=228.83, protocol=1))
    assert literature_report.literature_section(old, "lit", "docs") == literature_report.literature_section(
        new, "lit", "docs"
    )
    assert "| fashion-mnist | seed 0, protocol 1 | 228.83 ± 0.25 |" in literature_report.literature_section(
        old, "lit", "docs"
    )
