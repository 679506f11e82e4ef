"""Command line: `python -m vae train|report|sweep [options]`. It builds a Config and calls the library."""

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from vae.checkpoint import CheckpointError
from vae.config import DATASETS, Config, ConfigError
from vae.data import DataError, load_split
from vae.files import OutputError
from vae.train import TrainingDiverged, fit

DEFAULTS = Config()


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """The Config fields as options; defaults are the seed report's experiment."""
    d = DEFAULTS
    parser.add_argument("--dataset", default=d.dataset, help=f"one of {', '.join(DATASETS)} (default: %(default)s)")
    parser.add_argument("--data-dir", default=d.data_dir, help="where the dataset is kept (default: %(default)s)")
    parser.add_argument("--epochs", dest="num_epochs", type=int, default=d.num_epochs, help="default: %(default)s")
    parser.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help="default: %(default)s")
    parser.add_argument("--hidden-dim", type=int, default=d.hidden_dim, help="default: %(default)s")
    parser.add_argument("--latent-dim", type=int, default=d.latent_dim, help="size of z (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=d.seed, help="default: %(default)s")
    parser.add_argument("--device", default=d.device, help="auto, cpu, cuda or mps (default: auto = cuda > mps > cpu)")
    parser.add_argument("--beta", type=float, default=d.beta, help="KL weight in the training loss (default: 1)")
    parser.add_argument("--variance-head", default=d.variance_head, help="logvar, sigma or softplus (default: logvar)")
    parser.add_argument("--binarize", action="store_true", help="train on dynamically binarised images")


def config_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Config:
    """Build the Config; a bad value exits with a one-line message and status 2."""
    names = Config.__dataclass_fields__
    try:
        return Config(**{k: v for k, v in vars(args).items() if k in names})
    except ConfigError as e:
        parser.error(str(e))


def train(args, config: Config) -> None:
    x_train, _ = load_split(config.dataset, "train", config.data_dir)
    x_test, _ = load_split(config.dataset, "test", config.data_dir)
    _, history = fit(config, x_train, x_test, out_dir=args.out, resume=args.resume)
    last = history[-1]
    print(
        f"epoch {last['epoch']}: test -ELBO {last['test_loss']:.2f} nats per image "
        f"(BCE {last['test_bce']:.2f} + KL {last['test_kl']:.2f}); "
        f"{sum(r['seconds'] for r in history):.1f} s in all; checkpoint in {args.out}/"
    )


def report(args, config: Config) -> None:
    from vae.report import ReportOptions, make_report

    args.runs_dir = args.runs_dir or ("runs/report-smoke" if args.smoke else "runs/report")
    args.out = args.runs_dir  # named by the interrupt message: a re-run resumes from there
    fields = (
        "iw_samples",
        "tsne_points",
        "fig_dir",
        "report_path",
        "runs_dir",
        "cache_dir",
        "smoke",
        "from_checkpoint",
    )
    options = ReportOptions(seeds=args.seeds or [config.seed], **{k: getattr(args, k) for k in fields})
    m = make_report(config, options)
    print(
        f"test -ELBO {m['test_loss.mean']:.2f} nats per image, IWAE NLL (K={m['options.iw_samples']}) "
        f"{m['iwae_nll.mean']:.2f}, kNN accuracy {m['knn_accuracy.mean']:.4f}, active units "
        f"{m['active_units.mean']:.1f}, trustworthiness {m['trustworthiness.mean']:.4f} "
        f"(mean over seeds {m['seeds']}); {m['wall.total_seconds']:.0f} s. "
        f"Wrote {options.fig_dir}/*.png, {options.fig_dir}/metrics.json and {options.report_path}."
    )


def add_report_parser(commands) -> None:
    p = commands.add_parser(
        "report",
        help="train (or load), evaluate, and write figures/, figures/metrics.json and REPORT.md",
        description="Train the config once per seed (checkpoints in --runs-dir/seed<N>/; finished runs are reused), "
        "evaluate on the test set (-ELBO, IWAE NLL, kNN on mu, active units, t-SNE), and write every figure, "
        "metrics.json and REPORT.md. Slow results are cached under the checkpoint's hash in --cache-dir.",
        epilog="example: python -m vae report --seeds 0 1 2",
    )
    add_config_args(p)
    p.add_argument(
        "--seeds", type=int, nargs="+", default=None, help="seeds to train; reports mean ± sd (default: --seed)"
    )
    p.add_argument("--iw-samples", type=int, default=1000, help="K of the IWAE estimate (default: %(default)s)")
    p.add_argument("--tsne-points", type=int, default=10000, help="test images in the t-SNE (default: all 10000)")
    p.add_argument("--from-checkpoint", default=None, metavar="PATH", help="evaluate this checkpoint; no training")
    p.add_argument("--smoke", action="store_true", help="tiny and fast (2000 images, 1 epoch), for CI")
    p.add_argument("--fig-dir", default="figures", help="where figures and metrics.json go (default: %(default)s)")
    p.add_argument("--report-path", default="REPORT.md", help="default: %(default)s")
    p.add_argument("--runs-dir", default=None, help="checkpoints (default: runs/report, or runs/report-smoke)")
    p.add_argument("--cache-dir", default="runs/cache", help="cached latents and t-SNE (default: %(default)s)")
    p.set_defaults(run=report, out=None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vae", description="A VAE on Fashion-MNIST.")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser(
        "train",
        help="train the VAE and save a checkpoint",
        description="Train the seed report's VAE (784-200-20, Adam 3e-4, batch 128, 10 epochs). Losses are "
        "the negative ELBO, BCE + KL, in nats per image. A checkpoint is saved in --out after every epoch.",
        epilog="example: python -m vae train --epochs 20 --latent-dim 2 --out runs/z2",
    )
    add_config_args(p)
    p.add_argument("--out", default="runs/train", help="folder for checkpoint.pt (default: %(default)s)")
    p.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt if it exists")
    p.set_defaults(run=train)
    add_report_parser(commands)
    add_sweep_command(commands)
    return parser


# --- `python -m vae sweep`: the ablations of vae/experiments.py ---------------------------------------------


def sweep(args, config: Config) -> None:
    from vae import experiments  # imported here: it loads matplotlib and scikit-learn

    smoke_dir = Path("runs/experiments-smoke")  # never mixed with the real sweep's results and checkpoints
    out = Path(args.out or (smoke_dir if args.smoke else f"figures/{experiments.OUT_NAME}"))
    runs_dir = out / "runs"
    ckpt_dir = Path(args.checkpoints or (smoke_dir / "checkpoints" if args.smoke else "runs/experiments"))
    seeds = args.seeds or ((0,) if args.smoke else experiments.SEEDS)
    settings = experiments.SweepSettings(iw_samples=args.iw_samples, tsne_points=args.tsne_points, smoke=args.smoke)
    if args.smoke:
        settings = replace(settings, iw_samples=min(args.iw_samples, 10), tsne_points=min(args.tsne_points, 300))
    runs = experiments.plan(config, args.ablations, seeds, smoke=args.smoke)
    try:
        seconds = experiments.sweep(runs, runs_dir, ckpt_dir, settings, jobs=args.jobs)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: finished runs are stored in {runs_dir}/; run the same command to resume.", file=sys.stderr
        )
        raise SystemExit(130) from None
    results = experiments.load_results(runs_dir)
    written = experiments.write_outputs(results, out, seeds, ckpt_dir, config.dataset)
    print(f"sweep of {len(runs)} runs: {seconds:.0f} s for the runs not yet done; wrote {len(written)} files in {out}/")


