from tests.transport.conftest import ServerProcess, server_process  # noqa: F401
