"""opsreg's transport: the ``opsreg`` command line (and, next, the ZeroMQ server and client)."""

import logging

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__: list[str] = []
