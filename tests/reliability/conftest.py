from tests.transport.conftest import server  # noqa: F401
