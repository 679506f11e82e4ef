"""Command line: `python -m vae train|report|sweep|bounds|literature`. It builds a Config and calls the library.

Every option is checked before any work starts; a bad one exits with a one-line message and status 2.
"""

import argparse
import errno
import inspect
import os
import re
import sys
import tempfile
from dataclasses import fields, replace
from pathlib import Path

from vae.config import CHOICES, Config, ConfigError
from vae.data import DataError, load_data
from vae.evaluate import EvalSettings
from vae.lab.checkpoint import CheckpointError, load_checkpoint
from vae.lab.files import OUTPUT_ARGS, OutputError
from vae.lab.interrupts import Terminated, exit_status, sigterm_as_interrupt
from vae.lab.notebook import project_dir
from vae.lab.runs import BEST_NAME, CHECKPOINT_NAME, fit
from vae.research import PRESETS
from vae.train import TrainingDiverged, pick_device

DEFAULTS = Config()
PATHS = (
    "Default paths lie in the repository when run from any folder of a checkout of it, else in the current folder; "
    "defaults are shown, and paths you type are read, relative to the current folder."
)


def rooted(path: str) -> str:
    """A default path: under the root of the checkout that holds the current folder (as for the notebooks), else
    under the current folder; written relative to the current folder, e.g. '../runs' from docs/."""
    return os.path.relpath(project_dir(None, path))


FLAGS = {"num_epochs": "--epochs"}  # a field's option, where it is not --<field-name>
NO_OPTION = ("input_dim",)  # fields that have one valid value
# The library's errors name its arguments and settings; here, each is named by the flag that sets it.
LIBRARY_WORDS = {
    OUTPUT_ARGS: "(train: --out; report and sweep: --runs-dir)",
    "data_dir": "--data-dir",
    "out_dir": "--out",
    "runs_dir": "--runs-dir",
    "resume=True": "--resume",
    "overwrite=True": "--overwrite",
    "ablations": "--ablations",
    "settings.iw_samples": "--iw-samples",
    "settings.tsne_points": "--tsne-points",
    "options.evaluation.tsne_points": "--tsne-points",
    "options.seeds": "--seeds",
    "options.from_checkpoint": "--from-checkpoint",
}
_WORDS = "|".join(map(re.escape, sorted(LIBRARY_WORDS, key=len, reverse=True)))
LIBRARY_WORD = re.compile(rf"(?<![\w.'\"/=-])({_WORDS})(?![\w'\"/=-])")  # a whole word: not within a path or a name


def in_flags(e: Exception) -> str:
    """The message of a library error, naming flags where it names arguments and settings (LIBRARY_WORDS). A
    ConfigError's names (config.num_epochs) are shown as they are, since each field's flag is plain from its name."""
    if isinstance(e, ConfigError):
        return str(e)
    return LIBRARY_WORD.sub(lambda m: LIBRARY_WORDS[m.group(1)], str(e))


def field_help() -> dict[str, str]:
    """Each Config field's comment in vae/config.py, which is the help text of its option."""
    found = re.findall(r"^    (\w+): \w+ = .*?  # (.*)$", inspect.getsource(Config), re.MULTILINE)
    return {name: f"one of {', '.join(CHOICES[name])}; {text}" if name in CHOICES else text for name, text in found}


def add_config_args(parser: argparse.ArgumentParser, d: Config) -> None:
    """Every Config field as an option (--latent-dim ...), its default taken from `d` (the defaults or a preset)."""
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="start from a preset: literature = the published protocol "
        "(docs/literature-protocol.md); other options override its settings",
    )
    helps = field_help()
    for f in fields(Config):
        if f.name in NO_OPTION:
            continue
        flag, default = FLAGS.get(f.name, "--" + f.name.replace("_", "-")), getattr(d, f.name)
        kind = {"action": argparse.BooleanOptionalAction} if f.type is bool else {"type": f.type}
        default = rooted(default) if f.name == "data_dir" else default
        help = helps.get(f.name, f.name).replace("%", "%%") + " (default: %(default)s)"
        parser.add_argument(flag, dest=f.name, default=default, help=help, **kind)


def add_data_args(parser: argparse.ArgumentParser, device: str) -> None:
    parser.add_argument(
        "--data-dir", default=rooted(DEFAULTS.data_dir), help="the dataset's folder (default: %(default)s)"
    )
    parser.add_argument("--device", default=device, help="default: %(default)s")


def add_evaluation_args(parser: argparse.ArgumentParser, iw_samples: int, tsne_points: int) -> None:
    parser.add_argument("--iw-samples", type=int, default=iw_samples, help="K of the IWAE NLL (default: %(default)s)")
    parser.add_argument(
        "--tsne-points", type=int, default=tsne_points, help="test images in a t-SNE (default: %(default)s)"
    )


