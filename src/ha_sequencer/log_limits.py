"""Bounded log volume: a hostile peer or client must not control how much the node writes.

`BoundedLog` is a `logging.Filter` for a logger fed by outside input (gossip rejections, py-libp2p's own
warnings, hypercorn's contained connection failures): at most a few lines per kind per window, then one
line saying how many were suppressed; a contained failure's traceback becomes its one-line summary.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

WINDOW_S = 60.0
LINES_PER_WINDOW = 5
MAX_KEYS = 4096  # kinds tracked at once (keys may name peers): beyond this the oldest windows are forgotten


def kind_of(record: logging.LogRecord) -> Hashable:
    """Records of the same logger, level and message template are one kind (their arguments vary)."""
    exc = record.exc_info[1] if record.exc_info else None
    return (record.name, record.levelno, str(record.msg), type(exc).__name__ if exc else "")


@dataclass
class _Window:
    start: float
    lines: int
    suppressed: int


class BoundedLog(logging.Filter):
    """At most `lines` records of each kind per `window_s`; tracebacks of `contained` exceptions dropped."""

    def __init__(
        self,
        *,
        contained: tuple[type[BaseException], ...] = (),
        kind: Callable[[logging.LogRecord], Hashable] = kind_of,
        lines: int = LINES_PER_WINDOW,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.contained = contained
        self.kind = kind
        self.lines = lines
        self.window_s = window_s
        self.clock = clock
        self._windows: dict[Hashable, _Window] = {}
        self.suppressed_total = 0

    def filter(self, record: logging.LogRecord) -> bool:
        key = self.kind(record)
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and isinstance(exc, self.contained):
            # contained where it happened (one connection, one peer): a warning, not a node error
            _one_line(record, f"{record.getMessage()}: {type(exc).__name__}: {str(exc)[:200]}")
            if record.levelno > logging.WARNING:
                record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        now = self.clock()
        window = self._windows.get(key)
        if window is None or now - window.start >= self.window_s:
            if len(self._windows) >= MAX_KEYS:
                self._windows.pop(next(iter(self._windows)))
            self._windows[key] = _Window(now, 1, 0)
            if window is not None and window.suppressed:
                _one_line(
                    record,
                    f"{record.getMessage()} (and {window.suppressed} more like it in the last "
                    f"{self.window_s:g} s, not logged)",
                )
            return True
        if window.lines < self.lines:
            window.lines += 1
            return True
        window.suppressed += 1
        self.suppressed_total += 1
        return False


def _one_line(record: logging.LogRecord, message: str) -> None:
    record.msg, record.args = message.replace("\n", " "), None
    record.exc_info, record.exc_text, record.stack_info = None, None, None


def bound(logger: logging.Logger | str, log_filter: BoundedLog) -> BoundedLog:
    """Attach `log_filter` to a logger once (a filter on a logger sees only that logger's own records)."""
    target = logging.getLogger(logger) if isinstance(logger, str) else logger
    for existing in target.filters:
        if type(existing) is type(log_filter) and getattr(existing, "kind", None) is log_filter.kind:
            return existing  # type: ignore[return-value]
    target.addFilter(log_filter)
    return log_filter
