"""The gateway against a real registry server (docs/http.md §1, §2): every method of the
table over JSON, every error class with its status, held futures, paging."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from actors.calls import METHODS
from actors.model import OperationId
from tests.web.conftest import Web, start_gateway, start_server
from tests.web.http_util import Http, until
from transport import RegistryClient
from transport.web.errors import STATUS, all_error_classes

pytestmark = pytest.mark.timeout(60)


def spec(name: str = "op", **extra: Any) -> dict[str, Any]:
    return {"owner_session_id": "web-tests", "display_name": name, **extra}


def running(http: Http, name: str = "op", **extra: Any) -> str:
    op = http.ok("register_operation", {"spec": spec(name, **extra)})["id"]
    http.ok("provisioning_succeeded", {"op_id": op})
    return str(op)


def test_every_method_of_the_table_over_http(web: Web) -> None:
    http, called = web.http, set()

    def ok(method: str, body: Any = None) -> Any:
        called.add(method)
        return http.ok(method, body)

    pool = ThreadPoolExecutor(4)
    op = ok("register_operation", {"spec": spec("a", kind="mob_member_child")})["id"]
    ok("provisioning_succeeded", {"op_id": op})
    ok(
        "peer_ready",
        {"op_id": op, "peer": {"peer_name": "n", "peer_id": "p1", "address": "tcp://x:1"}},
    )
    watcher = pool.submit(ok, "register_watcher", {"op_id": op})
    until(lambda: http.ok("snapshot", {"op_id": op})["watcher_count"] == 1)
    ok("report_progress", {"op_id": op, "update": {"message": "half", "percent": 50}})
    advance = pool.submit(ok, "wait_for_advance", {"after_seq": 0})
    ok("complete_operation", {"op_id": op, "result": {"content": "done"}})
    assert watcher.result(10)["outcome"] == "completed"
    assert watcher.result()["result"] == {
        "id": op,
        "content": "done",
        "is_error": False,
        "duration_ms": 0,
        "tokens_used": 0,
    }
    assert advance.result(10) >= 1

    b = ok("register_operation", {"spec": spec("b")})["id"]
    ok("provisioning_failed", {"op_id": b, "error": "no capacity"})
    c = ok("register_operation", {"spec": spec("c")})["id"]
    ok("abort_provisioning", {"op_id": c})
    d = running(http, "d")
    ok("cancel_operation", {"op_id": d, "reason": "not needed"})
    e = running(http, "e")
    ok("fail_operation", {"op_id": e, "error": "boom"})
    f = running(http, "f")
    ok("request_retire", {"op_id": f})
    ok("mark_retired", {"op_id": f})

    g, h = running(http, "g"), running(http, "h")
    barrier = pool.submit(ok, "wait_all", {"run_id": "r1", "ids": [g, h], "timeout": 20})
    until(lambda: http.ok("diagnostic_snapshot")["wait_active"])
    anyone = pool.submit(ok, "wait_any", {"ids": [g, h]})
    ok("complete_operation", {"op_id": g, "result": {"content": "g"}})
    assert anyone.result(10)[0] == g
    ok("complete_operation", {"op_id": h, "result": {"content": "h"}})
    done = barrier.result(10)
    assert [o[0] for o in done["outcomes"]] == [g, h]
    assert ok("cancel_wait_all") is False

    assert ok("snapshot", {"op_id": op})["progress_count"] == 1
    log = ok("progress_log", {"op_id": op})
    assert [(x["message"], x["percent"], x["number"]) for x in log] == [("half", 50.0, 1)]
    names = [s["display_name"] for s in ok("list_operations", {"owner_session_id": "web-tests"})]
    assert names == sorted(names) and {"a", "b", "c", "d", "e", "f", "g", "h"} <= set(names)
    page = ok("list_operations", {"limit": 2, "after": ["a", op]})
    assert [s["display_name"] for s in page] == ["b", "c"]
    batch = ok("list_since", {"after_seq": 0})
    assert [x["seq"] for x in batch["entries"]] == list(range(1, batch["watermark"] + 1))
    assert ok("watermark") == batch["watermark"] == 8
    running(http, "i")
    ok("terminate_owner", {"reason": "shutting down"})
    completed = ok("collect_completed")
    assert {x[1]["outcome"] for x in completed} >= {"completed", "failed", "terminated"}
    assert "operations" in ok("capture_persistence_snapshot")["authority_state"]
    assert "operation_count" in ok("diagnostic_snapshot")

    assert called == set(METHODS), f"not called over HTTP: {set(METHODS) - called}"
    # The same registry, read through the Python client.
    with RegistryClient(web.server.endpoint) as cli:
        assert cli.watermark() == ok("watermark")
        assert cli.list_since(0).watermark == ok("watermark")
    pool.shutdown()


def test_every_error_class_has_a_status() -> None:
    missing = [c.__name__ for c in all_error_classes() if c.__name__ not in STATUS]
    assert not missing, f"add these to transport/web/errors.py STATUS: {missing}"


def error_of(answer: tuple[int, Any]) -> tuple[int, str]:
    status, body = answer
    assert set(body["error"]) == {"class", "message", "fields"}, body
    return status, body["error"]["class"]


def test_errors_answer_with_their_class_and_status(tmp_path: Any) -> None:
    server = start_server(tmp_path, max_concurrent=3)
    gateway = start_gateway(server, call_timeout=1.0)
    http = Http(gateway.url)
    try:
        op = running(http, "x", expect_peer_channel=False)
        unknown = str(OperationId.new())
        assert error_of(http.post("snapshot", {"op_id": "nope"})) == (422, "InvalidArgument")
        status, body = http.post("provisioning_succeeded", {"op_id": unknown})
        assert (status, body["error"]["class"]) == (404, "NotFound")
        assert body["error"]["fields"] == {"id": unknown}
        assert error_of(http.get(f"/v1/registries/default/operations/{unknown}")) == (
            404,
            "NotFound",
        )
        dup = {"spec": spec("x", id=op)}
        assert error_of(http.post("register_operation", dup)) == (409, "AlreadyRegistered")
        status, body = http.post("provisioning_succeeded", {"op_id": op})
        assert (status, body["error"]["class"]) == (409, "InvalidTransition")
        assert body["error"]["fields"]["status"] == "running"
        peer = {"op_id": op, "peer": {"peer_name": "n", "peer_id": "p", "address": "a"}}
        assert error_of(http.post("peer_ready", peer)) == (409, "PeerNotExpected")
        p = running(http, "p", kind="mob_member_child")
        http.ok("peer_ready", {**peer, "op_id": p})
        assert error_of(http.post("peer_ready", {**peer, "op_id": p})) == (409, "AlreadyPeerReady")
        assert error_of(http.post("wait_all", {"run_id": "r", "ids": [op, op]})) == (
            409,
            "DuplicateWaitOperation",
        )
        held = ThreadPoolExecutor(1).submit(http.post, "wait_all", {"run_id": "r", "ids": [op]})
        until(lambda: http.ok("diagnostic_snapshot")["wait_active"])
        assert error_of(http.post("wait_all", {"run_id": "r2", "ids": [p]})) == (
            409,
            "WaitAlreadyActive",
        )
        assert http.ok("cancel_wait_all") is True
        assert error_of(held.result(10)) == (409, "WaitCancelled")
        running(http, "third")
        assert error_of(http.post("register_operation", {"spec": spec("4th")})) == (
            429,
            "MaxConcurrentExceeded",
        )
        big = {"spec": spec("y" * (2 << 20))}
        assert error_of(http.post("register_operation", big)) == (413, "TooLarge")
        assert error_of(
            http.post("register_operation", {"spec": {"display_name": "no owner"}})
        ) == (
            422,
            "InvalidArgument",
        )
        assert error_of(http.post("list_operations", {"limit": 5000})) == (422, "InvalidArgument")
        assert error_of(http.post("snapshot", {"op_id": op, "extra": 1})) == (
            422,
            "InvalidArgument",
        )
        assert error_of(http.post("snapshot", {})) == (422, "InvalidArgument")
        assert error_of(http.post("no_such_method", {})) == (404, "UnknownMethod")
        assert error_of(http.request("POST", "/v1/registries/default/snapshot", b"{")) == (
            400,
            "BadRequest",
        )
        assert error_of(http.request("POST", "/v1/registries/default/snapshot", b"[1]")) == (
            400,
            "BadRequest",
        )
        assert error_of(http.get("/v1/registries/bad%20name!/operations")) == (
            404,
            "UnknownRegistry",
        )
        assert error_of(http.get("/v1/registries/default/operations?status=sleeping")) == (
            422,
            "InvalidArgument",
        )
        assert error_of(http.get("/v1/registries/default/operations?after=zzz")) == (
            422,
            "InvalidArgument",
        )
        assert error_of(http.get("/nowhere")) == (404, "UnknownPath")
        # Nothing above changed anything: the same four live operations.
        assert http.ok("diagnostic_snapshot")["active_count"] == 3
        server.stop()
        assert error_of(http.post("watermark", {})) == (503, "CallTimeout")
        assert http.get("/healthz")[0] == 503
    finally:
        gateway.stop()
        server.stop()


def test_a_held_future_times_out_with_408_and_leaves_no_watcher(web: Web) -> None:
    op = running(web.http)
    t0 = time.monotonic()
    status, body = web.http.post("register_watcher", {"op_id": op, "timeout": 0.3})
    assert (status, body["error"]["class"]) == (408, "WaitTimeout")
    assert time.monotonic() - t0 < 5
    until(lambda: web.http.ok("snapshot", {"op_id": op})["watcher_count"] == 0)
    for bad in (0, -1, "soon", 10_000):
        assert error_of(web.http.post("register_watcher", {"op_id": op, "timeout": bad})) == (
            422,
            "InvalidArgument",
        )


def test_a_caller_that_goes_away_drops_its_wait(web: Web) -> None:
    import socket
    from urllib.parse import urlsplit

    op = running(web.http)
    parts = urlsplit(web.url)
    body = json.dumps({"op_id": op}).encode()
    s = socket.create_connection((parts.hostname, parts.port))
    s.sendall(
        b"POST /v1/registries/default/register_watcher HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    until(lambda: web.http.ok("snapshot", {"op_id": op})["watcher_count"] == 1)
    s.close()
    until(lambda: web.http.ok("snapshot", {"op_id": op})["watcher_count"] == 0)


def test_paging_over_ten_thousand_operations(tmp_path: Any) -> None:
    server = start_server(tmp_path, max_completed=20_000)
    gateway = start_gateway(server)
    http = Http(gateway.url)
    try:
        with RegistryClient(server.endpoint) as cli:
            specs = [
                cli_spec(f"op-{i:05d}", owner="pager" if i % 2 else "other") for i in range(10_000)
            ]
            for start in range(0, 10_000, 2000):  # a server holds 4,096 calls in flight per client
                with cli.pipeline() as p:
                    for s in specs[start : start + 2000]:
                        p.register_operation(s)
            with cli.pipeline() as p:
                for s in specs[:3000]:
                    p.provisioning_succeeded(s.id)
        seen: list[str] = []
        after = ""
        while True:
            status, page = http.get(f"/v1/registries/default/operations?limit=1024{after}")
            assert status == 200
            seen += [s["display_name"] for s in page["items"]]
            if page["next"] is None:
                break
            after = f"&after={page['next']}"
        assert seen == [f"op-{i:05d}" for i in range(10_000)]
        status, page = http.get(
            "/v1/registries/default/operations?status=running&limit=1024&owner=pager"
        )
        assert [s["display_name"] for s in page["items"]] == [
            f"op-{i:05d}" for i in range(3000) if i % 2
        ][:1024]
        assert page["next"] is not None
        status, page = http.get("/v1/registries/default/operations?name=op-0999&limit=50")
        assert [s["display_name"] for s in page["items"]] == [f"op-0999{i}" for i in range(10)]
        assert page["next"] is None
        newest: list[str] = []
        after = ""
        while True:  # newest first: by id, a UUIDv7, so by registration
            status, page = http.get(
                f"/v1/registries/default/operations?order=newest&limit=1000{after}"
            )
            newest += [s["id"] for s in page["items"]]
            if page["next"] is None:
                break
            after = f"&after={page['next']}"
        assert newest == [str(s.id) for s in reversed(specs)]
        status, page = http.get("/v1/registries/default/operations?order=oldest&name=op-00&limit=3")
        assert [s["display_name"] for s in page["items"]] == ["op-00000", "op-00001", "op-00002"]
        assert error_of(http.get("/v1/registries/default/operations?order=up")) == (
            422,
            "InvalidArgument",
        )
    finally:
        gateway.stop()
        server.stop()


def cli_spec(name: str, owner: str) -> Any:
    from actors.model import OperationSpec

    return OperationSpec(owner_session_id=owner, display_name=name)


def test_openapi_names_every_method_and_every_route_answers(web: Web) -> None:
    status, spec_doc = web.http.get("/openapi.json")
    assert status == 200 and spec_doc["openapi"].startswith("3.1")
    for name, m in METHODS.items():
        path = spec_doc["paths"][f"/v1/registries/{{registry}}/{name}"]["post"]
        props = path["requestBody"]["content"]["application/json"]["schema"]["properties"]
        assert set(props) - {"timeout"} == {a.name for a in m.args}, name
    status, page = web.http.get("/docs")
    assert status == 200 and all(name in page for name in METHODS)
    for path in spec_doc["paths"]:
        if "{method}" in path or path.endswith("/feed"):
            continue
        real = path.replace("{registry}", "default").replace("{op_id}", str(OperationId.new()))
        status, _ = (
            web.http.get(real)
            if "get" in spec_doc["paths"][path]
            else web.http.post(real.rsplit("/", 1)[1], {})
        )
        assert status in (200, 404, 422), (path, status)


def test_one_caller_cannot_hold_every_wait(tmp_path: Any) -> None:
    # The gateway's waits share one server connection; a caller past its share is 429
    # and the others still get theirs.
    server = start_server(tmp_path)
    gateway = start_gateway(server, max_held_per_caller=3, max_held=5)
    http = Http(gateway.url)
    pool = ThreadPoolExecutor(8)
    try:
        op = running(http)
        held = [pool.submit(http.post, "register_watcher", {"op_id": op}) for _ in range(3)]
        until(lambda: http.ok("snapshot", {"op_id": op})["watcher_count"] == 3)
        status, body = http.post("register_watcher", {"op_id": op, "timeout": 5})
        assert (status, body["error"]["class"]) == (429, "LimitExceeded")
        assert body["error"]["fields"] == {"what": "held requests per caller", "limit": 3}
        assert gateway.url  # the bound is per caller address: 127.0.0.1 here
        http.ok("complete_operation", {"op_id": op, "result": {"content": "ok"}})
        assert [f.result(10)[0] for f in held] == [200, 200, 200]
        # Released: the same caller may hold again.
        op2 = running(http, "again")
        again = pool.submit(http.post, "register_watcher", {"op_id": op2})
        until(lambda: http.ok("snapshot", {"op_id": op2})["watcher_count"] == 1)
        http.ok("cancel_operation", {"op_id": op2})
        assert again.result(10)[0] == 200
    finally:
        pool.shutdown()
        gateway.stop()
        server.stop()
