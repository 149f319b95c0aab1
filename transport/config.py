"""``ServerConfig``: everything a ``RegistryServer`` can be told, with the embedded defaults."""

from __future__ import annotations

from dataclasses import dataclass

from actors.lifecycle import DEFAULT_MAX_COMPLETED
from actors.persistence import DEFAULT_COMPACT_EVERY

__all__ = ["ServerConfig"]


@dataclass
class ServerConfig:
    """Everything ``RegistryServer`` can be told; the defaults are the embedded ones."""

    endpoint: str = "tcp://127.0.0.1:5555"
    feed_endpoint: str = "tcp://127.0.0.1:5556"
    data_dir: str | None = "./var"
    synchronous: str = "full"
    max_completed: int = DEFAULT_MAX_COMPLETED
    max_concurrent: int | None = None
    compact_every: int = DEFAULT_COMPACT_EVERY
    max_frame: int = 1 << 20
    max_inflight: int = 4096
    #: registries open at once (each is a thread); idle durable ones are closed to make room
    max_registries: int = 512
    #: seconds without a request after which a registry with nothing pending is closed
    registry_idle: float = 300.0
    #: the only registry names served (None: any valid name)
    registries: tuple[str, ...] | None = None
    #: a reply frame larger than this is answered with ``LimitExceeded`` instead
    max_reply_frame: int = 16 << 20
    #: reply bytes queued for one client that is not reading / for all of them together
    client_reply_bytes: int = 32 << 20
    server_reply_bytes: int = 256 << 20
    #: reply frames libzmq queues per client before the server keeps them (see budgets.py)
    reply_hwm: int = 16
    #: bytes the PUB socket may queue per subscriber before it drops (subscribers repair)
    feed_hwm_bytes: int = 64 << 20
    #: largest feed frame; bigger batches are split, a bigger single entry is left to repair
    max_feed_frame: int = 64 << 10
    #: PUB high-water mark in messages (None: ``feed_hwm_bytes // max_feed_frame``)
    feed_hwm: int | None = None
    heartbeat_interval: float = 1.0
    client_timeout: float = 5.0
    #: watchers, ``wait_any``, ``wait_all`` and ``wait_for_advance`` a client may have
    #: pending at once (each costs the server a few kilobytes until it settles)
    max_waits_per_client: int = 10_000
    #: path of the server's secret certificate (``zmq.auth.create_certificates``)
    curve_secret_file: str | None = None
    #: directory of allowed client public certificates
    curve_allow_dir: str | None = None
    #: directory of the public certificates that may call ``ADMIN_METHODS`` (a subset of
    #: the allowed ones); None: every client that gets in may
    curve_admin_dir: str | None = None
    #: live connections on both sockets together; beyond it new handshakes are refused.
    #: None: the fd limit less an eighth of it, at least 64 kept back (``default_max_clients``)
    max_clients: int | None = None
    #: ``HOST:PORT`` for a Prometheus ``/metrics`` endpoint (None: no metrics)
    metrics: str | None = None
    #: chaos testing only: the share of journal commits that fail on purpose
    inject_commit_failures: float = 0.0
