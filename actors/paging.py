"""Pages of large reads: which operations a listing selects, in which order, how many.

Pure functions over the registry's records, no threads. A listing's order is
``(display_name, id)`` — the order ``list_operations`` has always had, made
total by the id (display names repeat). A page is the first ``limit`` items
of that order strictly after the key ``after`` (the ``(display_name, id)`` of
the last item of the previous page), so paging never repeats an item and
never skips one that existed throughout; an operation that appears, changes
or goes between two pages shows as it is when its page is read.

Every reply is bounded: a call without ``limit`` gets ``DEFAULT_PAGE`` items
and ``limit`` may be at most ``MAX_PAGE``. The callers' facade
(:class:`~actors.api.RegistryCalls`) pages transparently when its caller
gives no ``limit``, so ``list_operations()`` and ``list_since(n)`` still
return everything.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Any, Final

from actors.errors import InvalidArgument
from actors.model import OperationId, OperationKind, OperationStatus

__all__ = ["DEFAULT_PAGE", "MAX_PAGE", "OperationQuery", "page_limit"]

#: items in one reply when the caller names no limit
DEFAULT_PAGE: Final = 256
#: the largest page a caller may ask for
MAX_PAGE: Final = 1024


def page_limit(limit: object) -> int:
    """``limit`` checked (an integer in [1, MAX_PAGE]); None means ``DEFAULT_PAGE``."""
    if limit is None:
        return DEFAULT_PAGE
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidArgument(f"limit must be an integer in [1, {MAX_PAGE}], got {limit!r}")
    return limit


class OperationQuery:
    """The filters and page of one ``list_operations`` call, validated at construction."""

    __slots__ = ("after", "kind", "limit", "owner_session_id", "status")

    def __init__(
        self,
        owner_session_id: object = None,
        status: object = None,
        kind: object = None,
        limit: object = None,
        after: object = None,
    ) -> None:
        if owner_session_id is not None and not isinstance(owner_session_id, str):
            raise InvalidArgument("owner_session_id must be a string or None")
        self.owner_session_id = owner_session_id
        self.status = None if status is None else _member(OperationStatus, status, "status")
        self.kind = None if kind is None else _member(OperationKind, kind, "kind")
        self.limit = page_limit(limit)
        self.after = None if after is None else _key(after)

    def select(self, records: Iterable[Any]) -> list[Any]:
        """The records of this page, in ``(display_name, id)`` order."""
        owner, status, kind, after = self.owner_session_id, self.status, self.kind, self.after
        chosen = []
        for rec in records:
            spec = rec.spec
            if owner is not None and spec.owner_session_id != owner:
                continue
            if status is not None and rec.status is not status:
                continue
            if kind is not None and spec.kind is not kind:
                continue
            if after is not None and (spec.display_name, spec.id) <= after:
                continue
            chosen.append(rec)
        return heapq.nsmallest(self.limit, chosen, key=_order)


def _order(rec: Any) -> tuple[str, str]:
    return (rec.spec.display_name, rec.spec.id)


def _member(kind: Any, value: object, what: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in kind)
        raise InvalidArgument(f"{what} must be one of {allowed}; got {value!r}") from None


def _key(after: object) -> tuple[str, str]:
    if (
        isinstance(after, tuple | list)
        and len(after) == 2
        and isinstance(after[0], str)
        and isinstance(after[1], str)
    ):
        return (after[0], str(OperationId(after[1])))
    raise InvalidArgument("after must be the (display_name, id) of the previous page's last item")
