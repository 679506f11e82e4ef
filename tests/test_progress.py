"""vae.progress: a live bar in a terminal or a notebook; in a log, a line when a step starts and one when it ends."""

import io
import re
import sys

import pytest

from vae import progress

END = re.compile(r"(.+) \.\.\. (\d+\.\d) s")  # "seed 1: IWAE K = 10 on 32 images ... 0.4 s"


def logged_steps(err: str) -> list[str]:
    """The steps a log shows, in order; each must have its start line just before its end line (none nest here)."""
    lines = err.splitlines()
    names = [END.fullmatch(line).group(1) for line in lines if END.fullmatch(line)]
    starts = [line.removesuffix(" ...") for line in lines if line.endswith(" ...")]
    assert starts == names, "a step without its start or its end line"
    return names


@pytest.fixture
def log(monkeypatch):
    """No live bar: stderr is a log file."""
    monkeypatch.setattr(progress, "live_bar", lambda: False)


class Terminal(io.StringIO):
    """A stderr that is a terminal, which tqdm draws on (set in the test itself: pytest resets sys.stderr)."""

    def isatty(self):
        return True


def test_in_a_log_a_step_prints_its_name_then_its_seconds(log, capfd):
    with progress.step("IWAE K = 10 on 32 images", "seed 1", total=32) as bar:
        bar.update(32)  # a no-op without a live bar
    out, err = capfd.readouterr()
    assert out == "" and "\r" not in err
    first, last = err.splitlines()
    assert first == "seed 1: IWAE K = 10 on 32 images ..."
    assert END.fullmatch(last).group(1) == "seed 1: IWAE K = 10 on 32 images"
    assert logged_steps(err) == ["seed 1: IWAE K = 10 on 32 images"]


def test_without_a_label_the_name_stands_alone(log, capfd):
    with progress.step("5-NN accuracy on pixels"):
        pass
    assert logged_steps(capfd.readouterr().err) == ["5-NN accuracy on pixels"]


def test_a_step_that_fails_never_prints_its_seconds(log, capfd):
    with pytest.raises(KeyboardInterrupt), progress.step("t-SNE", "seed 0"):
        raise KeyboardInterrupt
    assert capfd.readouterr().err == "seed 0: t-SNE ...\n"


def test_with_show_false_nothing_is_printed(log, capfd, monkeypatch):
    with progress.step("t-SNE", "seed 0", show=False) as bar:
        bar.update()
    assert capfd.readouterr() == ("", "")
    monkeypatch.setattr(sys, "stderr", Terminal())
    with progress.step("t-SNE", "seed 0", show=False):
        pass
    assert sys.stderr.getvalue() == ""


def test_in_a_terminal_a_tqdm_bar_counts_to_its_total_and_no_log_line_is_printed(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with progress.step("IWAE K = 10 on 32 images", "seed 1", total=32, unit="image") as bar:
        for _ in range(4):
            bar.update(8)
    shown = terminal.getvalue()
    assert "\r" in shown and "seed 1: IWAE K = 10 on 32 images: 100%" in shown and "32/32" in shown
    assert not any(END.fullmatch(line) for line in shown.replace("\r", "\n").splitlines())


def test_in_a_terminal_a_step_without_a_total_shows_its_name_and_elapsed_time(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with progress.step("t-SNE of 20 test images", "seed 2"):
        pass
    assert re.search(r"\rseed 2: t-SNE of 20 test images \.\.\. 00:00", terminal.getvalue())


def test_the_bar_is_live_in_a_terminal_or_a_notebook_only(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a file: not a terminal
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    assert not progress.live_bar()
    monkeypatch.setitem(sys.modules, "ipykernel", sys)  # imported: we run inside a notebook's kernel
    assert progress.live_bar()
    monkeypatch.delitem(sys.modules, "ipykernel")
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert progress.live_bar()
