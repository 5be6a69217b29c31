"""nmpi-failover as it runs in production, driven from the lab tests and the benchmark.

`DaemonProcess` is one `nmpi-failover watch` subprocess with its own config (journal and
metrics port), read back through its journal (JSON lines) and /metrics; `run_cli` runs an
operator command; `Bind` reads the public name straight from the lab's authoritative server
(and overwrites it, as a stray operator would). Only the lab's addresses and 127.0.0.1 are
ever contacted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.tsig
import dns.tsigkeyring
import dns.update
import httpx
from nmpi_failover.config import Config, load_config

from .lab import RECORD, TSIG_KEY_NAME, ZONE, Lab, LabError

Event = dict[str, Any]


def failover_command() -> list[str]:
    """The console script next to this interpreter, else the module (same code either way)."""
    script = Path(sys.executable).with_name("nmpi-failover")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "nmpi_failover.cli"]


def read_journal(path: Path) -> list[Event]:
    """Every readable event of a journal, oldest first (a torn line is skipped)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    events = []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            events.append(value)
    return events


def poll(what: str, probe: Callable[[], Any], timeout: float, every: float = 0.1) -> Any:
    """`probe()` until it returns something other than None; LabError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            raise LabError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def run_cli(config: Path, *args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
    """One `nmpi-failover <args> -c config` run; stdout and stderr captured as text."""
    return subprocess.run(
        [*failover_command(), *args, "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class DaemonProcess:
    """`nmpi-failover watch -c <config> --instance <name>`, logging to <journal>.log."""

    def __init__(self, config_path: Path, instance: str) -> None:
        self.config_path = config_path
        self.config: Config = load_config(config_path)
        self.instance = instance
        self.journal = self.config.journal
        self.log = self.journal.with_suffix(".log")
        self._log_handle = self.log.open("ab")
        self.started_at = time.time()
        self.process = subprocess.Popen(
            [*failover_command(), "watch", "-c", str(config_path), "--instance", instance],
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
        )
        self.pid = self.process.pid
        self._ticks = os.sysconf("SC_CLK_TCK")

    # --- what it did ---

    def events(self, name: str | None = None, since: float = 0.0) -> list[Event]:
        return [
            e
            for e in read_journal(self.journal)
            if (name is None or e.get("event") == name) and float(e.get("ts", 0)) >= since
        ]

    def actions(self, kind: str | None = None, since: float = 0.0) -> list[Event]:
        """The actions it started ("action" events), of one kind (point_dns, switchover)."""
        return [e for e in self.events("action", since) if kind is None or e.get("kind") == kind]

    def state(self, what: str) -> str | None:
        """The latest journaled value of a state: site.<name>, leader, dns or lease."""
        value = None
        for event in self.events("state_change"):
            if event.get("what") == what:
                value = event.get("to")
        return value

    def holds_lease(self) -> bool:
        return (self.state("lease") or "").startswith("held")

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

        event: Event = poll(f"{self.instance}: {what} to change as wanted", found, timeout)
        return event

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise LabError(f"{self.instance} exited ({self.process.returncode}): {tail}")

    def metrics(self) -> str:
        host, port = self.config.listen_host_port
        response = httpx.get(f"http://{host}:{port}/metrics", timeout=3.0, trust_env=False)
        response.raise_for_status()
        return response.text

    # --- its footprint (/proc) ---

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise LabError(f"no VmRSS in /proc/{self.pid}/status")

    def cpu_seconds(self) -> float:
        """utime + stime so far (fields 14 and 15 of proc_pid_stat(5))."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        return (int(fields[11]) + int(fields[12])) / self._ticks

    # --- stopping ---

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM: the daemon releases its lease and exits; returns its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log_handle.close()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: no release; the lease lapses after its TTL."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log_handle.close()


class Bind:
    """The public name at the lab's BIND9, asked directly (no resolver, no cache)."""

    def __init__(self, lab: Lab) -> None:
        self.address = lab.bind_address[0]
        secret = lab.tsig_secret_file.read_text().strip()
        self._keyring = dns.tsigkeyring.from_text({TSIG_KEY_NAME: secret})

    def answer(self) -> frozenset[str]:
        reply = dns.query.udp(dns.message.make_query(RECORD, "A"), self.address, timeout=1.0)
        return frozenset(item.to_text() for rrset in reply.answer for item in rrset)

    def point(self, address: str) -> None:
        """Overwrite the record behind the daemon's back (TSIG-signed, unconditional)."""
        update = dns.update.UpdateMessage(
            ZONE, keyring=self._keyring, keyalgorithm=dns.tsig.HMAC_SHA256
        )
        update.replace(RECORD, 30, "A", address)
        reply = dns.query.tcp(update, self.address, timeout=3.0)
        if reply.rcode() != dns.rcode.NOERROR:
            raise LabError(f"BIND refused the update: {dns.rcode.to_text(reply.rcode())}")

    def wait_for(self, address: str, timeout: float, every: float = 0.01) -> float:
        """Ask every `every` s until BIND answers only `address`; the wall time it first did."""
        wanted = frozenset({address})

        def answers() -> float | None:
            try:
                return time.time() if self.answer() == wanted else None
            except (dns.exception.DNSException, OSError):
                return None

        seen: float = poll(f"BIND to answer {address}", answers, timeout, every)
        return seen
