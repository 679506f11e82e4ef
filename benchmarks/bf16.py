"""bf16 autocast against fp32 for the training step, on the original report's model and the literature's.

For each model, in one run on one machine: train `--epochs` epochs with config.precision "fp32", then the same
epochs with "bf16" (same seed, same data), and print the seconds per epoch of the training step, their ratio,
and the test IWAE NLL (K = --iw-samples, nats per image, evaluated in fp32) after the last epoch.
bf16 is worth offering only where it is faster and the NLL moves by at most 0.1 nats.

    python benchmarks/bf16.py [--epochs 10] [--iw-samples 1000] [--device cpu]
"""

import argparse
from dataclasses import replace

import torch

from vae import Config, load_split
from vae.evaluate import iwae_nll
from vae.lab.pipeline import versions
from vae.research import PRESETS, fit


def measure(config: Config, train_x, test_x, iw_samples: int) -> dict:
    """Seconds per epoch of the training step, and the test IWAE NLL after training."""
    model, history = fit(config, train_x, test_x, progress=False)
    x = model.protocol.scored(test_x.to(next(model.parameters()).device))  # as the model is scored in training
    nll = iwae_nll(model, x, iw_samples, seed=config.seed).mean().item()
    return {"s_per_epoch": sum(r["train_seconds"] for r in history) / len(history), "nll": nll}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--iw-samples", type=int, default=1000)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    train_x, _ = load_split("fashion-mnist", "train")
    test_x, _ = load_split("fashion-mnist", "test")
    models = {
        "original report (784-200-20 MLP)": Config(num_epochs=args.epochs, device=args.device),
        "literature (gated 300-300, z = 40)": Config(
            **{**PRESETS["literature"], "num_epochs": args.epochs}, device=args.device
        ),
    }
    print(f"torch {torch.__version__}, {versions()['processor']}, {torch.get_num_threads()} threads")
    print(f"{args.epochs} epochs each; test IWAE NLL with K = {args.iw_samples}, nats per image")
    for name, config in models.items():
        fp32 = measure(config, train_x, test_x, args.iw_samples)
        bf16 = measure(replace(config, precision="bf16"), train_x, test_x, args.iw_samples)
        print(
            f"{name}: fp32 {fp32['s_per_epoch']:.2f} s/epoch, NLL {fp32['nll']:.3f}; "
            f"bf16 {bf16['s_per_epoch']:.2f} s/epoch, NLL {bf16['nll']:.3f}; "
            f"speed-up {fp32['s_per_epoch'] / bf16['s_per_epoch']:.2f}x, NLL difference "
            f"{bf16['nll'] - fp32['nll']:+.3f}"
        )


if __name__ == "__main__":
    main()
