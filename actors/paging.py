"""Pages of large reads: which operations a listing selects, in which order, how many.

Pure functions over the registry's records, no threads. A listing's order is one of
``ORDERS``: ``"name"`` (the default) is ``(display_name, id)`` — the order
``list_operations`` has always had, made total by the id (display names repeat);
``"newest"`` and ``"oldest"`` are by id, which is a UUIDv7 and so sorts by
registration time (newest first, or oldest first). A page is the first ``limit``
items of that order strictly after the key ``after`` (the ``(display_name, id)`` of
the last item of the previous page; the id orders read only its id), so paging never
repeats an item and never skips one that existed throughout; an operation that
appears, changes or goes between two pages shows as it is when its page is read.
``name_prefix`` keeps only the operations whose ``display_name`` starts with it.

Every reply is bounded: a call without ``limit`` gets ``DEFAULT_PAGE`` items
and ``limit`` may be at most ``MAX_PAGE``. The callers' facade
(:class:`~actors.api.RegistryCalls`) pages transparently when its caller
gives no ``limit``, so ``list_operations()`` and ``list_since(n)`` still
return everything.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Generator, Iterable
from typing import Any, Final

from actors.errors import InvalidArgument
from actors.model import CompletionBatch, OperationId, OperationKind, OperationStatus

__all__ = [
    "DEFAULT_PAGE",
    "MAX_PAGE",
    "ORDERS",
    "OperationQuery",
    "all_entries",
    "all_operations",
    "drive",
    "page_limit",
]

#: what a paging generator yields: a method's name and its arguments, to be called
Request = tuple[Any, ...]

#: items in one reply when the caller names no limit
DEFAULT_PAGE: Final = 256
#: the largest page a caller may ask for
MAX_PAGE: Final = 1024
#: the orders a listing may ask for (None means "name")
ORDERS: Final = ("name", "newest", "oldest")


def page_limit(limit: object) -> int:
    """``limit`` checked (an integer in [1, MAX_PAGE]); None means ``DEFAULT_PAGE``."""
    if limit is None:
        return DEFAULT_PAGE
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidArgument(f"limit must be an integer in [1, {MAX_PAGE}], got {limit!r}")
    return limit


class OperationQuery:
    """The filters and page of one ``list_operations`` call, validated at construction."""

    __slots__ = ("after", "kind", "limit", "name_prefix", "order", "owner_session_id", "status")

    def __init__(
        self,
        owner_session_id: object = None,
        status: object = None,
        kind: object = None,
        limit: object = None,
        after: object = None,
        name_prefix: object = None,
        order: object = None,
    ) -> None:
        if owner_session_id is not None and not isinstance(owner_session_id, str):
            raise InvalidArgument("owner_session_id must be a string or None")
        if name_prefix is not None and not isinstance(name_prefix, str):
            raise InvalidArgument("name_prefix must be a string or None")
        if order is not None and order not in ORDERS:
            raise InvalidArgument(f"order must be one of {', '.join(ORDERS)}; got {order!r}")
        self.name_prefix = name_prefix or None
        self.order = order or "name"
        self.owner_session_id = owner_session_id
        self.status = None if status is None else _member(OperationStatus, status, "status")
        self.kind = None if kind is None else _member(OperationKind, kind, "kind")
        self.limit = page_limit(limit)
        self.after = None if after is None else _key(after)

    def select(self, records: Iterable[Any]) -> list[Any]:
        """The records of this page, in ``(display_name, id)`` order."""
        owner, status, kind, after = self.owner_session_id, self.status, self.kind, self.after
        prefix, order = self.name_prefix, self.order
        if order == "newest":
            # Records arrive about in registration order: read them backwards, so the
            # first ones kept are already the newest and the heap rarely changes.
            records = reversed(list(records))
        chosen = []
        for rec in records:
            spec = rec.spec
            if owner is not None and spec.owner_session_id != owner:
                continue
            if status is not None and rec.status is not status:
                continue
            if kind is not None and spec.kind is not kind:
                continue
            if prefix is not None and not spec.display_name.startswith(prefix):
                continue
            if after is not None:
                if order == "name" and (spec.display_name, spec.id) <= after:
                    continue
                if order == "oldest" and spec.id <= after[1]:
                    continue
                if order == "newest" and spec.id >= after[1]:
                    continue
            chosen.append(rec)
        if order == "name":
            return heapq.nsmallest(self.limit, chosen, key=_by_name)
        if order == "oldest":
            return heapq.nsmallest(self.limit, chosen, key=_by_id)
        return heapq.nlargest(self.limit, chosen, key=_by_id)


def _by_name(rec: Any) -> tuple[str, str]:
    return (rec.spec.display_name, rec.spec.id)


def _by_id(rec: Any) -> str:
    return rec.spec.id  # type: ignore[no-any-return]


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


# --- reading every page: one loop for the sync and the async facades ---------------------------
#
# ``RegistryCalls`` (sync) and ``AsyncRegistryClient`` read every page the same way. The loop is
# written once as a generator that yields each request and is sent each reply; ``drive`` runs it
# with a blocking call, the async client with an awaited one.


def all_operations(
    query: tuple[Any, ...], after: Any, tail: tuple[Any, ...]
) -> Generator[Request, Any, list[Any]]:
    """Every page of a ``list_operations`` listing (filters ``query``, then ``after``, then
    ``tail``), page after page until a short one."""
    out: list[Any] = []
    while True:
        page = yield ("list_operations", *query, DEFAULT_PAGE, after, *tail)
        out += page
        if len(page) < DEFAULT_PAGE:
            return out
        after = (page[-1].display_name, page[-1].id)


def all_entries(after_seq: int) -> Generator[Request, Any, CompletionBatch]:
    """Every feed entry after ``after_seq`` up to the first reply's watermark (fewer if
    retention moves past the reader meanwhile: the caller sees the shortfall)."""
    first: CompletionBatch = yield ("list_since", after_seq, DEFAULT_PAGE)
    entries, mark = list(first.entries), first.watermark
    while entries and entries[-1].seq < first.watermark:
        page: CompletionBatch = yield ("list_since", entries[-1].seq, DEFAULT_PAGE)
        if not page.entries or page.entries[0].seq != entries[-1].seq + 1:
            break
        entries += page.entries
        mark = page.watermark
    if len(entries) == len(first.entries):
        return first
    return CompletionBatch(
        entries=tuple(entries), watermark=mark, dropped_through=first.dropped_through
    )


def drive(pages: Generator[Request, Any, Any], call: Callable[..., Any]) -> Any:
    """Run a paging generator with a blocking ``call(method, *args)``; its result."""
    try:
        request = next(pages)
        while True:
            request = pages.send(call(*request))
    except StopIteration as done:
        return done.value
