"""A five-minute check on a GPU or a Mac: run every entry point there, compare with the committed CPU numbers.

Each step is one subprocess with a timeout; a failing step does not stop the others. The steps: the three
notebooks (VAE_SMOKE=1), a 10-epoch `vae train`, `vae report --smoke`, a one-seed `vae report` (whose test
-ELBO and IWAE, K = 1000, are compared with figures/metrics.json's seed 0, within 0.2 nats), `vae sweep` on the
data_protocol ablation (3 configs, --smoke), a 2-epoch literature run scored by `vae literature` and `vae bounds`
(K = 1, 10), and the IWAE at K = 5000 on the test set, then at several decoder rows per step on 1000 images.
It prints one table (step, seconds, ok, detail) and writes it as JSON to --out after every step.

    python benchmarks/gpu_check.py [--device auto|cuda|mps|cpu] [--out PATH] [--budget 480] [--skip STEP ...]

Without CUDA or MPS it says so and exits 0; `--device cpu` rehearses the steps at the smallest sizes.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 0.2  # nats per image: about twice the sd of the test -ELBO and IWAE over seeds
FULL = {"epochs": 10, "lit_epochs": 2, "k": 5000, "images": 10000, "row_images": 1000,
        "rows": (8192, 65536, 262144, 1048576), "report": ["--seeds", "0"]}  # fmt: skip
REHEARSAL = {"epochs": 1, "lit_epochs": 1, "k": 100, "images": 200, "row_images": 50, "rows": (8192, 65536),
             "report": ["--seeds", "0", "--smoke"]}  # fmt: skip
STEPS = ("notebooks", "train", "report-smoke", "report", "sweep", "literature", "bounds", "iwae")  # report: + compare


def pick(device: str) -> str | None:
    """The device to check: the one asked for if it is there, or the best accelerator for 'auto'; else None."""
    has = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if device == "auto":
        return "cuda" if has["cuda"] else "mps" if has["mps"] else None
    return device if has.get(device.split(":")[0]) else None


def describe(device: str) -> dict:
    """The device's name, torch's version and (on CUDA) the compute capability."""
    name, capability = device, None
    if device.startswith("cuda"):
        name, capability = torch.cuda.get_device_name(device), "{}.{}".format(*torch.cuda.get_device_capability(device))
    return {"device": device, "name": name, "capability": capability, "torch": torch.__version__}


def last_line(text: str) -> str:
    return next((line.strip() for line in reversed((text or "").splitlines()) if line.strip()), "")


def run(args: list, timeout: float, env: dict | None = None) -> dict:
    """Run one command from the repository root: seconds, ok, and its last line (stderr's on failure)."""
    start = time.perf_counter()
    try:
        args, env = list(map(str, args)), {**os.environ, **(env or {})}
        p = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"seconds": time.perf_counter() - start, "ok": False, "detail": f"timed out after {timeout:.0f} s"}
    ok = p.returncode == 0
    detail = last_line(p.stdout) if ok else f"exit {p.returncode}: {last_line(p.stderr) or last_line(p.stdout)}"
    return {"seconds": time.perf_counter() - start, "ok": ok, "detail": detail}


def vae(*args) -> list:
    return [sys.executable, "-m", "vae", *args]


def report_dirs(t: Path, name: str) -> list:
    return ["--fig-dir", t / name, "--report-path", t / f"{name}.md", "--runs-dir", t / name]


def compare(fig_dir: Path, rehearsal: bool) -> dict:
    """The test -ELBO and IWAE of `vae report --seeds 0` against the committed CPU run's (ok None: rehearsal sizes)."""
    ours, committed = (json.loads((d / "metrics.json").read_text()) for d in (fig_dir, ROOT / "figures"))
    deltas = {m: ours["runs"]["0"][m] - committed["runs"]["0"][m] for m in ("test_loss", "iwae_nll")}
    ks = ours["evaluation"]["iw_samples"], committed["evaluation"]["iw_samples"]
    ok = None if rehearsal else all(abs(d) <= TOLERANCE for d in deltas.values()) and ks[0] == ks[1]
    detail = ", ".join(f"{m} {ours['runs']['0'][m]:.3f} (CPU {d:+.3f})" for m, d in deltas.items())
    return {"seconds": 0.0, "ok": ok, "detail": f"{detail}; K = {ks[0]} (CPU {ks[1]})"}


