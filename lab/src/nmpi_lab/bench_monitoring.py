"""Memory of the monitoring stack at the witness, on the deployed lab (make lab first).

    python -m nmpi_lab.bench_monitoring [--samples 5] [--interval 10]

Per service: the containers' memory as `docker stats` reports it (cgroup usage without page
cache: what the kernel cannot take back) and the systemd units' MemoryCurrent (the log
server, its gateway, the journal shipper and the alert journal). Each figure is the median
of --samples readings taken --interval seconds apart; the total is compared with the target
of issue 14 (under 400 MB).
The node exporter and the journal shipper run on every host; the witness's own are counted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from nmpi_lab import deployment

TARGET_MB = 400.0
CONTAINERS = (
    "nmpi-prometheus",
    "nmpi-alertmanager",
    "nmpi-blackbox-exporter",
    "nmpi-node-exporter",
    "nmpi-metrics-proxy",
)
UNITS = (
    "systemd-journal-remote.service",
    "systemd-journal-gatewayd.service",
    "systemd-journal-upload.service",
    "nmpi-alert-journal.service",
)
_UNITS = {
    "B": 1,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "kB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
}


def parse_size(text: str) -> float:
    """Bytes of a `docker stats` size such as 41.2MiB."""
    text = text.strip()
    for unit in sorted(_UNITS, key=len, reverse=True):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * _UNITS[unit]
    return float(text)


def sample(lab: deployment.Deployment) -> dict[str, float]:
    """One reading: MB per container and unit at the monitoring server."""
    witness = lab.monitoring
    stats = lab.ssh(
        witness,
        "sudo docker stats --no-stream --format '{{json .}}' " + " ".join(CONTAINERS),
        timeout=60,
    )
    figures: dict[str, float] = {}
    for line in stats.splitlines():
        if line.strip().startswith("{"):
            row = json.loads(line)
            figures[row["Name"]] = parse_size(row["MemUsage"].split("/")[0]) / 1e6
    units = lab.ssh(
        witness,
        "systemctl show -p Id -p MemoryCurrent " + " ".join(UNITS),
        timeout=60,
    )
    # One block of properties per unit, separated by a blank line, in systemd's own order.
    for block in units.strip().split("\n\n"):
        props = dict(line.partition("=")[::2] for line in block.splitlines() if "=" in line)
        # A socket-activated unit not running now reports [not set]: 0 MB.
        value = props.get("MemoryCurrent", "")
        figures[props.get("Id", "?")] = int(value) / 1e6 if value.isdigit() else 0.0
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nmpi_lab.bench_monitoring",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--samples", type=int, default=5, help="readings (median), 1-60")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between readings")
    args = parser.parse_args(argv)
    if not 1 <= args.samples <= 60 or not 0 <= args.interval <= 600:
        parser.error("--samples must be 1-60 and --interval 0-600")
    try:
        lab = deployment.load()
    except LookupError as exc:
        print(f"bench-monitoring: {exc}", file=sys.stderr)
        return 1
    readings = []
    for index in range(args.samples):
        if index:
            time.sleep(args.interval)
        readings.append(sample(lab))
    names = sorted({name for reading in readings for name in reading})
    medians = {name: statistics.median(r.get(name, 0.0) for r in readings) for name in names}
    total = sum(medians.values())
    width = max(len(name) for name in names)
    print(f"memory at {lab.monitoring.name}, median of {args.samples} readings:")
    for name in names:
        print(f"  {name:<{width}}  {medians[name]:7.1f} MB")
    verdict = "within" if total < TARGET_MB else "OVER"
    print(f"  {'total':<{width}}  {total:7.1f} MB ({verdict} the {TARGET_MB:.0f} MB target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
