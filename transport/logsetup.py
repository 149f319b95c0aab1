"""Logging for ``opsreg serve``: one line per event on stderr, as text or JSON.

The library itself only logs through ``logging.getLogger(__name__)``; the
command installs the handler (:func:`install`). Refusals can come thousands a
second from one misbehaving client, so the server logs them through
:class:`RefusalLog`: at most one line per error class per interval, carrying
how many were refused since the last line.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Final

__all__ = ["FORMATS", "LEVELS", "RefusalLog", "install"]

LEVELS: Final = ("debug", "info", "warning", "error")
FORMATS: Final = ("text", "json")
#: fields a record may carry (``extra=``) that the JSON lines show as their own keys
FIELDS: Final = ("event", "registry", "error_class", "count", "example")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in FIELDS:
            if key in record.__dict__:
                line[key] = record.__dict__[key]
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # Tracebacks stay on one line so each event is one line of the log.
        return super().format(record).replace("\n", " | ")


def install(level: str = "info", fmt: str = "text") -> logging.Handler:
    """Send every ``actors``/``transport`` log record to stderr, one line each."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    # pykka reports every exception an actor returns to its asker at INFO, traceback
    # included; the asker (we) logs what matters in one line, so only its warnings pass.
    pykka_log = logging.getLogger("pykka")
    pykka_log.setLevel(max(logging.WARNING, root.level))
    return handler


class RefusalLog:
    """Rate-limited refusal lines: the first of a class at once, then one per ``interval``.

    Only the server's I/O thread calls it (no lock).
    """

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self.log = logger
        self.interval = interval
        self._last: dict[str, float] = {}
        self._count: dict[str, int] = {}
        self._example: dict[str, BaseException] = {}

    def refused(self, exc: BaseException) -> None:
        cls = type(exc).__name__
        count = self._count.get(cls, 0) + 1
        now = time.monotonic()
        if now - self._last.get(cls, -self.interval) < self.interval:
            self._count[cls] = count
            self._example[cls] = exc
            return
        self._emit(cls, count, exc, now)

    def tick(self) -> None:
        """Write the counts held back for an interval that has passed (from the heartbeat)."""
        now = time.monotonic()
        for cls, count in list(self._count.items()):
            if count and now - self._last[cls] >= self.interval:
                self._emit(cls, count, self._example.pop(cls), now)

    def _emit(self, cls: str, count: int, exc: BaseException, now: float) -> None:
        self._last[cls] = now
        self._count[cls] = 0
        fields = {"event": "refused", "error_class": cls, "count": count, "example": str(exc)}
        self.log.info("refused %d request(s) with %s, e.g.: %s", count, cls, exc, extra=fields)
