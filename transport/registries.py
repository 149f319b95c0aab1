"""Registries by name for a server: opened and closed off its I/O thread, bounded in number.

The I/O thread must never wait on an actor or the disk, and opening a durable
registry does both (recovery reads the store, then commits the restart
terminations, behind whatever commit is in flight). So the I/O thread only
asks: a request naming a registry that is not open starts its opening on the
opener thread and waits, with the later requests for that name, in a bounded
queue. The opener hands the registry (or the reason it could not open) back
through the server's outbox, and the I/O thread passes the queued calls on in
arrival order.

Every registry is an actor (a thread), so their number is bounded
(``max_registries``). The same opener thread closes registries that are
idle: nothing pending (no request awaiting its reply, no wait held for a
client, no operation in flight) and no request for ``idle_after`` seconds, or, when the bound is
reached and a new name is asked for, the least recently used one with nothing
pending. A durable registry reopens from its store exactly as it was; a
memory-only registry is closed only when it holds nothing (no operation, no
feed entry), since closing it would lose state.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import pykka

from actors import OpsLifecycleError, OpsRegistry
from actors.errors import Internal, InvalidArgument, LimitExceeded
from actors.futures import OpsFuture
from actors.registry import Call
from transport._outbox import Closed, Opened

__all__ = ["Registries"]

log = logging.getLogger(__name__)

_NAME: Final = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_OPENING, _OPEN, _CLOSING = 0, 1, 2
_IN_FLIGHT: Final = frozenset({"provisioning", "running", "retiring"})


def _tell(reg: OpsRegistry, calls: list[Call]) -> None:
    try:
        reg.tell(calls)
    except pykka.ActorDeadError:
        for call in calls:
            assert call.reply is not None
            call.reply.set_exception(Internal("registry is not running"))


@dataclass(frozen=True, slots=True)
class _Open:
    """A job for the opener thread: open registry ``name``."""

    name: str


@dataclass(frozen=True, slots=True)
class _Close:
    """A job for the opener thread: close registry ``name`` unless it holds state."""

    name: str


class _Entry:
    __slots__ = ("last_used", "outstanding", "pending", "prune_at", "reg", "state", "waits")

    def __init__(self, now: float) -> None:
        self.state = _OPENING
        self.reg: OpsRegistry | None = None
        #: calls that arrived while the registry was opening or closing, in arrival order
        self.pending: list[Call] = []
        #: calls handed to the actor whose reply has not been sent yet
        self.outstanding = 0
        #: futures held for clients (watchers, waits); pruned when done
        self.waits: list[OpsFuture[Any]] = []
        #: prune settled futures from ``waits`` when it reaches this length (amortised O(1))
        self.prune_at = 64
        self.last_used = now

    def busy(self) -> bool:
        if self.outstanding or self.pending:
            return True
        self.waits = [f for f in self.waits if not f.done()]
        return bool(self.waits)


class Registries:
    """The I/O thread's view of the named registries; all methods but ``stop`` run on it.

    ``open`` maps the name of each open registry to it (the fast path);
    ``notify`` puts :class:`~transport._outbox.Opened` or
    :class:`~transport._outbox.Closed` on the server's outbox, from the opener thread.
    """

    def __init__(
        self,
        opener: Callable[[str], OpsRegistry],
        notify: Callable[[Opened | Closed], None],
        *,
        durable: bool,
        max_registries: int,
        allow: frozenset[str] | None,
        max_pending: int,
        idle_after: float,
        detach: Callable[[str], None] | None = None,
    ) -> None:
        if max_registries < 1:
            raise ValueError("max_registries must be at least 1")
        self.open: dict[str, OpsRegistry] = {}
        self._entries: dict[str, _Entry] = {}
        self._opener = opener
        self._notify = notify
        self._detach = detach
        self.durable = durable
        self.max_registries = max_registries
        self.allow = allow
        self.max_pending = max_pending
        self.idle_after = idle_after
        self._jobs: queue.SimpleQueue[_Open | _Close | None] = queue.SimpleQueue()
        #: owned by the opener thread: everything it opened and has not closed
        self._owned: dict[str, OpsRegistry] = {}
        self._thread = threading.Thread(
            target=self._work, name="opsreg-registry-opener", daemon=True
        )
        self._thread.start()

    # --- the I/O thread ---------------------------------------------------------------------

    def check_name(self, name: str) -> None:
        """Raise the refusal for a name this server will not open."""
        if not _NAME.match(name):
            raise InvalidArgument(
                f"registry name must be 1-128 characters of A-Z a-z 0-9 _ . : -, got {name[:64]!r}"
            )
        if self.allow is not None and name not in self.allow:
            raise InvalidArgument(
                f"registry {name!r} is not served here (served: {', '.join(sorted(self.allow))})"
            )

    def park(self, name: str, call: Call, now: float) -> None:
        """Queue a call for a registry that is not open; start opening it if need be."""
        entry = self._entries.get(name)
        if entry is None:
            self.check_name(name)
            if self._live() >= self.max_registries and not self._evict(now):
                raise LimitExceeded("open registries", self.max_registries)
            entry = self._entries[name] = _Entry(now)
            self._jobs.put(_Open(name))
        if len(entry.pending) >= self.max_pending:
            raise LimitExceeded(f"requests waiting for registry {name} to open", self.max_pending)
        entry.last_used = now
        entry.pending.append(call)

    def hand(self, batches: dict[str, list[Call]], now: float) -> None:
        """Hand each registry the calls read for it in one pass, as one message."""
        for name, calls in batches.items():
            entry = self._entries.get(name)
            if entry is not None and entry.state == _OPEN:
                entry.outstanding += len(calls)
                entry.last_used = now
                assert entry.reg is not None
                _tell(entry.reg, calls)
                continue
            for call in calls:  # closed for room later in this pass: it reopens for them
                try:
                    self.park(name, call, now)
                except OpsLifecycleError as exc:
                    assert call.reply is not None
                    call.reply.set_exception(exc)

    def answered(self, item: Opened | Closed) -> None:
        """The opener thread's news: a registry opened (or failed to), or closed (or kept)."""
        if isinstance(item, Opened):
            calls = self._opened(item.name, item.registry, item.error)
        else:
            calls = self._closed(item.name, item.kept)
        if calls:
            _tell(self.open[item.name], calls)

    def replied(self, name: str, value: Any) -> None:
        entry = self._entries.get(name)
        if entry is not None:
            entry.outstanding -= 1
            if isinstance(value, OpsFuture) and not value.done():
                entry.waits.append(value)
                if len(entry.waits) >= entry.prune_at:
                    # A registry in steady use is never swept for idleness: without this,
                    # every settled future (and its exception) would stay referenced here.
                    entry.waits = [f for f in entry.waits if not f.done()]
                    entry.prune_at = max(64, 2 * len(entry.waits))

    def _opened(
        self, name: str, reg: OpsRegistry | None, error: BaseException | None
    ) -> list[Call]:
        """Returns the calls to hand to ``reg``; if it failed to open, they are answered."""
        entry = self._entries.get(name)
        if entry is None:  # cannot happen: only the I/O thread removes entries
            return []
        calls, entry.pending = entry.pending, []
        if reg is None:
            del self._entries[name]
            failure = Internal(f"cannot open registry {name}: {error}")
            for call in calls:
                if call.reply is not None:
                    call.reply.set_exception(failure)
            return []
        entry.state, entry.reg = _OPEN, reg
        self.open[name] = reg
        entry.outstanding += len(calls)
        return calls

    def _closed(self, name: str, kept: bool) -> list[Call]:
        """Returns the calls to hand to a registry kept open."""
        entry = self._entries.get(name)
        if entry is None:
            return []
        if kept:  # a memory-only registry turned out to hold state
            assert entry.reg is not None
            entry.state = _OPEN
            self.open[name] = entry.reg
            entry.last_used = time.monotonic()
            calls, entry.pending = entry.pending, []
            entry.outstanding += len(calls)
            return calls
        if entry.pending:  # asked for again while it was closing: open it anew
            entry.state, entry.reg = _OPENING, None
            self._jobs.put(_Open(name))
        else:
            del self._entries[name]
        return []

    def sweep(self, now: float) -> None:
        """Close the registries idle for ``idle_after`` seconds (from the heartbeat)."""
        deadline = now - self.idle_after
        for name, entry in list(self._entries.items()):
            if entry.state != _OPEN:
                continue
            # busy() also lets go of settled futures, so each beat releases the ones that
            # settled since the last (a cancelled wait's exception keeps its traceback alive).
            if not entry.busy() and entry.last_used < deadline:
                self._close(name, entry)

    def _live(self) -> int:
        return sum(1 for e in self._entries.values() if e.state != _CLOSING)

    def _evict(self, now: float) -> bool:
        """Start closing the least recently used registry with nothing pending, if any.

        Whether that makes room is known at once only for durable registries: a
        memory-only one may turn out to hold state and stay, so the name that asked is
        refused (a later request finds the room if it was made)."""
        idle = [(e.last_used, n) for n, e in self._entries.items() if e.state == _OPEN]
        for _, name in sorted(idle):
            entry = self._entries[name]
            if not entry.busy():
                self._close(name, entry)
                return self.durable
        return False

    def _close(self, name: str, entry: _Entry) -> None:
        entry.state = _CLOSING
        del self.open[name]
        self._jobs.put(_Close(name))

    # --- the opener thread ------------------------------------------------------------------

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            name = job.name
            if isinstance(job, _Open):
                started = time.monotonic()
                try:
                    reg = self._opener(name)
                except Exception as exc:
                    fields = {"event": "registry_open_failed", "registry": name}
                    log.error("cannot open registry %s: %s", name, exc, extra=fields)
                    self._notify(Opened(name, None, exc))
                    continue
                self._owned[name] = reg
                took = (time.monotonic() - started) * 1000
                fields = {"event": "registry_opened", "registry": name}
                log.info("registry %s opened in %.0f ms", name, took, extra=fields)
                self._notify(Opened(name, reg, None))
            else:
                self._notify(Closed(name, not self._close_now(name)))

    def _close_now(self, name: str) -> bool:
        reg = self._owned[name]
        try:
            counts = reg.call_async("operation_counts").get(timeout=60)
            # Operations still in flight keep a registry open, durable or not: reopening
            # ends them as "registry restarted" (and their leases live in the actor).
            active = sum(n for (status, _), n in counts.items() if status in _IN_FLIGHT)
            holds = active or (not self.durable and (reg.watermark() or sum(counts.values())))
        except Exception:
            holds = 1
        if holds:
            return False
        del self._owned[name]
        reg.stop()
        if self._detach is not None:
            try:
                self._detach(name)
            except Exception:
                log.exception("registry %s: persistence did not let it go", name)
        fields = {"event": "registry_closed", "registry": name}
        log.info("registry %s closed (idle)", name, extra=fields)
        return True

    def stop(self) -> None:
        """Stop the opener thread and every registry it opened (any thread, once)."""
        self._jobs.put(None)
        self._thread.join(timeout=60)
        for reg in self._owned.values():
            with contextlib.suppress(Exception):
                reg.stop()
        self._owned.clear()
        self.open.clear()
