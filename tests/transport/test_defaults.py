"""Less ceremony: ``OperationSpec`` and ``OperationResult`` defaults for Python callers.

Only ``owner_session_id`` (spec) and ``content`` (result) must be given; the wire is
unchanged: every field protocol.md §4 marks required is still required in a frame, and
a full struct encodes to the same bytes. Checked against a real server (port 0).
"""

from __future__ import annotations

import msgspec
import pytest

from actors import (
    Completed,
    InvalidArgument,
    OperationId,
    OperationKind,
    OperationResult,
    OperationSpec,
    OpsRegistry,
)
from actors.model import NO_ID
from transport import RegistryClient, RegistryServer, codec

pytestmark = pytest.mark.timeout(30)


def test_spec_defaults_generate_an_id_and_pick_the_common_kind() -> None:
    a = OperationSpec(owner_session_id="s1")
    b = OperationSpec(owner_session_id="s1")
    assert a.id != b.id and NO_ID not in (a.id, b.id)
    assert a.kind is OperationKind.BACKGROUND_TOOL_OP
    assert (a.display_name, a.source_label) == ("", "")
    assert b.id > a.id  # UUIDv7: later ids sort after


def test_defaults_do_not_weaken_validation() -> None:
    with pytest.raises(TypeError):
        OperationSpec(display_name="x")  # type: ignore[call-arg]  # the owner is required
    with pytest.raises(TypeError):
        OperationResult()  # type: ignore[call-arg]  # content is required
    with pytest.raises(InvalidArgument):
        OperationSpec(owner_session_id="s1", kind="nope")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        OperationSpec(owner_session_id="s1", id="not-an-id")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        OperationResult(content=3)  # type: ignore[arg-type]


def test_the_wire_still_requires_every_field_it_required() -> None:
    op = str(OperationId.new())
    full = {
        "id": op,
        "kind": "background_tool_op",
        "owner_session_id": "s",
        "display_name": "d",
        "source_label": "l",
    }
    assert codec.decode_args("register_operation", msgspec.Raw(msgspec.msgpack.encode([full])))
    for field in ("id", "kind", "display_name", "source_label", "owner_session_id"):
        short = {k: v for k, v in full.items() if k != field}
        frame = msgspec.Raw(msgspec.msgpack.encode([short]))
        with pytest.raises(InvalidArgument, match=f"missing required field `{field}`"):
            codec.decode_args("register_operation", frame)
    frame = msgspec.Raw(msgspec.msgpack.encode([op, {"content": "ok"}]))
    with pytest.raises(InvalidArgument, match="missing required field `id`"):
        codec.decode_args("complete_operation", frame)


def test_a_full_struct_encodes_as_before() -> None:
    op = OperationId("01890a5d-ac96-774b-bcce-b302099a8057")
    spec = OperationSpec(
        id=op,
        kind=OperationKind.BACKGROUND_TOOL_OP,
        owner_session_id="s",
        display_name="d",
        source_label="l",
    )
    assert list(msgspec.to_builtins(spec, enc_hook=str)) == [
        "id",
        "kind",
        "owner_session_id",
        "display_name",
        "source_label",
        "child_session_id",
        "expect_peer_channel",
        "lease",
    ]
    result = OperationResult(content="ok").for_operation(op)
    assert list(msgspec.to_builtins(result, enc_hook=str)) == [
        "id",
        "content",
        "is_error",
        "duration_ms",
        "tokens_used",
    ]
    assert result.id == op


def test_in_process_a_result_without_id_is_the_operations() -> None:
    with OpsRegistry.start() as reg:
        spec = OperationSpec(owner_session_id="s1", display_name="x")
        reg.register_operation(spec)
        reg.provisioning_succeeded(spec.id)
        watch = reg.register_watcher(spec.id)
        reg.complete_operation(spec.id, OperationResult(content="ok"))
        outcome = watch.get(timeout=5)
        assert isinstance(outcome, Completed) and outcome.result.id == spec.id


def test_over_the_wire_defaults_and_a_mismatched_id_stays_refused(
    server: RegistryServer,
) -> None:
    with RegistryClient(server.endpoint, timeout=10) as cli:
        spec = OperationSpec(owner_session_id="s1")
        cli.register_operation(spec)
        cli.provisioning_succeeded(spec.id)
        watch = cli.register_watcher(spec.id)
        other = OperationId.new()
        with pytest.raises(InvalidArgument, match="not the operation's"):
            cli.complete_operation(spec.id, OperationResult(id=other, content="x"))
        cli.complete_operation(spec.id, OperationResult(content="ok"))
        outcome = watch.get(timeout=10)
        assert isinstance(outcome, Completed)
        assert outcome.result.id == spec.id and outcome.result.content == "ok"
        assert cli.snapshot(spec.id).kind is OperationKind.BACKGROUND_TOOL_OP


def test_an_id_less_result_is_the_operations_on_every_path(server: RegistryServer) -> None:
    """The nil-UUID id means "this operation's" in the rules, so the async client, a
    pipeline and raw ``submit`` need not fill it in themselves."""
    import asyncio

    from transport import AsyncRegistryClient

    with RegistryClient(server.endpoint, timeout=10) as cli:
        specs = [OperationSpec(owner_session_id="defaults") for _ in range(3)]
        for spec in specs:
            cli.register_operation(spec)
            cli.provisioning_succeeded(spec.id)
        with cli.pipeline() as p:
            p.complete_operation(specs[0].id, OperationResult(content="pipelined"))
        cli.submit("complete_operation", specs[1].id, OperationResult(content="raw")).get(10)

        async def finish() -> None:
            async with AsyncRegistryClient(server.endpoint, timeout=10) as acli:
                await acli.complete_operation(specs[2].id, OperationResult(content="async"))

        asyncio.run(finish())
        for spec in specs:
            snap = cli.snapshot(spec.id)
            assert snap is not None and snap.terminal_outcome is not None
            assert snap.terminal_outcome.result.id == spec.id  # type: ignore[union-attr]
