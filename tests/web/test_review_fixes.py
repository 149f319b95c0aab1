"""What a review of the gateway found, each with the input that broke it (docs/http.md)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from actors import InvalidArgument, OperationResult, OperationSpec
from tests.web.conftest import TOKEN, Web, start_gateway, start_server
from tests.web.http_util import Http
from tests.web.sse_util import SseStream
from transport import RegistryClient
from transport.web.config import GatewayConfig
from transport.web.feedhub import FeedHub
from transport.web.guard import loopback_host, refusal

pytestmark = pytest.mark.timeout(60)


def port_of(web: Web) -> int:
    return urlsplit(web.url).port or 0


def test_an_integer_the_wire_cannot_carry_is_422_and_the_registry_stays_reachable(
    web: Web,
) -> None:
    # It used to escape the shared client's I/O thread and leave every later call on that
    # registry to time out (503) until the gateway restarted.
    for body in ({"after_seq": 1 << 64}, {"after_seq": -(1 << 70)}):
        status, answer = web.http.post("list_since", body)
        assert (status, answer["error"]["class"]) == (422, "InvalidArgument")
    big = {
        "op_id": "01890a5d-ac96-774b-bcce-b302099a8057",
        "result": {"content": "x", "duration_ms": 1 << 65},
    }
    assert web.http.post("complete_operation", big)[0] == 422
    assert web.http.ok("watermark") == 0


def test_a_python_client_survives_an_integer_it_cannot_encode(web: Web) -> None:
    with RegistryClient(web.server.endpoint, timeout=5) as cli:
        with pytest.raises(InvalidArgument, match="cannot encode"):
            cli.list_since(1 << 64)
        assert cli.watermark() == 0


def test_cross_site_writes_and_foreign_host_names_are_refused(web: Web) -> None:
    spec = {"spec": {"owner_session_id": "csrf"}}
    evil = {"origin": "http://evil.example"}
    status, body = web.http.post("register_operation", spec, headers=evil)
    assert (status, body["error"]["class"]) == (403, "Forbidden")
    assert (
        web.http.post("register_operation", spec, headers={"sec-fetch-site": "cross-site"})[0]
        == 403
    )
    rebound = {"host": f"evil.example:{port_of(web)}"}
    assert web.http.get("/v1/registries/default/operations", headers=rebound)[0] == 403
    assert web.http.ok("watermark") == 0
    assert web.http.get("/v1/registries/default/operations")[1]["items"] == []  # nothing changed
    same = {"origin": f"http://127.0.0.1:{port_of(web)}", "sec-fetch-site": "same-origin"}
    assert web.http.post("register_operation", spec, headers=same)[0] == 200
    assert web.http.get("/v1/registries/default/operations", headers=evil)[0] == 200  # a read


def test_host_rules() -> None:
    for host in ("127.0.0.1:8080", "localhost", "LOCALHOST:1", "[::1]:8080", "::1", "a.localhost"):
        assert loopback_host(host), host
    for host in ("evil.example", "evil.example:8080", "10.0.0.1:80", "", "[::1"):
        assert not loopback_host(host), host
    assert refusal("GET", {"host": "ops.example.com"}, has_token=True) is None
    assert refusal("GET", {"host": "ops.example.com"}, has_token=False) is not None
    assert refusal("POST", {"host": "h", "origin": "http://h"}, has_token=True) is None


def test_a_feed_page_larger_than_a_reply_is_read_in_smaller_pages(tmp_path: Path) -> None:
    # list_since(cursor, 1024) of big results is over the server's reply limit
    # (LimitExceeded); the hub and the streams asked again the same way for ever.
    server = start_server(tmp_path, max_reply_frame=1 << 20)
    gateway = start_gateway(server)
    try:
        with RegistryClient(server.endpoint, timeout=30) as cli:
            for i in range(24):
                spec = OperationSpec(owner_session_id="big", display_name=f"big-{i}")
                cli.register_operation(spec)
                cli.provisioning_succeeded(spec.id)
                cli.complete_operation(spec.id, OperationResult(content="x" * (100 << 10)))
        port = urlsplit(gateway.url).port or 0
        old = SseStream(port, "/v1/registries/default/feed?after=0")  # pages the registry
        seqs: list[int] = []
        for e in old.events():
            if e.event == "completion":
                assert len(e.data) > 100_000
                seqs.append(e.seq)
                if len(seqs) == 24:
                    break
        assert seqs == list(range(1, 25))
        old.close()
    finally:
        gateway.stop()
        server.stop()


def take_all(hub: FeedHub, cursor: int) -> list[bytes]:
    out = []
    while (taken := hub.take(cursor, 256)) is not None and taken[0]:
        out.append(taken[0])
        cursor = taken[1]
    return out


def test_the_ring_is_bounded_in_bytes_and_a_take_in_size() -> None:
    from actors.model import Completed, CompletionEntry, OperationId, OperationKind

    hub = FeedHub(None, lambda e: b"x" * 1000, capacity=100, max_bytes=10_000)  # type: ignore[arg-type]
    hub.last = 0
    entry = Completed(OperationResult(id=OperationId.new(), content=""))
    hub._append(
        CompletionEntry(s, OperationId.new(), OperationKind.BACKGROUND_TOOL_OP, "n", entry, 0)
        for s in range(1, 51)
    )
    assert hub.last == 50 and hub.bytes <= 10_000
    assert hub.first() == 41  # ten entries of 1,000 bytes kept
    assert hub.take(30, 256) is None  # older than the ring: the stream pages the registry
    chunk, end = hub.take(40, 256, max_bytes=2500)  # type: ignore[misc]
    assert (len(chunk), end) == (3000, 43)
    assert sum(len(c) for c in take_all(hub, 40)) == 10_000


def test_query_and_body_oddities_are_typed_errors(web: Web) -> None:
    assert web.http.get("/v1/registries/default/operations?limit=%C2%B2")[0] == 422
    status, body = web.http.request("POST", "/v1/registries/default/watermark", b"[" * 200_000)
    assert (status, body["error"]["class"]) == (400, "BadRequest")


def test_the_url_token_is_for_reads_only(web_token: Web) -> None:
    http = Http(web_token.url)
    spec = {"spec": {"owner_session_id": "t"}}
    status, _ = http.request(
        "POST",
        f"/v1/registries/default/register_operation?access_token={TOKEN}",
        b'{"spec": {"owner_session_id": "t"}}',
    )
    assert status == 401
    assert Http(web_token.url, token=TOKEN).post("register_operation", spec)[0] == 200


def test_health_is_open_but_tells_the_watermark_only_to_readers(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    gateway = start_gateway(server, token=TOKEN, reads_need_token=True)
    try:
        assert Http(gateway.url).get("/healthz") == (200, {"ok": True, "registry": "default"})
        _, body = Http(gateway.url, token=TOKEN).get("/healthz")
        assert body["watermark"] == 0
    finally:
        gateway.stop()
        server.stop()
    with pytest.raises(ValueError, match="at least one registry"):
        GatewayConfig(registries=()).check()
