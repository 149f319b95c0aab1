"""Why a server did not answer: a second, short look at the handshake (``connect``).

Run only after ``wait_connected`` has failed, so it costs nothing when all is well. A
throwaway DEALER with the same CURVE options connects to the endpoint with a socket
monitor on, and the handshake's outcome says which of these it is:

- the ZMTP greeting names another security mechanism (``HANDSHAKE_FAILED_PROTOCOL``):
  the server uses CURVE and this client has no keys, or the other way round;
- the server's ZAP handler refused the key (``HANDSHAKE_FAILED_AUTH``): this client's
  public certificate is not in the server's ``--curve-allow`` directory;
- anything else (the connection refused: nothing listens; a handshake that succeeds; no
  event within the time): no hint, and the caller keeps its "is `opsreg serve` running
  there?".
"""

from __future__ import annotations

import time
from typing import Any

MECHANISM_HINT = "the server at {endpoint} did not accept this client's security mechanism: "
NO_KEYS = (
    "it requires CURVE, and this client has no keys "
    "(give --curve-server and --curve-cert, or OPSREG_CURVE_SERVER and OPSREG_CURVE_CERT)"
)
NOT_CURVE = "this client uses CURVE (--curve-server) and the server does not"
REFUSED_KEY = (
    "the server at {endpoint} refused this client's CURVE key "
    "(its public certificate is not in the server's --curve-allow directory)"
)


def handshake_hint(endpoint: str, curve: dict[str, Any], timeout: float) -> str | None:
    """One line saying why the handshake with ``endpoint`` fails, or None if it cannot tell."""
    import zmq
    from zmq.utils.monitor import recv_monitor_message

    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    if curve:
        public, secret = curve["curve_keypair"]
        sock.curve_serverkey = curve["curve_server_key"]
        sock.curve_publickey = public
        sock.curve_secretkey = secret
    events = (
        zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
        | zmq.EVENT_HANDSHAKE_FAILED_AUTH
        | zmq.EVENT_HANDSHAKE_SUCCEEDED
        | zmq.EVENT_CONNECTED
        | zmq.EVENT_CONNECT_RETRIED
    )
    monitor = sock.get_monitor_socket(events)
    try:
        sock.connect(endpoint)
        deadline = time.monotonic() + timeout
        listening = False  # a TCP connection was made: a retry is then the handshake's
        while (left := deadline - time.monotonic()) > 0:
            if not monitor.poll(int(left * 1000) + 1):
                return None
            event = recv_monitor_message(monitor)["event"]
            if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
                return MECHANISM_HINT.format(endpoint=endpoint) + (NOT_CURVE if curve else NO_KEYS)
            if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                return REFUSED_KEY.format(endpoint=endpoint)
            if event == zmq.EVENT_CONNECTED:
                listening = True
            elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                return None  # it answers after all
            elif event == zmq.EVENT_CONNECT_RETRIED and not listening:
                return None  # the connection was refused: nothing listens there
        return None
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)
        sock.close(linger=0)
        ctx.term()
