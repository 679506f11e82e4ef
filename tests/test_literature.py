"""The numbers quoted from elsewhere (vae/lab/literature.py) are the numbers that our documents and code quote."""

import json
import re
from pathlib import Path

from conftest import REPO

from vae import Config
from vae.lab.literature import (
    GAUSSIAN_VAE_FASHION_MNIST_NLL,
    ORIGINAL_REPORT_LOSS,
    PUBLISHED_K,
    PUBLISHED_NLL,
    PUBLISHED_SD,
    continuous_bernoulli,
    convergence_run,
    current_runs,
    dataset_entry,
    model_label,
    upgraded,
    with_run,
)
from vae.research import PRESETS
from vae.research.training import stopped_early

# A quotation of a loss curve: "≈17,900 → ≈10,700" in prose, '17,900 -> 10,700' in a docstring (a measured
# "11,603 → 8,429" is not in quotation marks)
LOSS_QUOTE = re.compile(r"[\"'“]≈?(\d{1,3}(?:,\d{3})+) (?:→|->) ≈?(\d{1,3}(?:,\d{3})+)[\"'”]")
NLL_QUOTE = re.compile(r"(\d+(?:\.\d+)?) reported for a Gaussian-prior VAE")
# "an IWAE NLL of 246.19 ± 0.04 nats per image, 17.5 nats above the 228.7 reported"
NLL_GAP = re.compile(r"IWAE NLL of (\d+\.\d+) ± \S+ nats per image, (-?\d+\.\d) nats above the (\d+(?:\.\d+)?) ")


