"""``OpsFuture``: a pykka ``ThreadingFuture`` that asyncio can await without blocking.

pykka's own ``Future.__await__`` yields once and then blocks in ``get()``,
which would stall an event loop until the registry answers. ``OpsFuture``
keeps pykka's API (``get(timeout=...)``, ``set``, ``set_exception``, ``map``,
``pykka.get_all``) and adds done-callbacks, which ``__await__`` uses to wake
the awaiting loop from whichever thread sets the value.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Callable, Generator
from typing import Any, TypeVar

import pykka

from actors.errors import OpsTimeout

__all__ = ["OpsFuture", "failed", "resolved"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class OpsFuture(pykka.ThreadingFuture[T]):
    """A future set by the registry actor and read from any thread or event loop.

    >>> f = OpsFuture()
    >>> f.set(42)
    >>> f.get(timeout=1)
    42
    """

    def __init__(self) -> None:
        super().__init__()
        #: our own flag: pykka keeps its result in a private attribute
        self._is_set = False
        self._callbacks: list[Callable[[OpsFuture[T]], None]] | None = []
        self._cb_lock = threading.Lock()
        #: set on ``wait_all`` futures: the barrier's request id (to cancel it by id)
        self.wait_request_id: str | None = None

    def done(self) -> bool:
        """True once the value or the error is set."""
        return self._is_set

    def get(self, timeout: float | None = None) -> T:
        """The value (or raise the error) once set; wait at most ``timeout`` seconds.

        Raises :class:`~actors.errors.OpsTimeout` (a built-in ``TimeoutError`` and a
        ``pykka.Timeout``) when the time runs out; the future stays pending.
        """
        try:
            return super().get(timeout=timeout)  # type: ignore[no-any-return]
        except pykka.Timeout:
            if self._is_set:  # a Timeout set as this future's error: raise it as it is
                raise
            raise OpsTimeout(f"no value within {timeout} s") from None

    def add_done_callback(self, fn: Callable[[OpsFuture[T]], None]) -> None:
        """Call ``fn(self)`` once the future is set (at once if it already is)."""
        with self._cb_lock:
            if self._callbacks is not None:
                self._callbacks.append(fn)
                return
        fn(self)

    def _run_callbacks(self) -> None:
        with self._cb_lock:
            callbacks, self._callbacks = self._callbacks, None
        for fn in callbacks or ():
            try:
                fn(self)
            except Exception:  # a broken callback must not break the setter
                log.exception("future callback failed")

    def set(self, value: Any | None = None) -> None:
        """Set the value; wakes ``get`` callers, awaiting tasks and done-callbacks."""
        super().set(value)
        self._is_set = True
        self._run_callbacks()

    def set_exception(self, exc_info: Any = None) -> None:
        """Set the error (an exception or an ``exc_info`` tuple); ``get`` raises it."""
        if isinstance(exc_info, BaseException):
            exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
        super().set_exception(exc_info if exc_info is not None else sys.exc_info())
        self._is_set = True
        self._run_callbacks()

    def __await__(self) -> Generator[Any, None, T]:
        if not self.done():
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()

            def wake(_: OpsFuture[T]) -> None:
                loop.call_soon_threadsafe(_set_if_pending, waiter)

            self.add_done_callback(wake)
            yield from waiter.__await__()
        return self.get(timeout=0)

    __iter__ = __await__


def _set_if_pending(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def resolved(value: T) -> OpsFuture[T]:
    f: OpsFuture[T] = OpsFuture()
    f.set(value)
    return f


def failed(error: BaseException) -> OpsFuture[Any]:
    f: OpsFuture[Any] = OpsFuture()
    f.set_exception(error)
    return f
