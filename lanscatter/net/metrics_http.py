"""`/metrics` (Prometheus): the status document turned into metrics at scrape time, no second set
of counters. Imported by node_http.py at the first scrape, not at a node's start: prometheus_client
and what it pulls in (email, wsgiref: about 45 modules) are on no node's way to its first byte."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from lanscatter.core.status import StatusDoc


class StatusCollector(Collector):
    """Turns the status document into metrics at scrape time (no second set of counters)."""

    def __init__(self, status: Callable[[], StatusDoc]) -> None:
        self.status = status

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        st = self.status()
        yield GaugeMetricFamily("lanscatter_chunks", "Distinct chunks in the current generation",
                                value=st.chunks)
        yield GaugeMetricFamily("lanscatter_dataset_bytes", "Bytes of distinct content", value=st.bytes)
        yield GaugeMetricFamily("lanscatter_synced", "1 when every node holds every chunk",
                                value=1 if st.synced else 0)
        yield GaugeMetricFamily("lanscatter_insecure", "1 when this node runs with no swarm secret (--insecure)",
                                value=1 if st.insecure else 0)
        version = GaugeMetricFamily("lanscatter_published_timestamp_seconds",
                                    "When the origin published the version held here", labels=["generation", "label"])
        if (pub := st.published) is not None:
            version.add_metric([pub.generation, pub.label], pub.published_ms / 1000)
        yield version
        have = GaugeMetricFamily("lanscatter_node_chunks", "Chunks each node holds", labels=["node"])
        rx = CounterMetricFamily("lanscatter_node_rx_bytes", "Bytes received", labels=["node"])
        tx = CounterMetricFamily("lanscatter_node_tx_bytes", "Bytes sent", labels=["node"])
        online = GaugeMetricFamily("lanscatter_node_online", "1 while connected", labels=["node"])
        dl = GaugeMetricFamily("lanscatter_node_download_slots_used", "Download slots in use (never above the slots)",
                               labels=["node"])
        ul = GaugeMetricFamily("lanscatter_node_upload_slots_used", "Upload slots in use (never above the slots)",
                               labels=["node"])
        for n in st.nodes:
            have.add_metric([n.name], n.have)
            rx.add_metric([n.name], n.rx_bytes)
            tx.add_metric([n.name], n.tx_bytes)
            online.add_metric([n.name], 1 if n.online else 0)
            dl.add_metric([n.name], n.dl_slots_used)
            ul.add_metric([n.name], n.ul_slots_used)
        yield from (have, rx, tx, online, dl, ul)
        active = GaugeMetricFamily("lanscatter_node_active_published_timestamp_seconds",
                                   "When the origin published the version each node's folder shows",
                                   labels=["node", "generation", "label"])
        staged = GaugeMetricFamily("lanscatter_node_staged_ratio",
                                   "Share of the version being staged beside the active one that each node holds",
                                   labels=["node", "generation"])
        for n in st.nodes:
            if n.active is not None:
                active.add_metric([n.name, n.active.generation, n.active.label], n.active.published_ms / 1000)
            if n.staged is not None:
                staged.add_metric([n.name, n.staged.generation], n.staged.progress)
        yield from (active, staged)
        if (commit := st.commit) is not None:
            yield GaugeMetricFamily("lanscatter_commit_hosts_ready",
                                    "Hosts joined in the tree that hold the current version (tree activation)",
                                    value=commit.ready)
            yield GaugeMetricFamily("lanscatter_commit_hosts", "Hosts joined in the tree", value=commit.hosts)
            yield GaugeMetricFamily("lanscatter_commit_overdue", "1 when the current version's commit is past "
                                    "its deadline", value=1 if commit.state == "overdue" else 0)
        link = CounterMetricFamily("lanscatter_link_bytes", "Bytes carried per WAN link", labels=["link"])
        for ln in st.links:
            link.add_metric([ln.name], ln.bytes)
        yield link


def metrics_body(status: Callable[[], StatusDoc]) -> tuple[bytes, str]:
    """The metrics of `status()` now, and their content type."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(status))
    return generate_latest(registry), CONTENT_TYPE_LATEST
