"""The report's sections on the published numbers: the like-for-like comparison with the published NLLs (rendered
from templates/literature.md) and the IWAE bound against K, with the sentences that depend on their numbers.

Every number is read from figures/literature/results.json (vae.lab.literature) or the records of
`python -m vae bounds`.
"""

import math
from pathlib import Path
from string import Template

from scipy import stats  # scikit-learn's own dependency

from vae.lab.formatting import pm
from vae.lab.literature import (
    PLANNED_SEEDS,
    PUBLISHED_NLL,
    PUBLISHED_SD,
    current_runs,
    how_it_ended,
    upgraded,
)
from vae.research.training import VALIDATION_PROTOCOL

LITERATURE_TEMPLATE = Path(__file__).with_name("templates") / "literature.md"


def literature_section(results: dict, link: str, docs: str) -> str:
    """The like-for-like comparison with the published NLLs, from figures/literature/results.json."""
    entries = {d: upgraded(d, results[d]) for d in PUBLISHED_NLL if d in results}
    current = [(d, r) for d, e in entries.items() for r in current_runs(e)]  # the runs that the means are over
    ended = {}
    for d, r in current:
        ended.setdefault(how_it_ended(r), []).append((d, r))
    cb = results.get("continuous_bernoulli")
    continuous = (
        f"For the grey-level images themselves, only the continuous Bernoulli gives a log-likelihood: test −ELBO "
        f"{cb['test_loss']:.1f} and IWAE NLL (K = {cb['iw_samples']}) {cb['iwae_nll']:.1f} nats per image on [0, 1] "
        "pixels (the ablations' row), which no binarised number can be compared with."
        if cb
        else ""
    )
    published = " and ".join(
        f"{PUBLISHED_NLL[d]:.2f} ± {PUBLISHED_SD[d]:.2f} ({name})"
        for d, name in (("fashion-mnist", "Fashion-MNIST"), ("mnist", "MNIST"))
    )
    fields = {
        "rows": "".join(literature_rows(d, e) for d, e in entries.items()),
        "holds": f"The table holds, {per_dataset({d: held(e['runs']) for d, e in entries.items()})}.",
        "planned": planned_reading(entries),
        "published": published,
        "yardstick": yardstick_reading(entries),
        "repeats": f"Ours: {per_dataset({d: held(current_runs(e)) for d, e in entries.items()})}.",
        "convergence": "\n".join(convergence_reading(d, r, entries[d]["published_nll"]) for d, r in current),
        "length": " ".join(length_reading(ending, named) for ending, named in ended.items()),
        "continuous": continuous,
        "lit": link,
        "docs": docs,
    }
    return Template(LITERATURE_TEMPLATE.read_text(encoding="utf-8")).substitute(fields)


def literature_rows(dataset: str, entry: dict) -> str:
    """A dataset's rows of the table: the mean ± sd over the runs of its newest protocol where there are several,
    then each run's K = 5000 NLL ± its standard error over the test images; σ is the published spread."""
    published, sigma = entry["published_nll"], entry["published_sd"]
    theirs = f"{published:.2f} ± {sigma:.2f}"
    rows = [
        f"| {dataset} | seed {r['seed']}, protocol {r['validation_protocol']} | {r['iwae_nll']:.2f} ± "
        f"{r['iwae_nll_se']:.2f} | {theirs} | {r['iwae_nll'] - published:+.2f} "
        f"({abs(r['iwae_nll'] - published) / sigma:.1f} σ) | {r['epochs']} ({how_it_ended(r)}) | {r['best_epoch']} |\n"
        for r in entry["runs"]
    ]
    if entry["n_runs"] > 1:
        mean = pm({"mean": entry["iwae_nll_mean"], "sd": entry["iwae_nll_sd"]}, 2)
        rows.insert(
            0,
            f"| {dataset} | **mean ± sd over {entry['n_runs']} runs of protocol {entry['protocol']}** | "
            f"**{mean}** | {theirs} | {entry['iwae_nll_mean'] - published:+.2f} | | |\n",
        )
    return "".join(rows)


