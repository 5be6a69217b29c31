"""Benchmark of the nmpi-failover daemon: `nmpi-failover watch` as systemd runs it, against
real services on loopback.

The services are those of the daemon's tests (failover/tests/failover_services.py): BIND9
holding the public name with the TSIG key, a 3-member etcd cluster for the lease, an HTTPS
/readyz per site, and an in-process stand-in for Patroni's REST API (a switchover there is
instant: what is measured is the daemon, not Patroni; the real Patroni's failovers are
measured on the deployed lab by `make bench-failover`, nmpi_lab.chaos.bench_failover). The
daemon runs as a subprocess with a 1 s interval, and the bench measures:

  (a) decision-to-DNS latency: from the daemon's journal entry of a PointDns decision
      (event "action", kind point_dns) to the moment BIND first answers the new address,
      polling BIND directly every 10 ms. Moves come from pointing the name at the wrong site
      (a TSIG update, as a stray operator would) --moves times, and from --switchovers
      leader moves (the stand-in promotes the other site's member; the name then follows
      it). Per move it also shows "trigger->DNS": from the wrong record's write, or from the
      daemon's journaling the new leader, to BIND's new answer (this includes waiting for the
      next round).
  (b) the daemon's footprint while it watches a converged world for --watch seconds: RSS from
      /proc/<pid>/status VmRSS (median and max of 1 s samples) and CPU as % of one core
      from /proc/<pid>/stat utime+stime over the whole window.

Targets: decision-to-DNS <= 1 s, RSS <= 60 MB, CPU <= 2 % of one core. The table marks each
figure ok or MISSED; the exit status is 0 either way (1 only with --strict and a miss, or
when the services cannot be run). Everything listens on 127.0.0.1 and is stopped at the end.
Needs `etcd` and `named` (scripts/setup.sh installs them); no Docker.

    .venv/bin/python failover/bench/bench_failover.py [--moves 10] [--switchovers 2] [--watch 60]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the loopback services of the daemon's tests

from failover_services import (  # noqa: E402
    CASTOR_IP,
    JUSUF_IP,
    Bind,
    FakeCluster,
    FakePatroni,
    HttpsSite,
    make_ca,
    need,
    start_bind,
    start_etcd,
    stop,
    two_site_cluster,
    write_config,
)

TARGET_LATENCY_S = 1.0
TARGET_RSS_MB = 60.0
TARGET_CPU_PERCENT = 2.0
POLL_S = 0.010  # BIND is asked this often while a move is awaited
ADDRESS = {"castor": CASTOR_IP, "jusuf": JUSUF_IP}

Event = dict[str, Any]


class BenchError(RuntimeError):
    """The services or the daemon did not reach the state the bench waits for."""


def poll(what: str, probe: Callable[[], Any], timeout: float, every: float = 0.1) -> Any:
    """`probe()` until it returns something other than None; BenchError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def wait_for_address(bind: Bind, address: str, timeout: float) -> float:
    """Ask BIND every POLL_S until it answers only `address`; the wall time it first did."""

    def answers() -> float | None:
        try:
            return time.time() if bind.query() == {address} else None
        except Exception:  # a timeout or a refused query counts as "not yet"
            return None

    seen: float = poll(f"BIND to answer {address}", answers, timeout, POLL_S)
    return seen


# --- the daemon, as systemd runs it -------------------------------------------------------------


def failover_command() -> list[str]:
    """The console script next to this interpreter, else the module (same code either way)."""
    script = Path(sys.executable).with_name("nmpi-failover")
    return [str(script)] if script.exists() else [sys.executable, "-m", "nmpi_failover.cli"]


