"""Server memory with every text field at its cap, and the peak of reading it all back.

Fills an ``opsreg serve --memory`` subprocess with N completed operations whose text
fields are all at their caps (``actors/model.py``: display_name 1 KiB, ids 256 B,
content 128 KiB, ...), keeping all of them (``--max-completed N``), then reads
everything back with ``list_since(0)`` and ``list_operations()`` (paged by the
client; each reply is bounded). Reports the server's VmRSS after the fill and its
VmHWM (peak) after the reads, and what a 1 MB display name gets.

    python bench/field_caps.py [--n 1100]

Prints one JSON line.
"""

# ruff: noqa: E402
from __future__ import annotations

import os
import sys

# bench/transport.py would shadow the transport package: import the helpers, then drop
# this directory from the path.
_HERE = os.path.dirname(os.path.abspath(__file__))
from _common import log, spawn_server, status_kib, stop_server

sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse
import json
import tempfile
import time
from pathlib import Path

from actors import OperationId, OperationKind, OperationResult, OperationSpec
from actors.model import MAX_CONTENT_BYTES, MAX_ID_BYTES, MAX_NAME_BYTES
from transport import RegistryClient

WINDOW = 200


def _spec(i: int) -> OperationSpec:
    return OperationSpec(
        id=OperationId.new(),
        kind=OperationKind.BACKGROUND_TOOL_OP,
        owner_session_id="o" * MAX_ID_BYTES,
        display_name=f"{i:06d}".ljust(MAX_NAME_BYTES, "n"),
        source_label="s" * MAX_ID_BYTES,
        child_session_id="c" * MAX_ID_BYTES,
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1100)
    args = parser.parse_args()
    n = args.n
    cmd = [
        sys.executable,
        "-m",
        "transport.cli",
        "serve",
        "--endpoint",
        "tcp://127.0.0.1:0",
        "--feed-endpoint",
        "tcp://127.0.0.1:0",
        "--memory",
        "--max-completed",
        str(n),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        proc, ready, line = spawn_server(cmd, str(Path(tmp) / "server.log"))
        try:
            if ready is None:
                raise RuntimeError(f"server did not start: {line!r}")
            endpoint = ready["endpoint"]
            with RegistryClient(endpoint, timeout=60) as cli:
                rss_empty = status_kib(proc.pid, "VmRSS")
                content = "r" * MAX_CONTENT_BYTES
                t0 = time.monotonic()
                for start in range(0, n, WINDOW):
                    futures = []
                    for i in range(start, min(n, start + WINDOW)):
                        spec = _spec(i)
                        result = OperationResult(id=spec.id, content=content)
                        futures.append(cli.submit("register_operation", spec))
                        futures.append(cli.submit("provisioning_succeeded", spec.id))
                        futures.append(cli.submit("complete_operation", spec.id, result))
                    for f in futures:
                        f.get(timeout=120)
                fill_s = time.monotonic() - t0
                rss_full = status_kib(proc.pid, "VmRSS")
                log(f"filled {n} operations in {fill_s:.1f}s")
                t0 = time.monotonic()
                entries = len(cli.list_since(0).entries)
                listed = len(cli.list_operations())
                read_s = time.monotonic() - t0
                hwm = status_kib(proc.pid, "VmHWM")
                try:
                    OperationSpec(
                        id=OperationId.new(),
                        kind=OperationKind.BACKGROUND_TOOL_OP,
                        owner_session_id="o",
                        display_name="n" * (1 << 20),
                        source_label="s",
                    )
                    huge = "accepted"
                except Exception as exc:
                    huge = type(exc).__name__
        finally:
            stop_server(proc)
    print(
        json.dumps(
            {
                "bench": "field_caps",
                "operations": n,
                "content_bytes": MAX_CONTENT_BYTES,
                "display_name_bytes": MAX_NAME_BYTES,
                "server_rss_mib": {
                    "empty": round(rss_empty / 1024, 1),
                    "filled": round(rss_full / 1024, 1),
                    "peak_after_reading_all": round(hwm / 1024, 1),
                },
                "read_back": {
                    "entries": entries,
                    "operations": listed,
                    "seconds": round(read_s, 2),
                },
                "fill_seconds": round(fill_s, 2),
                "one_mib_display_name": huge,
            },
            separators=(",", ":"),
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
