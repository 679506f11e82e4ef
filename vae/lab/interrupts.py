"""SIGTERM handled as Ctrl-C is: during `sigterm_as_interrupt()`, it raises Terminated (a KeyboardInterrupt) where the
program is, so that the same clean-up runs (staged writes are undone) and the command line prints one line."""

import contextlib
import signal
import threading


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it ends as Ctrl-C does: clean-up runs, one line is printed."""


def _raise_terminated(signum, frame):
    raise Terminated


@contextlib.contextmanager
def sigterm_as_interrupt():
    """During the block, SIGTERM raises Terminated (unless it is ignored, or this is not the main thread)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def exit_status(e: KeyboardInterrupt) -> int:
    """The shell's status for a program ended by this signal: 128 + SIGTERM or SIGINT."""
    return 128 + (signal.SIGTERM if isinstance(e, Terminated) else signal.SIGINT)