class DaemonProcess:
    """`nmpi-failover watch -c <config> --instance <name>`, read back through its journal."""

    def __init__(self, config: Path, journal: Path, instance: str) -> None:
        self.journal = journal
        self.log = journal.with_suffix(".log")
        self._log_handle = self.log.open("ab")
        self.process = subprocess.Popen(
            [*failover_command(), "watch", "-c", str(config), "--instance", instance],
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
        )
        self.pid = self.process.pid
        self._ticks = os.sysconf("SC_CLK_TCK")

    def events(self, name: str | None = None, since: float = 0.0) -> list[Event]:
        """Every readable journal event (a torn line is skipped), oldest first."""
        try:
            lines = self.journal.read_text().splitlines()
        except FileNotFoundError:
            return []
        found = []
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict) or float(event.get("ts", 0)) < since:
                continue
            if name is None or event.get("event") == name:
                found.append(event)
        return found

    def state(self, what: str) -> str | None:
        """The latest journaled value of a state: site.<name>, leader, dns or lease."""
        value = None
        for event in self.events("state_change"):
            if event.get("what") == what:
                value = event.get("to")
        return value

    def wait_state(
        self, what: str, matches: Callable[[str], bool], timeout: float, since: float = 0.0
    ) -> Event:
        """The first state_change of `what` at or after `since` whose new value matches."""

        def found() -> Event | None:
            self.check_alive()
            for event in self.events("state_change", since):
                if event.get("what") == what and matches(str(event.get("to"))):
                    return event
            return None

        event: Event = poll(f"the daemon's {what} to change as wanted", found, timeout)
        return event

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise BenchError(f"the daemon exited ({self.process.returncode}): {tail}")

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise BenchError(f"no VmRSS in /proc/{self.pid}/status")

    def cpu_seconds(self) -> float:
        """utime + stime so far (fields 14 and 15 of proc_pid_stat(5))."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        return (int(fields[11]) + int(fields[12])) / self._ticks

    def terminate(self, timeout: float = 15.0) -> None:
        """SIGTERM: the daemon releases its lease and exits."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log_handle.close()


# --- the services on loopback -------------------------------------------------------------------


@dataclass
class World:
    bind: Bind
    cluster: FakeCluster
    config: Path
    journal: Path


@contextmanager
def services(workdir: Path, interval: float) -> Iterator[World]:
    """BIND9 with the name at castor, 3 etcd members, both sites serving, Patroni stand-ins
    with castor leading; and the daemon's config for them."""
    need("named", "bind9")
    need("etcd", "etcd-server")
    with ExitStack() as stack:
        ca = make_ca(workdir / "tls")
        sites = (HttpsSite(ca), HttpsSite(ca))
        for site in sites:
            stack.callback(site.close)
        cluster = two_site_cluster("castor")
        patroni = (FakePatroni(cluster), FakePatroni(cluster))
        for member in patroni:
            stack.callback(member.close)
        members = start_etcd(workdir / "etcd", size=3)
        for etcd in members:
            stack.callback(etcd.stop)
        bind = start_bind(workdir / "bind", address=CASTOR_IP)
        stack.callback(stop, bind.process)
        journal = workdir / "journal.jsonl"
        config = write_config(
            workdir / "config",
            probe_urls=(sites[0].url, sites[1].url),
            patroni_urls=([patroni[0].url], [patroni[1].url]),
            etcd_urls=[m.url for m in members],
            dns_port=bind.port,
            secret_file=bind.secret_file,
            ca_file=ca.ca_file,
            interval=interval,
            probe_timeout=min(1.5, interval * 0.8),
            failures_to_down=3,
            switchover_timeout=60.0,
            etcd={
                "endpoints": [m.url for m in members],
                "lease_ttl": 10,
                "key": "/nmpi-failover/bench",
            },
            journal=str(journal),
        )
        yield World(bind, cluster, config, journal)


# --- measurements -----------------------------------------------------------------------------


@dataclass
class Move:
    how: str
    decision_to_dns: float  # journal "action" point_dns -> BIND answers the new address
    decision_to_done: float  # journal "action" -> "action_done" (the daemon's own view)
    # The wrong record was written / the daemon journaled the new leader -> BIND answers.
    trigger_to_dns: float


@dataclass
class Footprint:
    seconds: float
    rss_mb: list[float] = field(default_factory=list)
    cpu_percent: float = 0.0


def _point_dns_after(daemon: DaemonProcess, since: float, timeout: float = 10.0) -> Event:
    def found() -> Event | None:
        for event in daemon.events("action", since):
            if event.get("kind") == "point_dns":
                return event
        return None

    result: Event = poll("the daemon's PointDns action in its journal", found, timeout)
    return result


