"""Faults and bad input (issue 6): every case gets a clear error naming the problem and the remedy, and loses
nothing. Killed processes are in test_faults_process.py."""

import errno
import math
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from conftest import REPO, write_gz

from vae import (
    VAE,
    CheckpointError,
    Config,
    DataError,
    TrainingDiverged,
    fit,
    load_checkpoint,
    load_model,
    load_split,
    load_weights,
)
from vae import config as vconfig
from vae import data as vdata
from vae import files as vfiles
from vae import train as vtrain
from vae.__main__ import main
from vae.train import CHECKPOINT_NAME


def leftovers(folder: Path) -> list[str]:
    """Entries of `folder` that are not finished dataset files: temporary, hidden or partial ones."""
    finished = set(vdata.RAW_FILES["fashion-mnist"])
    return sorted(p.name for p in folder.iterdir() if p.name not in finished) if folder.exists() else []


def put_raw(files: dict, data_dir: Path) -> Path:
    raw = vdata.raw_dir("fashion-mnist", data_dir)
    raw.mkdir(parents=True, exist_ok=True)
    for name, b in files.items():
        (raw / name).write_bytes(b)
    return raw


def fake_torchvision(on_download):
    """A stand-in for torchvision.datasets.FashionMNIST whose download runs `on_download(root)`."""

    class FashionMNIST:
        def __init__(self, root, train, download):
            on_download(root)

    return FashionMNIST


def denied(*args, **kwargs):
    raise PermissionError(errno.EACCES, "Permission denied")


@pytest.fixture
def read_only_filesystem(monkeypatch):
    """Simulate a read-only folder: creating folders or files fails. (Tests run as root in CI, where chmod
    does not stop writes, so the denial is simulated where this package creates things.)"""

    def mkdir(self, mode=0o777, parents=False, exist_ok=False):
        if not (exist_ok and self.is_dir()):
            denied()

    monkeypatch.setattr(Path, "mkdir", mkdir)
    monkeypatch.setattr(tempfile, "mkstemp", denied)
    monkeypatch.setattr(tempfile, "mkdtemp", denied)


# 1. Data ------------------------------------------------------------------------------------------------------


