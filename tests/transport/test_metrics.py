"""The Prometheus endpoint, scraped over HTTP after a workload."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from actors import InvalidTransition
from tests.conftest import background_spec, result_for
from transport import RegistryClient, RegistryServer, ServerConfig

pytestmark = pytest.mark.timeout(60)


def _scrape(address: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def _value(samples, name: str, **labels: str) -> float:  # type: ignore[no-untyped-def]
    total = 0.0
    for got, value in samples.get(name, []):
        if all(got.get(k) == v for k, v in labels.items()):
            total += value
    return total


def test_metrics_show_the_workload(tmp_path: Path) -> None:
    config = ServerConfig(
        endpoint="tcp://127.0.0.1:0",
        feed_endpoint="tcp://127.0.0.1:0",
        data_dir=str(tmp_path / "d"),
        metrics="127.0.0.1:0",
        heartbeat_interval=0.1,
    )
    with RegistryServer(config) as srv, RegistryClient(srv.endpoint, timeout=10) as cli:
        for i in range(10):
            spec = background_spec(f"m{i}")
            cli.register_operation(spec)
            cli.provisioning_succeeded(spec.id)
            if i < 7:
                cli.complete_operation(spec.id, result_for(spec.id))
            elif i < 9:
                cli.fail_operation(spec.id, "x")
        with pytest.raises(InvalidTransition):
            cli.provisioning_succeeded(spec.id)  # the last one is running already
        cli.wait_connected()
        m = _scrape(srv.metrics_address)
        assert _value(m, "opsreg_operations", status="completed") == 7
        assert _value(m, "opsreg_operations", status="failed") == 2
        assert _value(m, "opsreg_operations", status="running") == 1
        assert _value(m, "opsreg_operations", kind="background_tool_op") == 10
        assert _value(m, "opsreg_calls_total", method="complete_operation") == 7
        assert _value(m, "opsreg_calls_total", method="register_operation") == 10
        assert _value(m, "opsreg_rejected_calls_total", error="InvalidTransition") == 1
        assert _value(m, "opsreg_feed_watermark", registry="default") == 9
        assert _value(m, "opsreg_journal_commit_seconds_count") >= 1
        assert _value(m, "opsreg_journal_batch_records_sum") >= 9  # every terminal is committed
        assert _value(m, "opsreg_connected_clients") >= 1
