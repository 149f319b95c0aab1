"""Runs inside the "worker host" namespace: lifecycles over CURVE, then reads the feed.

python -m tests.reliability.multihost_client ENDPOINT FEED SERVER_PUBLIC CLIENT_SECRET N
"""

from __future__ import annotations

import json
import sys

import zmq.auth

from actors import OperationId, OperationKind, OperationResult, OperationSpec
from transport import FeedSubscriber, RegistryClient


def main() -> None:
    endpoint, feed, server_cert, client_cert, n = sys.argv[1:6]
    server_key, _ = zmq.auth.load_certificate(server_cert)
    public, secret = zmq.auth.load_certificate(client_cert)
    assert secret is not None
    keys = {"curve_server_key": server_key, "curve_keypair": (public, secret)}
    with (
        FeedSubscriber(endpoint, feed, after_seq=0, **keys) as sub,
        RegistryClient(  # type: ignore[arg-type]
            endpoint, timeout=20, **keys
        ) as cli,
    ):
        ids = []
        for i in range(int(n)):
            op = OperationId.new()
            cli.register_operation(
                OperationSpec(
                    id=op,
                    kind=OperationKind.BACKGROUND_TOOL_OP,
                    owner_session_id="remote",
                    display_name=f"remote-{i}",
                    source_label="multihost",
                )
            )
            cli.provisioning_succeeded(op)
            cli.complete_operation(op, OperationResult(id=op, content=f"r{i}"))
            ids.append(str(op))
        seqs = []
        for _ in range(int(n)):
            entry = sub.next(timeout=20)
            if entry is None:
                break
            seqs.append(entry.seq)
        print(json.dumps({"ids": ids, "seqs": seqs, "watermark": cli.watermark()}), flush=True)


if __name__ == "__main__":
    main()
