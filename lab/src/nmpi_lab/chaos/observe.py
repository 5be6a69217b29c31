"""What the chaos suite watches besides the users: the database members' own view of whether
they take writes (split brain), the public name and the Patroni leader over time (failovers,
DNS moves), and whether the platform is fully redundant again.

The members are asked from inside their VMs' network namespaces (nmpi_lab.chaos.dbprobe under
nsenter), so a cut site is still seen; everything else is read over the lab's networks as an
operator would: Patroni's /cluster and etcd's /health through the floating IPs, TLS checked
against the lab CA, the public name at the witness's DNS server without any cache.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nmpi_devstack import chaos as lab_chaos
from nmpi_devstack.paths import REPO_ROOT as REPO

from nmpi_lab import deployment

# A sample older than this says nothing about "now" (a frozen member answers nothing).
SAMPLE_FRESH = 1.5


@dataclass
class Sample:
    t: float
    writable: bool | None
    error: str | None = None


def vm_pid(server: str) -> int:
    container = lab_chaos.find_instance(server)
    container.reload()
    pid = int(container.attrs["State"]["Pid"] or 0)
    return pid if container.status == "running" else 0


class RoleMonitor:
    """One dbprobe per database VM, restarted when its VM gets a new process (restarted VM)."""

    def __init__(self, members: list[str], password_file: Path) -> None:
        self.members = members
        self.password_file = password_file
        self.samples: dict[str, list[Sample]] = {m: [] for m in members}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        for member in self.members:
            thread = threading.Thread(target=self._watch, args=(member,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _watch(self, member: str) -> None:
        while not self._stop.is_set():
            try:
                pid = vm_pid(member)
            except lab_chaos.ChaosError:
                pid = 0
            if not pid:
                self._add(member, Sample(time.time(), None, "VM not running"))
                self._stop.wait(1)
                continue
            process = subprocess.Popen(
                [
                    shutil.which("nsenter") or "/usr/bin/nsenter",
                    "--target",
                    str(pid),
                    "--net",
                    "--",
                    sys.executable,
                    "-m",
                    "nmpi_lab.chaos.dbprobe",
                    "--password-file",
                    str(self.password_file),
                ],
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            reader = threading.Thread(target=self._read, args=(member, process), daemon=True)
            reader.start()
            while not self._stop.is_set() and process.poll() is None:
                self._stop.wait(2)
                try:
                    if vm_pid(member) != pid:
                        break
                except lab_chaos.ChaosError:
                    break
            process.kill()
            process.wait()
            reader.join(timeout=5)

    def _read(self, member: str, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            try:
                data = json.loads(line)
            except ValueError:
                continue
            self._add(member, Sample(float(data["t"]), data["writable"], data.get("error")))

    def _add(self, member: str, sample: Sample) -> None:
        with self._lock:
            self.samples[member].append(sample)

    def split_brain(self) -> list[tuple[float, list[str]]]:
        """Moments at which two or more members said (with a fresh sample) they take writes."""
        with self._lock:
            timelines = {m: sorted(s, key=lambda x: x.t) for m, s in self.samples.items()}
        moments = sorted({s.t for samples in timelines.values() for s in samples})
        found = []
        for t in moments:
            writable = []
            for member, samples in timelines.items():
                latest = next((s for s in reversed(samples) if s.t <= t), None)
                if latest and latest.writable and t - latest.t <= SAMPLE_FRESH:
                    writable.append(member)
            if len(writable) > 1:
                found.append((t, writable))
        return found

    def probes_seen(self) -> int:
        with self._lock:
            return sum(
                1 for samples in self.samples.values() for s in samples if s.writable is not None
            )


# --- reading the deployment as an operator -----------------------------------------------


@dataclass
class ClusterView:
    leader: str | None
    leader_site: str | None
    timeline: int | None
    members: list[dict[str, Any]] = field(default_factory=list)


def cluster_view(lab: deployment.Deployment, timeout: float = 2.0) -> ClusterView | None:
    """Patroni's /cluster from the first member that answers; None when none does."""
    try:
        body = lab.patroni_cluster(timeout=timeout)
    except OSError:
        return None
    sites = {h.name: h.site for h in lab.hosts.values()}
    members = list(body.get("members", []))
    leader = next((m for m in members if m.get("role") == "leader"), None)
    return ClusterView(
        leader=leader["name"] if leader else None,
        leader_site=sites.get(leader["name"]) if leader else None,
        timeline=int(leader["timeline"]) if leader and "timeline" in leader else None,
        members=members,
    )


def dns_answer(lab: deployment.Deployment) -> list[str] | None:
    try:
        return lab.resolve()
    except Exception:
        return None


