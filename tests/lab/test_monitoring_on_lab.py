"""The monitoring server as site.yml deployed it on the lab: what an operator relies on.

Prometheus at the witness scrapes every host and service of both sites and probes them; on a
healthy platform no alert fires but the Watchdog; the exporters are closed to everyone but the
witness; and the dashboards render in a real browser (Debian's Chromium, headless).
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from nmpi_lab import bench_monitoring, browser, deployment

from tests.support import REPO, eventually, tool_env

pytestmark = [pytest.mark.slow, pytest.mark.lab]

EXPECTED_JOBS = {
    "node": 6,
    "docker": 6,
    "emulator-spinnaker": 1,
    "emulator-brainscales": 1,
    "postgres": 2,
    "nginx": 2,
    "etcd": 3,
    "patroni": 2,
    "job-queue": 2,
    "nmpi-failover": 1,
    "blackbox_readyz": 2,
    "blackbox_tls": 7,
    "blackbox_dns": 1,
    "blackbox_public": 1,
    "prometheus": 1,
    "alertmanager": 1,
    "blackbox_exporter": 1,
}
CHROMIUM = "/usr/bin/chromium"


def _targets(lab: deployment.Deployment) -> list[dict[str, Any]]:
    status, body = lab.monitoring_get(f"{lab.prometheus_url}/api/v1/targets?state=active")
    assert status == 200, body
    return list(body["data"]["activeTargets"])


def test_prometheus_scrapes_every_host_and_service_of_both_sites(
    lab: deployment.Deployment,
) -> None:
    def all_up() -> list[dict[str, Any]] | None:
        targets = _targets(lab)
        return targets if all(t["health"] == "up" for t in targets) else None

    targets = eventually(all_up) or _targets(lab)
    down = [
        f"{t['labels']['job']} {t['labels'].get('host', t['scrapeUrl'])}: {t['lastError']}"
        for t in targets
        if t["health"] != "up"
    ]
    assert not down, "targets down:\n" + "\n".join(down)
    jobs: dict[str, int] = {}
    for target in targets:
        jobs[target["labels"]["job"]] = jobs.get(target["labels"]["job"], 0) + 1
    assert jobs == EXPECTED_JOBS
    hosts = {t["labels"]["host"] for t in targets if t["labels"]["job"] == "node"}
    assert hosts == set(lab.hosts)
    # Across locations every scrape is TLS (the probes are scraped from the blackbox exporter
    # on the witness's loopback; what they probe is TLS by their modules).
    plain = [
        t["scrapeUrl"]
        for t in targets
        if t["labels"].get("location") != "witness"
        and not t["labels"]["job"].startswith("blackbox_")
        and not t["scrapeUrl"].startswith("https://")
    ]
    assert not plain


def test_a_healthy_platform_fires_no_alert_but_the_watchdog(lab: deployment.Deployment) -> None:
    # Right after a deploy Prometheus may not have evaluated (and sent) its rules yet: wait
    # for the always-firing Watchdog at Alertmanager, then nothing else may be firing.
    def active() -> list[dict[str, Any]]:
        return [a for a in lab.alerts() if a["status"]["state"] == "active"]

    eventually(lambda: [a for a in active() if a["labels"]["alertname"] == "Watchdog"], 120, 5)
    time.sleep(30)  # a few more evaluations: a wrong alert would be firing by now
    firing = active()
    names = sorted(a["labels"]["alertname"] for a in firing)
    assert names == ["Watchdog"], [(a["labels"], a["annotations"].get("summary")) for a in firing]
    (watchdog,) = firing
    assert [r["name"] for r in watchdog["receivers"]] == ["heartbeat"]
    assert watchdog["labels"]["environment"] == "lab"


# The exporters' ports at the sites: the node exporter, the metrics proxy (Docker engine; on
# the web hosts also the NGINX exporter).
EXPORTER_URLS = {
    "web": ("9100/metrics", "9444/docker/metrics", "9444/nginx/metrics"),
    "db": ("9100/metrics", "9444/docker/metrics", "9187/metrics"),
}


def test_the_sites_exporters_admit_the_witness_only(lab: deployment.Deployment) -> None:
    # From this machine (an operator's address, not the witness's): the security groups drop it.
    for site in ("castor", "jusuf"):
        for group, urls in EXPORTER_URLS.items():
            address = lab.host(site, group).public_ip
            for url in urls:
                port = int(url.split("/")[0])
                with pytest.raises((TimeoutError, ConnectionRefusedError)):
                    socket.create_connection((address, port), timeout=3).close()
    # From the witness's own location, without a client certificate: TLS refuses it (the
    # exporters' TLS handshake, nginx's 400 "No required SSL certificate was sent").
    witness = lab.monitoring
    for group, urls in EXPORTER_URLS.items():
        for url in urls:
            script = (
                "import ssl,socket,urllib.request as u\n"
                "c=ssl.create_default_context(cafile='/etc/nmpi/pki/ca.crt')\n"
                "try:\n"
                f"    u.urlopen('https://{lab.host('castor', group).public_ip}:{url}',"
                " context=c, timeout=5); print('open')\n"
                "except Exception as e: print('refused', type(e).__name__)\n"
            )
            out = lab.ssh(witness, f"python3 -c {_quote(script)}", timeout=60)
            assert out.strip().startswith("refused"), (group, url, out)


# On the web hosts, nginx's stub_status and the NGINX exporter (plain HTTP) listen on loopback
# only: the metrics proxy fronts the exporter, and no security group opens either port.
LOOPBACK_ONLY_PORTS = (8081, 9113)


def test_the_web_hosts_loopback_only_ports_are_closed_to_everyone(
    lab: deployment.Deployment,
) -> None:
    for site in ("castor", "jusuf"):
        address = lab.host(site, "web").public_ip
        for port in LOOPBACK_ONLY_PORTS:
            with pytest.raises((TimeoutError, ConnectionRefusedError)):
                socket.create_connection((address, port), timeout=3).close()
    # Not even the witness, which the security groups admit to the exporters' ports.
    script = (
        "import socket\n"
        f"for port in {LOOPBACK_ONLY_PORTS!r}:\n"
        "    try:\n"
        f"        socket.create_connection(('{lab.host('castor', 'web').public_ip}', port),"
        " timeout=3).close(); print(port, 'open')\n"
        "    except OSError as e: print(port, 'closed', type(e).__name__)\n"
    )
    out = lab.ssh(lab.monitoring, f"python3 -c {_quote(script)}", timeout=60)
    assert "open" not in out, out
    assert out.count("closed") == len(LOOPBACK_ONLY_PORTS), out


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def _spki_pin(host: str, port: int, ca_file: Path) -> str:
    """base64 SHA-256 of the served certificate's public key: Chromium trusts exactly it."""
    return browser.spki_pin(host, port, ca_file)


