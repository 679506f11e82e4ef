"""Report speed: the IWAE estimate vs the matmul peak, one seed's report end to end, and a re-run that only re-plots.

Measures in one run, on one machine:
  (c) the fp32 matmul throughput (as in train_speed.py);
  (i) the IWAE estimate's throughput (FLOP/s of its decoder matmuls) on real test images, as a fraction of (c);
  (e) `make_report` for one seed from scratch (training, evaluation, t-SNE of the whole test set, figures),
      with a per-stage breakdown;
  (r) the same `make_report` again: the checkpoint is finished and its evaluation is stored beside it, so it only
      re-plots; both in-process and as a fresh `python -m vae report` process (which also imports torch);
  (n) the same again without the stored evaluation (the checkpoint is reused, the evaluation recomputed): what
      the stored evaluation saves a re-run is (n) - (r).
Everything is written into a temporary folder; figures/ and REPORT.md are not touched.

    python benchmarks/report_speed.py [--iw-images 200] [--repeats 5] [--skip-report]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from train_speed import matmul_flops

from vae import Config, load_split
from vae import evaluate as ev
from vae.evaluate import EvalSettings
from vae.lab.pipeline import EVALUATION_NAME, ReportOptions, make_report
from vae.model import VAE


def iwae_flops_per_sample(model: VAE) -> int:
    """Multiply-adds x 2 of one sample's decoder pass and its x . logits product."""
    latent, hidden, out = model.dec.in_features, model.dec.out_features, model.dec_out.out_features
    return 2 * (latent * hidden + hidden * out + out)


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iw-images", type=int, default=200, help="test images for the IWAE timing")
    parser.add_argument("--repeats", type=int, default=5, help="IWAE timings to take the best of")
    parser.add_argument("--iw-samples", type=int, default=1000, help="K (default: the report's)")
    parser.add_argument("--skip-report", action="store_true", help="time the IWAE estimate only")
    parser.add_argument("--data-dir", default="data")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {load()}")

    config = Config(device="cpu", data_dir=args.data_dir)
    x_test, _ = load_split(config.dataset, "test", config.data_dir)
    peak = matmul_flops(torch.device("cpu"))
    print(f"(c) fp32 matmul peak: {peak / 1e9:.1f} GFLOP/s")

    model = VAE.from_config(config).eval()
    x = x_test[: args.iw_images]
    ev.iwae_nll(model, x[:10], args.iw_samples)  # warm-up
    seconds = float("inf")
    for _ in range(args.repeats):  # best of several, like the matmul peak: the machine is shared
        start = time.perf_counter()
        ev.iwae_nll(model, x, args.iw_samples)
        seconds = min(seconds, time.perf_counter() - start)
    achieved = len(x) * args.iw_samples * iwae_flops_per_sample(model) / seconds
    print(
        f"(i) IWAE, K={args.iw_samples}, {len(x)} images, best of {args.repeats}: {seconds:.2f} s, "
        f"{achieved / 1e9:.1f} GFLOP/s = {achieved / peak:.0%} of (c); "
        f"the 10000-image test set would take {seconds * 10000 / len(x):.1f} s"
    )
    if args.skip_report:
        return

    with tempfile.TemporaryDirectory() as tmp:
        paths = {"fig_dir": "figures", "report_path": "REPORT.md", "runs_dir": "runs"}
        evaluation = EvalSettings(iw_samples=args.iw_samples, tsne_points=10000)
        options = ReportOptions(evaluation=evaluation, **{k: str(Path(tmp) / v) for k, v in paths.items()})
        start = time.perf_counter()
        metrics = make_report(config, options, progress=False)
        first = time.perf_counter() - start
        stages = ", ".join(f"{k[6:-8]} {v:.1f}" for k, v in metrics["timings"].items() if k.startswith("seed0_"))
        print(f"(e) the report with seed 0 alone, from scratch: {first:.1f} s ({stages}); {load()}")
        start = time.perf_counter()
        make_report(config, options, progress=False)
        again = time.perf_counter() - start
        command = [sys.executable, "-m", "vae", "report", "--device", "cpu", "--data-dir", args.data_dir]
        command += [f"--{k.replace('_', '-')}={v}" for k, v in vars(options).items() if k in paths]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        process = time.perf_counter() - start
        print(f"(r) re-plot from the stored evaluation: {again:.2f} s in-process, {process:.2f} s as a process")
        for stored in Path(options.runs_dir).glob(f"*/{EVALUATION_NAME}"):
            stored.unlink()
        start = time.perf_counter()
        make_report(config, options, progress=False)
        recompute = time.perf_counter() - start
        print(f"(n) re-run without the stored evaluation: {recompute:.1f} s; it saves {recompute - again:.1f} s")
        print(f"    (r)/(e) = {again / first:.3f}; {load()}")


if __name__ == "__main__":
    main()