def listing(names: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def held(runs: list[dict]) -> str:
    """Runs by protocol, newest first: '1 run of protocol 1 (seed 0)', '2 runs of protocol 2 (seeds 0, 1) and ...'."""
    texts = []
    for protocol in dict.fromkeys(r["validation_protocol"] for r in runs):
        seeds = [str(r["seed"]) for r in runs if r["validation_protocol"] == protocol]
        many = "s" if len(seeds) > 1 else ""
        texts.append(f"{len(seeds)} run{many} of protocol {protocol} (seed{many} {', '.join(seeds)})")
    return listing(texts)


def per_dataset(texts: dict[str, str]) -> str:
    """'per dataset, X' where every dataset's text is X; else 'for fashion-mnist, X; for mnist, Y'."""
    if len(texts) > 1 and len(set(texts.values())) == 1:
        return f"per dataset, {next(iter(texts.values()))}"
    return "; ".join(f"for {d}, {text}" for d, text in texts.items())


def planned_reading(entries: dict) -> str:
    """Which of the planned runs (PLANNED_SEEDS of each dataset, of the code's protocol) are not scored yet, on a
    line of its own; empty when all are."""
    missing = []
    for d in PUBLISHED_NLL:
        runs = entries[d]["runs"] if d in entries else []
        done = {r["seed"] for r in runs if r["validation_protocol"] == VALIDATION_PROTOCOL}
        if seeds := [str(s) for s in PLANNED_SEEDS if s not in done]:
            missing.append(f"{d} seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)}")
    if not missing:
        return ""
    return (
        f"\nPlanned: seeds {listing([str(s) for s in PLANNED_SEEDS])} of each dataset with protocol "
        f"{VALIDATION_PROTOCOL}; not yet scored: {'; '.join(missing)}."
    )


def yardstick_reading(entries: dict) -> str:
    """How far each dataset's mean lies from the published one: in σ, their spread over runs, for one run; in
    σ/√n, the spread of a mean of n runs if ours vary as theirs, for n runs. Under 2 is run-to-run variation."""
    parts, far = [], []
    for d, e in entries.items():
        gap, sigma, n = e["iwae_nll_mean"] - e["published_nll"], e["published_sd"], e["n_runs"]
        z = abs(gap) / (sigma / math.sqrt(n))
        if n == 1:
            parts.append(f"the {d} run's {gap:+.2f} is about {z:.1f} σ")
        else:
            parts.append(
                f"the mean of the {n} {d} runs, {gap:+.2f}, is about {z:.1f} σ/√{n} (ours spread by "
                f"{e['iwae_nll_sd']:.2f} over runs, theirs by {sigma:.2f})"
            )
        if z >= 2:
            far.append(d)
    units = {"σ" if e["n_runs"] == 1 else "σ/√n" for e in entries.values()}
    unit = units.pop() if len(units) == 1 else "(σ for one run, σ/√n for a mean)"
    if far:
        verdict = f"For {listing(far)}, 2 {unit} or more is what run-to-run variation alone gives only about 1 time "
        verdict += "in 20: a sign of a difference in protocol or code."
    else:
        verdict = f"Under 2 {unit} is what run-to-run variation alone gives: it neither shows a protocol difference "
        verdict += "nor rules one out."
    return f"Against it, {listing(parts)}. {verdict}{own_spread_reading(entries)}"


def own_spread_reading(entries: dict) -> str:
    """The same gaps in standard errors of our mean, sd/√n from our own runs, against Student's t with n − 1
    degrees of freedom: the yardstick when ours vary otherwise than theirs. Empty with fewer than 2 runs."""
    several = {d: e for d, e in entries.items() if e["n_runs"] > 1}
    if not several:
        return ""
    gaps, errors, bars, far = [], [], set(), []
    for d, e in several.items():
        se = e["iwae_nll_sd"] / math.sqrt(e["n_runs"])
        gap, bar = abs(e["iwae_nll_mean"] - e["published_nll"]) / se, stats.t.ppf(0.975, e["n_runs"] - 1)
        gaps.append(f"{gap:.2f} ({d})")
        errors.append(f"{se:.2f}")
        bars.add(f"{bar:.2f} ({e['n_runs']} runs)")
        if gap >= bar:
            far.append(d)
    verdict = f"by it, {listing(far)} shows a difference" if far else "by it, our runs alone do not show a difference"
    return (
        f" Measured instead by our own spread, the gaps are {listing(gaps)} standard errors of our mean (sd/√n: "
        f"{listing(errors)}); a t-test with n − 1 degrees of freedom puts the 1-in-20 "
        f"line at {listing(sorted(bars))}: {verdict}."
    )


def length_reading(ending: str, named: list[tuple[str, dict]]) -> str:
    """How the runs in `named` (dataset, run) ended, one of literature.how_it_ended's answers, and what it means."""
    many = len(named) > 1
    names = [f"{d} seed {r['seed']}" for d, r in named]
    which = f"The {listing(names)} run{'s' if many else ''}"
    limit = named[0][1]["config"]["num_epochs"]
    if ending == "stopped early":
        return f"{which} ended by the protocol's early stopping, before its {limit} epochs."
    if ending == "epoch limit":
        return f"{which} trained for all of the protocol's {limit} epochs."
    hours = " and ".join(f"{r['train_seconds'] / 3600:.1f}" for _, r in named)
    return (
        f"{which} {'were' if many else 'was'} cut short by this repository's time budget ({hours} hours of training "
        f"on a 2-core CPU), before the protocol's early stopping or its {limit} epochs: more training would "
        "probably lower the NLL further."
    )


def convergence_reading(dataset: str, r: dict, published: float) -> str:
    """How far from convergence a run stopped: the validation -ELBO's fall over its last 100 epochs."""
    val, name = r["curve"]["val_loss"], f"{dataset} seed {r['seed']}"
    if len(val) <= 100:
        return f"- {name}: only {len(val)} epochs, too few to judge convergence."
    fall = min(val[:-100]) - min(val)
    return (
        f"- {name}: the best validation −ELBO fell {fall:.2f} nats per image over the last 100 of {len(val)} "
        f"epochs (to {min(val):.2f}); the test NLL is {r['iwae_nll'] - published:+.2f} nats from the published value."
    )


def bounds_section(records: list[dict], link: str) -> str:
    """The section on the IWAE bound against K, per model, from the records of `python -m vae bounds`."""
    falls = []
    for model in dict.fromkeys(r["model"] for r in records):
        mine = sorted((r for r in records if r["model"] == model), key=lambda r: r["k"])
        drop = mine[0]["bound"] - mine[-1]["bound"]
        falls.append(f"{model}: {drop:.2f} nats per image from K = {mine[0]['k']} to K = {mine[-1]['k']}")
    rows = "".join(
        f"| {r['model']} | {r['dataset']} | {r['k']} | {r['bound']:.2f} ± {r['se']:.2f} |\n" for r in records
    )
    return (
        "## How tight is the bound? The IWAE estimate against K\n\n"
        "The importance-weighted bound on −log p(x) (Burda et al., 2016) with K samples per test image; K = 1 is "
        "the −ELBO. In expectation it can only fall as K grows, towards −log p(x); ± is the standard error over the "
        "test images. Produced by `python -m vae bounds` and `python -m vae literature`. How far it falls: "
        f"{'; '.join(falls)}. A number is comparable with a paper's only at the paper's K, and with another "
        "model's only on the same test data: grey-level and binarised pixels are different data.\n\n"
        "| model | test data | K | bound on −log p(x), nats per image |\n| --- | --- | --- | --- |\n"
        f"{rows}\n"
        f"![IWAE bound against K]({link}/k_convergence.png)\n"
    )
