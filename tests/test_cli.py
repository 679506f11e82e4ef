import pytest
from conftest import write_gz

from vae import data as vdata
from vae.__main__ import main


@pytest.mark.parametrize(
    "args, field",
    [
        (["--lr", "3e4"], "lr"),
        (["--latent-dim", "0"], "latent_dim"),
        (["--dataset", "cifar"], "dataset"),
        (["--epochs", "-1"], "num_epochs"),
    ],
)
def test_bad_option_is_one_line_and_exit_2(args, field, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", *args])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("python -m vae: error: config." + field)
    assert "Traceback" not in "".join(err)


def test_train_writes_a_checkpoint_and_resumes(synthetic_dataset, tmp_path, monkeypatch, capsys):
    debian = tmp_path / "debian"
    write_gz(debian, synthetic_dataset)
    monkeypatch.setitem(vdata.DEBIAN_DIR, "fashion-mnist", debian)
    common = [
        "train",
        "--data-dir",
        str(tmp_path / "data"),
        "--out",
        str(tmp_path / "run"),
        "--batch-size",
        "32",
        "--hidden-dim",
        "16",
        "--latent-dim",
        "2",
        "--device",
        "cpu",
    ]
    assert main([*common, "--epochs", "1"]) == 0
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    assert main([*common, "--epochs", "2", "--resume"]) == 0
    out = capsys.readouterr().out
    assert "epoch 2: test -ELBO" in out and "nats per image" in out


def test_missing_data_is_a_clear_error(synthetic_dataset, tmp_path, monkeypatch, capsys):
    def no_network(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: no route to host")

    monkeypatch.setitem(vdata.TORCHVISION_CLASS, "fashion-mnist", no_network)
    assert main(["train", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "no route to host" in err and "apt-get install dataset-fashion-mnist" in err
