"""The HTTP gateway (docs/http.md): every registry method over JSON, reads as GETs, the
completion feed as Server-Sent Events, and the dashboard, for a running registry server.

>>> from transport.web import GatewayConfig, start_gateway_thread   # doctest: +SKIP
>>> gw = start_gateway_thread(GatewayConfig(port=0))                  # doctest: +SKIP
>>> gw.url, gw.stop()                                                 # doctest: +SKIP
"""

from transport.web.app import Gateway, create_app
from transport.web.config import GatewayConfig
from transport.web.run import GatewayHandle, start_gateway_thread

__all__ = ["Gateway", "GatewayConfig", "GatewayHandle", "create_app", "start_gateway_thread"]
