"""Progress of the long steps (training, the IWAE estimate, kNN, t-SNE), on stderr.

In a terminal or a notebook, a `tqdm.auto` bar; in a log file, where a bar would be a mess of carriage returns,
one line when a step starts and one with its seconds when it ends:

    seed 1: IWAE K = 1000 on 10000 images ...
    seed 1: IWAE K = 1000 on 10000 images ... 80.3 s

Nothing here draws a random number or changes the order of a computation, so progress never alters a result.
"""

import sys
import threading
import time
from contextlib import contextmanager

from tqdm.auto import tqdm


def live_bar() -> bool:
    """A live progress bar in a terminal or a notebook; in a log file (stderr not a terminal), lines instead."""
    return sys.stderr.isatty() or "ipykernel" in sys.modules


@contextmanager
def step(what: str, label: str | None = None, total: int | None = None, unit: str = "it", show: bool = True):
    """Name the step `what` (prefixed "label: ") while the block runs; yield a tqdm bar for the block to update.

    With `total`, the bar counts units (bar.update(n)); without one, scikit-learn gives no callbacks, so the bar
    only shows the elapsed time. In a log, the start and end lines instead, and the bar is a no-op; with
    show=False, nothing at all.
    """
    name = f"{label}: {what}" if label else what
    live = show and live_bar()
    if show and not live:
        print(f"{name} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    shape = None if total else "{desc} ... {elapsed}"  # no total: the elapsed time alone
    with tqdm(total=total, desc=name, unit=unit, bar_format=shape, disable=not live) as bar:
        with _ticking(bar, live and not total):
            yield bar
    if show and not live:
        print(f"{name} ... {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)


@contextmanager
def _ticking(bar, on: bool):
    """Redraw `bar` every second while the block runs, so that its elapsed time moves without updates."""
    if not on:
        yield
        return
    done = threading.Event()

    def tick():
        while not done.wait(1.0):  # True once the block has ended
            bar.refresh()

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()