def writable(folder, option: str) -> None:
    """Check, before any work, that `folder` exists or can be made and takes files; create nothing. Else OutputError."""
    folder = Path(folder).absolute()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    try:
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a folder")
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise OutputError(f"cannot write in {folder} ({e.strerror or e}): choose another {option}.") from e


def train(args, config: Config) -> None:
    writable(args.out, "--out")
    pick_device(config.device)  # a device this machine lacks fails before the data is loaded
    x_train, _, x_test, _ = load_data(config.dataset, config.data_dir)
    _, history = fit(config, x_train, x_test, out_dir=args.out, resume=args.resume, overwrite=args.overwrite)
    last = history[-1]
    print(
        f"epoch {last['epoch']}: test -ELBO {last['test_loss']:.2f} nats per image "
        f"(BCE {last['test_bce']:.2f} + KL {last['test_kl']:.2f}); "
        f"{sum(r['seconds'] for r in history):.1f} s in all; checkpoint in {args.out}/"
    )


def report_options(args):
    from vae.lab.pipeline import ReportOptions

    evaluation = EvalSettings(iw_samples=args.iw_samples, tsne_points=args.tsne_points)
    given = {k: getattr(args, k) for k in ("fig_dir", "report_path", "runs_dir", "from_checkpoint", "smoke")}
    options = ReportOptions(seeds=args.seeds or [args.seed], evaluation=evaluation, **given)
    paths = ("fig_dir", "report_path", "runs_dir", "sweep_dir", "bounds_dir")  # the library's defaults, made rooted
    return replace(options, **{k: rooted(getattr(options, k)) for k in paths if getattr(args, k, None) is None})


def report(args, config: Config) -> None:
    from vae.lab.pipeline import make_report

    options = args.options
    for folder, option in (
        (options.fig_dir, "--fig-dir"),
        (Path(options.report_path).parent, "--report-path"),
        (options.runs_dir, "--runs-dir"),
    ):
        writable(folder, option)
    m = make_report(config, options)
    s = m["summary"]
    print(
        f"test -ELBO {s['test_loss']['mean']:.2f} nats per image, IWAE NLL (K={m['evaluation']['iw_samples']}) "
        f"{s['iwae_nll']['mean']:.2f}, kNN accuracy {s['knn_accuracy']['mean']:.4f}, active units "
        f"{s['active_units']['mean']:.1f}, trustworthiness {s['trustworthiness']['mean']:.4f} "
        f"(mean over seeds {m['seeds']}); {m['timings']['total_seconds']:.0f} s. "
        f"Wrote {options.fig_dir}/*.png, {options.fig_dir}/metrics.json and {options.report_path}."
    )


def sweep_options(args):
    from vae.lab import sweep as sw

    evaluation = EvalSettings(iw_samples=args.iw_samples, tsne_points=args.tsne_points)
    if args.smoke:
        evaluation = EvalSettings(iw_samples=min(args.iw_samples, 10), tsne_points=min(args.tsne_points, 300))
    args.out = args.out or rooted("runs/smoke/experiments" if args.smoke else "figures/experiments")
    args.runs_dir = args.runs_dir or rooted("runs/smoke" if args.smoke else "runs")
    args.seeds = args.seeds or ((0,) if args.smoke else sw.SEEDS)
    base = Config(data_dir=args.data_dir, device=args.device)
    return sw.plan(base, args.ablations, args.seeds, smoke=args.smoke), evaluation


def sweep(args, config: Config) -> None:
    from vae.lab import sweep as sw

    runs, evaluation = args.options
    writable(args.out, "--out")
    writable(args.runs_dir, "--runs-dir")
    seconds = sw.sweep(runs, args.out, args.runs_dir, evaluation, smoke=args.smoke)
    written = sw.write_outputs(sw.load_results(args.out), args.out, args.runs_dir, args.seeds)
    print(f"sweep of {len(runs)} runs: {seconds:.0f} s for the runs not yet done; {len(written)} files in {args.out}/")


def check_ks(ks: list[int]) -> None:
    if not ks or any(k < 1 for k in ks):
        raise ValueError(f"--ks must be integers >= 1, got {ks}")


def bounds_options(args) -> None:
    check_ks(args.ks)
    if not Path(args.checkpoint).is_file():
        raise ValueError(f"--checkpoint {args.checkpoint}: no such file")


def literature_options(args) -> None:
    check_ks(args.ks)
    for name in (BEST_NAME, CHECKPOINT_NAME):
        if not (Path(args.run_dir) / name).is_file():
            raise ValueError(
                f"--run-dir {args.run_dir} has no {name}: train it with `python -m vae train --preset literature`"
            )


