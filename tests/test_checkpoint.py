"""Checkpoints: a round trip restores everything; damaged, truncated, foreign, unsafe, old or hand-edited files
are a CheckpointError naming the file, never a silent load or a traceback later; a full disk keeps the old file."""

import errno
import io
import os
import pickle
import struct
import zipfile
from pathlib import Path

import pytest
import torch

from vae.config import Config
from vae.lab import checkpoint as vcheckpoint
from vae.lab.checkpoint import CheckpointError, load_checkpoint, load_model, load_weights, save_checkpoint
from vae.lab.files import OutputError
from vae.model import VAE
from vae.research.models import GatedVAE

HISTORY = [  # as fit records them: losses in nats per image, and seconds
    {"epoch": e, "train_loss": train, "train_bce": train - 20, "train_kl": 20.0, "test_loss": test,
     "test_bce": test - 21, "test_kl": 21.0, "train_seconds": 1.5, "seconds": 2.0}
    for e, train, test in ((1, 301.5, 290.25), (2, 280, 275.0))
]  # fmt: skip
NAN = float("nan")
DATA_SIZES = {"train_images": 96, "test_images": 32}


def adam(**moments) -> dict:
    """An Adam state_dict for one parameter whose state holds `moments`."""
    return {"state": {0: moments}, "param_groups": [{"lr": 1e-3, "params": [0]}]}


