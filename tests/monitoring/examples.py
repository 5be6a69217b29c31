"""A representative alert of every alerting rule: the labels it carries when it fires (besides
alertname and the rule's own labels, such as severity, which come from the rule file) and the
receiver Alertmanager's route tree must send it to. The route and inhibition tests use them."""

from __future__ import annotations

from typing import NamedTuple


class Example(NamedTuple):
    labels: dict[str, str]
    receiver: str


def target(job: str, host: str, location: str, port: int) -> dict[str, str]:
    """A scrape target's labels (playbooks/group_vars/all/monitoring.yml)."""
    return {"job": job, "instance": f"{host}:{port}", "host": host, "location": location}


def member(host: str, location: str) -> dict[str, str]:
    return {**target("patroni", host, location, 8008), "scope": "nmpi", "name": host}


WITNESS = {"host": "witness-1", "location": "witness"}
SRV = {"device": "/dev/vdb", "fstype": "ext4", "mountpoint": "/srv"}

EXAMPLES: dict[str, Example] = {
    # sites.yml
    "SiteDown": Example({"site": "castor", "location": "castor"}, "page"),
    "PublicEndpointDown": Example(
        {
            "job": "blackbox_public",
            "instance": "https://nmpi.example.org/readyz",
            "name": "nmpi.example.org",
        },
        "page",
    ),
    "PublicNameDnsFailing": Example(
        {"job": "blackbox_dns", "instance": "10.30.0.10:53", **WITNESS}, "ticket"
    ),
    "PublicNameNotAtLeader": Example({"site": "castor", "location": "castor"}, "ticket"),
    "FailoverHappened": Example({"timeline": "4"}, "ticket"),
    "FailoverDaemonNotActing": Example({}, "ticket"),
    "FailoverDaemonAlarm": Example({"condition": "dns_unreadable"}, "ticket"),
    # database.yml
    "DatabaseNoPrimary": Example({"scope": "nmpi"}, "page"),
    "DatabaseMultiplePrimaries": Example({"scope": "nmpi"}, "page"),
    "DatabaseNoSyncStandby": Example(member("castor-db-1", "castor"), "ticket"),
    "DatabaseReplicaTimelineDiverged": Example(member("jusuf-db-1", "jusuf"), "ticket"),
    "DatabaseReplicaLagging": Example(
        {
            **target("nmpi-failover", "witness-1", "witness", 9469),
            "host": "jusuf-db-1",
            "location": "jusuf",
            "member": "jusuf-db-1",
        },
        "ticket",
    ),
    "DatabaseExporterCannotConnect": Example(
        target("postgres", "jusuf-db-1", "jusuf", 9187), "ticket"
    ),
    # etcd.yml
    "EtcdNoLeader": Example({}, "page"),
    "EtcdMemberDown": Example(target("etcd", "castor-db-1", "castor", 2379), "ticket"),
    "EtcdFrequentLeaderChanges": Example({"job": "etcd"}, "ticket"),
    "EtcdWalFsyncSlow": Example(
        {"instance": "witness-1:2379", "host": "witness-1", "location": "witness"}, "ticket"
    ),
    # certificates.yml
    "CertificateExpiringSoon": Example(
        target("blackbox_tls", "castor-db-1", "castor", 2379), "ticket"
    ),
    "CertificateExpiringCritical": Example(
        target("blackbox_tls", "jusuf-web-1", "jusuf", 443), "page"
    ),
    # hosts.yml
    "HostDown": Example(target("node", "jusuf-web-1", "jusuf", 9100), "ticket"),
    "DiskWillFillIn24h": Example(
        {**target("node", "castor-db-1", "castor", 9100), **SRV}, "ticket"
    ),
    "DiskSpaceLow": Example({**target("node", "castor-db-1", "castor", 9100), **SRV}, "page"),
    # job_queue.yml
    "JobQueueErrorBudgetBurnFast": Example({"job": "job-queue"}, "page"),
    "JobQueueErrorBudgetBurnSlow": Example({"job": "job-queue"}, "ticket"),
    "JobQueueLatencyBudgetBurnFast": Example({"job": "job-queue"}, "page"),
    "JobQueueLatencyBudgetBurnSlow": Example({"job": "job-queue"}, "ticket"),
    "JobQueuePlatformStalled": Example({"platform": "SpiNNaker"}, "ticket"),
    # monitoring.yml
    "Watchdog": Example({}, "heartbeat"),
    "TargetDown": Example(target("patroni", "castor-db-1", "castor", 8008), "ticket"),
    "MonitoringCannotSeeLocation": Example({"location": "jusuf"}, "ticket"),
    "PrometheusRuleEvaluationFailures": Example(
        {"rule_group": "/etc/nmpi/prometheus/rules/sites.yml;nmpi-sites", **WITNESS}, "page"
    ),
    "MonitoringConfigReloadFailed": Example(
        target("alertmanager", "witness-1", "witness", 9093), "ticket"
    ),
    "AlertmanagerNotificationsFailing": Example({"integration": "webhook", **WITNESS}, "page"),
    # backups.yml
    "BackupStale": Example(
        {**target("node", "castor-db-1", "castor", 9100), "backup": "database"}, "ticket"
    ),
    "BackupFailed": Example(
        {**target("node", "witness-1", "witness", 9100), "backup": "database"}, "ticket"
    ),
    "BackupStanzaNotOk": Example(
        {**target("node", "witness-1", "witness", 9100), "stanza": "nmpi"}, "ticket"
    ),
    "RestoreDrillFailed": Example(target("node", "witness-1", "witness", 9100), "ticket"),
    "RestoreDrillStale": Example(target("node", "witness-1", "witness", 9100), "ticket"),
    "WalArchivingFailing": Example(
        {**target("postgres", "castor-db-1", "castor", 9187), "server": "127.0.0.1:5432"},
        "ticket",
    ),
}
