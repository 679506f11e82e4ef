"""A fresh Colab start, simulated for each notebook: its set-up cells clone the repository, change into the clone
and install the package from it; then `vae` is the clone's, its folders are the clone's, and experiments.ipynb
draws its first figure from the sweep stored in the clone.

What stands in for what:
- Colab: a fake `google.colab` module in sys.modules, and an empty working directory (Colab's /content).
- A machine without the package: the subprocess drops the dev environment's editable-install finder and any
  path into this checkout, and checks that `vae` cannot be found before the first cell runs.
- GitHub: REPO_URL is replaced by the file:// URL of a temporary git repository made from this working tree's
  files (tracked, and untracked but not ignored): the code as it is now, not as last committed.
- Colab's site-packages: PIP_TARGET, a temporary folder on sys.path, so that the dev environment is left alone;
  build isolation is off, so that pip downloads nothing.
The cells run in an IPython InteractiveShell, which runs `!git ...` and `%pip ...` as a notebook kernel does.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NAME = "fashion-mnist-vae"  # the folder `git clone` makes, from the URL's last part
SETUP_CELLS = 3  # the Colab cell, the parameters cell, the imports and device cell

# Runs in the fresh "Colab" process: argv = checkout, pip target, cells (JSON), report file, and what to run:
# "figure" (until a cell returns a Figure) or a number of cells.
DRIVER = r"""
import importlib.util, json, os, sys, types
from pathlib import Path

checkout, target, cells, report_file, until = sys.argv[1:6]
checkout = Path(checkout).resolve()
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
sys.path_hooks[:] = [h for h in sys.path_hooks if "__editable__" not in getattr(h, "__module__", "")]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != checkout]  # e.g. from PYTHONPATH
sys.path_importer_cache.clear()
report = {"found_before": importlib.util.find_spec("vae") is not None, "figure": None}
sys.path.append(target)  # where pip installs, as Colab's dist-packages
sys.modules["google.colab"] = types.ModuleType("google.colab")

from IPython.core.interactiveshell import InteractiveShell
from matplotlib.figure import Figure


class Shell(InteractiveShell):
    def enable_gui(self, gui=None):  # for `%matplotlib inline`: a kernel's shell has one; inline needs no GUI loop
        pass


shell = Shell.instance()
sources = json.loads(Path(cells).read_text())
for i, source in enumerate(sources):
    result = shell.run_cell(source)
    result.raise_error()
    if isinstance(result.result, Figure):
        report["figure"] = {"cell": i, "axes": len(result.result.get_axes())}
        break
    if until != "figure" and i + 1 == int(until):
        break
ns = shell.user_ns
report["cwd"] = os.getcwd()
report["vae"] = sys.modules["vae"].__file__
report["folders"] = {k: str(ns[k]) for k in ("fig_dir", "runs_dir", "sweep_dir") if k in ns}
if "config" in ns:
    report["folders"]["data_dir"] = ns["config"].data_dir
shell.run_cell(sources[0]).raise_error()  # the Colab cell again: inside the clone it does nothing
report["cwd_after_rerun"] = os.getcwd()
Path(report_file).write_text(json.dumps(report))
"""


@pytest.fixture(scope="module")
def origin(tmp_path_factory) -> str:
    """The file:// URL of a one-commit git repository holding this working tree's files as they are now."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and a git checkout")
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    repo = tmp_path_factory.mktemp("origin") / NAME
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():  # a file deleted but not yet committed is listed too
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, repo / name)
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.invalid", "-c", "commit.gpgsign=false"]
    for command in (["init", "-q"], ["add", "-A"], [*identity, "commit", "-q", "-m", "the working tree"]):
        subprocess.run(["git", *command], cwd=repo, capture_output=True, check=True)
    return repo.as_uri()


def start_on_colab(notebook: str, url: str, tmp_path: Path, until: str) -> dict:
    """Run the notebook's first cells in a fresh process that looks like a new Colab runtime; return its report."""
    notebook_cells = nbformat.read(REPO / "notebooks" / notebook, as_version=4).cells
    cells = [c.source for c in notebook_cells if c.cell_type == "code"]
    cells[0], found = re.subn(r'^REPO_URL = ".*?"', f'REPO_URL = "{url}"', cells[0], flags=re.MULTILINE)
    assert found == 1, f"{notebook}: no REPO_URL in the first code cell"
    content, target = tmp_path / "content", tmp_path / "site-packages"
    content.mkdir()
    (tmp_path / "cells.json").write_text(json.dumps(cells))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAE_", "PIP_")) and k != "PYTHONPATH"}
    env |= {"PIP_TARGET": str(target), "PIP_NO_BUILD_ISOLATION": "false", "PIP_NO_INDEX": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1", "MPLBACKEND": "agg"}  # fmt: skip
    argv = [str(REPO), str(target), str(tmp_path / "cells.json"), str(tmp_path / "report.json"), until]
    done = subprocess.run([sys.executable, "-c", DRIVER, *argv], cwd=content, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, f"{notebook}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads((tmp_path / "report.json").read_text())


def check_the_clone(report: dict, tmp_path: Path) -> Path:
    """The package was not there before; now the process works inside the clone and imports its `vae`."""
    clone = tmp_path / "content" / NAME
    assert report["found_before"] is False
    assert Path(report["cwd"]) == clone and Path(report["cwd_after_rerun"]) == clone
    assert Path(report["vae"]) == clone / "vae" / "__init__.py"
    installed = tmp_path / "site-packages"
    assert (installed / "vae" / "__init__.py").is_file() and list(installed.glob("fashion_mnist_vae-*.dist-info"))
    assert not list(installed.glob("*.pth")), "the install must be a plain one, not editable"
    return clone


@pytest.mark.parametrize("notebook", ["vae_fashion_mnist.ipynb", "latent_space.ipynb"])
def test_colab_start_works_inside_the_clone(origin, tmp_path, notebook):
    report = start_on_colab(notebook, origin, tmp_path, until=str(SETUP_CELLS))
    clone = check_the_clone(report, tmp_path)
    assert report["folders"] == {
        "fig_dir": str(clone / "figures" / "notebooks"),
        "runs_dir": str(clone / "runs"),
        "data_dir": str(clone / "data"),
    }


def test_colab_start_draws_the_experiments_from_the_stored_sweep_in_the_clone(origin, tmp_path):
    report = start_on_colab("experiments.ipynb", origin, tmp_path, until="figure")
    clone = check_the_clone(report, tmp_path)
    assert report["folders"]["sweep_dir"] == str(clone / "figures" / "experiments")
    assert report["figure"] is not None and report["figure"]["axes"] > 1, "no figure drawn from the stored sweep"