@pytest.mark.parametrize("page", ["index", "platform", "database", "hosts"])
def test_the_dashboards_render_in_a_browser(
    lab: deployment.Deployment, page: str, tmp_path: Path
) -> None:
    address = lab.monitoring.public_ip
    # Chromium verifies the server against the lab CA's certificate for this one key only.
    pin = _spki_pin(address, deployment.PROMETHEUS_PORT, lab.ca_file)
    url = (
        f"https://{deployment.MONITORING_USER}:{lab.monitoring_password()}@{address}:"
        f"{deployment.PROMETHEUS_PORT}/consoles/{page}.html"
    )
    screenshot = tmp_path / f"{page}.png"
    common = [
        CHROMIUM,
        "--headless=new",
        "--no-sandbox",  # root in CI: Chromium's sandbox refuses to run as root
        "--disable-gpu",
        f"--ignore-certificate-errors-spki-list={pin}",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1400,1000",
        "--virtual-time-budget=15000",  # let the graphs' queries finish before the capture
    ]
    dom = subprocess.run(
        [*common, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=False
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "error executing template" not in dom.stdout.lower()
    assert "401 Unauthorized" not in dom.stdout
    shot = subprocess.run(
        [*common, f"--screenshot={screenshot}", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    png = screenshot.read_bytes()
    assert png.startswith(b"\x89PNG"), "no screenshot"
    # A blank page compresses to a few kB; a page of graphs and coloured states to far more.
    assert len(png) > 20_000, f"{page}: a near-empty screenshot ({len(png)} bytes)"
    keep = REPO / ".cache" / "logs" / "dashboards"
    keep.mkdir(parents=True, exist_ok=True)
    (keep / screenshot.name).write_bytes(png)


def _make_logs(clouds: Path, *args: str) -> list[str]:
    """`make logs ...` as the README shows it: its output lines (TIME HOST SERVICE LEVEL ...)."""
    run = subprocess.run(
        ["make", "--no-print-directory", "logs", *args],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        env=tool_env(OS_CLIENT_CONFIG_FILE=str(clouds)),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    return [line for line in run.stdout.splitlines() if line[:4].isdigit()]


def test_make_logs_returns_lines_from_every_host(
    lab: deployment.Deployment, openstack_lab: Path
) -> None:
    marker = f"nmpi-lab-logs-{time.time_ns()}"
    for host in lab.hosts.values():
        lab.ssh(host, f"logger -t nmpi-lab {marker}", timeout=60)

    def every_host() -> list[str] | None:
        lines = _make_logs(openstack_lab, "SINCE=15m", f"GREP={marker}")
        return lines if {line.split()[1] for line in lines} == set(lab.hosts) else None

    lines = eventually(every_host, timeout=180, every=10) or _make_logs(
        openstack_lab, "SINCE=15m", f"GREP={marker}"
    )
    assert {line.split()[1] for line in lines} == set(lab.hosts), lines
    # The job queue's own JSON lines at both sites, by service and level.
    api = _make_logs(openstack_lab, "SINCE=30m", "SERVICE=job-queue", "LEVEL=info", "LIMIT=2000")
    hosts = {line.split()[1] for line in api}
    assert hosts == {lab.host("castor", "web").name, lab.host("jusuf", "web").name}, api[-5:]
    assert all(line.split()[2] == "job-queue" for line in api)


def test_the_monitoring_stacks_memory_is_measured(capsys: pytest.CaptureFixture[str]) -> None:
    # A benchmark, not a timed assertion: make bench-monitoring's figures, kept in the log.
    assert bench_monitoring.main(["--samples", "3", "--interval", "5"]) == 0
    out = capsys.readouterr().out
    logs = REPO / ".cache" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "monitoring-memory.txt").write_text(out)
    with capsys.disabled():
        print("\n" + out)
    assert "nmpi-prometheus" in out
    assert "systemd-journal-remote.service" in out
    assert "total" in out


def test_notifications_reach_the_central_logs(
    lab: deployment.Deployment, openstack_lab: Path
) -> None:
    # The lab's receiver: every notification is a line of the alert journal at the witness,
    # shipped with the central logs; the Watchdog's heartbeat comes every minute or so.
    def heartbeat() -> list[str]:
        lines = _make_logs(openstack_lab, "SINCE=10m", "SERVICE=alert-journal", "GREP=Watchdog")
        return [line for line in lines if "alert Watchdog firing" in line]

    assert eventually(heartbeat, timeout=180, every=15)