def read(path: Path) -> str:
    """A file's text; a notebook's cells, joined."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".ipynb":
        return "\n".join("".join(cell["source"]) for cell in json.loads(text)["cells"])
    return text


def texts() -> dict[str, str]:
    """Every document, notebook and source file of the repository that could quote a number: name -> text."""
    paths = [REPO / "REPORT.md", REPO / "README.md", *REPO.glob("docs/*.md"), *REPO.glob("notebooks/*.ipynb")]
    paths += [*REPO.glob("vae/**/*.py"), *REPO.glob("vae/lab/templates/*")]  # the core, vae/research/ and vae/lab/
    return {str(p.relative_to(REPO)): read(p) for p in paths if p.is_file()}


def loss_quotes(text: str) -> set[tuple[int, int]]:
    return {(int(a.replace(",", "")), int(b.replace(",", ""))) for a, b in LOSS_QUOTE.findall(text)}


def test_the_original_reports_loss_is_the_one_docs_original_report_quotes():
    text = (REPO / "docs" / "original-report.md").read_text(encoding="utf-8")
    first, last = ORIGINAL_REPORT_LOSS
    assert f'"≈{first:,} → ≈{last:,}"' in text  # "≈17,900 → ≈10,700"
    assert loss_quotes(text) == {ORIGINAL_REPORT_LOSS}


def test_every_quote_of_the_original_reports_loss_is_the_same():
    found = {name: loss_quotes(text) for name, text in texts().items()}
    quoted = {name for name, quotes in found.items() if quotes}
    assert {"REPORT.md", "docs/original-report.md", "notebooks/experiments.ipynb"} <= quoted
    assert {name: quotes for name, quotes in found.items() if quotes != {ORIGINAL_REPORT_LOSS} and quotes} == {}


def test_the_published_nll_is_the_one_report_quotes():
    found = {name: {float(v) for v in NLL_QUOTE.findall(text)} for name, text in texts().items()}
    assert found["REPORT.md"] == {GAUSSIAN_VAE_FASHION_MNIST_NLL}  # "the 228.7 reported for a Gaussian-prior VAE"
    assert all(values <= {GAUSSIAN_VAE_FASHION_MNIST_NLL} for values in found.values())


def test_the_gap_to_the_published_nll_is_its_difference():
    gaps = NLL_GAP.findall((REPO / "REPORT.md").read_text(encoding="utf-8"))
    assert gaps, "REPORT.md no longer compares the binarised NLL with the published one"
    for ours, gap, theirs in gaps:
        assert float(theirs) == GAUSSIAN_VAE_FASHION_MNIST_NLL
        assert abs(float(ours) - float(theirs) - float(gap)) <= 0.051  # ours is rounded to 0.01, the gap to 0.1


def test_the_published_numbers_are_plausible_nlls_in_the_papers_order():
    # Norouzi et al. (2020), the authors' README image: the Gaussian-prior baseline lies between
    # a good binarised Fashion-MNIST model (~220 nats) and our own 784-200-20 one (~246 nats).
    assert 220 < GAUSSIAN_VAE_FASHION_MNIST_NLL < 246
    # The original report's loss fell: first epoch above the last.
    assert ORIGINAL_REPORT_LOSS[0] > ORIGINAL_REPORT_LOSS[1] > 0


def test_the_committed_literature_results_are_whole_and_agree_with_their_sources(monkeypatch):
    # figures/literature/results.json, as `python -m vae literature` writes it for each dataset (or its first schema,
    # upgraded): every field the report reads, the published protocol's K, and numbers that agree with the records,
    # the stored sweep, and the mean over the runs of the newest protocol.
    monkeypatch.chdir(REPO)  # the sweep's folder is named relative to the repository, as the CLI's default
    folder = Path("figures/literature")
    results = json.loads((folder / "results.json").read_text())
    records = json.loads((folder / "k_convergence.json").read_text())
    assert results["k_convergence"] == records
    for dataset in ("fashion-mnist", "mnist"):
        entry = upgraded(dataset, results[dataset])
        assert (entry["published_nll"], entry["published_sd"]) == (PUBLISHED_NLL[dataset], PUBLISHED_SD[dataset])
        nll = [r["iwae_nll"] for r in current_runs(entry)]
        assert entry["n_runs"] == len(nll) >= 1 and abs(entry["iwae_nll_mean"] - sum(nll) / len(nll)) < 1e-9
        for r in entry["runs"]:
            config = Config.from_dict(r["config"])
            assert config == Config(**{**PRESETS["literature"], "dataset": dataset, "seed": r["seed"],
                                       "device": config.device})  # fmt: skip
            assert r["iw_samples"] == PUBLISHED_K == 5000
            val = r["curve"]["val_loss"]
            assert r["epochs"] == len(val) == len(r["curve"]["test_loss"]) and val[r["best_epoch"] - 1] == min(val)
            history = [{"epoch": i + 1, "val_loss": v} for i, v in enumerate(val)]
            assert r["stopped_early"] == stopped_early(history, config)
        r = convergence_run(entry)  # the run whose K-convergence is stored
        mine = {x["k"]: x for x in records if x["model"] == model_label(dataset)}
        assert sorted(mine) == [1, 10, 100, 1000, 5000] and {x["dataset"] for x in mine.values()} == {
            f"{dataset}, binarised"
        }
        assert (mine[5000]["bound"], mine[5000]["se"]) == (r["iwae_nll"], r["iwae_nll_se"])
        assert mine[1]["bound"] > mine[10]["bound"] > mine[100]["bound"] > mine[1000]["bound"] > r["iwae_nll"]
        # Independent recomputation: the K = 1 bound is the best epoch's test -ELBO, with other draws of z.
        assert abs(mine[1]["bound"] - r["curve"]["test_loss"][r["best_epoch"] - 1]) < 0.2
    assert results["continuous_bernoulli"] == continuous_bernoulli(Path("figures/experiments/runs"))


# --- results.json's runs: one per seed and validation protocol, the mean and sd over the newest protocol's ---------


def run(seed: int, nll: float, protocol: int = 2) -> dict:
    """A run as literature.run_entry writes it; only its seed, protocol and NLL matter here."""
    curve = {"val_loss": [231.0], "test_loss": [230.0]}
    return {"seed": seed, "validation_protocol": protocol, "iwae_nll": nll, "iwae_nll_se": 0.5, "iw_samples": 5000,
            "epochs": 900, "best_epoch": 850, "stopped_early": True, "train_seconds": 5000.0,
            "config": {"seed": seed, "num_epochs": 2000}, "curve": curve}  # fmt: skip


def test_an_entry_of_the_first_schema_becomes_its_run_of_protocol_1():
    first = {k: v for k, v in run(3, 228.8).items() if k not in ("seed", "validation_protocol")}
    entry = upgraded("mnist", {**first, "published_nll": 84.45})  # one run, its fields at the top
    assert entry["runs"] == [{**first, "seed": 3, "validation_protocol": 1}]  # the seed is its config's
    assert (entry["protocol"], entry["n_runs"], entry["iwae_nll_mean"], entry["iwae_nll_sd"]) == (1, 1, 228.8, None)
    assert (entry["published_nll"], entry["published_sd"]) == (84.45, 0.12)
    assert upgraded("mnist", entry) == entry  # an entry of the runs schema stays as it is


def test_two_seeds_give_their_mean_and_sample_sd():
    entry = with_run("fashion-mnist", with_run("fashion-mnist", None, run(1, 229.0)), run(0, 228.0))
    assert [r["seed"] for r in entry["runs"]] == [0, 1] and entry["n_runs"] == 2
    assert entry["iwae_nll_mean"] == 228.5
    assert abs(entry["iwae_nll_sd"] - 0.5**0.5) < 1e-12  # sqrt(((-0.5)^2 + 0.5^2) / (2 - 1))
    three = with_run("fashion-mnist", entry, run(2, 230.0))
    assert three["iwae_nll_mean"] == 229.0 and abs(three["iwae_nll_sd"] - 1.0) < 1e-12


def test_rescoring_a_seed_replaces_its_run_and_keeps_the_others():
    entry = dataset_entry("fashion-mnist", [run(0, 228.0), run(1, 229.0)])
    again = with_run("fashion-mnist", entry, run(0, 230.0))
    assert [(r["seed"], r["iwae_nll"]) for r in again["runs"]] == [(0, 230.0), (1, 229.0)]
    assert again["iwae_nll_mean"] == 229.5


def test_runs_of_protocol_1_are_kept_but_not_averaged_with_protocol_2():
    entry = upgraded("fashion-mnist", {**run(0, 300.0, protocol=1), "published_nll": 228.7})
    assert convergence_run(entry)["iwae_nll"] == 300.0  # until protocol 2 has a seed 0
    entry = with_run("fashion-mnist", entry, run(1, 229.0))
    assert (entry["protocol"], entry["n_runs"], entry["iwae_nll_mean"], entry["iwae_nll_sd"]) == (2, 1, 229.0, None)
    assert convergence_run(entry)["iwae_nll"] == 300.0
    entry = with_run("fashion-mnist", entry, run(0, 228.0))  # protocol 2's seed 0: a new run, not protocol 1's
    assert [(r["seed"], r["validation_protocol"]) for r in entry["runs"]] == [(0, 2), (1, 2), (0, 1)]
    assert entry["iwae_nll_mean"] == 228.5 and [r["iwae_nll"] for r in current_runs(entry)] == [228.0, 229.0]
    assert convergence_run(entry)["iwae_nll"] == 228.0
    older = with_run("fashion-mnist", entry, run(0, 301.0, protocol=1))  # re-scoring protocol 1's run
    assert older["runs"][2]["iwae_nll"] == 301.0 and older["iwae_nll_mean"] == 228.5
