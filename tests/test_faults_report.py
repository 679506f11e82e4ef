"""Faults in the report's outputs (issue 6, items 6 and 7): a missing or read-only figures folder, a full disk,
a repeated run, and two runs into one folder at once."""

import errno
import json
from pathlib import Path

import pytest
from conftest import write_gz
from test_faults import read_only_filesystem  # noqa: F401 -- a fixture

from vae import Config
from vae import data as vdata
from vae import files as vfiles
from vae.__main__ import main
from vae.plots import FIGURE_NAMES
from vae.report import METRICS_NAME, ReportOptions, make_report

# metrics.json keys that differ between two runs of the same experiment: clocks, dates and the paths given.
VOLATILE = ("seconds", "date", "wall.", "checkpoint", "options.runs_dir", "options.cache_dir")


@pytest.fixture
def config(synthetic_dataset, tmp_path, monkeypatch) -> Config:
    """A tiny config on the synthetic fashion-mnist (96 train, 32 test images), as the Debian package's files."""
    write_gz(tmp_path / "debian", synthetic_dataset)
    monkeypatch.setitem(vdata.DEBIAN_DIR, "fashion-mnist", tmp_path / "debian")
    return Config(hidden_dim=16, latent_dim=3, batch_size=32, device="cpu", data_dir=str(tmp_path / "data"))


def options(root: Path, fig_dir: Path, **kw) -> ReportOptions:
    paths = {"report_path": root / "REPORT.md", "runs_dir": root / "runs", "cache_dir": root / "cache"}
    return ReportOptions(
        fig_dir=str(fig_dir), **{k: str(v) for k, v in paths.items()}, tsne_perplexity=5.0, smoke=True, **kw
    )


def outputs(fig_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(fig_dir.iterdir())}


def test_a_missing_figures_folder_is_created_and_a_second_run_writes_the_same_files(config, tmp_path):
    first, second = tmp_path / "a" / "figures", tmp_path / "b" / "deeper" / "figures"  # neither exists yet
    make_report(config, options(tmp_path / "a", first))
    make_report(config, options(tmp_path / "b", second))  # trained and evaluated afresh, no shared cache
    a, b = outputs(first), outputs(second)
    assert sorted(a) == sorted([vfiles.LOCK_NAME, METRICS_NAME] + [f"{n}.png" for n in FIGURE_NAMES]) == sorted(b)
    for name in FIGURE_NAMES:
        assert a[f"{name}.png"] == b[f"{name}.png"], f"{name}.png differs"
    ma, mb = json.loads(a[METRICS_NAME]), json.loads(b[METRICS_NAME])
    assert ma.keys() == mb.keys()
    stable = [k for k in ma if not any(v in k for v in VOLATILE)]
    assert {k: ma[k] for k in stable} == {k: mb[k] for k in stable}
    assert "test_loss.mean" in stable and "seed0.kl_per_dim" in stable and "history.test_loss" in stable


def test_a_read_only_figures_folder_is_a_clear_error_and_keeps_the_metrics(config, tmp_path, request):
    fig_dir = tmp_path / "figures"
    make_report(config, options(tmp_path, fig_dir))
    before = outputs(fig_dir)
    request.getfixturevalue("read_only_filesystem")
    with pytest.raises(vfiles.OutputError, match=rf"cannot write {fig_dir}/\w+.png \(Permission denied\)\. Free"):
        make_report(config, options(tmp_path, fig_dir))
    assert outputs(fig_dir) == before


def test_a_figures_folder_that_cannot_be_created_fails_before_any_work(config, tmp_path, request, monkeypatch):
    trained = []
    monkeypatch.setattr("vae.report.fit", lambda *a, **k: trained.append(a))
    request.getfixturevalue("read_only_filesystem")
    with pytest.raises(vfiles.OutputError, match=r"cannot use .*figures as an output folder \(Permission denied\)"):
        make_report(config, options(tmp_path, tmp_path / "figures"))
    assert trained == [] and not (tmp_path / "figures").exists()


def test_disk_full_while_writing_the_metrics_keeps_the_previous_files(config, tmp_path, monkeypatch):
    fig_dir = tmp_path / "figures"
    make_report(config, options(tmp_path, fig_dir))
    before = (fig_dir / METRICS_NAME).read_bytes()
    checkpoint = (tmp_path / "runs" / "seed0" / "checkpoint.pt").read_bytes()
    write_text = Path.write_text

    def full_disk(self, *args, **kwargs):
        if self.name.startswith(f".{METRICS_NAME}."):  # the temporary file of metrics.json
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(vfiles.OutputError, match=rf"cannot write {fig_dir}/metrics.json \(No space left on device\)"):
        make_report(config, options(tmp_path, fig_dir))
    assert (fig_dir / METRICS_NAME).read_bytes() == before
    assert (tmp_path / "runs" / "seed0" / "checkpoint.pt").read_bytes() == checkpoint
    assert not [p.name for p in fig_dir.iterdir() if p.name.endswith(".tmp")]


def test_two_reports_into_one_folder_do_not_interleave(config, tmp_path, capsys):
    fig_dir = tmp_path / "figures"
    with vfiles.exclusive_lock(fig_dir):  # another report is writing there
        with pytest.raises(vfiles.OutputError, match=r"figures is in use by another run \(pid \d+\).*--fig-dir"):
            make_report(config, options(tmp_path, fig_dir))
        assert [p.name for p in fig_dir.iterdir()] == [vfiles.LOCK_NAME]  # nothing written
        argv = ["report", "--smoke", "--fig-dir", str(fig_dir), "--data-dir", config.data_dir, "--device", "cpu"]
        argv += ["--runs-dir", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache")]
        assert main([*argv, "--report-path", str(tmp_path / "REPORT.md")]) == 1
        assert f"error: {fig_dir} is in use by another run (pid " in capsys.readouterr().err
        assert not (tmp_path / "runs").exists() and not (tmp_path / "REPORT.md").exists()
    make_report(config, options(tmp_path, fig_dir))  # free once the other run has finished
    assert (fig_dir / METRICS_NAME).exists()