class EtcdClient:
    """etcd's /health on each member through its floating IP, as the witness's client
    identity (etcd requires client certificates), read from the witness VM's filesystem."""

    def __init__(self, lab: deployment.Deployment) -> None:
        self.lab = lab
        self.members = [h for h in lab.hosts.values() if "etcd" in h.groups]
        witness = next(h for h in lab.hosts.values() if "failover_hosts" in h.groups)
        self._dir = Path(tempfile.mkdtemp(prefix="nmpi-chaos-etcd-"))
        root = Path(f"/proc/{vm_pid(witness.name)}/root/etc/nmpi/pki")
        for name in ("host.crt", "host.key"):
            target = self._dir / name
            target.touch(mode=0o600)
            target.write_bytes((root / name).read_bytes())
        self._tls = ssl.create_default_context(cafile=str(lab.ca_file))
        self._tls.load_cert_chain(str(self._dir / "host.crt"), str(self._dir / "host.key"))

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    def healthy(self) -> dict[str, bool]:
        result = {}
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=self._tls))
        for host in self.members:
            try:
                with opener.open(f"https://{host.public_ip}:2379/health", timeout=2) as response:
                    result[host.name] = json.loads(response.read()).get("health") == "true"
            except (OSError, ValueError):
                result[host.name] = False
        return result


MAX_STANDBY_LAG = 1024 * 1024


def redundancy_problems(lab: deployment.Deployment, etcd: EtcdClient) -> list[str]:
    """What keeps the platform from full redundancy now (empty: fully redundant): a leader,
    a streaming synchronous standby at the other site on the leader's timeline and caught up,
    every etcd member healthy, the public name at the leader's site, both sites serving."""
    problems = []
    view = cluster_view(lab)
    if view is None or view.leader is None:
        return ["no Patroni leader"]
    sites = {h.name: h.site for h in lab.hosts.values()}
    standby = [
        m
        for m in view.members
        if m.get("role") == "sync_standby" and sites.get(m["name"]) != view.leader_site
    ]
    if not standby:
        roles = {
            m["name"]: (m.get("role"), m.get("state"), m.get("timeline")) for m in view.members
        }
        problems.append(f"no synchronous standby at the other site: {roles}")
    else:
        member = standby[0]
        if member.get("state") != "streaming":
            problems.append(f"standby {member['name']} is {member.get('state')}")
        if member.get("timeline") != view.timeline:
            problems.append(
                f"standby {member['name']} on timeline {member.get('timeline')}, "
                f"leader {view.timeline}"
            )
        lag = member.get("lag")
        if not isinstance(lag, int) or lag > MAX_STANDBY_LAG:
            problems.append(f"standby {member['name']} lag {lag}")
    unhealthy = [name for name, ok in etcd.healthy().items() if not ok]
    if unhealthy:
        problems.append(f"etcd members not healthy: {', '.join(unhealthy)}")
    answer = dns_answer(lab)
    if view.leader_site and answer != [lab.host(view.leader_site, "web").public_ip]:
        problems.append(f"public name at {answer}, leader at {view.leader_site}")
    # Each site serves (the name can move to it): a web VM back from a fault runs nginx again.
    for site in ("castor", "jusuf"):
        try:
            status = lab.readyz(site)
        except (OSError, ValueError) as exc:
            problems.append(f"{site} does not serve /readyz: {exc}")
            continue
        if status != 200:
            problems.append(f"{site} /readyz answers {status}")
    return problems


class Timeline:
    """Samples every second: the public name at the witness and the Patroni leader."""

    def __init__(self, lab: deployment.Deployment) -> None:
        self.lab = lab
        self.dns: list[tuple[float, list[str] | None]] = []
        self.leaders: list[tuple[float, str | None, int | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            self.dns.append((now, dns_answer(self.lab)))
            view = cluster_view(self.lab, timeout=1.0)
            if view is not None:
                self.leaders.append((now, view.leader, view.timeline))
            self._stop.wait(max(0.0, 1.0 - (time.time() - now)))

    def dns_changes(self) -> int:
        answers = [a for _, a in self.dns if a is not None]
        return sum(1 for a, b in itertools.pairwise(answers) if a != b)

    def first_dns_change_after(self, t: float) -> float | None:
        before = next((a for when, a in reversed(self.dns) if when <= t and a), None)
        for when, answer in self.dns:
            if when > t and answer and answer != before:
                return when
        return None

    def first_leader_change_after(self, t: float) -> float | None:
        before = next(
            (name for when, name, _ in reversed(self.leaders) if when <= t and name), None
        )
        for when, name, _ in self.leaders:
            if when > t and name and name != before:
                return when
        return None


def superuser_password_file() -> Path:
    path = deployment.GENERATED / "secrets" / "db_superuser"
    if not path.is_file():
        raise LookupError(f"{path} is missing: deploy the lab first (make lab)")
    return path


def is_root() -> bool:
    return os.geteuid() == 0
