"""Benchmark of nmpi-failover as deployed: `nmpi-failover watch` against the database-HA lab.

Starts the integration tests' lab in-process (failover/tests/integration/lab.py: 3 etcd
members, Patroni+PostgreSQL at castor and jusuf, BIND9 at the witness, the sites' web tiers),
runs the daemon as a subprocess with a 1 s interval, and measures:

  (a) decision-to-DNS latency: from the daemon's journal entry of a PointDns decision
      (event "action", kind point_dns) to the moment BIND first answers the new address,
      polling BIND directly every 10 ms. Moves come from pointing the name at the wrong site
      (a TSIG update, as a stray operator would) --moves times, and from --switchovers
      Patroni switchovers that move the leader (the name then follows it). Per move it also
      shows "trigger->DNS": from the wrong record's write, or from the daemon's journaling
      the new leader, to BIND's new answer (this includes waiting for the next round).
  (b) the daemon's footprint while it watches a converged lab for --watch seconds: RSS from
      /proc/<pid>/status VmRSS (median and max of 1 s samples) and CPU as % of one core
      from /proc/<pid>/stat utime+stime over the whole window.

Targets: decision-to-DNS <= 1 s, RSS <= 60 MB, CPU <= 2 % of one core. The table marks each
figure ok or MISSED; the exit status is 0 either way (1 only with --strict and a miss, or
when the lab cannot be run). Traffic stays on the lab's Docker networks and 127.0.0.1; the
lab (every container named nmpi-it-<id>-...) is removed at the end.

    .venv/bin/python failover/bench/bench_failover.py [--moves 10] [--switchovers 2] [--watch 60]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the lab harness of the integration tests

from integration.daemons import Bind, DaemonProcess, poll  # noqa: E402
from integration.lab import Lab, LabError  # noqa: E402

TARGET_LATENCY_S = 1.0
TARGET_RSS_MB = 60.0
TARGET_CPU_PERCENT = 2.0
POLL_S = 0.010  # BIND is asked this often while a move is awaited


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


def _point_dns_after(daemon: DaemonProcess, since: float, timeout: float = 10.0) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        for event in daemon.events("action", since):
            if event.get("kind") == "point_dns":
                return event
        return None

    result: dict[str, Any] = poll("the daemon's PointDns action in its journal", found, timeout)
    return result


def _done_after(daemon: DaemonProcess, since: float, timeout: float = 10.0) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        for event in daemon.events(None, since):
            if event.get("event") in ("action_done", "action_failed", "action_aborted"):
                return event
        return None

    result: dict[str, Any] = poll("the outcome of the daemon's action", found, timeout)
    return result


def wrong_record_move(lab: Lab, bind: Bind, daemon: DaemonProcess, site: str) -> Move:
    """Point the name at the other site; the daemon must bring it back to `site`."""
    right = lab.web[site].address
    wrong = lab.web["jusuf" if site == "castor" else "castor"].address
    started = time.time()
    bind.point(wrong)
    seen = bind.wait_for(right, timeout=15.0, every=POLL_S)
    action = _point_dns_after(daemon, started)
    done = _done_after(daemon, float(action["ts"]))
    return Move(
        how="wrong record",
        decision_to_dns=seen - float(action["ts"]),
        decision_to_done=float(done["ts"]) - float(action["ts"]),
        trigger_to_dns=seen - started,
    )


def switchover_move(lab: Lab, bind: Bind, daemon: DaemonProcess, to_site: str) -> Move:
    """Move the leader with Patroni; the daemon moves the name once `to_site` serves.

    BIND is polled from a thread during the whole switchover: the name may move before
    the lab's own (slower) poll of Patroni has seen the new leader."""
    started = time.time()
    seen: list[float] = []
    watcher = threading.Thread(
        target=lambda: seen.append(
            bind.wait_for(lab.web[to_site].address, timeout=120.0, every=POLL_S)
        ),
        daemon=True,
    )
    watcher.start()
    lab.switchover(to_site, timeout=90.0)
    watcher.join(timeout=120.0)
    if not seen:
        raise LabError(f"the name did not follow the leader to {to_site}")
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
    workdir = Path(tempfile.mkdtemp(prefix="nmpi-it-bench-"))
    print(f"starting the lab in {workdir} ...", flush=True)
    lab = Lab(workdir, web=args.web)
    daemon: DaemonProcess | None = None
    try:
        lab.start()
        print(f"lab up ({lab.web_kind} web tier): {lab.timings}", flush=True)
        journal = workdir / "bench-journal.jsonl"
        config = lab.write_failover_config(
            workdir / "bench-failover.yaml",
            interval=args.interval,
            probe_timeout=min(1.5, args.interval * 0.8),
            journal=str(journal),
        )
        daemon = DaemonProcess(config, "nmpi-it-bench")
        bind = Bind(lab)
        castor = lab.web["castor"].address

        def converged() -> bool | None:
            assert daemon is not None
            daemon.check_alive()
            return True if daemon.holds_lease() and daemon.state("dns") == castor else None

        poll("the daemon to hold the lease with the name at castor", converged, 60)
        time.sleep(3 * args.interval)  # past start-up: imports, first rounds
        print(f"watching the converged lab for {args.watch:.0f} s ...", flush=True)
        footprint = watch(daemon, args.watch)
        moves = []
        for i in range(args.moves):
            moves.append(wrong_record_move(lab, bind, daemon, "castor"))
            print(f"  move {i + 1}/{args.moves}: {moves[-1].decision_to_dns * 1000:.0f} ms")
        for i in range(args.switchovers):
            target = "jusuf" if i % 2 == 0 else "castor"
            moves.append(switchover_move(lab, bind, daemon, target))
            print(f"  {moves[-1].how}: {moves[-1].decision_to_dns * 1000:.0f} ms", flush=True)
            lab.wait_for_sync_standby("castor" if target == "jusuf" else "jusuf", timeout=120)
        rss_after = daemon.rss_kb() / 1024
        text, ok = report(moves, footprint, rss_after)
        print()
        print(f"nmpi-failover watch, interval {args.interval:g} s, pid {daemon.pid}")
        print(text)
        failed = daemon.events("action_failed")
        if failed:
            print(f"\nwarning: {len(failed)} failed actions in the journal: {failed[-1]}")
        code = 1 if args.strict and not ok else 0
    except LabError as error:
        print(f"bench failed: {error}", file=sys.stderr)
        if daemon is not None:
            print(daemon.log.read_text()[-3000:], file=sys.stderr)
        print(f"kept {workdir} (config, journal, daemon log)", file=sys.stderr)
        code = 1
    finally:
        if daemon is not None:
            daemon.terminate()
        lab.close()
    if code == 0:
        shutil.rmtree(workdir, ignore_errors=True)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Needs Docker and the lab images (images/build.sh etcd patroni bind9 job-queue).",
    )
    parser.add_argument("--moves", type=int, default=10, help="wrong-record moves (default 10)")
    parser.add_argument(
        "--switchovers", type=int, default=2, help="Patroni switchovers, alternating (default 2)"
    )
    parser.add_argument(
        "--watch", type=float, default=60.0, help="seconds of RSS/CPU sampling (default 60)"
    )
    parser.add_argument(
        "--interval", type=float, default=1.0, help="the daemon's interval (default 1 s)"
    )
    parser.add_argument(
        "--web",
        choices=["auto", "job-queue", "responder"],
        default="auto",
        help="the sites' web tier (default: the job-queue API when its image is built)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.moves + args.switchovers < 1:
        parser.error("need at least one move (--moves or --switchovers)")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
