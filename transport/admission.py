"""Who may connect to the server, how many at once, and who may administer it.

Every connection to the server's sockets holds one file descriptor. When the
process runs out of them, libzmq's ``accept`` fails with ``EMFILE`` while the
listening socket stays readable, so its I/O thread spins at full CPU and no
new client gets in. The server therefore raises its soft ``RLIMIT_NOFILE`` to
the hard limit when it starts (:func:`raise_fd_limit`) and caps the live
connections below it (:func:`default_max_clients`).

The cap is enforced by :class:`Admission`, the server context's ZAP handler
(ZeroMQ RFC 27). It is pyzmq's :class:`zmq.auth.Authenticator` — which keeps
doing the CURVE allow-list and names each CURVE client by its z85 public key
(the ``User-Id`` of its messages) — with one rule in front: while the
connections alive on the watched sockets exceed ``max_clients``, a handshake
is denied, and libzmq closes that connection and frees its descriptor. The
live count comes from socket monitor events (``ACCEPTED`` minus
``DISCONNECTED``), read by the handler's own thread. libzmq consults the ZAP
handler for unauthenticated (NULL) connections only when the socket has a
``ZAP_DOMAIN``, so the server always sets :data:`ZAP_DOMAIN`.

:data:`ADMIN_METHODS` and :func:`may_administer` decide which clients may
call the methods that act on operations or waits other clients own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import resource
import threading
import time
from pathlib import Path
from typing import Any, Final

import zmq
import zmq.auth
from zmq.auth.base import VERSION as ZAP_VERSION
from zmq.auth.base import Authenticator
from zmq.utils.monitor import parse_monitor_message

from actors import calls

__all__ = [
    "ADMIN_METHODS",
    "ZAP_DOMAIN",
    "Admission",
    "default_max_clients",
    "load_admin_keys",
    "may_administer",
    "raise_fd_limit",
]

log = logging.getLogger(__name__)

#: Methods that act on operations or waits the caller did not name, so one
#: client could undo the work of every other: ``terminate_owner`` ends every
#: running operation, ``collect_completed`` drains every client's results,
#: ``cancel_wait_all`` cancels whichever barrier is active, whoever set it.
ADMIN_METHODS: Final = calls.ADMIN  # the table's ``admin`` entries (actors/calls.py)

#: Set on the server's sockets so that libzmq asks the ZAP handler about NULL
#: (unauthenticated) connections too, not only CURVE ones.
ZAP_DOMAIN: Final = "opsreg"

#: Descriptors kept back from the cap for the server's own files (store,
#: journal, sockets' mailboxes, metrics) and for connections that are still in
#: their handshake when the ZAP handler refuses them.
FD_RESERVE_MIN: Final = 64

# Not ACCEPT_FAILED: at the fd limit libzmq retries accept in a tight loop, one event each.
_WATCHED: Final = zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED
_monitor_ids = itertools.count()


def raise_fd_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:  # e.g. hard above the kernel's nr_open
            log.warning("cannot raise the file descriptor limit from %d to %d: %s", soft, hard, exc)
            return soft
        log.info("file descriptor limit raised from %d to %d", soft, hard)
        return hard
    log.info("file descriptor limit is %s", "unlimited" if soft == resource.RLIM_INFINITY else soft)
    return soft


def default_max_clients(fd_limit: int) -> int:
    """Live connections allowed at an fd limit: all but an eighth of it (at least 64 kept back)."""
    if fd_limit == resource.RLIM_INFINITY or fd_limit <= 0:
        fd_limit = 1 << 20
    return max(1, fd_limit - max(FD_RESERVE_MIN, fd_limit // 8))


def load_admin_keys(admin_dir: str, allow_dir: str | None) -> frozenset[str]:
    """The z85 public keys of the certificates in ``admin_dir``; each must also be allowed."""
    if allow_dir is None:
        raise ValueError("admin keys need CURVE (curve_secret_file and curve_allow_dir)")
    if not Path(admin_dir).is_dir():
        raise ValueError(f"admin key directory {admin_dir} does not exist")
    admins = zmq.auth.load_certificates(admin_dir)
    if not admins:
        raise ValueError(f"{admin_dir} holds no public certificates")
    unknown = set(admins) - set(zmq.auth.load_certificates(allow_dir))
    if unknown:
        raise ValueError(
            f"{len(unknown)} admin key(s) in {admin_dir} are not in the allow-list {allow_dir}"
        )
    return frozenset(key.decode("ascii") for key in admins)


def may_administer(admins: frozenset[str] | None, frame: zmq.Frame | None) -> bool:
    """Whether the sender of ``frame`` (received with ``copy=False``) may call ADMIN_METHODS.

    ``admins`` None means no admin keys are configured: everyone who got in may.
    The key is read from each message, not remembered per routing id, because a
    connection with another key may take a routing id over (``ROUTER_HANDOVER``).
    """
    if admins is None:
        return True
    if frame is None:
        return False
    try:
        return frame.get("User-Id") in admins
    except zmq.ZMQError:  # no User-Id: the connection was not authenticated
        return False


class Admission(Authenticator):
    """The server's ZAP handler: pyzmq's CURVE allow-list plus a cap on live connections.

    >>> ctx = zmq.Context()
    >>> router = ctx.socket(zmq.ROUTER)
    >>> admission = Admission(ctx, max_clients=100)
    >>> admission.watch(router)          # before bind, so every connection is counted
    >>> admission.start()
    >>> port = router.bind_to_random_port("tcp://127.0.0.1")
    >>> router.close(); admission.stop(); ctx.term()
    """

    def __init__(
        self, context: zmq.Context[Any], max_clients: int, log_interval: float = 10.0
    ) -> None:
        super().__init__(context, log=logging.getLogger("zmq.auth"))
        self.max_clients = max_clients
        self.log_interval = log_interval
        #: connections alive on the watched sockets, those still in their handshake included
        self.live = 0
        #: connections refused at the cap since the start
        self.refused = 0
        self._monitors: list[zmq.Socket[bytes]] = []
        self._unlogged = 0
        self._next_log = 0.0
        self._stopping = threading.Event()
        self._wake: zmq.Socket[bytes] | None = None
        self._thread: threading.Thread | None = None

    def watch(self, sock: zmq.Socket[bytes]) -> None:
        """Count ``sock``'s connections and have libzmq ask about its NULL ones too."""
        sock.setsockopt_string(zmq.ZAP_DOMAIN, ZAP_DOMAIN)
        addr = f"inproc://opsreg.admission.{id(self)}.{next(_monitor_ids)}"
        sock.monitor(addr, _WATCHED)
        reader: zmq.Socket[bytes] = self.context.socket(zmq.PAIR)
        # Unbounded: libzmq's I/O thread must never wait for this reader.
        reader.setsockopt(zmq.RCVHWM, 0)
        reader.setsockopt(zmq.LINGER, 0)
        reader.connect(addr)
        self._monitors.append(reader)

    def start(self) -> None:
        super().start()  # binds the context's ZAP endpoint
        wake_addr = f"inproc://opsreg.admission.{id(self)}.wake"
        wake_reader: zmq.Socket[bytes] = self.context.socket(zmq.PAIR)
        wake_reader.bind(wake_addr)
        self._wake = self.context.socket(zmq.PAIR)
        self._wake.setsockopt(zmq.LINGER, 0)
        self._wake.connect(wake_addr)
        self._thread = threading.Thread(
            target=self._run, args=(wake_reader,), name="opsreg-admission", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stopping.set()
            assert self._wake is not None
            # Never block here: if the thread has already ended (it logs why), nobody
            # reads the wake-up pipe and a blocking send would hang the server's stop.
            with contextlib.suppress(zmq.Again):
                self._wake.send(b"", zmq.NOBLOCK)
            self._thread.join(timeout=10)
            self._thread = None
        if self._wake is not None:
            self._wake.close(linger=0)
            self._wake = None
        for reader in self._monitors:
            reader.close(linger=0)
        self._monitors.clear()
        super().stop()

    # --- the handler's thread ------------------------------------------------------------------

    def _run(self, wake: zmq.Socket[bytes]) -> None:
        loop = asyncio.new_event_loop()
        poller = zmq.Poller()
        poller.register(wake, zmq.POLLIN)
        poller.register(self.zap_socket, zmq.POLLIN)
        for reader in self._monitors:
            poller.register(reader, zmq.POLLIN)
        try:
            while not self._stopping.is_set():
                timeout = None
                if self._unlogged:
                    timeout = max(0, int((self._next_log - time.monotonic()) * 1000)) + 1
                events = dict(poller.poll(timeout))
                try:
                    self._drain_monitors()
                    if self.zap_socket in events:
                        loop.run_until_complete(
                            self.handle_zap_message(self.zap_socket.recv_multipart())
                        )
                    self._log_refusals()
                except zmq.ContextTerminated:
                    raise
                except Exception:
                    # One bad event must not end admission: with this thread gone no
                    # handshake would ever be answered and nobody could connect.
                    log.exception("admission: handling a connection event failed")
        except Exception:
            log.exception("admission thread failed; new connections will not be admitted")
        finally:
            self._next_log = 0.0
            self._log_refusals()  # what the last interval refused
            wake.close(linger=0)
            loop.close()

    def _drain_monitors(self) -> None:
        for reader in self._monitors:
            while True:
                try:
                    msg = reader.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                event = parse_monitor_message(msg)["event"]
                if event == zmq.EVENT_ACCEPTED:
                    self.live += 1
                elif event == zmq.EVENT_DISCONNECTED:
                    self.live -= 1

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        # The ACCEPTED event of the connection asking is already queued: libzmq
        # sends it before the handshake that leads here.
        self._drain_monitors()
        if self.live > self.max_clients and len(msg) >= 2:
            self.refused += 1
            self._unlogged += 1
            self.zap_socket.send_multipart(
                [ZAP_VERSION, msg[1], b"400", b"too many connections", b"", b""]
            )
            return
        await super().handle_zap_message(msg)

    def _log_refusals(self) -> None:
        if not self._unlogged:
            return
        now = time.monotonic()
        if now < self._next_log:
            return
        log.warning(
            "refused %d connection(s): %d live, at the cap of %d (max_clients)",
            self._unlogged,
            self.live,
            self.max_clients,
        )
        self._unlogged = 0
        self._next_log = now + self.log_interval
