"""Do worker processes speed up `python -m vae sweep` here? The same runs timed with --jobs 1 and --jobs 2.

--jobs 1 runs in one process with torch's default threads (one per core); --jobs 2 runs two worker processes
with one torch thread each. The runs are the variance-head ablation at seed 0 (4 runs), each trained for
--epochs epochs and evaluated as in the sweep (IWAE K=100, kNN, active units). The two modes alternate,
--repeats times, so that a change in the machine's load hits both. Prints the wall times and their ratio.
"""

import argparse
import os
import statistics
import tempfile
import time

import torch

from vae import Config
from vae import experiments as ex


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data-dir", default="data")
    args = parser.parse_args()
    runs = ex.plan(Config(device="cpu", data_dir=args.data_dir, num_epochs=args.epochs), ["variance_head"], (0,))
    settings = ex.SweepSettings(iw_samples=100, tsne_points=2000)
    threads = torch.get_num_threads()
    print(f"{len(runs)} runs of {args.epochs} epochs; {os.cpu_count()} cores, torch default {threads} threads")
    times = {1: [], 2: []}
    for repeat in range(args.repeats):
        for jobs in (1, 2):
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                ex.sweep(runs, f"{tmp}/runs", f"{tmp}/ckpt", settings, jobs=jobs, log=lambda *a: None)
                times[jobs].append(time.perf_counter() - start)
            load = open("/proc/loadavg").read().split()[0] if os.path.exists("/proc/loadavg") else "?"
            print(f"repeat {repeat + 1}, --jobs {jobs}: {times[jobs][-1]:.1f} s (load average {load})")
    one, two = statistics.median(times[1]), statistics.median(times[2])
    print(f"median wall time: --jobs 1 {one:.1f} s, --jobs 2 {two:.1f} s; speed-up of --jobs 2: {one / two:.2f}x")


if __name__ == "__main__":
    main()