def time_iwae(checkpoint: str, device: str, k: int, images: int, rows: int) -> dict:
    """Seconds, images/s of vae.evaluate.iwae_nll on the first `images` test images (rows 0: its default), warmed up."""
    from vae.data import load_split
    from vae.evaluate import ACCELERATOR_ROWS, iwae_nll, iwae_steps
    from vae.lab.checkpoint import load_model

    model, _, _ = load_model(checkpoint, device)
    x = load_split("fashion-mnist", "test", ROOT / "data", device=device)[0][:images]  # (N, 784)
    kw = {"rows": rows} if rows else {}  # else iwae_nll's own default
    warm_up = x[: iwae_steps(k, rows or ACCELERATOR_ROWS)[1]]  # one step
    iwae_nll(model, warm_up, k, progress=False, **kw).sum().item()  # .item() waits for it
    start = time.perf_counter()
    nll = iwae_nll(model, x, k, progress=False, **kw).mean().item()
    seconds, per_step = time.perf_counter() - start, iwae_steps(k, rows)[1] * k if rows else None
    return {"seconds": seconds, "images_per_s": len(x) / seconds, "nll": nll, "rows": per_step}


def iwae_step(checkpoint: Path, dev: list, k: int, images: int, rows: int, timeout: float) -> dict:
    """time_iwae in a subprocess of this script (rows 0: the default), so that a crash or a hang is one failed row."""
    result = run([sys.executable, __file__, *dev, "--time-iwae", checkpoint, k, images, rows], timeout)
    if result["ok"]:
        r = json.loads(result["detail"])
        rate, per_step = f"{r['images_per_s']:.0f} images/s", f"{r['rows'] or 'default'} rows per step"
        result["detail"] = f"{images} images: {rate}, {per_step}, NLL {r['nll']:.3f}, {r['seconds']:.2f} s timed"
    return result


def table(rows: list) -> str:
    lines = ["| step | seconds | ok | detail |", "| --- | --- | --- | --- |"]
    yes = {True: "yes", False: "**NO**", None: "-"}
    return "\n".join(
        lines + [f"| {r['step']} | {r['seconds']:.1f} | {yes[r['ok']]} | {r['detail'][:110]} |" for r in rows]
    )