def bounds(args, config: Config) -> None:
    from vae.lab.bounds import score_checkpoint

    writable(args.out, "--out")
    device = pick_device(config.device)
    found = score_checkpoint(args.checkpoint, args.out, args.ks, args.label, config.data_dir, device)
    listing = ", ".join(f"K={r['k']}: {r['bound']:.2f} ± {r['se']:.2f}" for r in found)
    print(
        f"{args.label}: {listing} nats per image; wrote {Path(args.out) / 'k_convergence.json'} and k_convergence.png"
    )


def literature(args, config: Config) -> None:
    from vae.lab.bounds import score_literature_run

    writable(args.out, "--out")
    device = pick_device(config.device)
    run, entry = score_literature_run(args.run_dir, args.out, args.ks, args.sweep_dir, config.data_dir, device)
    over = f" ± {entry['iwae_nll_sd']:.2f}" if entry["iwae_nll_sd"] is not None else ""
    print(
        f"{run['config']['dataset']}, seed {run['seed']}, protocol {run['validation_protocol']}: test NLL "
        f"{run['iwae_nll']:.2f} ± {run['iwae_nll_se']:.2f} nats per image (IWAE, K = {run['iw_samples']}), best epoch "
        f"{run['best_epoch']} of {run['epochs']}{' (stopped early)' if run['stopped_early'] else ''}; over "
        f"{entry['n_runs']} run(s) of protocol {entry['protocol']}: {entry['iwae_nll_mean']:.2f}{over}, published "
        f"{entry['published_nll']:.2f} ± {entry['published_sd']:.2f}; wrote {Path(args.out)}/results.json and figures"
    )


def add_train_command(commands, defaults: Config) -> None:
    p = commands.add_parser(
        "train",
        help="train the VAE and save a checkpoint",
        description="Train the original report's VAE (784-200-20, Adam 3e-4, batch 128, 10 epochs). Losses are "
        "the negative ELBO, BCE + KL, in nats per image. A checkpoint is saved in --out after every epoch.",
        epilog="example: python -m vae train --epochs 20 --latent-dim 2 --out runs/z2",
    )
    add_config_args(p, defaults)
    p.add_argument("--out", default=rooted("runs/train"), help="folder for checkpoint.pt (default: %(default)s)")
    p.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt if it exists")
    p.add_argument("--overwrite", action="store_true", help="replace a checkpoint already in --out")
    p.set_defaults(run=train, options=None)


def add_report_command(commands, defaults: Config) -> None:
    p = commands.add_parser(
        "report",
        help="train (or load), evaluate, and write figures/, figures/metrics.json and REPORT.md",
        description="Train the config once per seed (checkpoints in --runs-dir/<run name>/; finished runs of the "
        "same config are reused), evaluate on the test set (-ELBO, IWAE NLL, kNN on mu, active units, t-SNE), and "
        "write every figure, metrics.json and REPORT.md, as one set.",
        epilog="example: python -m vae report --seeds 0 1 2",
    )
    add_config_args(p, defaults)
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds to train; mean ± sd (default: --seed)")
    add_evaluation_args(p, iw_samples=1000, tsne_points=10000)
    p.add_argument("--from-checkpoint", default=None, metavar="PATH", help="evaluate this checkpoint; no training")
    p.add_argument("--smoke", action="store_true", help="tiny and fast (2000 images, 1 epoch), into runs/smoke/")
    smoke = rooted("runs/smoke")
    p.add_argument("--fig-dir", help=f"figures and metrics.json (default: {rooted('figures')}, or {smoke}/figures)")
    p.add_argument("--report-path", help=f"default: {rooted('REPORT.md')}, or {smoke}/REPORT.md")
    p.add_argument("--runs-dir", help=f"checkpoints (default: {rooted('runs')}, or {smoke})")
    p.set_defaults(run=report, options=report_options)


def add_sweep_command(commands) -> None:
    p = commands.add_parser(
        "sweep",
        help="run the ablations (configs x seeds), resumably, and write their table and figures",
        description="Train and evaluate every config x seed of the chosen ablations. Each run's result is stored "
        "in OUT/runs/<name>.json and reused if it matches, so an interrupted sweep resumes where it stopped.",
        epilog="example: python -m vae sweep --ablations kl_weight --seeds 0",
    )
    add_data_args(p, device="cpu")
    p.add_argument(
        "--ablations", nargs="+", help="any of variance_head kl_weight latent_dim data_protocol training (default: all)"
    )
    p.add_argument("--seeds", nargs="+", type=int, help="default: 0 1 2 (0 with --smoke)")
    add_evaluation_args(p, iw_samples=100, tsne_points=2000)
    p.add_argument("--smoke", action="store_true", help="6000/1000 images, 1/10 of the epochs, K <= 10: for CI")
    out, smoke = rooted("figures/experiments"), rooted("runs/smoke")
    p.add_argument("--out", help=f"table and figures (default: {out}, or {smoke}/experiments)")
    p.add_argument("--runs-dir", help=f"checkpoints (default: {rooted('runs')}, or {smoke})")
    p.set_defaults(run=sweep, options=sweep_options)


