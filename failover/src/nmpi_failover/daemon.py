"""The controller loop: every interval, observe -> decide -> act, from scratch.

One round: refresh the lease and read everything else concurrently under one deadline
(shorter than the interval, so an observation is never stale when decided on), fold it
into `Memory`, `decide`, then carry out the decision unless this is a dry run. Actions
are level-triggered: once the name moved off a down leader site, a later round sees it there
and asks Patroni to switch over; after a switchover, a later round sees the new leader where
the name is (or moves it); nothing is remembered as "still to do".

While an action runs (a Patroni switchover can take tens of seconds) the lease is kept
alive beside it; if it is lost, the action is cancelled, because a successor may already
be acting. Every decision other than NoAction, every state change (site health, leader,
DNS record, lease, etcd raft leader) and every action's outcome goes to the journal, the JSON
log and the metrics. Repeats of the same alarm or dry-run decision are journaled once, not per
round.

Each round also assesses the cluster's redundancy (`redundancy.assess`): the metrics follow
it every round; a redundancy alarm is journaled and logged (WARNING) when it starts and
when it clears (INFO), not while it holds. A round that cannot read Patroni neither raises
nor clears one.

Programmatic use (the daemon's tests, failover/tests/test_failover_daemon.py; the end-to-end
checks, the chaos suite in tests/chaos, run the daemon as deployed on the lab):

    config = load_config(path)
    daemon = Daemon(config, build_adapters(config), journal=Journal(config.journal))
    result = await daemon.run_round()       # one round; or:
    await daemon.run(stop_event)            # until stop_event is set; releases the lease

or `await serve(config, dry_run=..., stop=...)`, which also exposes the metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

from prometheus_client import start_http_server

from .adapters.clock import SystemClock
from .adapters.designate import DesignateDns
from .adapters.dns_rfc2136 import Rfc2136Dns
from .adapters.etcd_leader import EtcdLeadership as EtcdLeadershipAdapter
from .adapters.etcd_lease import EtcdLease
from .adapters.neutron_fip import NeutronFloatingIps
from .adapters.patroni import PatroniRest
from .adapters.probe import HttpsProber
from .config import Config
from .decide import (
    Alarm,
    Decision,
    Memory,
    MoveEtcdLeader,
    MoveFloatingIp,
    PointDns,
    Switchover,
    decide,
    is_action,
    to_event,
)
from .journal import Journal
from .logs import LOGGER_NAME
from .metrics import Metrics
from .model import (
    ClusterState,
    DnsRecord,
    EtcdLeaderView,
    FloatingIpState,
    LeaseState,
    LeaseStatus,
    Observation,
    SiteProbe,
)
from .ports import (
    ActuatorError,
    Clock,
    ClusterReader,
    DnsProvider,
    EtcdLeadership,
    FloatingIps,
    Lease,
    PatroniActuator,
    SiteProber,
)
from .redundancy import (
    LagTrend,
    Redundancy,
    RedundancyAlarm,
    alarm_changes,
    assess,
    configured_members,
)

LOG = logging.getLogger(f"{LOGGER_NAME}.daemon")
T = TypeVar("T")

Outcome = Literal["none", "dry_run", "done", "failed", "aborted"]


@dataclass
class Adapters:
    """The daemon's view of the world; tests swap single ones for in-process fakes."""

    prober: SiteProber
    cluster: ClusterReader
    patroni: PatroniActuator
    dns: DnsProvider
    lease: Lease
    floating_ips: FloatingIps | None = None
    etcd: EtcdLeadership | None = None  # None: the etcd leader is neither read nor moved


def build_adapters(config: Config, *, instance: str | None = None) -> Adapters:
    """The real adapters for `config`; `instance` names this daemon in the lease key
    (default: the host name)."""
    prober = HttpsProber(config.probe_timeout)
    patroni = PatroniRest(config)
    dns: DnsProvider = Rfc2136Dns(config) if config.dns.rfc2136 else DesignateDns(config)
    fips = (
        NeutronFloatingIps(config, prober)
        if any(site.floating_ip for site in config.sites)
        else None
    )
    lease = EtcdLease(config, name=instance)
    etcd = EtcdLeadershipAdapter(config, lease)
    return Adapters(prober, patroni, patroni, dns, lease, fips, etcd)


