"""The registry actor's commit path: what it does when the persistence actor answers.

A mixin of :class:`~actors.registry.RegistryActor`, kept apart from the
lifecycle methods. ``Durable`` answers a commit: make it visible (docs/semantics.md
order), or roll it back, or — when the outcome is unknown — leave it pending
and refuse every call until ``InDoubtSettled`` says what the disk holds. Each
way ends by running the calls that were held for those operations
(:mod:`actors.parking`), so they are answered from what is now durable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

from actors.errors import Internal, OpsLifecycleError, OutcomeUnknown, Unavailable
from actors.futures import OpsFuture
from actors.lifecycle import Lifecycle
from actors.model import OperationId
from actors.parking import Parking
from actors.persistence import REFUSED, UNKNOWN, Durable, InDoubtSettled

if TYPE_CHECKING:
    from actors.registry import Call

__all__ = ["RECOVERING", "CommitPath"]

log = logging.getLogger("actors.registry")

#: why a registry refuses calls while its store is reopened after an indeterminate failure
RECOVERING: Final = "the store is being reopened after an I/O error; nothing was done, retry later"


class CommitPath:
    """Answers from the persistence actor, for :class:`~actors.registry.RegistryActor`."""

    name: str
    lc: Lifecycle
    inflight: dict[int, tuple[list[OperationId], OpsFuture[Any] | None]]
    in_doubt: dict[int, list[OperationId]]
    parked: Parking[Call]
    _make_visible: Callable[[list[tuple[OperationId, int | None]]], None]
    _dispatch: Callable[[Call], None]

    def _on_durable(self, message: Durable) -> None:
        for token, seqs, error in message.results:
            ids, reply = self.inflight.pop(token)
            if error is None:
                self._settle(ids, seqs, reply)
            elif message.failure == UNKNOWN:
                # Neither visible nor rolled back: the disk decides (``_on_settled``).
                self.in_doubt[token] = ids
                if reply is not None:
                    reply.set_exception(OutcomeUnknown(f"committing failed: {error}"))
                for call in self.parked.release(ids):
                    if call.reply is not None:
                        call.reply.set_exception(Unavailable(RECOVERING))
            else:
                for op_id in ids:
                    self.lc.rollback_terminal(op_id)
                if reply is not None:
                    reply.set_exception(
                        Unavailable(error)
                        if message.failure == REFUSED
                        else Internal(f"persisting the terminal transition failed: {error}")
                    )
                self._run_parked(ids)

    def _on_settled(self, message: InDoubtSettled) -> None:
        """The store was reopened: make visible what the disk says happened, forget the rest."""
        for token, seqs in message.results:
            ids = self.in_doubt.pop(token)
            if seqs is None:
                for op_id in ids:
                    self.lc.rollback_terminal(op_id)
                log.warning("registry %s: %d in-doubt terminal(s) not on disk", self.name, len(ids))
                self._run_parked(ids)
            else:
                self._settle(ids, seqs, None)

    def _settle(
        self, ids: list[OperationId], seqs: Sequence[int], reply: OpsFuture[Any] | None
    ) -> None:
        try:
            self._make_visible(list(zip(ids, seqs, strict=True)))
        except OpsLifecycleError as exc:
            log.error("registry %s: %s", self.name, exc)
            if reply is not None:
                reply.set_exception(exc)
        else:
            if reply is not None:
                reply.set(None)
        self._run_parked(ids)

    def _run_parked(self, settled: Iterable[OperationId]) -> None:
        """Answer the calls that waited for these commits, from what is now durable."""
        for call in self.parked.release(settled):
            self._dispatch(call)
