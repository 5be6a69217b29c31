"""site.yml on the local lab (inventories/lab): the acceptance of the main job.

The session deploys with `ansible-playbook site.yml -i inventories/lab` on the local OpenStack
(a lab that is already deployed only converges again), then checks what users and operators
rely on: the database leader and its synchronous standby, both sites' APIs through their
floating IPs, the public name in the lab's DNS (and through this machine's resolver once
nmpi_lab.hostdns has put the lab's DNS first), a job submitted with the real nmpi client
through the public name, and a second run and a check-mode run that change nothing.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import nmpi
import pytest
from nmpi_lab import deployment, hostdns

from tests.lab.conftest import recap, site_yml
from tests.support import REPO, tool_env

# In the pytest process that runs every suite of the local OpenStack (scripts/run-tests).
pytestmark = [pytest.mark.slow, pytest.mark.lab]


def test_patroni_leader_at_castor_and_synchronous_standby_at_jusuf(
    lab: deployment.Deployment,
) -> None:
    members = {m["name"]: m for m in lab.patroni_cluster()["members"]}
    castor, jusuf = lab.host("castor", "db").name, lab.host("jusuf", "db").name
    assert members[castor]["role"] == "leader", members
    assert members[jusuf]["role"] == "sync_standby", members
    assert members[jusuf]["state"] in ("streaming", "running"), members


def test_both_sites_ready_through_their_floating_ips(lab: deployment.Deployment) -> None:
    # jusuf serves too: its API writes through the leader at castor.
    assert lab.readyz("castor") == 200
    assert lab.readyz("jusuf") == 200


def test_public_name_points_at_castor(lab: deployment.Deployment) -> None:
    assert lab.resolve() == [lab.host("castor", "web").public_ip]


def test_only_https_is_public(lab: deployment.Deployment) -> None:
    # The security groups let 443 in, not 80 (the platform's redirect stays inside the site).
    address = lab.host("castor", "web").public_ip
    with pytest.raises((TimeoutError, ConnectionRefusedError)):
        socket.create_connection((address, 80), timeout=3).close()


def test_nmpi_client_submits_a_job_through_the_public_name(
    lab: deployment.Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nmpi.nmpi_user, "TOKENFILE", str(tmp_path / "hbptoken"))
    # nmpi 0.11.2 ignores verify= for its userinfo call: the CA goes in through requests.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(lab.ca_file))
    source = f"print('submitted by the lab acceptance at {time.time()}')"
    with lab.public_name_resolved():
        client = nmpi.Client(
            token=lab.demo_token(), job_service=lab.url, user_info_endpoint=f"{lab.url}/userinfo"
        )
        uri = client.submit_job(
            source=source, platform="SpiNNaker", collab_id=deployment.DEMO_COLLAB
        )
        job: dict[str, Any] = client.get_job(uri, with_log=False)
    assert job["code"] == source
    # The emulated SpiNNaker site may have taken it already (test_user_jobs_on_lab.py).
    assert job["status"] in ("submitted", "validated", "running", "finished")
    assert job["collab"] == deployment.DEMO_COLLAB


def test_this_machine_resolves_the_public_name_through_the_labs_dns(
    lab: deployment.Deployment,
) -> None:
    # What `make lab` does (nmpi_lab.hostdns), on the real /etc/resolv.conf: put back as it
    # was, byte for byte, whatever happens (it may already hold the block: make lab's).
    path = hostdns.RESOLV_CONF
    if os.geteuid() != 0 or hostdns.managed_by_resolved(path):
        pytest.skip("needs root and a plain /etc/resolv.conf (hostdns prints what to do)")
    before = path.read_bytes()
    outside = hostdns.host_addresses("pypi.org")  # resolved only, never connected to
    try:
        server = lab.dns_server.public_ip
        assert hostdns.main(["off"]) == hostdns.OK
        assert (
            hostdns.main(["on", "--server", server, "--zone", lab.zone, "--name", lab.public_name])
            == hostdns.OK
        )
        assert hostdns.host_addresses(lab.public_name) == lab.resolve()
        if outside:  # the witness REFUSES it, glibc asks the machine's own nameservers
            assert hostdns.host_addresses("pypi.org"), "outside names no longer resolve"
    finally:
        hostdns.rewrite(path, lambda _: before.decode("utf-8", "surrogateescape"))
    assert path.read_bytes() == before


def test_failover_daemon_at_the_witness_sees_castor_active(lab: deployment.Deployment) -> None:
    witness = next(h for h in lab.hosts.values() if "failover_hosts" in h.groups)
    status = json.loads(lab.ssh(witness, "sudo nmpi-failover status --json"))
    assert status["dns"]["addresses"] == [lab.host("castor", "web").public_ip], status
    assert {s["name"]: s["probe"]["ok"] for s in status["sites"]} == {
        "castor": True,
        "jusuf": True,
    }, status
    assert status["leader"]["name"] == lab.host("castor", "db").name, status
    assert status["lease"]["holder"], status


def ansible_ping(clouds: Path, host: deployment.Host) -> tuple[int, str]:
    """`ansible HOST -m ping` on the lab inventory, through the plays' SSH settings."""
    result = subprocess.run(
        [
            *("ansible", host.name, "-i", "inventories/lab", "-m", "ansible.builtin.ping"),
            *("-e", f"ansible_host={host.public_ip}"),
        ],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        env=tool_env(OS_CLIENT_CONFIG_FILE=str(clouds), ANSIBLE_NOCOLOR="1"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def test_a_host_key_changed_since_provisioning_stops_site_yml(
    lab: deployment.Deployment, openstack_lab: Path, tmp_path: Path
) -> None:
    # Provisioning recorded each instance's host keys from its console log; a host presenting
    # another key (here: the record altered, as a replaced host would look) stops the run before
    # anything connects, naming the host. The file is put back as it was, byte for byte.
    known_hosts = deployment.GENERATED / "known_hosts"
    host = lab.host("castor", "web")
    before = known_hosts.read_bytes()
    assert re.search(
        rf"^{re.escape(host.public_ip)},{host.name} ssh-ed25519 ", before.decode(), re.M
    )
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    other_key = " ".join(other.with_suffix(".pub").read_text().split()[:2])
    altered = re.sub(
        rf"^({re.escape(host.public_ip)},{host.name}) ssh-ed25519 \S+",
        lambda m: f"{m[1]} {other_key}",
        before.decode(),
        flags=re.M,
    )
    try:
        known_hosts.write_text(altered)
        code, output, _ = site_yml(openstack_lab, "site-lab-changed-host-key.log")
        assert code != 0, output[-4000:]
        message = " ".join(output.split())  # as printed, long lines folded
        assert (
            f"The SSH host key of {host.name} ({host.public_ip}) changed since provisioning"
            in message
        ), output[-4000:]
        assert str(known_hosts) in message
        assert "openstack console log show" in message
        # Nothing ran past provisioning, on any host.
        assert "PLAY [Data volumes" not in output, output[-4000:]
        # SSH itself refuses it too (the check above is the clear message, not the only guard).
        code, output = ansible_ping(openstack_lab, host)
        assert code != 0, output
        assert "host key" in output.lower(), output
    finally:
        known_hosts.write_bytes(before)
    code, output = ansible_ping(openstack_lab, host)
    assert code == 0, output
    # One role's tag alone (as an operator renews certificates): provisioning still reads the
    # instances back (addresses, host keys), so the run reaches every host and changes nothing.
    code, output, _ = site_yml(openstack_lab, "site-lab-host-key-restored.log", "--tags", "pki")
    assert code == 0, output[-4000:]
    assert known_hosts.read_bytes() == before
    hosts = recap(output)
    assert set(hosts) >= set(lab.hosts), hosts
    assert {h: v for h, v in hosts.items() if v != (0, 0, 0)} == {}, output[-4000:]


@pytest.fixture(scope="session")
def second_run(lab: deployment.Deployment, openstack_lab: Path) -> tuple[int, str]:
    code, output, _ = site_yml(openstack_lab, "site-lab-second.log")
    return code, output


def test_second_run_changes_nothing(second_run: tuple[int, str]) -> None:
    code, output = second_run
    assert code == 0, output[-4000:]
    hosts = recap(output)
    assert set(hosts) >= set(deployment.load().hosts), hosts
    assert {h: v for h, v in hosts.items() if v != (0, 0, 0)} == {}, output[-4000:]


def test_check_mode_changes_nothing(lab: deployment.Deployment, openstack_lab: Path) -> None:
    code, output, _ = site_yml(openstack_lab, "site-lab-check.log", "--check")
    assert code == 0, output[-4000:]
    assert {h: v for h, v in recap(output).items() if v != (0, 0, 0)} == {}, output[-4000:]
