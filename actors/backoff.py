"""Capped exponential backoff with once-per-cycle reporting (pure: no clock, no thread).

A store that keeps failing (disk full, read-only, gone) must cost almost
nothing while it fails: retries are spaced out exponentially up to a cap, and
each kind of failure is reported once per *cycle* — from the first failure to
the next success — instead of once per attempt.
"""

from __future__ import annotations

__all__ = ["Backoff"]


class Backoff:
    """Delays ``first``, ``2 × first``, … up to ``cap``; :meth:`reset` after a success.

    >>> b = Backoff(0.005, 0.02)
    >>> [b.next() for _ in range(4)]
    [0.005, 0.01, 0.02, 0.02]
    >>> b.first_of("SQLITE_FULL"), b.first_of("SQLITE_FULL")
    (True, False)
    >>> b.reset(); b.attempts
    0
    """

    def __init__(self, first: float = 0.005, cap: float = 1.0) -> None:
        if not 0 < first <= cap:
            raise ValueError(f"backoff needs 0 < first <= cap, got {first}, {cap}")
        self.first = first
        self.cap = cap
        self.attempts = 0
        self._reported: set[str] = set()

    @property
    def failing(self) -> bool:
        return self.attempts > 0

    def next(self) -> float:
        """The delay before the next attempt; each call counts one failed attempt."""
        delay: float = min(self.cap, self.first * 2.0 ** min(self.attempts, 62))
        self.attempts += 1
        return delay

    def first_of(self, kind: str) -> bool:
        """True the first time ``kind`` is seen in this cycle (report it then, not again)."""
        if kind in self._reported:
            return False
        self._reported.add(kind)
        return True

    def reset(self) -> None:
        self.attempts = 0
        self._reported.clear()