def check(device: str, sizes: dict, out: Path, budget: float, skip: set, rehearsal: bool) -> list:
    """Run every step not in `skip`; the table's rows, also written to `out` as JSON after each step."""
    rows, deadline, info = [], time.monotonic() + budget, describe(device)
    print(f"gpu check on {info['name']} (capability {info['capability']}), torch {info['torch']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        t, dev = Path(tmp), ["--device", device]
        ckpt, lit_run, k, n = t / "train" / "checkpoint.pt", t / "literature" / "run", sizes["k"], sizes["images"]
        nb_env = {"VAE_SMOKE": "1", "VAE_FIG_DIR": str(t / "nb" / "figures"), "VAE_RUNS_DIR": str(t / "nb" / "runs")}
        nb_env |= {"VAE_NUM_EPOCHS": "1"} if rehearsal else {}
        notebooks = [sys.executable, "-m", "pytest", "-q", "--nbmake", "--nbmake-timeout=280", "notebooks/"]
        train = vae("train", *dev, "--epochs", sizes["epochs"], "--out", ckpt.parent)
        smoke = vae("report", "--smoke", *dev, *report_dirs(t, "s"))
        report = vae("report", *sizes["report"], *dev, *report_dirs(t, "r"))
        ablation = ["--ablations", "data_protocol", "--seeds", 0, "--smoke", "--out", t / "sw", "--runs-dir", t / "swr"]
        sweep = vae("sweep", *ablation, *dev)
        lit_train = vae("train", "--preset", "literature", "--epochs", sizes["lit_epochs"], *dev, "--out", lit_run)
        literature = vae("literature", "--run-dir", lit_run, "--ks", 1, 10, *dev, "--out", t / "lo")
        bounds = vae("bounds", "--checkpoint", ckpt, "--ks", 1, 10, *dev, "--out", t / "b")
        plan = [  # (step, the table's label, a command or a function of the seconds left, timeout in seconds)
            ("notebooks", "notebooks (VAE_SMOKE=1, device auto)", notebooks, 300),
            ("train", f"train --epochs {sizes['epochs']}", train, 120),
            ("report-smoke", "report --smoke", smoke, 120),
            ("report", f"report {' '.join(sizes['report'])} (one seed of make report)", report, 240),
            ("report", f"seed 0 vs the committed CPU run (±{TOLERANCE})", lambda _: compare(t / "r", rehearsal), 1),
            ("sweep", "sweep --ablations data_protocol --smoke (3 configs)", sweep, 120),
            ("literature", f"train --preset literature --epochs {sizes['lit_epochs']}", lit_train, 120),
            ("literature", "literature --ks 1 10", literature, 120),
            ("bounds", "bounds --ks 1 10 (the trained model)", bounds, 120),
            ("iwae", f"IWAE K = {k}, test set, default rows", partial(iwae_step, ckpt, dev, k, n, 0), 180),
        ]
        m = sizes["row_images"]
        plan += [
            ("iwae", f"IWAE K = {k}, rows = {r}", partial(iwae_step, ckpt, dev, k, m, r), 60) for r in sizes["rows"]
        ]
        for name, label, what, timeout in plan:
            left = min(timeout, deadline - time.monotonic())
            if name in skip or left <= 0:
                result = {"seconds": 0.0, "ok": None, "detail": "skipped" if name in skip else "out of --budget"}
            elif callable(what):
                try:
                    result = what(left)
                except Exception as e:  # e.g. its inputs are missing because an earlier step failed
                    result = {"seconds": 0.0, "ok": False, "detail": f"{type(e).__name__}: {e}"}
            else:
                result = run(what, left, nb_env if name == "notebooks" else None)
            rows.append({"step": label, **result})
            print(f"{label}: {result['seconds']:.1f} s, ok {result['ok']}", flush=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps({**info, "rehearsal": rehearsal, "sizes": sizes, "steps": rows}, indent=1) + "\n")
    return rows


def main() -> int:
    default_out = Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "runs"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (cuda > mps), cuda, cuda:N, mps, or cpu (rehearsal)")
    parser.add_argument("--out", type=Path, default=default_out / "gpu_check.json", help="default: %(default)s")
    parser.add_argument("--budget", type=float, default=480, help="seconds for all steps (default: %(default)s)")
    parser.add_argument("--skip", nargs="+", default=[], choices=STEPS, metavar="STEP", help=", ".join(STEPS))
    parser.add_argument("--time-iwae", nargs=4, metavar=("CKPT", "K", "IMAGES", "ROWS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.time_iwae:  # the child of iwae_step: one line of JSON
        ckpt, k, images, rows = args.time_iwae
        print(json.dumps(time_iwae(ckpt, args.device, int(k), int(images), int(rows))))
        return 0
    device = pick(args.device)
    if device is None:
        print(f"gpu check: no {'CUDA or MPS' if args.device == 'auto' else args.device} device here; nothing run")
        return 0 if args.device == "auto" else 1
    rehearsal = device == "cpu"
    rows = check(device, REHEARSAL if rehearsal else FULL, args.out, args.budget, set(args.skip), rehearsal)
    print("\n" + table(rows) + f"\n\nwritten to {args.out}")
    return 0 if all(r["ok"] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
