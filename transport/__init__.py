"""opsreg's transport: the registry over ZeroMQ.

The public API on one screen::

    from transport import RegistryServer, RegistryClient, FeedSubscriber

    server = RegistryServer(endpoint="tcp://127.0.0.1:5555",
                            feed_endpoint="tcp://127.0.0.1:5556", data_dir="var").start()
    cli = RegistryClient("tcp://127.0.0.1:5555", registry="default", timeout=10.0)
    cli.register_operation(spec); cli.provisioning_succeeded(spec.id)
    watch = cli.register_watcher(spec.id)          # OpsFuture: .get(timeout) or await
    sub = FeedSubscriber("tcp://127.0.0.1:5555", "tcp://127.0.0.1:5556")  # from now
    for entry in sub: ...                           # CompletionEntry, seq 1, 2, 3, ...
    with cli.pipeline() as p: p.complete_operation(spec.id, result)   # typed, no waiting
    async with AsyncRegistryClient(endpoint) as acli: await acli.watermark()   # asyncio
"""

import logging

from transport import codec as codec  # the frames, for those who speak the wire (docs/protocol.md)
from transport.aio import AsyncRegistryClient
from transport.client import RegistryClient
from transport.config import ServerConfig
from transport.errors import (
    Busy,
    CallTimeout,
    FeedCursorAhead,
    FeedGap,
    OpsregError,
    OpsTimeout,
    ServerRestarted,
    TooLarge,
    Unavailable,
)
from transport.feed import FeedSubscriber
from transport.pipeline import Pipeline
from transport.server import RegistryServer
from transport.workers import (
    CallCancelled,
    CallHandle,
    OperationError,
    PoolTimeout,
    WorkerPool,
    WorkerStartError,
)

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "AsyncRegistryClient",
    "Busy",
    "CallCancelled",
    "CallHandle",
    "CallTimeout",
    "FeedCursorAhead",
    "FeedGap",
    "FeedSubscriber",
    "OperationError",
    "OpsTimeout",
    "OpsregError",
    "Pipeline",
    "PoolTimeout",
    "RegistryClient",
    "RegistryServer",
    "ServerConfig",
    "ServerRestarted",
    "TooLarge",
    "Unavailable",
    "WorkerPool",
    "WorkerStartError",
]
