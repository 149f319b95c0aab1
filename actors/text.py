"""Text on the registry's values: the caps, their checks, and defaults for Python callers.

Split from :mod:`actors.model` (which re-exports the public names); pure, no registry state.
"""

from __future__ import annotations

import threading
import traceback
import unicodedata
from collections.abc import Callable
from typing import Any, Final

import msgspec

from actors.errors import InvalidArgument

__all__ = [
    "MAX_ADDRESS_BYTES",
    "MAX_CONTENT_BYTES",
    "MAX_ERROR_BYTES",
    "MAX_ID_BYTES",
    "MAX_NAME_BYTES",
    "MAX_REASON_BYTES",
    "check_text",
    "clip_text",
    "failure_text",
    "trusted_values",
]

# --- caps on text fields --------------------------------------------------------------
# Every string a caller can make the registry keep is capped, in UTF-8 bytes, so that
# retained state, feed entries and replies stay bounded (a registry keeps up to
# max_completed operations plus max(4 x max_completed, 1024) feed entries). The
# result's content is the largest and stays well under the 1 MiB frame limit.

#: names and labels: display_name, peer_name
MAX_NAME_BYTES: Final = 1024
#: identifiers: owner_session_id, child_session_id, source_label, peer_id, run_id
MAX_ID_BYTES: Final = 256
#: peer address (a URL)
MAX_ADDRESS_BYTES: Final = 1024
#: reasons (Aborted, Cancelled, Terminated) and progress messages
MAX_REASON_BYTES: Final = 4096
#: Failed.error (room for a traceback)
MAX_ERROR_BYTES: Final = 64 * 1024
#: OperationResult.content
MAX_CONTENT_BYTES: Final = 128 * 1024


_trusted = threading.local()


class trusted_values:
    """Within it, this thread decodes values over their caps instead of refusing them.

    For what this system wrote itself and must read back even if an older version
    kept longer text: its own store, a server's replies to a client. Never for input.
    """

    def __enter__(self) -> None:
        _trusted.depth = getattr(_trusted, "depth", 0) + 1

    def __exit__(self, *exc: object) -> None:
        _trusted.depth -= 1


def check_text(value: object, what: str, limit: int) -> str:
    """``value`` if it is a string of at most ``limit`` UTF-8 bytes, else ``InvalidArgument``."""
    if value.__class__ is str and len(value) * 4 <= limit:  # short: fits whatever it holds
        return value
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a string, got {type(value).__name__}")
    # len() counts code points (at most 4 UTF-8 bytes each): encode only when it matters.
    n = len(value)
    if (
        n * 4 > limit
        and (n > limit or len(value.encode("utf-8", "surrogatepass")) > limit)
        and not getattr(_trusted, "depth", 0)
    ):
        raise InvalidArgument(f"{what} is too long (limit: {limit} bytes of UTF-8)")
    return value


def _opt_capped(value: object, what: str, limit: int) -> str | None:
    return None if value is None else check_text(value, what, limit)


def failure_text(error: str | BaseException) -> str:
    """The text ``fail_operation`` stores for ``error``: a string as given; an exception as
    Python prints it uncaught (``traceback.format_exception``: the traceback when it was
    raised, chained causes included, ending with ``Type: message``), without the final
    newline. Beyond ``MAX_ERROR_BYTES`` the oldest lines give way to a marker line, so
    the innermost frames and the message are always kept.
    """
    if not isinstance(error, BaseException):
        return error
    return clip_text("".join(traceback.format_exception(error)).rstrip("\n"), MAX_ERROR_BYTES)


def clip_text(text: str, limit: int) -> str:
    """``text`` if it fits ``limit`` UTF-8 bytes, else its end (from a line start where
    there is one) behind a ``[... N bytes cut ...]`` line: for tracebacks and logs,
    whose last lines matter most."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    tail = data[-(limit - 64) :].decode("utf-8", "ignore")
    newline = tail.find("\n")
    if 0 <= newline < len(tail) // 2:
        tail = tail[newline + 1 :]
    return f"[... {len(data) - len(tail.encode('utf-8', 'surrogatepass'))} bytes cut ...]\n{tail}"


def _count(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidArgument(f"{what} must be a non-negative integer, got {value!r}")
    return value


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in text)


_constructing = threading.local()


class _DefaultsInPython(msgspec.StructMeta):
    """Structs whose defaults apply when Python code constructs them, never on decode.

    A field declared with :func:`_python_default` may be left out by a caller
    (``OperationSpec(owner_session_id="s1")``) but stays **required on the wire**
    (docs/protocol.md §4): decoding a frame without it fails as msgspec fails for a
    missing required field, because decoding never passes through ``__call__``.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        _constructing.depth = getattr(_constructing, "depth", 0) + 1
        try:
            return super().__call__(*args, **kwargs)
        finally:
            _constructing.depth -= 1


def _python_default(name: str, make: Callable[[], Any]) -> Any:
    """A default for callers in Python only; a frame that leaves ``name`` out is refused."""

    def default() -> Any:
        if not getattr(_constructing, "depth", 0):
            raise msgspec.ValidationError(f"Object missing required field `{name}`")
        return make()

    return msgspec.field(default_factory=default)
