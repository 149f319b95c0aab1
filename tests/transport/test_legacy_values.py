"""Text kept by an older version beyond today's caps is still read back, never refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors import InvalidArgument, OperationId, OperationKind, OperationSpec, OpsRegistry
from actors.model import MAX_CONTENT_BYTES, MAX_NAME_BYTES, OperationResult, trusted_values
from transport import FeedSubscriber, RegistryClient, RegistryServer, ServerConfig

pytestmark = pytest.mark.timeout(60)


def _long_spec() -> OperationSpec:
    return OperationSpec(
        id=OperationId.new(),
        kind=OperationKind.BACKGROUND_TOOL_OP,
        owner_session_id="s",
        display_name="n" * (MAX_NAME_BYTES * 5),
        source_label="t",
    )


def test_a_store_holding_text_over_the_caps_opens_and_serves_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    # As an older version without caps would have kept them.
    with trusted_values():
        spec = _long_spec()
        result = OperationResult(id=spec.id, content="c" * (MAX_CONTENT_BYTES + 10))
    with pytest.raises(InvalidArgument, match="display_name is too long"):
        _long_spec()  # the leniency ends with the block
    with OpsRegistry.open(data) as reg:
        reg.register_operation(spec)
        reg.provisioning_succeeded(spec.id)
        reg.complete_operation(spec.id, result)
    with OpsRegistry.open(data) as reg:  # recovery decodes the snapshot it wrote
        assert reg.snapshot(spec.id).display_name == spec.display_name

    config = ServerConfig(
        endpoint="tcp://127.0.0.1:0", feed_endpoint="tcp://127.0.0.1:0", data_dir=str(data)
    )
    with (
        RegistryServer(config) as server,
        RegistryClient(server.endpoint, timeout=10) as cli,
        FeedSubscriber(server.endpoint, server.feed_endpoint, after_seq=0) as sub,
    ):
        assert [s.display_name for s in cli.list_operations()] == [spec.display_name]
        snap = cli.snapshot(spec.id)
        assert snap is not None and snap.terminal_outcome.result == result  # type: ignore[union-attr]
        entry = sub.next(timeout=10)
        assert entry is not None and entry.display_name == spec.display_name
