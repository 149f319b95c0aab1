"""``GatewayConfig``: everything ``opsreg web`` can be told, and the checks made at start.

Pure code: no sockets, no threads. The gateway's contract is docs/http.md.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from dataclasses import dataclass, field

__all__ = ["GatewayConfig", "is_loopback", "read_token"]

_REGISTRY_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


@dataclass
class GatewayConfig:
    """What a gateway serves and how; the defaults are the embedded ones (docs/http.md)."""

    #: the registry server's request and feed endpoints
    endpoint: str = "tcp://127.0.0.1:5555"
    feed_endpoint: str = "tcp://127.0.0.1:5556"
    #: where the gateway listens
    host: str = "127.0.0.1"
    port: int = 8080
    #: the registries offered (the dashboard's selector); None: any valid name, up to
    #: ``max_registries`` at once (each is one client connection and one feed hub)
    registries: tuple[str, ...] | None = ("default",)
    max_registries: int = 16
    #: the bearer token (None: no token; only allowed on a loopback address)
    token: str | None = None
    #: whether reads (GETs, the feed, read-only methods) need the token too
    reads_need_token: bool = False
    #: seconds a call to the registry server may take before it is 503 ``CallTimeout``
    call_timeout: float = 10.0
    #: a held future's ``timeout`` when the body names none, and the most it may name
    default_wait_timeout: float = 30.0
    max_wait_timeout: float = 300.0
    #: seconds between the SSE feed's heartbeat comments
    sse_heartbeat: float = 15.0
    #: the largest request body accepted (413 beyond it)
    max_body: int = 1 << 20
    #: held futures (requests waiting for a value) per caller address and in all: the
    #: gateway's waits share one server connection, whose waits the server bounds
    #: (``max_waits_per_client``), so one caller must not be able to take them all
    max_held_per_caller: int = 256
    max_held: int = 4096
    #: open HTTP connections (uvicorn answers 503 beyond it), SSE streams included
    max_connections: int = 2048
    #: CURVE keys for the registry server (as for ``RegistryClient``)
    curve_server_key: bytes | None = None
    curve_keypair: tuple[bytes, bytes] | None = field(default=None, repr=False)

    def check(self) -> None:
        """Refuse a configuration that must not start (ValueError with the reason)."""
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        if self.token is None and not is_loopback(self.host):
            raise ValueError(
                f"refusing to serve HTTP on {self.host}, which is not a loopback address, "
                "without a token: give --http-token-file PATH (or bind 127.0.0.1)"
            )
        if self.reads_need_token and self.token is None:
            raise ValueError("--http-reads token needs --http-token-file")
        if self.registries is not None:
            if not self.registries:
                raise ValueError("offer at least one registry")
            for name in self.registries:
                if not _REGISTRY_NAME.fullmatch(name):
                    raise ValueError(f"invalid registry name {name!r}")
        for what in ("call_timeout", "default_wait_timeout", "max_wait_timeout", "sse_heartbeat"):
            if not getattr(self, what) > 0:
                raise ValueError(f"{what} must be positive")
        for what in ("max_registries", "max_held_per_caller", "max_held", "max_connections"):
            if getattr(self, what) < 1:
                raise ValueError(f"{what} must be at least 1")

    def offers(self, registry: str) -> bool:
        """Whether ``registry`` is a name this gateway serves."""
        if not _REGISTRY_NAME.fullmatch(registry):
            return False
        return self.registries is None or registry in self.registries


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is only reachable from this machine."""
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def read_token(path: str | os.PathLike[str]) -> str:
    """The bearer token in ``path``: its first line, stripped; refused if empty or short."""
    with open(path, encoding="utf-8") as f:
        token = f.readline().strip()
    if len(token) < 16:
        raise ValueError(f"{path}: the token must be at least 16 characters on the first line")
    return token
