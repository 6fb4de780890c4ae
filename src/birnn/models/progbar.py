"""A Keras-style progress bar: live on a terminal, one line per epoch otherwise."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO


def _format_time(seconds: float) -> str:
    if seconds >= 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{int(seconds)}s"


def _format_per_step(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


def format_value(value: Any) -> str:
    """A metric value as Keras prints it (`0.1234`, or `1.2345e-05` when tiny)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.4e}"


def format_logs(logs: Mapping | None) -> str:
    if not logs:
        return ""
    return "".join(f" - {k}: {format_value(logs[k])}" for k in sorted(logs))


def is_interactive(stream: TextIO) -> bool:
    """Whether `stream` is a terminal (or a notebook) that can redraw a line."""
    if "ipykernel" in sys.modules or os.environ.get("BIRNN_PROGBAR_LIVE") == "1":
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Progbar:
    """Displays progress through `target` steps.

    Args:
        target: Total number of steps, or `None` if unknown.
        width: Width of the bar in characters.
        verbose: 1 for a live bar (one final line when not on a terminal),
            2 for one summary line at the end, 0 for silence.
        interval: Minimum seconds between redraws of a live bar.
        stream: Where to write (default `sys.stdout`).

    Examples:

    >>> import io
    >>> out = io.StringIO()
    >>> bar = Progbar(2, verbose=2, stream=out)
    >>> bar.update(2, {"loss": 0.5}, finalize=True)
    >>> "2/2" in out.getvalue() and "loss: 0.5000" in out.getvalue()
    True
    """

    def __init__(
        self,
        target: int | None,
        width: int = 20,
        verbose: int = 1,
        interval: float = 0.05,
        stream: TextIO | None = None,
    ) -> None:
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.stream = stream or sys.stdout
        self.live = verbose == 1 and is_interactive(self.stream)
        self._start = time.perf_counter()
        self._last_draw = 0.0
        self._last_len = 0

    def wants_draw(self, finalize: bool = False) -> bool:
        """Whether an `update` now would draw (so callers can skip computing logs)."""
        if self.verbose == 0:
            return False
        if finalize:
            return True
        return self.live and time.perf_counter() - self._last_draw >= self.interval

    def _bar(self, current: int) -> str:
        if not self.target:
            return ""
        done = int(self.width * min(current, self.target) / self.target)
        if self.live:
            return f"\x1b[32m{'━' * done}\x1b[0m\x1b[2m{'━' * (self.width - done)}\x1b[0m "
        return "━" * done + "━" * (self.width - done) + " "

    def update(self, current: int, logs: Mapping | None = None, finalize: bool = False) -> None:
        """Draws the bar at step `current` (lines end on `finalize`)."""
        if not self.wants_draw(finalize):
            return
        now = time.perf_counter()
        self._last_draw = now
        elapsed = now - self._start
        per_step = elapsed / max(current, 1)
        target = self.target if self.target is not None else "?"
        if self.verbose == 2:
            line = f"{current}/{target} - {_format_time(elapsed)} - {_format_per_step(per_step)}"
            self.stream.write(line + format_logs(logs) + "\n")
            self.stream.flush()
            return
        digits = len(str(self.target)) if self.target else 1
        head = f"{current:>{digits}}/{target} {self._bar(current)}"
        if finalize or not self.target:
            timing = f"{_format_time(elapsed)} {_format_per_step(per_step)}"
        else:
            timing = (
                f"{_format_time(per_step * (self.target - current))} {_format_per_step(per_step)}"
            )
        line = head + timing + format_logs(logs)
        if self.live:
            pad = max(self._last_len - len(line), 0)
            self.stream.write("\r" + line + " " * pad + ("\n" if finalize else ""))
            self._last_len = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