def trained(config: Config) -> tuple[VAE, torch.optim.Optimizer]:
    """A 784-32-4 VAE and its Adam after one step, so that the optimizer has state to save."""
    torch.manual_seed(0)
    model = VAE.from_config(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    model(torch.rand(8, 784))[0].sum().backward()
    optimizer.step()
    return model, optimizer


def save(path: Path, config: Config, **changes) -> tuple[VAE, torch.optim.Optimizer]:
    model, optimizer = trained(config)
    fields = {"history": HISTORY, "rng_state": torch.Generator().manual_seed(7).get_state(), "data_sizes": DATA_SIZES}
    save_checkpoint(path, model=model, optimizer=optimizer, config=config, **{**fields, **changes})
    return model, optimizer


@pytest.fixture
def saved(tiny_config, tmp_path) -> Path:
    path = tmp_path / "run" / "checkpoint.pt"
    save(path, tiny_config)
    return path


def edit(path: Path, **changes) -> None:
    """Rewrite the checkpoint with some fields changed, as a hand edit would (its checksums are then valid)."""
    torch.save({**torch.load(path, weights_only=True), **changes}, path)


def test_a_round_trip_restores_everything(tiny_config, tmp_path):
    path = tmp_path / "checkpoint.pt"
    model, optimizer = save(path, tiny_config)
    state = load_checkpoint(path)
    assert set(state) == set(vcheckpoint.KEYS) and state["format_version"] == vcheckpoint.FORMAT_VERSION == 2
    assert state["config"] == tiny_config.to_dict() and state["history"] == HISTORY and state["epoch"] == 2
    assert state["data_sizes"] == DATA_SIZES
    assert torch.equal(state["rng_state"], torch.Generator().manual_seed(7).get_state())
    assert all(torch.equal(state["model"][k], v) for k, v in model.state_dict().items())
    adam = optimizer.state_dict()["state"]
    assert all(torch.equal(state["optimizer"]["state"][i][k], adam[i][k]) for i in adam for k in adam[i])
    loaded, config, history = load_model(path)
    assert config == tiny_config and history == HISTORY and not loaded.training
    x = torch.rand(5, 784)
    assert torch.equal(loaded.decode(loaded.encode(x)[0]), model.decode(model.encode(x)[0]))


def records(path: Path) -> dict[str, tuple[int, int]]:
    """{record name: (offset of its first data byte, its size)} of a checkpoint's zip archive."""
    found, data = {}, path.read_bytes()
    for info in zipfile.ZipFile(path).infolist():
        name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
        found[info.filename] = (info.header_offset + 30 + name_length + extra_length, info.file_size)
    return found


def flip(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0xFF
    path.write_bytes(bytes(data))


def tensors(state: dict) -> list[torch.Tensor]:
    """Every tensor of a checkpoint: the weights, then Adam's moments."""
    adam = state["optimizer"]["state"]
    return list(state["model"].values()) + [adam[i][k] for i in sorted(adam) for k in sorted(adam[i])]


def test_a_flipped_byte_in_a_tensor_is_damage_not_a_silent_load(saved):
    reference = tensors(torch.load(saved, weights_only=True))
    name, (start, size) = max(records(saved).items(), key=lambda r: r[1][1])  # a 32x784 matrix
    flip(saved, start + size // 2)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(saved)
    assert str(e.value) == f"{saved} is damaged (checksum mismatch in {name}): retrain, or resume from a copy."
    damaged = tensors(torch.load(saved, weights_only=True))  # the control: torch.load alone does not notice
    assert sum(not torch.equal(a, b) for a, b in zip(damaged, reference, strict=True)) == 1


def test_flipped_bytes_anywhere_in_the_stored_records_never_load(saved):
    payload = [p for start, size in records(saved).values() for p in range(start, start + size)]
    for position in payload[:: len(payload) // 20][:20]:  # 20 positions spread across every record
        flip(saved, position)
        with pytest.raises(CheckpointError, match=rf"^{saved} is damaged \(checksum mismatch"):
            load_checkpoint(saved)
        flip(saved, position)  # undone
    load_checkpoint(saved)


def test_a_flipped_byte_anywhere_is_an_error_naming_the_file_or_changes_nothing(saved):
    reference = load_checkpoint(saved)
    size = saved.stat().st_size
    for position in range(0, size, size // 20):  # headers, padding and the directory too
        flip(saved, position)
        try:
            state = load_checkpoint(saved)
        except CheckpointError as e:
            assert str(saved) in str(e)
        else:  # a byte no reader uses (alignment padding, a timestamp): the contents are unchanged
            assert state["history"] == reference["history"] and state["config"] == reference["config"]
            assert all(torch.equal(state["model"][k], v) for k, v in reference["model"].items())
        flip(saved, position)


@pytest.mark.parametrize("keep", [0.5, 0.0])
def test_a_truncated_checkpoint_is_a_clear_error(keep, saved):
    saved.write_bytes(saved.read_bytes()[: int(saved.stat().st_size * keep)])
    with pytest.raises(CheckpointError, match=rf"{saved} is truncated or not a checkpoint .*Retrain, or resume from"):
        load_checkpoint(saved)
    with pytest.raises(CheckpointError, match="truncated"):
        load_model(saved)


def test_a_foreign_file_is_a_clear_message(tmp_path):
    path = tmp_path / "someone_elses.pt"
    torch.save(VAE().state_dict(), path)  # a bare state_dict, as most tutorials save
    with pytest.raises(CheckpointError, match=r"not a checkpoint of this package: it looks like a bare state_dict.*"):
        load_model(path)
    torch.save(torch.zeros(3), path)
    with pytest.raises(CheckpointError, match=r"not a checkpoint of this package: it holds a Tensor; train one with"):
        load_model(path)
    path.write_text("epoch,test_loss\n1,290.25\n")
    with pytest.raises(CheckpointError, match=rf"^{path} is truncated or not a checkpoint \(not a zip archive\)"):
        load_model(path)


def test_a_decode_error_is_a_checkpoint_error_naming_the_file(saved):
    """Valid checksums over an invalid pickle: a string that is not UTF-8."""
    source, rewritten = zipfile.ZipFile(io.BytesIO(saved.read_bytes())), io.BytesIO()
    with zipfile.ZipFile(rewritten, "w") as archive:
        for info in source.infolist():
            data = source.read(info)
            archive.writestr(
                info, data.replace(b"train_loss", b"\xff\xferain_loss") if "data.pkl" in info.filename else data
            )
    saved.write_bytes(rewritten.getvalue())
    with pytest.raises(CheckpointError, match=rf"^{saved} is truncated or not a checkpoint \(UnicodeDecodeError"):
        load_checkpoint(saved)


class Payload:
    """A pickle that runs a shell command when unpickled: what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's remark on the pickle.dump file
@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_a_checkpoint_that_would_run_code_is_refused_and_runs_nothing(writer, tiny_config, tmp_path):
    path, marker = tmp_path / "evil.pt", tmp_path / "pwned"
    state = {"format_version": 2, "config": tiny_config.to_dict(), "model": Payload(marker)}
    if writer == "torch.save":
        torch.save(state, path)
        expected = rf"^refused to load {path}: it holds a reference to `(posix|nt).system`, .*could run code"
    else:  # not a zip archive: refused before anything unpickles it
        path.write_bytes(pickle.dumps(state))
        expected = rf"^{path} is truncated or not a checkpoint"
    with pytest.raises(CheckpointError, match=expected) as e:
        load_model(path)
    assert "\x1b[" not in str(e.value) and "weights_only` set to `False`" not in str(e.value)
    assert not marker.exists()
    if writer == "torch.save":  # the control: an unsafe load does run the payload
        torch.load(path, weights_only=False)
    else:
        pickle.loads(path.read_bytes())
    assert marker.exists()


@pytest.mark.parametrize("version", [1, 3, "2"])
def test_another_format_version_is_a_clear_message(version, saved):
    edit(saved, format_version=version)
    with pytest.raises(CheckpointError, match=rf"format {version!r}, this package reads format 2\. Retrain"):
        load_model(saved)


def test_a_checkpoint_without_a_field_is_incomplete(saved):
    state = torch.load(saved, weights_only=True)
    del state["data_sizes"]
    torch.save(state, saved)
    with pytest.raises(CheckpointError, match=rf"^{saved} lacks \['data_sizes'\]: it is incomplete"):
        load_checkpoint(saved)


@pytest.mark.parametrize(
    "field, value",
    [
        ("history", "abc"),
        ("history", [{k: v for k, v in HISTORY[0].items() if k != "epoch"}, HISTORY[1]]),  # a record without its epoch
        ("history", [{**HISTORY[0], "epoch": "1"}, HISTORY[1]]),
        ("history", [{**HISTORY[0], "train_loss": "301.5"}, HISTORY[1]]),
        ("history", [{**HISTORY[0], "test_loss": True}, HISTORY[1]]),
        ("history", [3]),
        ("history", []),  # no epoch at all, though the checkpoint says 2
        ("history", HISTORY[:1]),  # 1 epoch, though the checkpoint says 2
        ("history", HISTORY[::-1]),  # epochs 2, 1
        ("history", [HISTORY[0], {k: v for k, v in HISTORY[1].items() if k != "test_bce"}]),  # what plots read
        ("history", [HISTORY[0], {**HISTORY[1], "test_loss": NAN}]),
        ("history", [HISTORY[0], {**HISTORY[1], "seconds": float("inf")}]),
        ("optimizer", None),
        ("optimizer", adam(step=torch.tensor(1.0))),  # no moments: Adam's first step would fail on them
        ("optimizer", {"state": {}}),
        ("optimizer", adam(step=torch.tensor(1.0), exp_avg=torch.zeros(3), exp_avg_sq=torch.zeros(4))),
        ("model", None),
        ("rng_state", [1, 2, 3]),
        ("rng_state", torch.zeros(5)),  # float, not uint8
        ("rng_state", torch.zeros(2, 5, dtype=torch.uint8)),
        ("data_sizes", {"train_images": -1}),
        ("data_sizes", {"train_images": 96.0}),
        ("data_sizes", "96"),
    ],
)
def test_a_hand_edited_field_is_a_checkpoint_error_naming_the_file(field, value, saved):
    edit(saved, **{field: value})
    with pytest.raises(CheckpointError, match=rf"^{saved} has a malformed {field} \(.*\): it was edited or damaged"):
        load_checkpoint(saved)


def test_a_history_without_the_validation_loss_of_a_run_with_a_validation_split_is_refused(saved):
    config = torch.load(saved, weights_only=True)["config"]
    edit(saved, config={**config, "validation_images": 10})  # every record then needs its val_loss
    with pytest.raises(CheckpointError, match=rf"^{saved} has a malformed history \(.*'val_loss'.*\): it was edited"):
        load_checkpoint(saved)
    edit(saved, history=[{**r, "val_loss": r["test_loss"] + 1} for r in HISTORY])
    assert load_checkpoint(saved)["history"][1]["val_loss"] == 276.0


def test_an_emptied_history_is_refused_not_reported_or_resumed_as_another_run(saved):
    edit(saved, history=[], epoch=0)  # the weights are still those of 2 epochs
    with pytest.raises(CheckpointError, match=rf"^{saved} has a malformed history \(.*\): it was edited or damaged"):
        load_model(saved)


def test_nan_weights_are_refused_at_load_naming_the_file(saved):
    weights = torch.load(saved, weights_only=True)["model"]
    edit(saved, model={**weights, "enc_mu.bias": torch.full_like(weights["enc_mu.bias"], NAN)})
    with pytest.raises(CheckpointError) as e:
        load_model(saved)
    assert str(e.value) == (
        f"{saved} has a malformed model (enc_mu.bias holds NaN or infinite values): it was edited or damaged. "
        "Retrain, or resume from a copy."
    )


def test_a_damaged_zip_end_record_is_one_line_naming_the_file(saved):
    """The end of the archive: its directory's end record (and zip64 locator), where zipfile starts reading."""
    reference, size = load_checkpoint(saved), saved.stat().st_size
    for position in range(size - 100, size - 7, 3):  # 8 bytes flipped at each, as in issue's n - 30
        original = saved.read_bytes()
        data = bytearray(original)
        data[position : position + 8] = bytes(b ^ 0xFF for b in data[position : position + 8])
        saved.write_bytes(bytes(data))
        try:
            state = load_checkpoint(saved)
        except CheckpointError as e:
            assert str(saved) in str(e) and "\n" not in str(e)
        else:  # bytes that no reader uses: the contents are unchanged
            assert state["history"] == reference["history"]
            assert all(torch.equal(state["model"][k], v) for k, v in reference["model"].items())
        saved.write_bytes(original)


def test_weights_that_disagree_with_their_config_are_a_checkpoint_error(saved):
    config = torch.load(saved, weights_only=True)["config"]
    edit(saved, config={**config, "latent_dim": 8})  # the config says 8, the weights are for 4
    with pytest.raises(CheckpointError, match=r"holds a 784-32-4 VAE, not 784-32-8"):
        load_model(saved)
    edit(saved, config={**config, "latent_dim": 0})
    with pytest.raises(CheckpointError, match=r"has an invalid config: config.latent_dim must be >= 1"):
        load_model(saved)
    edit(saved, config="784-32-4")
    with pytest.raises(CheckpointError, match=rf"^{saved} has an invalid config"):
        load_model(saved)


def test_loading_into_a_model_of_another_shape_explains_the_mismatch(saved):
    with pytest.raises(CheckpointError, match=r"holds a 784-32-4 VAE, not 784-32-8.*load_model") as e:
        load_weights(VAE(784, 32, 8), saved)
    assert str(saved) in str(e.value)
    load_weights(VAE(784, 32, 4), saved)  # the right shape loads
    with pytest.raises(CheckpointError, match=r"holds a 784-32-4 VAE, not 784-32-4 gated"):
        load_weights(GatedVAE(784, 32, 4), saved)  # same sizes, another architecture


def test_a_missing_checkpoint_says_how_to_make_one(tmp_path):
    with pytest.raises(CheckpointError) as e:
        load_model(tmp_path / "nowhere.pt")
    assert (
        str(e.value)
        == f"no checkpoint at {tmp_path}/nowhere.pt: train one first with `python -m vae train --out {tmp_path}`."
    )


def test_disk_full_during_a_save_keeps_the_previous_checkpoint(tiny_config, saved, monkeypatch):
    before = saved.read_bytes()
    write_bytes = Path.write_bytes

    def full_disk(self, data):
        if self.name.startswith(".checkpoint.pt."):
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    with pytest.raises(OutputError, match=rf"cannot write {saved} \(No space left on device\)\. Free some disk"):
        save(saved, tiny_config, history=HISTORY * 2)
    assert saved.read_bytes() == before and [p.name for p in saved.parent.iterdir()] == ["checkpoint.pt"]


def test_a_real_full_disk_keeps_the_previous_checkpoint(tiny_config, tmpfs):
    path = tmpfs / "checkpoint.pt"
    save(path, tiny_config)  # ~630 KB: the next one cannot sit beside it on a 1 MiB disk
    before = path.read_bytes()
    with pytest.raises(OutputError, match=rf"cannot write {path} \(No space left on device\)"):
        save(path, tiny_config, history=HISTORY[:1])
    assert path.read_bytes() == before and [p.name for p in tmpfs.iterdir()] == ["checkpoint.pt"]
    assert load_checkpoint(path)["history"] == HISTORY
