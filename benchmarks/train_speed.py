"""Training speed: our trainer vs the conventional DataLoader pipeline, and vs the machine's matmul peak.

Measures in one run, on one machine:
  (a) seconds per epoch of `vae.fit`'s training step (whole split as one tensor, seeded batches, fused Adam);
  (b) seconds per epoch of the conventional pipeline: the same model and loss, torchvision's FashionMNIST
      with transforms.ToTensor() and DataLoader(batch_size=128, shuffle=True), as in pytorch/examples;
  (c) the fp32 matmul throughput of this machine (a large square matmul).
Prints (b)/(a), and (a)'s achieved FLOP/s as a fraction of (c), counting 6 x parameters x images per epoch.

    python benchmarks/train_speed.py [--epochs 3] [--conventional-epochs 1] [--device cpu]
"""

import argparse
import time

import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from vae import Config, fit, load_split
from vae.devices import pick_device
from vae.loss import Bernoulli
from vae.model import VAE


def matmul_flops(device: torch.device, n: int = 2048, repeats: int = 20) -> float:
    """FLOP/s of an n x n fp32 matmul, best of `repeats`."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(repeats + 3):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def sync(device: torch.device) -> None:
    """Wait for the device's queued kernels, so that a timer measures them."""
    if device.type in ("cuda", "mps"):
        getattr(torch, device.type).synchronize()


def conventional_epoch(config: Config, device: torch.device) -> float:
    """Seconds for one epoch of the usual tutorial pipeline: per-image ToTensor, DataLoader, Adam."""
    dataset = datasets.FashionMNIST(config.data_dir, train=True, download=False, transform=transforms.ToTensor())
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True)
    torch.manual_seed(config.seed)
    model = VAE.from_config(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    start = time.perf_counter()
    for x, _ in loader:
        x = x.view(-1, 784).to(device)
        logits, mu, logvar = model(x)
        bce = Bernoulli().nll(x, logits)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)  # as pytorch/examples writes the loss
        optimizer.zero_grad()
        (bce + kl).sum().backward()  # pytorch/examples sums over the batch
        optimizer.step()
    sync(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3, help="epochs of our trainer to time (default: 3)")
    parser.add_argument("--conventional-epochs", type=int, default=1, help="epochs of the DataLoader pipeline")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, mps or auto")
    parser.add_argument("--data-dir", default="data")
    args = parser.parse_args()
    device = pick_device(args.device)  # 'auto' resolved, a missing device refused
    config = Config(num_epochs=args.epochs, device=args.device, data_dir=args.data_dir)
    x_train, _ = load_split(config.dataset, "train", config.data_dir)
    x_test, _ = load_split(config.dataset, "test", config.data_dir)
    params = sum(p.numel() for p in VAE.from_config(config).parameters())
    flops_per_epoch = 6 * params * len(x_train)

    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads")
    peak = matmul_flops(device)
    print(f"(c) fp32 matmul peak: {peak / 1e9:.1f} GFLOP/s")

    _, history = fit(config, x_train, x_test, progress=False)
    ours = min(r["train_seconds"] for r in history)  # the optimisation steps, like (b)
    print(
        f"(a) ours: {ours:.3f} s per epoch (best of {args.epochs}); with the test-set evaluation, "
        f"10 epochs take {sum(r['seconds'] for r in history) / args.epochs * 10:.1f} s"
    )

    conventional = min(conventional_epoch(config, device) for _ in range(args.conventional_epochs))
    print(f"(b) conventional DataLoader + ToTensor: {conventional:.3f} s per epoch")

    achieved = flops_per_epoch / ours
    print(
        f"speed-up (b)/(a): {conventional / ours:.1f}x (target >= 7x); at 100% of the matmul peak the bound "
        f"would be {conventional / (flops_per_epoch / peak):.1f}x"
    )
    print(
        f"ours / matmul peak: {achieved / 1e9:.1f} / {peak / 1e9:.1f} GFLOP/s = {achieved / peak:.0%} (target >= 60%)"
    )


if __name__ == "__main__":
    main()
