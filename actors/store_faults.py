"""How a failed commit is classified, and the failures a store can be told to inject.

:func:`classify_failure` answers the one question that matters after a failed
transaction — may it be on disk? — for the persistence actor
(:mod:`actors.persistence`), which refuses, backs off, or reopens the store and
settles the in-doubt transaction (:mod:`actors.recovery`) accordingly.
:class:`FaultPlan` is how tests and chaos runs reach those paths with a real store.
"""

from __future__ import annotations

import errno
import random
import sqlite3
import threading
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "DEFINITE",
    "INDETERMINATE",
    "LOST",
    "CommitFailure",
    "FaultPlan",
    "StoreLost",
    "classify_failure",
    "describe_failure",
    "failure_kind",
]


class CommitFailure(Exception):
    """A store could not commit a batch; the batch's records were not written."""


class StoreLost(CommitFailure):
    """The store's file was deleted or replaced while open: nothing was written, and nothing more will be."""


#: SQLite's primary result codes after which the transaction was certainly not written
_DEFINITE_SQLITE: Final = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_INTERRUPT,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_TOOBIG,
        sqlite3.SQLITE_CONSTRAINT,
        sqlite3.SQLITE_MISMATCH,
        sqlite3.SQLITE_RANGE,
    }
)

DEFINITE: Final = "definite"
INDETERMINATE: Final = "indeterminate"
LOST: Final = "lost"


def classify_failure(exc: BaseException) -> str:
    """``DEFINITE``, ``INDETERMINATE`` or ``LOST``: may the failed transaction be on disk?

    Anything not known to leave the disk untouched counts as indeterminate: a
    wrong "definite" would roll back (and let a retry duplicate) an outcome that
    a restart then finds on disk.
    """
    if isinstance(exc, StoreLost):
        return LOST
    if isinstance(exc, CommitFailure):
        return DEFINITE
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in _DEFINITE_SQLITE:
            return DEFINITE
    return INDETERMINATE


def failure_kind(exc: BaseException) -> str:
    """A failure's class for rate-limited logging (``SQLITE_FULL``, ``OSError``, …)."""
    return str(getattr(exc, "sqlite_errorname", None) or type(exc).__name__)


# --- fault injection shared by every store (tests and chaos runs) --------------------------


@dataclass
class FaultPlan:
    """Failures and stalls a store applies to its next commits.

    This is how tests reach the rollback and in-flight paths of docs/semantics.md with a
    real store: the store raises at its point of commit (so nothing of the batch is
    written) or blocks before committing (a slow disk).
    """

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _failures: list[tuple[str, bool, str]] = field(default_factory=list)
    #: stores' ``probe`` (after a reopen) fails while this is positive
    reopen_failures: int = 0
    _gate: threading.Event = field(default_factory=threading.Event)
    entered: threading.Event = field(default_factory=threading.Event)
    #: chaos runs: the share of terminal-bearing transactions that fail at random
    failure_rate: float = 0.0
    _rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self._gate.set()

    def fail_next(
        self,
        count: int = 1,
        cause: str = "injected I/O error",
        *,
        terminal_only: bool = True,
        mode: str = "definite",
    ) -> None:
        """Fail the next ``count`` transactions (by default only those with a terminal record).

        ``mode`` ``"definite"`` raises ``CommitFailure`` before the commit;
        ``"eio-before"`` raises ``OSError(EIO)`` before it and ``"eio-after"``
        after the store wrote the batch (stores that support it: the memory
        store) — both indeterminate, as when ``fsync`` fails.
        """
        if mode not in ("definite", "eio-before", "eio-after"):
            raise ValueError(f"unknown failure mode {mode!r}")
        with self._lock:
            self._failures.extend([(cause, terminal_only, mode)] * count)

    def hold(self) -> None:
        """Make the next commit of a terminal record wait in its transaction until ``release``."""
        self.entered.clear()
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def before_commit(self, has_terminal: bool) -> None:
        """Called by a store just before it commits (inside a multi-statement transaction,
        or just before the single statement that is the transaction: no partial writes)."""
        if has_terminal and not self._gate.is_set():
            self.entered.set()
            self._gate.wait()
        with self._lock:
            if has_terminal and self.failure_rate and self._rng.random() < self.failure_rate:
                raise CommitFailure("injected I/O error (chaos)")
            if not self._failures or (self._failures[0][1] and not has_terminal):
                return
            if self._failures[0][2] == "eio-after":
                return
            cause, _, mode = self._failures.pop(0)
        if mode == "eio-before":
            raise OSError(errno.EIO, cause)
        raise CommitFailure(cause)

    def after_commit(self, has_terminal: bool) -> None:
        """Called by a store that supports ``eio-after`` once the batch is written."""
        with self._lock:
            if not self._failures or (self._failures[0][1] and not has_terminal):
                return
            if self._failures[0][2] != "eio-after":
                return
            cause, _, _ = self._failures.pop(0)
        raise OSError(errno.EIO, cause)

    def before_probe(self) -> None:
        """Called by a store's ``probe`` after a reopen."""
        with self._lock:
            if self.reopen_failures <= 0:
                return
            self.reopen_failures -= 1
        raise OSError(errno.EIO, "injected I/O error (reopen)")


def describe_failure(exc: BaseException) -> str:
    """A failure's text for logs and refusals (an injected failure's text is shown as is)."""
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, CommitFailure) else text
