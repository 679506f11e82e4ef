"""Every device: one rule for where data meets a model, the same seeded draws on every device, bf16 only on bf16
hardware. A CPU cannot run CUDA or MPS kernels; these tests use the `meta` device (shapes without values) as the
model's device, so that an op that mixes the data's device with the model's fails here as it would on a GPU.

Under `FakeTensorMode`, the meta device also comes back to the CPU (`.cpu()`), as a GPU's results must.
What no CPU test can catch: the kernels themselves (rounding, float64 on MPS, autocast support), and speed;
benchmarks/gpu_check.py checks those on a GPU.
"""

import io

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from vae import VAE, Config, ConfigError
from vae import evaluate as ev
from vae.data import iterate_batches
from vae.devices import on_model_device
from vae.loss import elbo_terms
from vae.research import fit
from vae.research import models as vmodels
from vae.research.training import Binarized, DynamicBinarization
from vae.train import pick_device

META = torch.device("meta")


def on_meta() -> VAE:
    torch.manual_seed(0)
    return VAE(784, 16, 3).to(META)


def test_the_data_meets_the_model_on_the_models_device():
    model, x = on_meta(), torch.rand(8, 784)
    assert on_model_device(model, x).device == META
    nll, kl = elbo_terms(model, on_model_device(model, x), torch.Generator().manual_seed(0))  # eps from the CPU
    assert nll.device == kl.device == META and nll.shape == kl.shape == (8,)


def test_evaluation_moves_cpu_data_to_a_gpu_model_and_returns_the_iwae_on_the_cpu():
    model, x = VAE(784, 16, 3), torch.rand(40, 784)
    with FakeTensorMode(allow_non_fake_inputs=True):  # no values; "cuda" would need a CUDA build of torch
        model = model.to(META)
        mu, logvar = ev.encode_posterior(model, x, batch_size=16)
        nll = ev.iwae_nll(model, x, 10, progress=False)  # a mismatch raises FakeTensorDeviceMismatchError
    assert mu.device == logvar.device == META and mu.shape == (40, 3)
    assert nll.device.type == "cpu" and nll.shape == (40,)  # where float64 exists (not on MPS)


@pytest.mark.parametrize("num_samples", [1, 10, 1000])
def test_the_iwae_draws_do_not_depend_on_the_rows_per_step(num_samples):
    torch.manual_seed(0)
    model, x = VAE(784, 16, 3).eval(), torch.rand(2000, 784)
    on_a_cpu = ev.iwae_nll(model, x, num_samples, progress=False)  # steps of 8192 // K images (819 for K = 10)
    on_a_gpu = ev.iwae_nll(model, x, num_samples, rows=ev.ACCELERATOR_ROWS, progress=False)  # 16 x more per step
    torch.testing.assert_close(on_a_gpu, on_a_cpu, rtol=1e-6, atol=0)  # other draws: 1e-4 to 1e-2 apart


def test_batches_and_eps_are_drawn_on_the_cpu_and_moved_to_the_data():
    generator = torch.Generator().manual_seed(3)
    on_cpu = list(iterate_batches(torch.arange(10.0).view(10, 1), 4, generator))
    after_cpu = generator.get_state()
    generator.manual_seed(3)
    moved = list(iterate_batches(torch.arange(10.0).view(10, 1).to(META), 4, generator))
    assert [b.device for b in moved] == [META] * 3 and [b.shape for b in moved] == [b.shape for b in on_cpu]
    assert torch.equal(generator.get_state(), after_cpu)  # the same draws from the same CPU generator
    mu = torch.zeros(2, 3, device=META)
    z = VAE.reparameterize(VAE(784, 16, 3), mu, mu, torch.Generator().manual_seed(0))
    assert z.device == META


def test_binarisations_are_drawn_on_the_cpu():
    x = torch.rand(4, 784)
    fixed = Binarized().scored(x)
    assert torch.equal(fixed, torch.bernoulli(x, generator=torch.Generator().manual_seed(0)))

    class RunOnCpu:
        generator = torch.Generator().manual_seed(5)

    dynamic = DynamicBinarization().on_batch(RunOnCpu(), x)
    assert torch.equal(dynamic, torch.bernoulli(x, generator=torch.Generator().manual_seed(5)))


def test_a_checkpoints_rng_state_is_a_cpu_generators_so_any_device_can_resume_it(tmp_path):
    from vae.lab.checkpoint import load_checkpoint
    from vae.lab.runs import CHECKPOINT_NAME
    from vae.lab.runs import fit as fit_with_checkpoints

    config = Config(hidden_dim=8, latent_dim=2, batch_size=16, num_epochs=1, device="cpu")
    fit_with_checkpoints(config, torch.rand(32, 784), torch.rand(16, 784), out_dir=tmp_path, progress=False)
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert state["rng_state"].numel() == torch.Generator().get_state().numel()


@pytest.mark.parametrize("name", ["cuda", "cuda:1", "mps"])
def test_a_device_this_machine_lacks_is_refused_naming_it(name, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1 if name == "cuda:1" else 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=rf"config.device is '{name}', but this machine has"):
        pick_device(name)


def test_bf16_is_refused_where_it_would_be_emulated(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    assert "compute capability 7.5" in vmodels.bf16_problem(torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    assert vmodels.bf16_problem(torch.device("cuda")) is None
    monkeypatch.setattr(torch, "__version__", "2.5.1")
    assert "turns bf16 autocast off on MPS" in vmodels.bf16_problem(torch.device("mps"))

    def cpuinfo(flags):
        real_open = open

        def fake_open(path, *args, **kwargs):
            if str(path) == "/proc/cpuinfo":
                return io.StringIO(f"processor\t: 0\nflags\t\t: {flags}\n")
            return real_open(path, *args, **kwargs)

        return fake_open

    monkeypatch.setattr("builtins.open", cpuinfo("fpu sse2 avx2"))
    assert "neither AMX nor AVX512-BF16" in vmodels.bf16_problem(torch.device("cpu"))
    config = Config(precision="bf16", hidden_dim=8, latent_dim=2, batch_size=16, num_epochs=1, device="cpu")
    with pytest.raises(ConfigError, match=r"config.precision='bf16' is refused here: this CPU has neither"):
        fit(config, torch.rand(32, 784), torch.rand(16, 784), progress=False)
    monkeypatch.setattr("builtins.open", cpuinfo("fpu avx512f avx512_bf16"))
    assert vmodels.bf16_problem(torch.device("cpu")) is None
