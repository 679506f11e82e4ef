import pytest
import torch
from conftest import write_gz

from vae import DataError, class_names, load_split
from vae import data as vdata


def test_loads_files_already_in_torchvision_layout(synthetic_dataset, tmp_path):
    raw = vdata.raw_dir("fashion-mnist", tmp_path)
    raw.mkdir(parents=True)
    for name, b in synthetic_dataset.items():
        (raw / name).write_bytes(b)
    x, y = load_split("fashion-mnist", "train", tmp_path, download=False)
    assert x.shape == (96, 784) and x.dtype == torch.float32 and y.shape == (96,) and y.dtype == torch.int64
    first = torch.frombuffer(bytearray(synthetic_dataset["train-images-idx3-ubyte"][16 : 16 + 784]), dtype=torch.uint8)
    torch.testing.assert_close(x[0], first.float() / 255)
    assert y[0].item() == synthetic_dataset["train-labels-idx1-ubyte"][8]
    x_test, _ = load_split("fashion-mnist", "test", tmp_path, download=False)
    assert x_test.shape == (32, 784)


def test_decompresses_the_debian_package(synthetic_dataset, tmp_path, monkeypatch):
    debian = tmp_path / "debian"
    write_gz(debian, synthetic_dataset)
    monkeypatch.setitem(vdata.DEBIAN_DIR, "fashion-mnist", debian)
    x, _ = load_split("fashion-mnist", "test", tmp_path / "data", download=False)
    assert x.shape == (32, 784)
    raw = vdata.raw_dir("fashion-mnist", tmp_path / "data")
    assert sorted(p.name for p in raw.iterdir()) == sorted(synthetic_dataset)  # no temporary files left


def test_download_is_the_last_resort(synthetic_dataset, tmp_path, monkeypatch):
    calls = []

    def fake_torchvision(root, train, download):
        calls.append(root)
        raw = vdata.raw_dir("fashion-mnist", root)
        raw.mkdir(parents=True)
        for name, b in synthetic_dataset.items():
            (raw / name).write_bytes(b)

    monkeypatch.setitem(vdata.TORCHVISION_CLASS, "fashion-mnist", fake_torchvision)
    vdata.ensure_raw_files("fashion-mnist", tmp_path / "data")
    assert len(calls) == 1
    vdata.ensure_raw_files("fashion-mnist", tmp_path / "data")  # now found locally
    assert len(calls) == 1


def test_corrupt_file_is_named_with_the_remedy(synthetic_dataset, tmp_path):
    raw = vdata.raw_dir("fashion-mnist", tmp_path)
    raw.mkdir(parents=True)
    for name, b in synthetic_dataset.items():
        (raw / name).write_bytes(b)
    bad = bytearray(synthetic_dataset["t10k-images-idx3-ubyte"])
    bad[100] ^= 0xFF
    (raw / "t10k-images-idx3-ubyte").write_bytes(bytes(bad))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte has MD5 .* Delete .* run again"):
        load_split("fashion-mnist", "test", tmp_path, download=False)


def test_missing_data_without_download_says_how_to_get_it(synthetic_dataset, tmp_path):
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_split("fashion-mnist", "train", tmp_path, download=False)


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
