"""What a training shows and hears while it runs: its progress and the signals that
stop it.

:class:`Progress` is a context manager: within it, SIGINT and SIGTERM are caught
(``interrupted`` turns true) instead of stopping the process mid-step, so that the loop
checkpoints and stops at the end of the iteration; the progress is a tqdm bar on a
terminal and one line every ``every`` seconds elsewhere. Outside the main thread the
signals are left as they are.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

from tqdm import tqdm

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Progress:
    """The progress of ``name`` from iteration ``initial`` to ``total`` (shown when
    ``enabled``), and the signals caught meanwhile."""

    def __init__(
        self, total: int, initial: int, name: str, enabled: bool, every: float = 30.0
    ) -> None:
        self.enabled, self.total, self.name, self.every = enabled, total, name, every
        self.initial = initial
        self.caught: list[int] = []
        self._previous: dict[int, Any] = {}
        self._bar: Any = None

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
            print(f"{self.name}: {text}", file=sys.stderr, flush=True)
