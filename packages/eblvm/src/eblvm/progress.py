"""What a training shows and hears while it runs: its progress and the signals that
stop it.

:class:`Progress` is a context manager: within it, the first SIGINT or SIGTERM is
caught (``interrupted`` turns true, and one line says so) instead of stopping the
process mid-step, so that the loop checkpoints and stops at the end of the iteration.
A second signal raises :class:`StopNow` at once, and so does the first while the step
compiles or the final evaluation runs (:meth:`Progress.compiling`,
:meth:`Progress.finishing`): then there is nothing to wait for, and the last
checkpoint stays as it is. The progress is a tqdm bar on a terminal and one line every
``every`` seconds elsewhere; compiling shows as such and its time counts in neither the
rate nor the estimate of the time left. Outside the main thread the signals are left
as they are.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from tqdm import tqdm

from eblvm.runs import CHECKPOINT, RunError, TrainingInterrupted

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOPPING = "stopping after this iteration (Ctrl-C again to stop now)"


class StopNow(BaseException):
    """A signal that stops the training at once (a second one, or one while compiling
    or finishing). A BaseException, so that no ``except Exception`` on the way (a
    compiler's fallback, say) takes it for a failure."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StoppedAtOnce(TrainingInterrupted):
    """The training stopped at once (see :class:`StopNow`) ``during`` a phase (``while
    compiling the step``, ``in iteration 12``, ``during the final evaluation``); the
    checkpoint of iteration ``kept`` (None: none yet) is as it was."""

    def __init__(self, during: str, kept: int | None, folders: list[Path], finishing: bool):
        where = ", ".join(str(folder / CHECKPOINT) for folder in folders)
        again = "finish the evaluation" if finishing else "resume"
        RunError.__init__(
            self,
            f"stopped at once {during}; nothing was checkpointed yet"
            if kept is None
            else f"stopped at once {during}; the checkpoint of iteration {kept} is kept in "
            f"{where}: run the same command again to {again}",
        )
        self.iteration = kept or 0


class Progress:
    """The progress of ``name`` from iteration ``initial`` to ``total`` (shown when
    ``enabled``), and the signals caught meanwhile (their lines printed when
    ``speaks``)."""

    def __init__(
        self,
        total: int,
        initial: int,
        name: str,
        enabled: bool,
        every: float = 30.0,
        *,
        speaks: bool = True,
    ) -> None:
        self.enabled, self.total, self.name, self.every = enabled, total, name, every
        self.initial, self.speaks = initial, speaks
        self.caught: list[int] = []
        self._previous: dict[int, Any] = {}
        self._bar: Any = None
        self._at_once = False  # compiling or finishing: the first signal stops at once
        self._shielded = False  # writing a checkpoint: a stop waits for the block's end
        self._pending: int | None = None  # the signal of a stop that waits

    @property
    def interrupted(self) -> bool:
        """SIGINT or SIGTERM arrived since the block began."""
        return bool(self.caught)

    def __enter__(self) -> Progress:
        self.terminal = self.enabled and sys.stderr.isatty()
        self._bar = tqdm(
            total=self.total, initial=self.initial, desc=self.name, disable=not self.terminal
        )
        self.last = self.start = time.monotonic()
        self.postfix = ""
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.getsignal(sig) for sig in _SIGNALS}
            for sig in _SIGNALS:
                signal.signal(sig, self._catch)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._previous.items():
            signal.signal(sig, old)
        self._previous = {}
        self._bar.close()

    def _catch(self, signum: int, frame: FrameType | None) -> None:
        self.caught.append(signum)
        if self._at_once or len(self.caught) > 1:
            if self._shielded:
                self._pending = signum
                return
            raise StopNow(signum)
        self._say(STOPPING)

    def _say(self, text: str) -> None:
        """One line from within a signal handler: written straight to the file
        descriptor, since the handler may interrupt a write to sys.stderr."""
        if self.speaks:
            start = "\n" if self.terminal else ""  # off the bar's line
            with contextlib.suppress(OSError):  # a reader of stderr that went away
                os.write(sys.stderr.fileno(), f"{start}eblvm: {text}\n".encode())

    @contextlib.contextmanager
    def compiling(self) -> Iterator[None]:
        """The block compiles the step: shown as such, its time kept out of the rate, and
        a signal meanwhile stops at once."""
        with self._stopping_at_once():
            self._bar.set_description_str(f"{self.name}: compiling the step…")
            if not self.terminal:
                self.note("compiling the step…")
            began = time.monotonic()
            try:
                yield
            finally:
                took = time.monotonic() - began
                self.start += took
                self.last = time.monotonic()
                self._bar.set_description_str(self.name)
                self._bar.unpause()  # the bar's rate restarts after the compiling

    @contextlib.contextmanager
    def finishing(self) -> Iterator[None]:
        """The block evaluates the finished run: a signal meanwhile stops at once."""
        with self._stopping_at_once():
            yield

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        """The block writes a checkpoint: a signal that stops at once meanwhile takes
        effect when the block ends, so that what the stop reports as kept is on disk."""
        self._shielded = True
        try:
            yield
        finally:
            self._shielded = False
        if self._pending is not None:
            raise StopNow(self._pending)

    @contextlib.contextmanager
    def _stopping_at_once(self) -> Iterator[None]:
        if self.caught:  # a signal came before: nothing more to start
            raise StopNow(self.caught[-1])
        self._at_once = True
        try:
            yield
        finally:
            self._at_once = False

    def update(self, iteration: int, postfix: str | None = None) -> None:
        """One iteration done; ``postfix``: the latest numbers to show beside it."""
        if postfix is not None:
            self.postfix = postfix
            self._bar.set_postfix_str(postfix)
        self._bar.update()
        now = time.monotonic()
        if self.enabled and not self.terminal and now - self.last >= self.every:
            rate = (iteration - self.initial) / max(now - self.start, 1e-9)
            print(
                f"{self.name}: iteration {iteration}/{self.total} ({rate:.1f} it/s) {self.postfix}",
                file=sys.stderr,
                flush=True,
            )
            self.last = now

    def note(self, text: str) -> None:
        """One line about the run (when enabled)."""
        if self.enabled:
            self._bar.clear()
            print(f"{self.name}: {text}", file=sys.stderr, flush=True)
            self._bar.refresh()