def test_truncated_gz_is_named_with_the_remedy_and_nothing_half_written(synthetic_dataset, tmp_path, monkeypatch):
    debian = tmp_path / "debian"
    write_gz(debian, synthetic_dataset)
    gz = debian / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[: gz.stat().st_size // 2])
    monkeypatch.setitem(vdata.DEBIAN_DIR, "fashion-mnist", debian)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz is truncated or corrupt") as e:
        load_split("fashion-mnist", "train", tmp_path / "data", download=False)
    assert "apt-get install --reinstall dataset-fashion-mnist" in str(e.value)
    raw = vdata.raw_dir("fashion-mnist", tmp_path / "data")
    assert leftovers(raw) == [] and not (raw / "train-images-idx3-ubyte").exists()


def test_wrong_magic_bytes_name_the_file_and_say_delete_it(synthetic_dataset, tmp_path):
    raw = put_raw(synthetic_dataset, tmp_path / "data")
    labels = raw / "t10k-labels-idx1-ubyte"
    labels.write_bytes(bytes.fromhex("00000803") + labels.read_bytes()[4:])  # an images magic in a labels file
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte is not an IDX labels file \(magic bytes 00000803\)"):
        load_split("fashion-mnist", "test", tmp_path / "data", download=False)
    with pytest.raises(DataError, match=rf"Delete {labels} and run again"):
        load_split("fashion-mnist", "test", tmp_path / "data", download=False)
    assert leftovers(raw) == []


def test_wrong_image_count_is_named(synthetic_dataset, tmp_path, monkeypatch):
    debian = tmp_path / "debian"
    files = dict(synthetic_dataset)
    files["train-images-idx3-ubyte"] = (
        files["train-images-idx3-ubyte"][:4] + (95).to_bytes(4, "big") + files["train-images-idx3-ubyte"][8:-784]
    )
    write_gz(debian, files)
    monkeypatch.setitem(vdata.DEBIAN_DIR, "fashion-mnist", debian)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte holds 95 images, expected 96.*--reinstall"):
        load_split("fashion-mnist", "train", tmp_path / "data", download=False)
    assert leftovers(vdata.raw_dir("fashion-mnist", tmp_path / "data")) == []


def test_checksum_mismatch_in_a_download_installs_nothing(synthetic_dataset, tmp_path, monkeypatch):
    def corrupt_download(root):
        raw = put_raw(synthetic_dataset, root)
        bad = bytearray(synthetic_dataset["train-images-idx3-ubyte"])
        bad[500] ^= 0xFF
        (raw / "train-images-idx3-ubyte").write_bytes(bytes(bad))

    monkeypatch.setitem(vdata.TORCHVISION_CLASS, "fashion-mnist", fake_torchvision(corrupt_download))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte has MD5 \w+, expected \w+.*run again to download"):
        vdata.ensure_raw_files("fashion-mnist", tmp_path / "data")
    raw = vdata.raw_dir("fashion-mnist", tmp_path / "data")
    assert leftovers(raw) == [] and not any(raw.iterdir())
    assert [p.name for p in raw.parent.iterdir()] == ["raw"]  # the download's scratch folder is gone


def test_no_network_says_how_to_get_the_data_and_leaves_nothing(synthetic_dataset, tmp_path, monkeypatch):
    def half_download_then_offline(root):
        raw = vdata.raw_dir("fashion-mnist", root)
        raw.mkdir(parents=True)
        (raw / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b half")
        raise OSError(errno.ENETUNREACH, "Network is unreachable")

    monkeypatch.setitem(vdata.TORCHVISION_CLASS, "fashion-mnist", fake_torchvision(half_download_then_offline))
    with pytest.raises(DataError) as e:
        load_split("fashion-mnist", "train", tmp_path / "data")
    raw = vdata.raw_dir("fashion-mnist", tmp_path / "data")
    assert f"fashion-mnist is not in {raw}" in str(e.value) and "Network is unreachable" in str(e.value)
    assert "connect to the internet" in str(e.value) and "apt-get install dataset-fashion-mnist" in str(e.value)
    assert not any(raw.iterdir()) and [p.name for p in raw.parent.iterdir()] == ["raw"]


def test_data_dir_that_is_a_file(synthetic_dataset, tmp_path):
    (tmp_path / "data").write_text("not a folder")
    with pytest.raises(DataError, match=r"data_dir .*data is a file, not a folder: pass a folder \(e.g. --data-dir"):
        load_split("fashion-mnist", "train", tmp_path / "data")
    (tmp_path / "data2").mkdir()
    (tmp_path / "data2" / "FashionMNIST").write_text("not a folder either")
    with pytest.raises(DataError, match=r"cannot create .*FashionMNIST/raw.*Choose a writable --data-dir"):
        load_split("fashion-mnist", "train", tmp_path / "data2")


def test_read_only_data_dir_cannot_be_created(synthetic_dataset, tmp_path, read_only_filesystem):
    with pytest.raises(DataError, match=r"cannot create .*FashionMNIST/raw: .*Permission denied.*writable --data-dir"):
        load_split("fashion-mnist", "train", tmp_path / "data")


def test_read_only_data_dir_cannot_take_the_debian_files(synthetic_dataset, tmp_path, monkeypatch, request):
    debian = tmp_path / "debian"
    write_gz(debian, synthetic_dataset)
    monkeypatch.setitem(vdata.DEBIAN_DIR, "fashion-mnist", debian)
    raw = vdata.raw_dir("fashion-mnist", tmp_path / "data")
    raw.mkdir(parents=True)
    request.getfixturevalue("read_only_filesystem")
    with pytest.raises(DataError, match=r"cannot write .*train-images-idx3-ubyte.*Permission denied.*writable"):
        load_split("fashion-mnist", "train", tmp_path / "data")
    assert leftovers(raw) == [] and not any(raw.iterdir())


def test_read_only_data_dir_cannot_take_a_download(synthetic_dataset, tmp_path, monkeypatch, request):
    downloads = []
    monkeypatch.setitem(vdata.TORCHVISION_CLASS, "fashion-mnist", fake_torchvision(downloads.append))
    raw = vdata.raw_dir("fashion-mnist", tmp_path / "data")
    raw.mkdir(parents=True)
    request.getfixturevalue("read_only_filesystem")
    with pytest.raises(DataError, match=r"cannot write .*FashionMNIST.*Permission denied.*writable --data-dir"):
        load_split("fashion-mnist", "train", tmp_path / "data")
    assert downloads == [] and not any(raw.iterdir())


# 2. Config ----------------------------------------------------------------------------------------------------

BAD_VALUES = [
    ("dataset", "cifar10"),
    ("dataset", None),
    ("data_dir", ""),
    ("data_dir", 3),
    ("input_dim", 0),
    ("input_dim", 100),
    ("input_dim", "784"),
    ("hidden_dim", 0),
    ("hidden_dim", -5),
    ("hidden_dim", 2.5),
    ("hidden_dim", "200"),
    ("latent_dim", 0),
    ("latent_dim", -2),
    ("latent_dim", 2.0),
    ("latent_dim", True),
    ("lr", 0.0),
    ("lr", -3e-4),
    ("lr", 3e4),
    ("lr", math.nan),
    ("lr", math.inf),
    ("lr", "3e-4"),
    ("lr", True),
    ("batch_size", 0),
    ("batch_size", -128),
    ("batch_size", 12.8),
    ("batch_size", False),
    ("num_epochs", 0),
    ("num_epochs", -1),
    ("num_epochs", "10"),
    ("seed", -1),
    ("seed", 0.5),
    ("seed", None),
    ("device", "tpu"),
    ("device", ""),
    ("device", "cpu:x"),
    ("device", "cuda:"),
    ("device", 0),
]


@pytest.mark.parametrize("field, value", BAD_VALUES)
def test_every_bad_config_value_is_a_config_error_naming_the_field(field, value):
    with pytest.raises(vconfig.ConfigError, match=rf"^config\.{field} must ") as e:
        Config(**{field: value})
    assert isinstance(e.value, ValueError) and f"got {value!r}" in str(e.value)


def test_a_path_is_a_fine_data_dir():
    assert Config(data_dir=Path("some") / "where").data_dir == str(Path("some") / "where")


def test_batch_size_larger_than_the_dataset(tiny_config, images):
    tiny_config.batch_size = 1000
    with pytest.raises(vconfig.ConfigError, match=r"config.batch_size \(1000\) is larger than .*512.*at most 512"):
        fit(tiny_config, *images, progress=False)


def test_device_this_machine_lacks(tiny_config, images, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    tiny_config.device = "cuda"
    with pytest.raises(vconfig.ConfigError, match=r"config.device is 'cuda', but this machine has no cuda.*'cpu'"):
        fit(tiny_config, *images, progress=False)


@pytest.mark.parametrize(
    "args, field",
    [
        (["--batch-size", "1000"], "batch_size"),  # known only once the data is loaded: 96 training images
        (["--device", "cpu:x"], "device"),
        (["--device", "cuda"], "device"),
        (["--hidden-dim", "-3"], "hidden_dim"),
        (["--lr", "nan"], "lr"),
        (["--seed", "-1"], "seed"),
    ],
)
def test_cli_bad_values_are_one_line_and_exit_2(args, field, synthetic_dataset, tmp_path, monkeypatch, capsys):
    put_raw(synthetic_dataset, tmp_path / "data")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as e:
        main(
            ["train", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--batch-size", "32", *args]
        )
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith(f"python -m vae: error: config.{field}")
    assert "Traceback" not in err and not (tmp_path / "run" / CHECKPOINT_NAME).exists()


def test_cli_bad_value_in_a_real_process_has_no_traceback(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "vae", "train", "--lr", "3e4", "--out", str(tmp_path / "run")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last == "python -m vae: error: config.lr must be in (0, 1], got 30000.0 (the seed uses 3e-4)"


# 3. Checkpoints -----------------------------------------------------------------------------------------------


class Payload:
    """A pickle that creates a marker file when unpickled: what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's remark on the pickle.dump file
@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_a_checkpoint_that_would_run_code_is_refused_and_runs_nothing(writer, tiny_config, tmp_path):
    path, marker = tmp_path / "evil.pt", tmp_path / "pwned"
    state = {"format_version": 1, "config": tiny_config.to_dict(), "model": Payload(marker)}
    if writer == "torch.save":
        torch.save(state, path)
    else:
        path.write_bytes(pickle.dumps(state))
    with pytest.raises(CheckpointError, match=rf"refused to load {path}: .*could run code") as e:
        load_model(path)
    assert "Use only checkpoints written by this package" in str(e.value)
    assert ("a reference to `getattr`" in str(e.value)) == (writer == "torch.save")  # named where torch says
    assert "\x1b[" not in str(e.value) and "weights_only` set to `False`" not in str(e.value)
    assert not marker.exists()
    if writer == "torch.save":  # the control: an unsafe load does run the payload
        torch.load(path, weights_only=False)
    else:
        pickle.loads(path.read_bytes())
    assert marker.exists()


def test_resume_with_another_latent_dim_explains_the_mismatch(tiny_config, images, tmp_path):
    tiny_config.num_epochs = 1
    fit(tiny_config, *images, out_dir=tmp_path, progress=False)
    other = Config(**{**tiny_config.to_dict(), "latent_dim": 8})
    with pytest.raises(CheckpointError, match=r"another config.*'latent_dim': \(4, 8\).*another --out"):
        fit(other, *images, out_dir=tmp_path, resume=True, progress=False)


def test_loading_into_a_model_of_another_shape_explains_the_mismatch(tiny_config, images, tmp_path):
    tiny_config.num_epochs = 1
    fit(tiny_config, *images, out_dir=tmp_path, progress=False)
    model = VAE(784, 32, 8)
    with pytest.raises(CheckpointError, match=r"holds a 784-32-4 VAE, not 784-32-8.*load_model") as e:
        load_weights(model, tmp_path / CHECKPOINT_NAME)
    assert str(tmp_path / CHECKPOINT_NAME) in str(e.value)
    load_weights(VAE(784, 32, 4), tmp_path / CHECKPOINT_NAME)  # the right shape loads


def test_weights_that_disagree_with_their_config_are_a_checkpoint_error(tiny_config, images, tmp_path):
    tiny_config.num_epochs = 1
    fit(tiny_config, *images, out_dir=tmp_path, progress=False)
    path = tmp_path / CHECKPOINT_NAME
    state = torch.load(path, weights_only=True)
    state["config"]["latent_dim"] = 8  # an edited file: the config says 8, the weights are for 4
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"holds a 784-32-4 VAE, not 784-32-8"):
        load_model(path)
    state["config"]["latent_dim"] = 0
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"has an invalid config: config.latent_dim must be >= 1"):
        load_model(path)


@pytest.mark.parametrize("keep", [0.5, 0.0])
def test_a_truncated_checkpoint_is_a_clear_error(keep, tiny_config, images, tmp_path):
    tiny_config.num_epochs = 1
    fit(tiny_config, *images, out_dir=tmp_path, progress=False)
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])
    with pytest.raises(CheckpointError, match=rf"{path} is truncated or not a checkpoint .*Retrain, or resume from"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="truncated"):
        fit(tiny_config, *images, out_dir=tmp_path, resume=True, progress=False)


@pytest.mark.parametrize("version", [0, 2])
def test_another_format_version_is_a_clear_message(version, tiny_config, images, tmp_path):
    tiny_config.num_epochs = 1
    fit(tiny_config, *images, out_dir=tmp_path, progress=False)
    path = tmp_path / CHECKPOINT_NAME
    torch.save({**torch.load(path, weights_only=True), "format_version": version}, path)
    with pytest.raises(CheckpointError, match=rf"format {version}, this package reads format 1\. Retrain"):
        load_model(path)


def test_a_foreign_file_is_a_clear_message(tmp_path):
    path = tmp_path / "someone_elses.pt"
    torch.save(VAE().state_dict(), path)  # a bare state_dict, as most tutorials save
    with pytest.raises(CheckpointError, match=r"not a checkpoint of this package: it looks like a bare state_dict.*"):
        load_model(path)
    torch.save(torch.zeros(3), path)
    with pytest.raises(CheckpointError, match=r"not a checkpoint of this package: it holds a Tensor; train one with"):
        load_model(path)


def test_a_missing_checkpoint_says_how_to_make_one(tmp_path):
    with pytest.raises(CheckpointError, match=r"no checkpoint at .*nowhere.pt: train one first with `python -m vae"):
        load_model(tmp_path / "nowhere.pt")


# 5. Numerics --------------------------------------------------------------------------------------------------


def poison_batch(monkeypatch, epoch: int, batch: int) -> None:
    """Make the `batch`-th training batch of `epoch` (both from 1) hold a NaN pixel."""
    iterate, epochs = vtrain.iterate_batches, []

    def poisoned(x, batch_size, generator):
        epochs.append(1)
        for i, xb in enumerate(iterate(x, batch_size, generator), start=1):
            if len(epochs) == epoch and i == batch:
                xb = xb.clone()
                xb[0, 0] = math.nan
            yield xb

    monkeypatch.setattr(vtrain, "iterate_batches", poisoned)


def test_a_poisoned_batch_stops_training_naming_epoch_and_batch(tiny_config, images, tmp_path, monkeypatch):
    poison_batch(monkeypatch, epoch=2, batch=5)
    with pytest.raises(TrainingDiverged, match=r"at epoch 2, batch 5/8; the checkpoint of epoch 1 in .* is kept") as e:
        fit(tiny_config, *images, out_dir=tmp_path, progress=False)
    assert "Lower the learning rate (now 0.001)" in str(e.value)
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert state["epoch"] == 1 and [r["epoch"] for r in state["history"]] == [1]
    assert e.value.history == state["history"]  # also kept for a caller without out_dir
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_an_lr_so_large_it_diverges(images):
    config = Config(lr=1.0, batch_size=64, num_epochs=2, device="cpu")  # the seed's 784-200-20 model
    with pytest.raises(TrainingDiverged, match=r"at epoch 1, batch \d+/8; nothing was saved.*\(now 1.0\)") as e:
        fit(config, *images, progress=False)
    assert e.value.history == []


@pytest.mark.parametrize("what", ["nan", "0-255"])
def test_images_that_are_not_in_0_1_are_refused_before_training(what, tiny_config, images, tmp_path):
    train, test = images
    train = train.clone()
    if what == "nan":
        train[100, 7] = math.nan
        found = "image 100 has NaN"
    else:
        train = train * 255
        found = r"image 0 has values in \[\d.*\]"
    with pytest.raises(ValueError, match=rf"train_x must hold pixel values in \[0, 1\], but {found}: divide 0-255"):
        fit(tiny_config, train, test, out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"test_x must be \(N, 784\)"):
        fit(tiny_config, images[0], test.reshape(-1, 28, 28), progress=False)
    assert not (tmp_path / CHECKPOINT_NAME).exists()


@pytest.mark.parametrize("bias", [1e4, -1e4, 1e30, -1e30, math.inf, -math.inf])
def test_the_logvar_head_never_gives_an_infinite_or_zero_sigma(bias):
    torch.manual_seed(0)
    model = VAE()
    with torch.no_grad():
        model.enc_logvar.bias.fill_(bias)
        model.enc_logvar.weight.mul_(1e3)
    x = torch.cat([torch.zeros(1, 784), torch.ones(1, 784), torch.rand(6, 784)])  # inputs in [0, 1]
    mu, logvar = model.encode(x)
    sigma = model.sigma(logvar)
    assert torch.isfinite(sigma).all() and (sigma > 0).all()
    z = model.reparameterize(mu, logvar, torch.Generator().manual_seed(0))
    assert torch.isfinite(z).all() and torch.isfinite(model.decode(z)).all()
    logits, _, _ = model(x, torch.Generator().manual_seed(0))
    assert torch.isfinite(logits).all()


# 6 and 7. Outputs and concurrency: the primitives (the report command will use them too) -------------------


def enospc_on_call(monkeypatch, n: int) -> None:
    """The `n`-th fsync (from 1) of an atomic write fails as a full disk does."""
    fsync, calls = vfiles.os.fsync, []

    def full(fd):
        calls.append(fd)
        if len(calls) == n:
            raise OSError(errno.ENOSPC, "No space left on device")
        fsync(fd)

    monkeypatch.setattr(vfiles.os, "fsync", full)


def test_disk_full_during_a_checkpoint_keeps_the_previous_one(tiny_config, images, tmp_path, monkeypatch):
    tiny_config.num_epochs = 1
    fit(tiny_config, *images, out_dir=tmp_path, progress=False)
    before = (tmp_path / CHECKPOINT_NAME).read_bytes()
    enospc_on_call(monkeypatch, 1)  # the save after epoch 2 fails; epoch 3 is never reached
    tiny_config.num_epochs = 3
    with pytest.raises(vfiles.OutputError, match=rf"cannot write {tmp_path}/checkpoint.pt \(No space left on dev"):
        fit(tiny_config, *images, out_dir=tmp_path, resume=True, progress=False)
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != vfiles.LOCK_NAME) == [CHECKPOINT_NAME]


def test_disk_full_for_a_metrics_file_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    vfiles.write_text_atomic(path, '{"test_loss": 251.08}\n')
    enospc_on_call(monkeypatch, 1)
    with pytest.raises(vfiles.OutputError, match=r"metrics.json \(No space left on device\)\. Free some disk space"):
        vfiles.write_text_atomic(path, '{"test_loss": 0}\n')
    assert path.read_text() == '{"test_loss": 251.08}\n' and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_disk_full_through_the_cli_is_one_line_exit_1(synthetic_dataset, tmp_path, monkeypatch, capsys):
    put_raw(synthetic_dataset, tmp_path / "data")
    enospc_on_call(monkeypatch, 1)
    argv = ["train", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--batch-size", "32"]
    assert main([*argv, "--hidden-dim", "8", "--latent-dim", "2", "--epochs", "1", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "\nerror: cannot write " in err and "No space left on device" in err and "Traceback" not in err


def test_an_out_dir_that_is_a_file_fails_before_training(tiny_config, images, tmp_path):
    (tmp_path / "run").write_text("a file")
    epochs = []
    with pytest.raises(vfiles.OutputError, match=r"cannot use .*run as an output folder.*choose another --out"):
        fit(tiny_config, *images, out_dir=tmp_path / "run", progress=False, callback=epochs.append)
    assert epochs == []


def test_a_missing_out_dir_is_created(tiny_config, images, tmp_path):
    tiny_config.num_epochs = 1
    fit(tiny_config, *images, out_dir=tmp_path / "a" / "b", progress=False)
    assert (tmp_path / "a" / "b" / CHECKPOINT_NAME).exists()


def test_two_trainings_into_one_folder_do_not_interleave(tiny_config, images, tmp_path):
    tiny_config.num_epochs = 1
    with vfiles.exclusive_lock(tmp_path):  # another run holds the folder
        with pytest.raises(vfiles.OutputError, match=r"is in use by another run \(pid \d+\).*or choose another --out"):
            fit(tiny_config, *images, out_dir=tmp_path, progress=False)
        assert not (tmp_path / CHECKPOINT_NAME).exists()
    fit(tiny_config, *images, out_dir=tmp_path, progress=False)  # free again once the other run ends
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["epoch"] == 1
