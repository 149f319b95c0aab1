"""Prometheus metrics for a ``RegistryServer`` (``opsreg serve --metrics HOST:PORT``).

Counters and histograms are updated where the event happens (the server's I/O
thread, the persistence actor); operation counts by status and kind are asked
of each registry actor at scrape time, so a scrape always shows the registry's
own truth and costs nothing between scrapes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["ServerMetrics", "percentile"]

log = logging.getLogger(__name__)


def percentile(values: Iterable[float], q: float) -> float | None:
    """The nearest-rank ``q`` quantile (0 < q <= 1) of ``values``; None when empty.

    The one definition the demo's report and every benchmark use.

    >>> percentile([5, 1, 4, 2, 3], 0.5), percentile(range(1, 101), 0.99), percentile([], 0.5)
    (3, 99, None)
    """
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered), max(1, math.ceil(q * len(ordered)))) - 1]


class _OperationCounts(Collector):
    def __init__(self, source: Callable[[], dict[str, dict[tuple[str, str], int]]]) -> None:
        self._source = source

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "opsreg_operations",
            "Operations retained by each registry, by status and kind.",
            labels=["registry", "status", "kind"],
        )
        try:
            counts = self._source()
        except Exception:
            log.exception("cannot read operation counts for metrics")
            counts = {}
        for registry, by_key in sorted(counts.items()):
            for (status, kind), n in sorted(by_key.items()):
                family.add_metric([registry, status, kind], n)
        yield family


class ServerMetrics:
    """The server's metrics, in a registry of their own (not the process-global one)."""

    def __init__(self, operation_counts: Callable[[], dict[str, dict[tuple[str, str], int]]]):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.transitions = Counter(
            "opsreg_calls",
            "Calls answered successfully, by registry and method.",
            ["registry", "method"],
            registry=r,
        )
        self.rejected = Counter(
            "opsreg_rejected_calls",
            "Calls refused, by error class.",
            ["error"],
            registry=r,
        )
        self.commit_seconds = Histogram(
            "opsreg_journal_commit_seconds",
            "Time to write and commit one journal transaction.",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        self.batch_records = Histogram(
            "opsreg_journal_batch_records",
            "Journal records per transaction (group commit).",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024),
            registry=r,
        )
        self.watermark = Gauge(
            "opsreg_feed_watermark", "Highest published completion seq.", ["registry"], registry=r
        )
        self.clients = Gauge("opsreg_connected_clients", "Clients heard from recently.", registry=r)
        r.register(_OperationCounts(operation_counts))
        self._httpd: Any = None

    def observe_commit(self, seconds: float, records: int) -> None:
        self.commit_seconds.observe(seconds)
        self.batch_records.observe(records)

    def serve(self, address: str) -> str:
        """Expose ``/metrics`` on ``HOST:PORT`` (port 0 picks one); returns ``host:port``."""
        host, _, port = address.rpartition(":")
        try:
            httpd, _thread = start_http_server(
                int(port), addr=host or "127.0.0.1", registry=self.registry
            )
        except OSError as exc:  # the one line `opsreg serve` prints must name the address
            named = OSError(f"cannot serve metrics on {address}: {exc.strerror or exc}")
            named.errno = exc.errno
            raise named from None
        self._httpd = httpd
        bound_host, bound_port = httpd.server_address[:2]
        if isinstance(bound_host, bytes):
            bound_host = bound_host.decode()
        return f"{bound_host}:{bound_port}"

    def close(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