def add_scoring_args(parser: argparse.ArgumentParser) -> None:  # bounds' and literature's
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 10, 100, 1000, 5000], help="default: %(default)s")
    parser.add_argument("--out", default=rooted("figures/literature"), help="default: %(default)s")


def add_bounds_command(commands) -> None:
    p = commands.add_parser(
        "bounds",
        help="the IWAE bound on -log p(x) at several K for a trained model, as a table and a figure",
        description="Estimate -log p(x) on the test split by importance sampling at each K (K = 1 is the -ELBO), "
        "with standard errors over the test images; add the model's records to OUT/k_convergence.json and redraw "
        "OUT/k_convergence.png (other models' records stay).",
        epilog="example: python -m vae bounds --checkpoint 'runs/default,seed=0/checkpoint.pt' --label default",
    )
    p.add_argument("--checkpoint", required=True, help="a checkpoint written by train or report")
    add_scoring_args(p)
    p.add_argument("--label", default="default", help="the model's name in the table (default: %(default)s)")
    add_data_args(p, device="auto")
    p.set_defaults(run=bounds, options=bounds_options)


def add_literature_command(commands) -> None:
    p = commands.add_parser(
        "literature",
        help="score a run of the literature preset against the published test NLL",
        description="Score the best validation checkpoint of a `train --preset literature` run by IWAE at each K "
        "on the fixed binarised test set (the published protocol uses K = 5000), and write OUT/results.json, "
        "OUT/k_convergence.json and the figures k_convergence.png and training.png. Interrupting the training "
        "first is safe: it resumes with --resume.",
        epilog="example: python -m vae literature --run-dir runs/literature/fashion-mnist",
    )
    p.add_argument("--run-dir", required=True, help="the --out folder of the training run")
    add_scoring_args(p)
    p.add_argument("--sweep-dir", default=rooted("figures/experiments"), help="stored sweep (default: %(default)s)")
    add_data_args(p, device="auto")
    p.set_defaults(run=literature, options=literature_options)


def build_parser(preset: str | None = None) -> argparse.ArgumentParser:
    """The parser; with a preset, the config options default to the preset's values (see `main`)."""
    defaults = Config(**PRESETS[preset]) if preset in PRESETS else DEFAULTS
    parser = argparse.ArgumentParser(prog="python -m vae", description=f"A VAE on Fashion-MNIST. {PATHS}")
    commands = parser.add_subparsers(dest="command", required=True)
    add_train_command(commands, defaults)
    add_report_command(commands, defaults)
    add_sweep_command(commands)
    add_bounds_command(commands)
    add_literature_command(commands)
    for command in commands.choices.values():
        command.description += f" {PATHS}"
    return parser


def main(argv=None) -> int:
    preset = argparse.ArgumentParser(add_help=False)
    preset.add_argument("--preset")
    parser = build_parser(preset.parse_known_args(argv)[0].preset)  # an unknown preset is refused by the choices
    args = parser.parse_args(argv)
    names = Config.__dataclass_fields__
    try:  # every option, before any work
        config = Config(**{k: v for k, v in vars(args).items() if k in names})
        args.options = args.options(args) if args.options else None
    except (ConfigError, ValueError) as e:
        parser.error(in_flags(e))
    try:
        with sigterm_as_interrupt():
            args.run(args, config)
    except ConfigError as e:  # found only once the data is loaded, e.g. a batch larger than the dataset
        parser.error(in_flags(e))
    except (DataError, CheckpointError, TrainingDiverged, OutputError, ValueError) as e:
        print(f"error: {in_flags(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (Terminated); every staged write has been undone
        how = "terminated" if isinstance(e, Terminated) else "interrupted"
        print(f"\n{how}: {what_is_saved(args)}.", file=sys.stderr)
        return exit_status(e)
    return 0


def what_is_saved(args) -> str:
    """After an interruption: what is on disk, and how to continue."""
    if args.command != "train":
        return "finished epochs and runs are saved; run the same command again to continue"
    path = Path(args.out) / CHECKPOINT_NAME
    try:
        epochs = load_checkpoint(path)["epoch"] if path.exists() else 0
    except CheckpointError:
        epochs = 0
    if not epochs:
        return f"no epoch had finished, so nothing was saved in {args.out}/; run the same command again to start"
    return f"{epochs} finished epoch{'s' * (epochs > 1)} saved in {args.out}/; add --resume to continue"


if __name__ == "__main__":
    sys.exit(main())
