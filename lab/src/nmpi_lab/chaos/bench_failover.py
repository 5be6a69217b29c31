"""Leader-site loss, measured N times on the deployed lab: how long users are without service
and where the time goes. A benchmark that prints figures (make bench-failover), not a test.

    python -m nmpi_lab.chaos.bench_failover [--runs 10] [--json FILE]

Each run is the chaos suite's leader-site-cut scenario (nmpi_lab.chaos.scenarios): from the
healthy state (leader and name at castor; a failback between runs), castor is cut off from
everything while a user submits jobs through the public name (resolved at the witness, cached
for the TTL) and a hardware site claims them; the cut lasts until users are served at jusuf
(at least 30 s), then it is healed and the platform is waited on until fully redundant.
Printed per run: the outage the user saw (longest stretch without an acknowledged
submission), when the Patroni leader moved, when the public name moved, when the user was
first served at the new site (seconds after the cut), then the distribution of each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from nmpi_lab import deployment
from nmpi_lab.chaos import observe
from nmpi_lab.chaos.scenarios import SCENARIOS, Chaos, run, table

STAGES = ("leader moved", "name moved", "client served at new site")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nmpi_lab.chaos.bench_failover",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=10, help="cuts of the leader site (1-50)")
    parser.add_argument("--json", type=Path, help="also write the runs as JSON to this file")
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= 50:
        parser.error("--runs must be between 1 and 50")
    if not observe.is_root():
        parser.error("cutting a site off needs root (iptables)")
    try:
        lab = deployment.load()
    except LookupError as exc:
        print(f"bench-failover: {exc}", file=sys.stderr)
        return 1
    chaos = Chaos(lab)
    spec = SCENARIOS["leader-site-cut"]
    results = []
    try:
        for number in range(1, args.runs + 1):
            started = time.monotonic()
            row, problems = run(chaos, spec)
            results.append((row, problems))
            stages = "  ".join(f"{k} +{row.timings[k]:.1f}" for k in STAGES if k in row.timings)
            redundant = "-" if row.redundancy is None else f"{row.redundancy:.1f}"
            print(
                f"run {number:2d}/{args.runs}: outage {row.outage:5.1f} s  {stages}  "
                f"redundant {redundant} s"
                f"  ({time.monotonic() - started:.0f} s){'  FAIL' if problems else ''}",
                flush=True,
            )
        chaos.restore_healthy()
    finally:
        chaos.close()
    print()
    print(table(results))
    print()
    outages = [row.outage for row, _ in results]
    print(_distribution("client-observed outage", outages))
    for stage in STAGES:
        values = [row.timings[stage] for row, _ in results if stage in row.timings]
        if values:
            print(_distribution(f"{stage} (after the cut)", values))
    redundancy = [row.redundancy for row, _ in results if row.redundancy is not None]
    if redundancy:
        print(_distribution("full redundancy (after the heal)", redundancy))
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "outage": r.outage,
                        "timings": r.timings,
                        "redundancy": r.redundancy,
                        "missing": r.missing,
                        "split_brain": r.split_brain,
                        "problems": p,
                    }
                    for r, p in results
                ],
                indent=2,
            )
        )
    return 1 if any(problems for _, problems in results) else 0


def _distribution(label: str, values: list[float]) -> str:
    ordered = sorted(values)
    return (
        f"{label:42s} n={len(ordered):2d}  min {ordered[0]:5.1f}  median "
        f"{statistics.median(ordered):5.1f}  max {ordered[-1]:5.1f} s   "
        + " ".join(f"{v:.1f}" for v in ordered)
    )


if __name__ == "__main__":
    sys.exit(main())
