"""A small text progress bar (count, percentage, rate and ETA) for populate(display_progress=True).

Written here rather than depending on tqdm: it only has to redraw one line on stderr, at most ten
times a second, and it must work the same in worker processes and Prefect task logs.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


class ProgressBar:
    """`Name:  40%|########            | 80/200 [00:08<00:12, 9.95 keys/s]`"""

    width = 20

    def __init__(self, total: int, name: str, stream: TextIO | None = None, interval: float = 0.1) -> None:
        self.total = max(int(total), 0)
        self.name = name
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.count = 0
        self.started = time.monotonic()
        self._drawn = 0.0
        self.draw()

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.monotonic()
        if now - self._drawn >= self.interval or self.count >= self.total:
            self.draw(now)

    def line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        elapsed = now - self.started
        rate = self.count / elapsed if elapsed > 0 and self.count else 0.0
        fraction = self.count / self.total if self.total else 1.0
        filled = int(round(self.width * min(fraction, 1.0)))
        eta = (self.total - self.count) / rate if rate else 0.0
        eta_text = _clock(eta) if rate or self.count >= self.total else "?"
        return (
            f"{self.name}: {fraction:4.0%}|{'#' * filled}{' ' * (self.width - filled)}| "
            f"{self.count}/{self.total} [{_clock(elapsed)}<{eta_text}, {rate:.2f} keys/s]"
        )

    def draw(self, now: float | None = None) -> None:
        self._drawn = time.monotonic() if now is None else now
        self.stream.write("\r" + self.line(now))
        self.stream.flush()

    def close(self) -> None:
        self.draw()
        self.stream.write("\n")
        self.stream.flush()
