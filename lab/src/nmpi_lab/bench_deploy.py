"""Deploy figures of the lab: how long site.yml takes cold, end to end, and when re-run.

    python -m nmpi_lab.bench_deploy [--reruns 3] [--skip-end-to-end]   (make bench-deploy)

1. cold site.yml: the lab's OpenStack running, none of the platform's resources (destroy.yml
   first), then `ansible-playbook site.yml -i inventories/lab`;
2. re-run: site.yml again on the deployed lab, --reruns times (median; changed=0 expected);
3. end to end: the platform destroyed and the lab stopped, then what `make lab` does after its
   image build: `nmpi-devstack up --regions castor,jusuf,witness` and site.yml.
Targets (issue 5): site.yml on the lab <= 10 minutes, re-run <= 90 s. It destroys the lab's
platform (not the lab's OpenStack state) and leaves the lab deployed.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

from nmpi_devstack.paths import REPO_ROOT as REPO

BIN = REPO / ".venv" / "bin"
LOGS = REPO / ".cache" / "logs"
REGIONS = "castor,jusuf,witness"
CHANGED = re.compile(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", re.M)


def run(step: str, argv: list[str]) -> tuple[float, str]:
    """Run one step with its output in .cache/logs/bench-deploy-<step>.log: (seconds, output)."""
    LOGS.mkdir(parents=True, exist_ok=True)
    env = dict(
        os.environ,
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        OS_CLIENT_CONFIG_FILE=str(REPO / ".cache" / "devstack" / "clouds.yaml"),
    )
    print(f"bench-deploy: {step}: {' '.join(argv)}", flush=True)
    started = time.monotonic()
    result = subprocess.run(
        argv,
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    output = result.stdout + result.stderr
    (LOGS / f"bench-deploy-{step}.log").write_text(output)
    if result.returncode != 0:
        sys.exit(
            f"bench-deploy: {step} failed (exit {result.returncode}) after {seconds:.0f} s:\n"
            f"{output[-3000:]}"
        )
    return seconds, output


def site_yml(step: str) -> tuple[float, int]:
    seconds, output = run(step, ["ansible-playbook", "site.yml", "-i", "inventories/lab"])
    return seconds, sum(int(n) for _, n in CHANGED.findall(output))


def destroy() -> float:
    seconds, _ = run(
        "destroy",
        [
            "ansible-playbook",
            "playbooks/destroy.yml",
            "-i",
            "inventories/lab",
            "-e",
            "nmpi_destroy_confirm=lab",
        ],
    )
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nmpi_lab.bench_deploy", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--reruns", type=int, default=3, help="idempotent re-runs (median)")
    parser.add_argument("--skip-end-to-end", action="store_true", help="no lab stop and start")
    args = parser.parse_args()
    devstack = str(BIN / "nmpi-devstack")
    figures: list[tuple[str, str, str]] = []

    run("lab-up", [devstack, "up", "--regions", REGIONS])
    destroy()
    cold, changed = site_yml("cold")
    figures.append(
        (
            "site.yml, cold (lab up, no platform)",
            f"{cold:.0f} s",
            f"target <= 600 s; {changed} tasks changed",
        )
    )
    reruns = []
    for i in range(args.reruns):
        seconds, changed = site_yml(f"rerun-{i + 1}")
        reruns.append(seconds)
        print(f"bench-deploy: re-run {i + 1}: {seconds:.0f} s, changed={changed}", flush=True)
    if reruns:
        figures.append(
            (
                "site.yml, re-run (median)",
                f"{statistics.median(reruns):.0f} s",
                f"target <= 90 s; runs {', '.join(f'{s:.0f}' for s in reruns)} s",
            )
        )
    if not args.skip_end_to_end:
        destroy()
        run("lab-down", [devstack, "down"])
        up, _ = run("lab-up-cold", [devstack, "up", "--regions", REGIONS])
        deploy, _ = site_yml("end-to-end")
        figures.append(
            (
                "end to end (lab stopped -> deployed)",
                f"{up + deploy:.0f} s",
                f"nmpi-devstack up {up:.0f} s + site.yml {deploy:.0f} s",
            )
        )
    load = os.getloadavg()
    print(f"\nnmpi-infra deploy figures ({os.cpu_count()} cores, load {load[0]:.1f}):")
    for name, value, note in figures:
        print(f"  {name:<40} {value:>7}   {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