def add_sweep_command(commands) -> None:
    p = commands.add_parser(
        "sweep",
        help="run the ablations (configs x seeds), resumably, and write their table and figures",
        description="Train and evaluate every config x seed of the chosen ablations. Each run's result is stored "
        "in OUT/runs/<name>.json and skipped if it exists, so an interrupted sweep resumes where it stopped.",
        epilog="example: python -m vae sweep --ablations kl_weight --seeds 0 --jobs 2",
    )
    p.add_argument("--data-dir", default=DEFAULTS.data_dir, help="where the dataset is kept (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="default: %(default)s")
    p.add_argument(
        "--ablations", nargs="+", help="any of variance_head kl_weight latent_dim data_protocol training (default: all)"
    )
    p.add_argument("--seeds", nargs="+", type=int, help="default: 0 1 2 (0 with --smoke)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes, one torch thread each (default: 1)")
    p.add_argument("--iw-samples", type=int, default=100, help="K of the IWAE NLL (default: %(default)s)")
    p.add_argument("--tsne-points", type=int, default=2000, help="test images per t-SNE (default: %(default)s)")
    p.add_argument("--smoke", action="store_true", help="6000/1000 images, 1/10 of the epochs, K <= 10: for CI")
    p.add_argument(
        "--out", help="table and figures (default: figures/experiments; runs/experiments-smoke with --smoke)"
    )
    p.add_argument("--checkpoints", help="per-run checkpoints (default: runs/experiments, or in the smoke folder)")
    p.set_defaults(run=sweep)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    config = config_from_args(parser, args)
    try:
        args.run(args, config)
    except ConfigError as e:  # found only once the data is loaded, e.g. a batch larger than the dataset
        parser.error(str(e))
    except (DataError, CheckpointError, TrainingDiverged, OutputError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        again = "add --resume to continue" if args.command == "train" else "run the same command again to continue"
        print(f"\ninterrupted: finished epochs are saved in {args.out}/; {again}.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
