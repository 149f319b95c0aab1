"""A registry server and an HTTP gateway to it, for the gateway's tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.web.http_util import Http
from transport import RegistryServer, ServerConfig
from transport.web import GatewayConfig, GatewayHandle, start_gateway_thread

TOKEN = "t0ken-for-the-gateway-tests"


@dataclass
class Web:
    server: RegistryServer
    gateway: GatewayHandle
    http: Http

    @property
    def url(self) -> str:
        return self.gateway.url


def start_server(tmp_path: Path, **config: object) -> RegistryServer:
    return RegistryServer(
        ServerConfig(
            endpoint="tcp://127.0.0.1:0",
            feed_endpoint="tcp://127.0.0.1:0",
            data_dir=str(tmp_path / "data"),
            heartbeat_interval=0.2,
            client_timeout=1.0,
            **config,  # type: ignore[arg-type]
        )
    ).start()


def start_gateway(server: RegistryServer, **config: object) -> GatewayHandle:
    return start_gateway_thread(
        GatewayConfig(
            endpoint=server.endpoint,
            feed_endpoint=server.feed_endpoint,
            port=0,
            **config,  # type: ignore[arg-type]
        )
    )


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    server = start_server(tmp_path)
    gateway = start_gateway(server)
    try:
        yield Web(server, gateway, Http(gateway.url))
    finally:
        gateway.stop()
        server.stop()


@pytest.fixture
def web_token(tmp_path: Path) -> Iterator[Web]:
    server = start_server(tmp_path)
    gateway = start_gateway(server, token=TOKEN)
    try:
        yield Web(server, gateway, Http(gateway.url))
    finally:
        gateway.stop()
        server.stop()
