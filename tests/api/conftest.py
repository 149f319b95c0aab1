"""The real server fixture of the transport tests (127.0.0.1, port 0)."""

from tests.transport.conftest import server  # noqa: F401
