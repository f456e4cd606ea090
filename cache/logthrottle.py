"""One log line per kind of trouble per interval, however often it recurs.

An outage of shared infrastructure (Redis) fails every request the same way; logging each one buried
the log in thousands of identical lines. The first occurrence of a kind is logged at once, the repeats
within `every_s` are counted, and the next line logged for that kind says how many were left out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class LogThrottle:
    def __init__(self, logger: logging.Logger, every_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger, self.every_s, self.clock = logger, every_s, clock
        self._last: dict[str, float] = {}  # kind -> when its last line was logged
        self.suppressed: dict[str, int] = {}  # kind -> lines left out since then

    def warning(self, kind: str, message: str, *args: object) -> bool:
        """Log `message % args` unless `kind` was logged less than `every_s` ago; whether it was."""
        now = self.clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.every_s:
            self.suppressed[kind] = self.suppressed.get(kind, 0) + 1
            return False
        self._last[kind] = now
        skipped = self.suppressed.pop(kind, 0)
        if skipped and last is not None:
            message += f" ({skipped} more like it in the last {now - last:.0f} s not logged)"
        self.logger.warning(message, *args)
        return True