def _done_after(daemon: DaemonProcess, since: float, timeout: float = 10.0) -> Event:
    def found() -> Event | None:
        for event in daemon.events(None, since):
            if event.get("event") in ("action_done", "action_failed", "action_aborted"):
                return event
        return None

    result: Event = poll("the outcome of the daemon's action", found, timeout)
    return result


def wrong_record_move(world: World, daemon: DaemonProcess, site: str) -> Move:
    """Point the name at the other site; the daemon must bring it back to `site`."""
    right = ADDRESS[site]
    wrong = ADDRESS["jusuf" if site == "castor" else "castor"]
    started = time.time()
    world.bind.point(wrong)
    seen = wait_for_address(world.bind, right, timeout=15.0)
    action = _point_dns_after(daemon, started)
    done = _done_after(daemon, float(action["ts"]))
    return Move(
        how="wrong record",
        decision_to_dns=seen - float(action["ts"]),
        decision_to_done=float(done["ts"]) - float(action["ts"]),
        trigger_to_dns=seen - started,
    )


def switchover_move(world: World, daemon: DaemonProcess, to_site: str) -> Move:
    """The leader moves to `to_site` (the stand-in promotes its member); the name follows.

    BIND is polled from a thread from the promotion on, so no answer is missed."""
    started = time.time()
    seen: list[float] = []
    watcher = threading.Thread(
        target=lambda: seen.append(wait_for_address(world.bind, ADDRESS[to_site], timeout=30.0)),
        daemon=True,
    )
    watcher.start()
    world.cluster.promote(f"{to_site}-db-1")
    watcher.join(timeout=30.0)
    if not seen:
        raise BenchError(f"the name did not follow the leader to {to_site}")
    action = _point_dns_after(daemon, started)
    done = _done_after(daemon, float(action["ts"]))
    leader = daemon.wait_state(
        "leader", lambda v: v.endswith(f" at {to_site}"), timeout=10.0, since=started
    )
    return Move(
        how=f"switchover to {to_site}",
        decision_to_dns=seen[0] - float(action["ts"]),
        decision_to_done=float(done["ts"]) - float(action["ts"]),
        trigger_to_dns=seen[0] - float(leader["ts"]),
    )


def wait_converged(daemon: DaemonProcess, timeout: float = 60.0) -> None:
    """The daemon holds the lease and has seen the name at castor."""

    def converged() -> bool | None:
        daemon.check_alive()
        holds = (daemon.state("lease") or "").startswith("held")
        return True if holds and daemon.state("dns") == CASTOR_IP else None

    poll("the daemon to hold the lease with the name at castor", converged, timeout)


def watch(daemon: DaemonProcess, seconds: float) -> Footprint:
    footprint = Footprint(seconds)
    started, cpu_before = time.monotonic(), daemon.cpu_seconds()
    while time.monotonic() - started < seconds:
        footprint.rss_mb.append(daemon.rss_kb() / 1024)
        time.sleep(1.0)
    elapsed = time.monotonic() - started
    footprint.cpu_percent = 100.0 * (daemon.cpu_seconds() - cpu_before) / elapsed
    footprint.seconds = elapsed
    return footprint


# --- the run ----------------------------------------------------------------------------------


