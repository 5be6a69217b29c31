"""The operator commands behind the CLI: `status` and planned switchover/failback.

They observe exactly as a daemon round does, but never take the lease: a running daemon
keeps acting, and everything here that writes is safe beside it (Patroni refuses a
switchover from a leader that is no longer the leader; DNS writes are compare-and-swap
and write the same value the daemon would).

A planned switchover waits, bounded (`wait`, the CLI's --wait), for what settles by itself
within seconds: right after a role change the old primary rejoins as a plain replica, and in
synchronous mode Patroni refuses a switchover to it (HTTP 412) until the new leader names it
its synchronous standby at its next loop (loop_wait). The rule is `decide.plan_switchover`'s
(a Refusal with `wait_for`); the waiting, re-observing every `poll` seconds, is here.
"""

from __future__ import annotations

import asyncio
import re
import textwrap
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from .config import Config
from .daemon import Adapters, Daemon
from .decide import Refusal, Switchover, SwitchReason, plan_switchover, to_event
from .journal import Journal, read_tail
from .model import EtcdLeaderView, LeaseStatus, Member, MemberRole, Observation
from .ports import ActuatorError, Clock, DnsConflictError, PatroniRefusedError
from .redundancy import Redundancy, assess

Say = Callable[[str], None]
Sleep = Callable[[float], Awaitable[None]]

# How long a planned switchover waits, by default, for the target's member to become ready.
# Patroni names a new synchronous standby at the leader's next loop (loop_wait, 4 s in the
# lab, 10 s by default) once the replica streams; a rejoining old primary may need pg_rewind
# and a restart first.
DEFAULT_WAIT = 60.0
POLL = 1.0  # re-observe this often while waiting
PROGRESS_EVERY = 5.0  # a progress line at least this often (and whenever the state changes)

# --- status --------------------------------------------------------------------------------


def _member(member: Member) -> dict[str, Any]:
    return {
        "name": member.name,
        "site": member.site,
        "role": str(member.role),
        "state": member.state,
        "lag_bytes": member.lag_bytes,
        "timeline": member.timeline,
    }


def redundancy_report(redundancy: Redundancy | None) -> dict[str, Any]:
    """`status --json`'s "redundancy": ok is None when Patroni was unreadable (unknown)."""
    if redundancy is None:
        return {"ok": None, "sync_standby": None, "leader_timeline": None, "alarms": []}
    return {
        "ok": redundancy.ok,
        "sync_standby": redundancy.sync_standby,
        "leader_timeline": redundancy.leader_timeline,
        "alarms": [
            {"kind": a.kind, "member": a.member, "site": a.site, "message": a.message}
            for a in redundancy.alarms
        ],
    }


def etcd_report(
    config: Config, view: EtcdLeaderView | None, database_site: str | None
) -> dict[str, Any] | None:
    """`status --json`'s "etcd": the raft leader, its site (None: neutral) and the members;
    None when etcd's status was unreadable."""
    if view is None:
        return None
    return {
        "keep_leader_off_database_sites": config.etcd.keep_leader_off_database_sites,
        "leader": view.leader,
        "leader_site": view.site,
        "at_database_leader_site": None if database_site is None else view.site == database_site,
        "members": [
            {
                "name": m.name,
                "id": f"{m.id:x}",
                "site": m.site,
                "answered": m.answered,
                "learner": m.learner,
            }
            for m in sorted(view.members, key=lambda m: m.name)
        ],
    }