@dataclass(frozen=True)
class RoundResult:
    observation: Observation
    decision: Decision
    outcome: Outcome  # none: nothing to do; dry_run: an action logged, not taken
    error: str | None = None
    redundancy: Redundancy | None = None  # None: Patroni unreadable this round


class _LeaseLostError(Exception):
    pass


class Daemon:
    def __init__(
        self,
        config: Config,
        adapters: Adapters,
        *,
        journal: Journal | None = None,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
        dry_run: bool = False,
    ) -> None:
        self.config = config
        self.adapters = adapters
        self.journal = journal
        self.metrics = metrics or Metrics(config.site_names, members=configured_members(config))
        self.clock: Clock = clock or SystemClock()
        self.dry_run = dry_run
        self.memory = Memory.start(config)
        self._state: dict[str, str] = {}
        self._noted: str | None = None  # the last journaled repeatable decision
        self._alarm: str | None = None
        self._lease_state = LeaseState(LeaseStatus.NOT_HELD)
        self.lag_trend = LagTrend()
        self._redundancy_alarms: dict[tuple[str, str | None], RedundancyAlarm] = {}

    # --- records ---------------------------------------------------------------------------

    def _journal(self, event: str, fields: Mapping[str, Any]) -> None:
        if self.journal is None:
            return
        try:
            self.journal.append(event, fields)
        except OSError as exc:  # a full disk must not stop the controller
            LOG.error("cannot write the journal", extra={"error": str(exc)})

    def _record_observation(self, obs: Observation, now: float) -> None:
        metrics = self.metrics
        for site, probe in obs.probes.items():
            metrics.record_probe(site, probe)
        lease = obs.lease
        acting = lease.status is LeaseStatus.HELD and (lease.valid_until or 0) > now
        metrics.set_acting_leader(acting)
        if obs.dns is not None:
            metrics.set_active_site(self._site_of(obs.dns))
        leader = obs.cluster.leader if obs.cluster else None
        metrics.set_etcd_leader(obs.etcd_leader, leader.site if leader else None)
        # Reads that saw nothing count as errors of their actuator.
        if obs.cluster is None:
            metrics.record_actuator_error("patroni")
        if obs.dns is None:
            metrics.record_actuator_error("dns")
        if lease.status is LeaseStatus.ETCD_UNREACHABLE:
            metrics.record_actuator_error("etcd")
        for site_config in self.config.sites:
            if site_config.floating_ip is not None and site_config.name not in obs.floating_ips:
                metrics.record_actuator_error("neutron")
        self._state_changes(self._describe_state(obs))

    def _site_of(self, record: DnsRecord) -> str | None:
        for site in self.config.sites:
            if record.addresses == frozenset({site.address}):
                return site.name
        return None

    def _describe_state(self, obs: Observation) -> dict[str, str]:
        state = {f"site.{s}": str(self.memory.health.status(s)) for s in self.config.site_names}
        leader = obs.cluster.leader if obs.cluster else None
        if obs.cluster is None:
            state["leader"] = "unreadable"
        else:
            state["leader"] = f"{leader.name} at {leader.site}" if leader else "none"
        if obs.dns is None:
            state["dns"] = "unreadable"
        else:
            state["dns"] = ",".join(sorted(obs.dns.addresses)) or "no address"
        holder = f" ({obs.lease.holder})" if obs.lease.holder else ""
        state["lease"] = f"{obs.lease.status}{holder}"
        if self.adapters.etcd is not None:
            view = obs.etcd_leader
            # Not journaled as "unreadable" while etcd stays unreadable: the lease says so.
            state["etcd_leader"] = (
                self._state.get("etcd_leader", "unknown")
                if view is None
                else f"{view.leader} at {view.site or 'a neutral location'}"
            )
        return state

    def _state_changes(self, state: dict[str, str]) -> None:
        for what, value in state.items():
            before = self._state.get(what)
            if before != value:
                fields = {"what": what, "from": before, "to": value}
                self._journal("state_change", fields)
                LOG.info(f"{what}: {before} -> {value}", extra=fields)
        self._state = state

    def _record_redundancy(self, obs: Observation) -> Redundancy | None:
        self.lag_trend = self.lag_trend.record(obs.cluster)
        redundancy = assess(obs.cluster, self.config, self.lag_trend)
        self.metrics.record_redundancy(obs.cluster, redundancy)
        if redundancy is None:
            return None  # unreadable: an alarm is neither confirmed nor cleared
        raised, cleared = alarm_changes(self._redundancy_alarms, redundancy)
        for alarm in raised:
            fields = _alarm_fields(alarm)
            self._journal("redundancy_alarm", {**fields, "detail": alarm.message})
            LOG.warning(f"redundancy lost: {alarm.message}", extra=fields)
        for alarm in cleared:
            fields = _alarm_fields(alarm)
            self._journal("redundancy_alarm_cleared", fields)
            who = f" ({alarm.member})" if alarm.member else ""
            LOG.info(f"redundancy alarm cleared: {alarm.kind}{who}", extra=fields)
        self._redundancy_alarms = {alarm.key: alarm for alarm in redundancy.alarms}
        return redundancy

    def _record_decision(self, decision: Decision) -> None:
        """Journal and log a decision that changes nothing now (alarm or dry run), once
        per distinct decision rather than every round."""
        if isinstance(decision, Alarm):
            self.metrics.set_alarm(decision.condition)
            self._alarm = decision.condition
        else:
            self.metrics.set_alarm(None)
            if self._alarm is not None:
                self._journal("alarm_cleared", {"condition": self._alarm})
                LOG.info("alarm cleared", extra={"condition": self._alarm})
                self._alarm = None
        if not isinstance(decision, Alarm) and not (self.dry_run and is_action(decision)):
            self._noted = None  # taken actions are journaled by _act, each time
            return
        event = to_event(decision)
        key = json.dumps(
            {k: v for k, v in event.items() if k not in ("reason", "detail")},
            sort_keys=True,
            default=str,
        )
        if key == self._noted:
            return
        self._noted = key
        fields = {**event, "dry_run": self.dry_run}
        self._journal("decision", fields)
        if isinstance(decision, Alarm):
            LOG.warning(decision.reason, extra=fields)
        else:
            LOG.info(f"dry run, would act: {decision.kind}", extra=fields)

    # --- observing -------------------------------------------------------------------------

    async def _bounded(self, what: str, read: Awaitable[T], seconds: float, default: T) -> T:
        try:
            async with asyncio.timeout(seconds):
                return await read
        except TimeoutError:
            return default
        except Exception:  # an adapter bug must cost one reading, not the controller
            LOG.exception(f"reading {what} failed")
            return default

    async def observe(self, *, take_lease: bool = True) -> Observation:
        """One concurrent read of everything; `take_lease=False` only looks at the lease."""
        a = self.adapters
        deadline = self.config.round_deadline
        taken_at = self.clock.monotonic()
        late = SiteProbe(ok=False, error=f"no answer within the round deadline ({deadline:g} s)")
        unreachable = LeaseState(LeaseStatus.ETCD_UNREACHABLE)
        lease_read = a.lease.refresh() if take_lease else a.lease.peek()
        sites = self.config.sites
        none_fip: FloatingIpState | None = None
        fip = a.floating_ips
        fip_sites = [s for s in sites if s.floating_ip is not None] if fip is not None else []
        fip_reads = (
            [self._bounded(f"fip {s.name}", fip.read(s), deadline, none_fip) for s in fip_sites]
            if fip is not None
            else []
        )
        none_cluster: ClusterState | None = None
        none_dns: DnsRecord | None = None
        none_etcd: EtcdLeaderView | None = None
        etcd_read = (
            self._bounded("etcd leader", a.etcd.read(), deadline, none_etcd)
            if a.etcd is not None
            else asyncio.sleep(0, none_etcd)
        )
        lease, cluster, record, etcd_leader, *rest = await asyncio.gather(
            self._bounded("etcd", lease_read, deadline, unreachable),
            self._bounded("patroni", a.cluster.read_cluster(), deadline, none_cluster),
            self._bounded("dns", a.dns.read(), deadline, none_dns),
            etcd_read,
            *(self._bounded(f"probe {s.name}", a.prober.probe(s), deadline, late) for s in sites),
            *fip_reads,
        )
        probes = {s.name: p for s, p in zip(sites, rest[: len(sites)], strict=True)}
        fips = {
            s.name: f
            for s, f in zip(fip_sites, rest[len(sites) :], strict=True)
            if isinstance(f, FloatingIpState)
        }
        assert isinstance(lease, LeaseState)
        return Observation(
            taken_at=taken_at,
            probes={n: p for n, p in probes.items() if isinstance(p, SiteProbe)},
            cluster=cluster if isinstance(cluster, ClusterState) else None,
            dns=record if isinstance(record, DnsRecord) else None,
            lease=lease,
            floating_ips=fips,
            etcd_leader=etcd_leader if isinstance(etcd_leader, EtcdLeaderView) else None,
        )

    # --- one round -------------------------------------------------------------------------

    async def run_round(self) -> RoundResult:
        observation = await self.observe()
        self._lease_state = observation.lease
        self.memory = self.memory.observe(observation)
        now = self.clock.monotonic()
        decision = decide(observation, self.memory, self.config, now)
        self._record_observation(observation, now)
        redundancy = self._record_redundancy(observation)
        self._record_decision(decision)
        if not is_action(decision):
            return RoundResult(observation, decision, "none", redundancy=redundancy)
        if self.dry_run:
            return RoundResult(observation, decision, "dry_run", redundancy=redundancy)
        result = await self._act(observation, decision, now)
        return replace(result, redundancy=redundancy)

    async def _act(self, observation: Observation, decision: Decision, now: float) -> RoundResult:
        event = to_event(decision)
        self._journal("action", event)
        LOG.info(f"acting: {decision.kind}", extra=event)
        started = self.clock.monotonic()
        try:
            await self._keeping_lease(self._execute(decision))
        except ActuatorError as exc:
            self.metrics.record_actuator_error(exc.actuator)
            fields = {**event, "actuator": exc.actuator, "error": str(exc)}
            self._journal("action_failed", fields)
            LOG.error(f"action failed: {decision.kind}", extra=fields)
            self.memory = self.memory.acted(decision, now, succeeded=False)
            return RoundResult(observation, decision, "failed", str(exc))
        except _LeaseLostError:
            error = "the lease was lost while acting"
            fields = {**event, "error": error}
            self._journal("action_aborted", fields)
            LOG.error("action aborted: the lease was lost", extra=fields)
            self.memory = self.memory.acted(decision, now, succeeded=False)
            return RoundResult(observation, decision, "aborted", error)
        seconds = round(self.clock.monotonic() - started, 3)
        self._journal("action_done", {**event, "seconds": seconds})
        LOG.info(f"done: {decision.kind}", extra={**event, "seconds": seconds})
        if isinstance(decision, Switchover):
            self.metrics.record_switch(decision.reason, self.clock.time())
        elif isinstance(decision, PointDns):
            self.metrics.set_active_site(decision.site)
        self.memory = self.memory.acted(decision, now, succeeded=True)
        return RoundResult(observation, decision, "done")

    async def _execute(self, decision: Decision) -> None:
        a = self.adapters
        if isinstance(decision, PointDns):
            await a.dns.point(decision.address, decision.expected_current)
        elif isinstance(decision, Switchover):
            await a.patroni.switchover(decision)
        elif isinstance(decision, MoveFloatingIp):
            if a.floating_ips is None:
                raise ActuatorError("neutron", "no floating IP adapter is configured")
            await a.floating_ips.move(decision)
        elif isinstance(decision, MoveEtcdLeader):
            if a.etcd is None:
                raise ActuatorError("etcd", "no etcd leadership adapter is configured")
            await a.etcd.move(decision)

    async def _keeping_lease(self, action: Awaitable[None]) -> None:
        """Run `action` while renewing the lease beside it; cancel it if the lease is lost."""
        task = asyncio.ensure_future(action)
        lost = False

        async def keep() -> None:
            nonlocal lost
            period = min(self.config.interval, self.config.etcd.lease_ttl / 3)
            while not task.done():
                await asyncio.sleep(period)
                state = await self._bounded(
                    "etcd",
                    self.adapters.lease.refresh(),
                    self.config.round_deadline,
                    LeaseState(LeaseStatus.ETCD_UNREACHABLE),
                )
                self._lease_state = state
                self.metrics.set_acting_leader(state.status is LeaseStatus.HELD)
                if state.status is not LeaseStatus.HELD:
                    lost = True
                    task.cancel()
                    return

        keeper = asyncio.create_task(keep())
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if lost and current is not None and not current.cancelling():
                raise _LeaseLostError() from None
            raise
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            if not task.done():
                task.cancel()

    # --- the loop --------------------------------------------------------------------------

    async def run(
        self, stop: asyncio.Event | None = None, *, max_rounds: int | None = None
    ) -> None:
        """Rounds every interval until `stop` is set (or `max_rounds`); then release the
        lease. A round in progress when `stop` is set is cancelled: every action is safe
        to interrupt (DNS is compare-and-swap, Patroni's request is idempotent)."""
        stop = stop or asyncio.Event()
        self._journal("started", {"dry_run": self.dry_run})
        LOG.info("started", extra={"dry_run": self.dry_run})
        rounds = 0
        next_at = self.clock.monotonic()
        try:
            while not stop.is_set():
                current = asyncio.create_task(self.run_round())
                stopping = asyncio.create_task(stop.wait())
                done, _ = await asyncio.wait(
                    {current, stopping}, return_when=asyncio.FIRST_COMPLETED
                )
                stopping.cancel()
                if current not in done:
                    current.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await current
                    break
                if current.exception() is not None:
                    LOG.error("round failed", exc_info=current.exception())
                rounds += 1
                if max_rounds is not None and rounds >= max_rounds:
                    break
                next_at += self.config.interval
                now = self.clock.monotonic()
                next_at = max(next_at, now)  # a late round is not followed by a burst
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), next_at - now)
        finally:
            await self.shutdown()

    async def shutdown(self) -> None:
        """Release the lease, so a standby instance can act at once instead of after TTL."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.round_deadline):
                await self.adapters.lease.release()
        self.metrics.set_acting_leader(False)
        self._journal("stopped", {"dry_run": self.dry_run})
        LOG.info("stopped, lease released")


async def serve(
    config: Config,
    *,
    dry_run: bool = False,
    instance: str | None = None,
    adapters: Adapters | None = None,
    stop: asyncio.Event | None = None,
    metrics_server: bool = True,
    handle_signals: bool = True,
) -> None:
    """The daemon as `nmpi-failover watch` runs it: journal, metrics endpoint on
    config.metrics_listen, SIGTERM/SIGINT stop it gracefully (lease released)."""
    stop = stop or asyncio.Event()
    metrics = Metrics(config.site_names, members=configured_members(config))
    server = None
    if metrics_server:
        host, port = config.listen_host_port
        server, _ = start_http_server(port, addr=host, registry=metrics.registry)
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        with Journal(config.journal) as journal:
            daemon = Daemon(
                config,
                adapters or build_adapters(config, instance=instance),
                journal=journal,
                metrics=metrics,
                dry_run=dry_run,
            )
            await daemon.run(stop)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        if server is not None:
            server.shutdown()
            server.server_close()


def _alarm_fields(alarm: RedundancyAlarm) -> dict[str, Any]:
    """The journal's and the log line's fields of a redundancy alarm."""
    return {"kind": alarm.kind, "member": alarm.member, "site": alarm.site}
