"""The daemon's Prometheus metrics."""

from __future__ import annotations

import math

from failover_testkit import etcd_view
from nmpi_failover.metrics import Metrics
from nmpi_failover.model import SiteProbe
from prometheus_client import REGISTRY


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_series_exist_before_any_event() -> None:
    metrics = Metrics(["castor", "jusuf"])
    assert value(metrics, "nmpi_failover_site_up", site="jusuf") == 0
    assert value(metrics, "nmpi_failover_switches_total", reason="leader_site_down") == 0
    assert value(metrics, "nmpi_failover_actuator_errors_total", actuator="dns") == 0
    assert value(metrics, "nmpi_failover_alarm", condition="both_sites_down") == 0
    assert value(metrics, "nmpi_failover_acting_leader") == 0


def test_recording() -> None:
    metrics = Metrics(["castor", "jusuf"])
    metrics.record_probe("castor", SiteProbe(ok=True, latency=0.2))
    metrics.record_probe("jusuf", SiteProbe(ok=False, error="timeout"))
    metrics.set_active_site("jusuf")
    metrics.set_acting_leader(True)
    metrics.record_switch("leader_site_down", 1_700_000_000.0)
    metrics.record_actuator_error("patroni")
    metrics.set_alarm("replica_not_in_sync")
    assert value(metrics, "nmpi_failover_site_up", site="castor") == 1
    assert value(metrics, "nmpi_failover_site_up", site="jusuf") == 0
    assert value(metrics, "nmpi_failover_probe_duration_seconds_count", site="castor") == 1
    assert value(metrics, "nmpi_failover_probe_duration_seconds_count", site="jusuf") == 0
    assert value(metrics, "nmpi_failover_active_site", site="jusuf") == 1
    assert value(metrics, "nmpi_failover_active_site", site="castor") == 0
    assert value(metrics, "nmpi_failover_acting_leader") == 1
    assert value(metrics, "nmpi_failover_switches_total", reason="leader_site_down") == 1
    assert value(metrics, "nmpi_failover_last_switch_timestamp_seconds") == 1_700_000_000.0
    assert value(metrics, "nmpi_failover_actuator_errors_total", actuator="patroni") == 1
    assert value(metrics, "nmpi_failover_alarm", condition="replica_not_in_sync") == 1
    metrics.set_alarm(None)
    assert value(metrics, "nmpi_failover_alarm", condition="replica_not_in_sync") == 0
    assert b"nmpi_failover_site_up" in metrics.render()


def test_the_etcd_leader_against_the_database_leaders_site() -> None:
    metrics = Metrics(["castor", "jusuf"])
    name = "nmpi_failover_etcd_leader_at_database_site"
    unknown = value(metrics, name)
    assert unknown is not None
    assert math.isnan(unknown)
    metrics.set_etcd_leader(etcd_view("castor-db-1"), "castor")
    assert value(metrics, name) == 1
    metrics.set_etcd_leader(etcd_view("witness-1"), "castor")
    assert value(metrics, name) == 0
    metrics.set_etcd_leader(etcd_view("jusuf-db-1"), "castor")
    assert value(metrics, name) == 0
    metrics.set_etcd_leader(None, "castor")
    after = value(metrics, name)
    assert after is not None
    assert math.isnan(after)


def test_registries_are_private() -> None:
    Metrics(["castor", "jusuf"])
    Metrics(["castor", "jusuf"])  # a second set does not collide
    assert REGISTRY.get_sample_value("nmpi_failover_acting_leader") is None