def status_report(
    config: Config, observation: Observation, events: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """What `status --json` prints: one observation plus the journal's last events."""
    dns = observation.dns
    active = None
    if dns is not None:
        for site in config.sites:
            if dns.addresses == frozenset({site.address}):
                active = site.name
    cluster = observation.cluster
    leader = cluster.leader if cluster else None
    sites = []
    for site in config.sites:
        probe = observation.probes.get(site.name)
        sites.append(
            {
                "name": site.name,
                "address": site.address,
                "preferred": site.name == config.preferred_site,
                "active": site.name == active,
                "probe": None
                if probe is None
                else {"ok": probe.ok, "latency": probe.latency, "error": probe.error},
                "floating_ip": (
                    None
                    if site.name not in observation.floating_ips
                    else {
                        "attached_vm": observation.floating_ips[site.name].attached_vm,
                        "vms": {
                            vm: {"ok": p.ok, "error": p.error}
                            for vm, p in observation.floating_ips[site.name].vm_probes.items()
                        },
                    }
                ),
            }
        )
    return {
        "sites": sites,
        "cluster_readable": cluster is not None,
        "leader": _member(leader) if leader else None,
        "members": [_member(m) for m in cluster.members] if cluster else [],
        # One reading: a replica's lag is judged against max_replica_lag_bytes only; whether
        # it keeps rising needs the daemon's rounds (its metrics and journal).
        "redundancy": redundancy_report(assess(cluster, config)),
        "dns": None
        if dns is None
        else {
            "name": dns.name,
            "addresses": sorted(dns.addresses),
            "ttl": dns.ttl,
            "site": active,
        },
        "lease": {"status": str(observation.lease.status), "holder": observation.lease.holder},
        "etcd": etcd_report(config, observation.etcd_leader, leader.site if leader else None),
        "events": list(events),
    }


def _lag(member: Mapping[str, Any]) -> str:
    if member["role"] == str(MemberRole.LEADER):
        return "-"
    lag = member["lag_bytes"]
    return "unknown" if lag is None else f"{lag} B"


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def event_summary(event: Mapping[str, Any]) -> str:
    """One line for an event in `status`, whatever its kind."""
    name = str(event.get("event", "?"))
    if name == "state_change":
        return f"{event.get('what')}: {event.get('from')} -> {event.get('to')}"
    if name == "redundancy_alarm_cleared":
        return " ".join(str(p) for p in (event.get("kind"), event.get("member")) if p)
    text = event.get("error") or event.get("detail") or event.get("reason") or ""
    kind = event.get("kind") or event.get("condition") or ""
    if kind == "refusal":  # the event name says it already
        kind = ""
    parts = [str(p) for p in (kind, text) if p]
    if event.get("dry_run") and name == "decision":
        parts.insert(0, "(dry run)")
    if not parts:
        rest = {k: v for k, v in event.items() if k not in ("ts", "time", "event")}
        parts = [", ".join(f"{k}={v}" for k, v in rest.items())]
    return " ".join(parts)


def format_status(report: Mapping[str, Any]) -> str:
    lines = []
    site_rows = [["SITE", "ADDRESS", "PROBE", "PUBLIC NAME", ""]]
    for site in report["sites"]:
        probe = site["probe"]
        if probe is None:
            seen = "not probed"
        elif probe["ok"]:
            seen = f"ok {probe['latency'] * 1000:.0f} ms"
        else:
            seen = f"FAILING: {probe['error']}"
        note = "preferred" if site["preferred"] else ""
        site_rows.append(
            [site["name"], site["address"], seen, "here" if site["active"] else "", note]
        )
    lines += _table(site_rows)
    lines.append("")
    leader = report["leader"]
    if not report["cluster_readable"]:
        lines.append("database: Patroni unreadable at every site")
    else:
        where = f"{leader['name']} at {leader['site']}" if leader else "NO LEADER"
        lines.append(f"database leader: {where}")
        rows = [["MEMBER", "SITE", "ROLE", "STATE", "LAG", "TIMELINE"]]
        for m in report["members"]:
            timeline = "-" if m["timeline"] is None else str(m["timeline"])
            rows.append([m["name"], m["site"] or "?", m["role"], m["state"], _lag(m), timeline])
        lines += ["  " + line for line in _table(rows)]
    lines += _redundancy_lines(report["redundancy"])
    lines.append("")
    dns = report["dns"]
    if dns is None:
        lines.append("public name: unreadable")
    else:
        target = ", ".join(dns["addresses"]) or "no address"
        site = f" ({dns['site']})" if dns["site"] else " (neither site)"
        ttl = f", ttl {dns['ttl']} s" if dns["ttl"] is not None else ""
        lines.append(f"public name: {dns['name']} -> {target}{site}{ttl}")
    lease = report["lease"]
    if lease["status"] == str(LeaseStatus.ETCD_UNREACHABLE):
        lines.append("acting instance: unknown (etcd quorum unreachable)")
    else:
        lines.append(f"acting instance: {lease['holder'] or 'none (no daemon holds the lease)'}")
    lines.append(_etcd_line(report.get("etcd")))
    lines.append("")
    lines.append("recent events:" if report["events"] else "recent events: none")
    for event in report["events"]:
        lines.append(f"  {event.get('time', '?')}  {event.get('event')}  {event_summary(event)}")
    return "\n".join(lines)


def _etcd_line(etcd: Mapping[str, Any] | None) -> str:
    if etcd is None:
        return "etcd leader: unknown (etcd status unreadable)"
    site = etcd["leader_site"]
    where = f"at {site}" if site else "at a neutral location"
    if etcd["at_database_leader_site"]:
        where += ", the database leader's site"
        if etcd["keep_leader_off_database_sites"]:
            where += " (the acting daemon moves it to a neutral member)"
    answering = [m for m in etcd["members"] if m["answered"]]
    members = ", ".join(
        f"{m['name']} ({m['site'] or 'neutral'}{'' if m['answered'] else ', NOT ANSWERING'})"
        for m in etcd["members"]
    )
    count = f"{len(answering)}/{len(etcd['members'])} answering"
    return f"etcd leader: {etcd['leader']} {where}; members: {members}; {count}"


def _redundancy_lines(redundancy: Mapping[str, Any]) -> list[str]:
    """A summary line, then one block per alarm whose first line starts with ALARM."""
    if redundancy["ok"] is None:
        return ["redundancy: unknown (Patroni unreadable)"]
    if redundancy["ok"]:
        timeline = redundancy["leader_timeline"]
        on = f"; leader on timeline {timeline}" if timeline is not None else ""
        return [f"redundancy: ok (synchronous standby {redundancy['sync_standby']} streaming{on})"]
    alarms = redundancy["alarms"]
    lines = [f"redundancy: LOST ({len(alarms)} alarm{'s' if len(alarms) != 1 else ''})"]
    for alarm in alarms:
        who = f" {alarm['member']}" if alarm["member"] else ""
        lines += _wrap(f"ALARM {alarm['kind']}{who}: {alarm['message']}")
    return lines


def _wrap(text: str, width: int = 100) -> list[str]:
    """Wrapped, but a `command` stays on one line so it can be copied."""
    kept = re.sub(r"`[^`]*`", lambda m: m.group(0).replace(" ", "\0"), text)
    lines = textwrap.wrap(
        kept, width, subsequent_indent="      ", break_long_words=False, break_on_hyphens=False
    )
    return [line.replace("\0", " ") for line in lines]


async def status(
    config: Config, adapters: Adapters, events: int
) -> tuple[Observation, dict[str, Any]]:
    observation = await Daemon(config, adapters).observe(take_lease=False)
    return observation, status_report(config, observation, read_tail(config.journal, events))


# --- planned switchover --------------------------------------------------------------------


def describe_plan(plan: Switchover, config: Config) -> str:
    address = config.site(plan.to_site).address
    return (
        f"switch the database leader from {plan.leader} ({plan.from_site}) to "
        f"{plan.candidate} ({plan.to_site}), then point {config.dns.record} at {address}"
    )


class _Steps:
    """Journal (when it can be written) and tell the operator, each step."""

    def __init__(self, journal: Journal | None, say: Say, warn: Say) -> None:
        self.journal, self.say, self.warn = journal, say, warn

    def __call__(self, event: str, fields: Mapping[str, Any], message: str, *, bad: bool) -> None:
        if self.journal is not None:
            try:
                self.journal.append(event, fields)
            except OSError as exc:
                self.warn(f"warning: cannot write the journal: {exc}")
        (self.warn if bad else self.say)(message)


class _Bound:
    """The --wait bound: one deadline for waiting on the target's member and for retrying
    Patroni's "not the synchronous standby" refusal; the time a confirmation question takes
    does not count. Says a progress line when what it waits for changes, else every
    PROGRESS_EVERY s."""

    def __init__(self, clock: Clock, seconds: float, sleep: Sleep, poll: float, say: Say):
        self.clock, self.seconds, self.sleep, self.poll, self.say = clock, seconds, sleep, poll, say
        self.started = clock.monotonic()
        self.deadline = self.started + seconds
        self._said: tuple[str, float] | None = None  # the last progress line and when

    def left(self) -> float:
        return self.deadline - self.clock.monotonic()

    def waited(self) -> float:
        return max(0.0, self.clock.monotonic() - self.started)

    def pause(self, seconds: float) -> None:
        """`seconds` (a question to the operator) do not count as waiting."""
        self.deadline += seconds
        self.started += seconds

    async def tick(self, what: str) -> None:
        """Tell what it waits for (when it changed, or every PROGRESS_EVERY s), then sleep
        one poll, never past the deadline."""
        now = self.clock.monotonic()
        if self._said is None:
            self.say(f"waiting up to {self.seconds:g} s for {what}")
            self._said = (what, now)
        elif what != self._said[0] or now - self._said[1] >= PROGRESS_EVERY - 1e-9:
            self.say(f"waiting for {what} ... {self.waited():.0f} s")
            self._said = (what, now)
        await self.sleep(max(0.0, min(self.poll, self.left())))

    def explain(self, refusal: Refusal) -> str:
        """A refusal as the operator reads it: what to do about one that waiting could end."""
        if refusal.wait_for is None:
            return refusal.reason
        if self.seconds <= 0:
            return (
                f"{refusal.reason}. Retry in a few seconds, or let the command wait for it "
                "(--wait SECONDS); `nmpi-failover status` shows the members"
            )
        return (
            f"{refusal.reason}; still so after waiting {self.seconds:g} s. Retry, or check "
            "`nmpi-failover status`"
        )


async def _ready_plan(
    daemon: Daemon, target: str, reason: SwitchReason, bound: _Bound
) -> Switchover | Refusal:
    """`plan_switchover` on a fresh observation, again every poll while it refuses for
    something waiting may end (Refusal.wait_for), until the bound has passed."""
    while True:
        observation = await daemon.observe(take_lease=False)
        now = daemon.clock.monotonic()
        plan = plan_switchover(observation, target, daemon.config, now, reason=reason)
        if not isinstance(plan, Refusal) or plan.wait_for is None or bound.left() <= 0:
            return plan
        await bound.tick(plan.wait_for)


async def planned_switchover(
    config: Config,
    adapters: Adapters,
    target: str,
    *,
    reason: SwitchReason = "planned",
    journal: Journal | None,
    confirm: Callable[[Switchover], bool],
    say: Say,
    warn: Say,
    wait: float = DEFAULT_WAIT,
    clock: Clock | None = None,
    sleep: Sleep = asyncio.sleep,
    poll: float = POLL,
) -> int:
    """Refuse unless `target` is healthy and in sync; else switch over, wait for the new
    leader, then move the public name. Returns the CLI exit status (0 done, 1 not).

    For up to `wait` seconds it waits for the target's member to become ready (in
    synchronous mode: the synchronous standby) and retries when Patroni refuses because the
    member it asked does not see the candidate as the synchronous standby yet; 0 refuses at
    once. `clock` and `sleep` are for tests."""
    step = _Steps(journal, say, warn)
    daemon = Daemon(config, adapters, clock=clock)
    bound = _Bound(daemon.clock, max(0.0, wait), sleep, poll, say)
    plan = await _ready_plan(daemon, target, reason, bound)
    if isinstance(plan, Refusal):
        return _refused(step, target, reason, plan, bound)
    say(f"plan: {describe_plan(plan, config)}")
    asked = daemon.clock.monotonic()
    if not confirm(plan):
        warn("not confirmed: nothing changed")
        return 1
    bound.pause(daemon.clock.monotonic() - asked)
    event = to_event(plan)
    waited = round(bound.waited(), 1)
    step(
        "switchover_requested",
        {**event, "waited": waited},
        "asking Patroni to switch over...",
        bad=False,
    )
    while True:
        try:
            await adapters.patroni.switchover(plan)
            break
        except PatroniRefusedError as exc:
            if not exc.not_sync_standby or bound.left() <= 0:
                step(
                    "switchover_failed", {**event, "error": str(exc)}, _failed(exc, bound), bad=True
                )
                return 1
            # The member that took the POST has not seen the leader's /sync key name the
            # candidate yet (its copy of the DCS lags for a moment): nothing was done.
            await bound.tick(f"Patroni to take {plan.candidate} as its synchronous standby")
            again = await _ready_plan(daemon, target, reason, bound)
            if isinstance(again, Refusal):
                return _refused(step, target, reason, again, bound)
            if (again.leader, again.candidate) != (plan.leader, plan.candidate):
                changed = Refusal(
                    f"the cluster changed while waiting (now {describe_plan(again, config)}); "
                    "run the command again"
                )
                return _refused(step, target, reason, changed, bound)
        except ActuatorError as exc:
            step("switchover_failed", {**event, "error": str(exc)}, f"failed: {exc}", bad=True)
            return 1
    step(
        "switchover_done",
        event,
        f"the leader is now {plan.candidate} at {plan.to_site}",
        bad=False,
    )
    return await _point_name(config, adapters, plan.to_site, step)


def _refused(step: _Steps, target: str, reason: SwitchReason, plan: Refusal, bound: _Bound) -> int:
    fields = {"to_site": target, "requested": reason, **to_event(plan)}
    if plan.wait_for is not None:
        fields["waited"] = round(bound.waited(), 1)
    step("switchover_refused", fields, f"refused: {bound.explain(plan)}", bad=True)
    return 1


def _failed(exc: PatroniRefusedError, bound: _Bound) -> str:
    if not exc.not_sync_standby:
        return f"failed: {exc}"
    if bound.seconds <= 0:
        hint = (
            "the leader names its synchronous standby at its next loop: retry in a few "
            "seconds, or let the command wait for it (--wait SECONDS)"
        )
    else:
        hint = f"still so after waiting {bound.seconds:g} s: retry, or check `nmpi-failover status`"
    return f"failed: {exc} ({hint})"


async def _point_name(config: Config, adapters: Adapters, site: str, step: _Steps) -> int:
    address = config.site(site).address
    fields: dict[str, Any] = {"site": site, "address": address, "name": config.dns.record}
    for _ in range(3):  # a conflict means someone (the daemon) wrote meanwhile: re-read
        record = await adapters.dns.read()
        if record is None:
            step(
                "dns_failed",
                {**fields, "error": "unreadable"},
                "cannot read the public name",
                bad=True,
            )
            return 1
        if record.addresses == frozenset({address}):
            step(
                "dns_pointed",
                {**fields, "already": True},
                f"{config.dns.record} already points at {address}",
                bad=False,
            )
            return 0
        try:
            await adapters.dns.point(address, record.addresses)
        except DnsConflictError:
            continue
        except ActuatorError as exc:
            step(
                "dns_failed",
                {**fields, "error": str(exc)},
                f"moving the name failed: {exc}",
                bad=True,
            )
            return 1
        step(
            "dns_pointed",
            {**fields, "previous": sorted(record.addresses)},
            f"{config.dns.record} now points at {address} ({site}) [{_now()}]",
            bad=False,
        )
        return 0
    step(
        "dns_failed",
        {**fields, "error": "kept changing"},
        "the public name kept changing under us; check `status`",
        bad=True,
    )
    return 1


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
