"""How the gateway reads a call (the fast paths taken after profiling it, docs/performance.md
"HTTP"): the body straight from the ASGI messages, however many there are; an operation id
read by ``OperationId`` itself, with the same 422s as any other argument."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.web.conftest import Web


def _post_chunked(web: Web, method: str, parts: Iterator[bytes]) -> tuple[int, Any]:
    """POST with ``Transfer-Encoding: chunked``: the gateway gets several body messages."""
    conn = http.client.HTTPConnection(web.http.host, web.http.port, timeout=30)
    try:
        conn.request(
            "POST",
            f"/v1/registries/default/{method}",
            body=parts,
            headers={"content-type": "application/json"},
            encode_chunked=True,
        )
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


@pytest.mark.timeout(60)
def test_a_body_in_many_chunks_is_read_whole_and_its_size_capped(web: Web) -> None:
    body = json.dumps({"spec": {"owner_session_id": "chunks", "display_name": "c" * 1000}})
    pieces = (body[i : i + 40].encode() for i in range(0, len(body), 40))
    status, value = _post_chunked(web, "register_operation", pieces)
    assert status == 200, value
    snap = web.http.ok("snapshot", {"op_id": value["id"]})
    assert snap["display_name"] == "c" * 1000

    megabyte = b"x" * (1 << 20)
    status, value = _post_chunked(web, "register_operation", iter([b'{"spec": "', megabyte]))
    assert status == 413 and value["error"]["class"] == "TooLarge", value


@pytest.mark.timeout(60)
def test_operation_ids_are_checked_like_any_argument(web: Web) -> None:
    op = web.http.ok("register_operation", {"spec": {"owner_session_id": "ids"}})["id"]
    assert web.http.ok("snapshot", {"op_id": op.upper()})["id"] == op  # the canonical text
    for bad, says in (
        ("not-a-uuid", "op_id: operation id is not a UUID: 'not-a-uuid'"),
        (5, "op_id: operation id must be a string, got int"),
        (True, "op_id: operation id must be a string, got bool"),
        (["x"], "op_id: operation id must be a string, got list"),
    ):
        status, value = web.http.post("snapshot", {"op_id": bad})
        assert status == 422, value
        assert value["error"]["class"] == "InvalidArgument"
        assert value["error"]["message"].endswith(says), value