def _mark(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def report(moves: list[Move], footprint: Footprint, rss_after: float) -> tuple[str, bool]:
    latencies = [m.decision_to_dns for m in moves]
    median_latency = statistics.median(latencies)
    median_rss, max_rss = statistics.median(footprint.rss_mb), max(footprint.rss_mb)
    rows = [
        ("figure", "median", "max", "target", ""),
        (
            f"decision -> BIND answers ({len(moves)} moves)",
            f"{median_latency * 1000:.0f} ms",
            f"{max(latencies) * 1000:.0f} ms",
            f"<= {TARGET_LATENCY_S * 1000:.0f} ms",
            _mark(median_latency <= TARGET_LATENCY_S),
        ),
        (
            "decision -> action_done (journal)",
            f"{statistics.median(m.decision_to_done for m in moves) * 1000:.0f} ms",
            f"{max(m.decision_to_done for m in moves) * 1000:.0f} ms",
            "",
            "",
        ),
        (
            f"RSS while watching ({len(footprint.rss_mb)} samples)",
            f"{median_rss:.1f} MB",
            f"{max_rss:.1f} MB",
            f"<= {TARGET_RSS_MB:.0f} MB",
            _mark(max_rss <= TARGET_RSS_MB),
        ),
        ("RSS after the moves", f"{rss_after:.1f} MB", "", "", ""),
        (
            f"CPU over {footprint.seconds:.0f} s watching",
            f"{footprint.cpu_percent:.2f} %",
            "",
            f"<= {TARGET_CPU_PERCENT:.0f} % of a core",
            _mark(footprint.cpu_percent <= TARGET_CPU_PERCENT),
        ),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines += ["", "moves:"]
    for m in moves:
        lines.append(
            f"  {m.how:<22} decision->DNS {m.decision_to_dns * 1000:6.0f} ms   "
            f"decision->done {m.decision_to_done * 1000:6.0f} ms   "
            f"trigger->DNS {m.trigger_to_dns:6.2f} s"
        )
    ok = (
        median_latency <= TARGET_LATENCY_S
        and max_rss <= TARGET_RSS_MB
        and footprint.cpu_percent <= TARGET_CPU_PERCENT
    )
    return "\n".join(lines), ok


def run(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="nmpi-failover-bench-"))
    print(f"starting BIND9, etcd and the sites on loopback in {workdir} ...", flush=True)
    daemon: DaemonProcess | None = None
    code = 1
    try:
        with services(workdir, args.interval) as world:
            daemon = DaemonProcess(world.config, world.journal, "nmpi-failover-bench")
            try:
                wait_converged(daemon)
                time.sleep(3 * args.interval)  # past start-up: imports, first rounds
                print(f"watching the converged world for {args.watch:.0f} s ...", flush=True)
                footprint = watch(daemon, args.watch)
                moves = []
                for i in range(args.moves):
                    moves.append(wrong_record_move(world, daemon, "castor"))
                    print(f"  move {i + 1}/{args.moves}: {moves[-1].decision_to_dns * 1000:.0f} ms")
                for i in range(args.switchovers):
                    target = "jusuf" if i % 2 == 0 else "castor"
                    moves.append(switchover_move(world, daemon, target))
                    print(
                        f"  {moves[-1].how}: {moves[-1].decision_to_dns * 1000:.0f} ms", flush=True
                    )
                rss_after = daemon.rss_kb() / 1024
                text, ok = report(moves, footprint, rss_after)
                print()
                print(f"nmpi-failover watch, interval {args.interval:g} s, pid {daemon.pid}")
                print(text)
                failed = daemon.events("action_failed")
                if failed:
                    print(f"\nwarning: {len(failed)} failed actions in the journal: {failed[-1]}")
                code = 1 if args.strict and not ok else 0
            finally:
                daemon.terminate()  # releases the lease while etcd still runs
    except (BenchError, RuntimeError, TimeoutError, pytest.skip.Exception) as error:
        print(f"bench failed: {error}", file=sys.stderr)
        if daemon is not None:
            print(daemon.log.read_text(errors="replace")[-3000:], file=sys.stderr)
        print(f"kept {workdir} (config, journal, daemon and service logs)", file=sys.stderr)
    if code == 0:
        shutil.rmtree(workdir, ignore_errors=True)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Needs etcd and named on this machine (scripts/setup.sh installs them).",
    )
    parser.add_argument("--moves", type=int, default=10, help="wrong-record moves (default 10)")
    parser.add_argument(
        "--switchovers", type=int, default=2, help="leader moves, alternating (default 2)"
    )
    parser.add_argument(
        "--watch", type=float, default=60.0, help="seconds of RSS/CPU sampling (default 60)"
    )
    parser.add_argument(
        "--interval", type=float, default=1.0, help="the daemon's interval (default 1 s)"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.moves + args.switchovers < 1:
        parser.error("need at least one move (--moves or --switchovers)")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
