"""Freezing, thawing and killing a real lab VM (nmpi_devstack.chaos), containers inside it too.

One VM container of the project's vm image, run with the lab hypervisor's options
(docker_vm: systemd as PID 1, the host's cgroup tree mounted in, a Docker engine inside),
runs three counting loops, each writing its count every 50 ms into a folder shared with
the host, where the test reads them:

  c1, c2   two containers of the VM's own engine (restart=always): their cgroups are made
           beside the VM's (freezer:/docker/<inner id>), so `docker pause` of the VM alone
           does not stop them (the first test shows it)
  vm       a process of the VM itself (docker exec)

A frozen VM must count no more, a thawed one count again, a killed one leave no process.
Needs root and Docker; everything made here is named nmpifrz-<random> and removed at the
end (the inner containers' cgroups that a killed VM leaves on the host too). No OpenStack.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker  # type: ignore[import-untyped]
import docker.errors  # type: ignore[import-untyped]
import pytest
from nmpi_devstack import chaos
from nmpi_lab_openstack import docker_vm

from tests.devstack.labcloud import wait_until
from tests.support import read_images_env

pytestmark = pytest.mark.slow

ENV = read_images_env()
IMAGE = f"{ENV['NMPI_IMAGE_VM']}:{ENV['NMPI_IMAGE_TAG']}"
INNER_IMAGE = ENV["NMPI_BASE_IMAGE"]
INNER = ("c1", "c2")
COUNT_SH = """i=0
while :; do
  i=$((i+1))
  echo $i > "$1/$2.tmp" && mv "$1/$2.tmp" "$1/$2"
  sleep 0.05
done
"""


@dataclass
class VM:
    name: str
    shared: Path
    id: str = ""
    inner_ids: set[str] = field(default_factory=set)
    timings: dict[str, list[float]] = field(default_factory=dict)

    def timed(self, what: str, seconds: float) -> None:
        self.timings.setdefault(what, []).append(seconds)


def _docker(*args: str, check: bool = True, stdin: bytes | None = None) -> str:
    result = subprocess.run(
        ["docker", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {result.stderr.decode().strip()}")
    return result.stdout.decode().strip()


def _engine_up(name: str) -> None:
    def answers() -> bool:
        probe = ["docker", "exec", name, "docker", "info"]
        done = subprocess.run(probe, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
        return done.returncode == 0

    wait_until(f"{name}'s inner Docker engine", answers, 60, interval=0.3)


def _status(vm: VM) -> str:
    return _docker("inspect", "-f", "{{.State.Status}}", vm.name)


def _counts(vm: VM) -> dict[str, int]:
    counts = {}
    for name in (*INNER, "vm"):
        with contextlib.suppress(OSError, ValueError):
            counts[name] = int((vm.shared / name).read_text())
    return counts


def _counting(vm: VM, names: tuple[str, ...], timeout: float = 60) -> None:
    """Wait until every named counter goes up."""
    first = _counts(vm)

    def up() -> bool:
        now = _counts(vm)
        return all(now.get(n, 0) > first.get(n, 0) for n in names)

    wait_until(f"counters {', '.join(names)} of {vm.name} to go up", up, timeout, interval=0.2)


def _still(vm: VM, seconds: float = 3.0) -> None:
    before = _counts(vm)
    time.sleep(seconds)
    assert _counts(vm) == before, f"a process of the frozen VM kept counting: {before}"


def _boot(vm: VM) -> None:
    """Start the VM if it is not running; wait for its engine and every counter."""
    status = _status(vm)
    if status == "paused":
        chaos.thaw_instance(vm.name)
    elif status != "running":
        _docker("start", vm.name)
    _engine_up(vm.name)
    if not _docker("exec", vm.name, "pgrep", "-f", "count.sh /shared vm", check=False):
        _docker("exec", "-d", vm.name, "sh", "/shared/count.sh", "/shared", "vm")
    vm.inner_ids |= set(_docker("exec", vm.name, "docker", "ps", "-q", "--no-trunc").split())
    _counting(vm, (*INNER, "vm"))


def _vm_processes(vm: VM) -> dict[int, chaos.Proc]:
    pid = int(_docker("inspect", "-f", "{{.State.Pid}}", vm.name))
    table = chaos.process_table()
    return {p: table[p] for p in chaos.vm_pids(table, pid)}


def _alive(procs: dict[int, chaos.Proc]) -> list[str]:
    return [f"{p.pid} ({p.comm})" for p in procs.values() if chaos._alive(p.pid, p.start)]


def _state(pid: int) -> str:
    try:
        return chaos.parse_stat(Path(f"/proc/{pid}/stat").read_text())[1]
    except OSError:
        return "gone"


def _inner_cgroup_dirs(vm: VM) -> list[Path]:
    return [Path(f"/sys/fs/cgroup/freezer/docker/{i}") for i in sorted(vm.inner_ids)]


@pytest.fixture(scope="module")
def vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VM]:
    if os.geteuid() != 0 or shutil.which("docker") is None:
        pytest.skip("needs root and Docker")
    client = docker.from_env()
    for image in (IMAGE, INNER_IMAGE):
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            pytest.fail(f"image {image} is missing: build it with `make images`")
    name = f"nmpifrz-{uuid.uuid4().hex[:8]}"
    shared = tmp_path_factory.mktemp("nmpifrz")
    (shared / "count.sh").write_text(COUNT_SH)
    the_vm = VM(name, shared)
    try:
        # As the lab hypervisor runs an instance (docker_vm.DockerHypervisor.create), with no
        # network (none is needed) and the shared folder.
        the_vm.id = client.containers.run(
            IMAGE,
            detach=True,
            name=name,
            hostname=name,
            labels={
                chaos.LAB_LABEL: "1",
                chaos.REGION_LABEL: "nmpifrz",
                chaos.NAME_LABEL: name,
                chaos.UUID_LABEL: f"{name}-uuid",
            },
            cap_add=list(docker_vm.CAP_ADD),
            cap_drop=list(docker_vm.CAP_DROP),
            security_opt=list(docker_vm.SECURITY_OPT),
            tmpfs=dict(docker_vm.TMPFS),
            volumes=[docker_vm.CGROUP_BIND, f"{shared}:/shared"],
            device_cgroup_rules=list(docker_vm.DEVICE_CGROUP_RULES),
            tty=True,
            environment={"SYSTEMD_COLORS": "0"},
            network_mode="none",
        ).id
        _engine_up(name)
        saved = subprocess.run(
            ["docker", "save", INNER_IMAGE], capture_output=True, check=True, timeout=120
        ).stdout
        _docker("exec", "-i", name, "docker", "load", stdin=saved)
        for inner in INNER:
            _docker(
                "exec", name, "docker", "run", "-d", "--name", inner, "--restart", "always",
                "-v", "/shared:/data", INNER_IMAGE, "sh", "/data/count.sh", "/data", inner,
            )  # fmt: skip
        _boot(the_vm)
        yield the_vm
    finally:
        # Never leave anything frozen: a frozen cgroup's processes cannot even be killed.
        with contextlib.suppress(Exception):
            chaos.thaw_instance(name)
        for folder in _inner_cgroup_dirs(the_vm):
            with contextlib.suppress(OSError):
                (folder / "freezer.state").write_text("THAWED")
        _docker("rm", "-f", "-v", name, check=False)
        # A killed VM's engine could not remove its containers' cgroups (empty by now).
        for inner_id in the_vm.inner_ids:
            for top in Path("/sys/fs/cgroup").glob(f"*/docker/{inner_id}"):
                for folder in sorted(top.glob("**/"), key=lambda p: len(p.parts), reverse=True):
                    with contextlib.suppress(OSError):
                        folder.rmdir()
        if the_vm.id:
            (chaos.STATE_DIR / f"{the_vm.id}.json").unlink(missing_ok=True)
        for what, seconds in the_vm.timings.items():
            print(f"\n{what}: " + ", ".join(f"{s * 1000:.0f} ms" for s in seconds))


def test_docker_pause_alone_leaves_the_inner_containers_running(vm: VM) -> None:
    """The bug freeze_instance fixes: the inner containers' cgroups are the VM's siblings."""
    _boot(vm)
    for folder in _inner_cgroup_dirs(vm):
        assert folder.is_dir()
        assert folder.parent == Path(f"/sys/fs/cgroup/freezer/docker/{vm.id}").parent
    _docker("pause", vm.name)
    try:
        _counting(vm, INNER, timeout=5)
    finally:
        _docker("unpause", vm.name)


def test_freeze_stops_every_process_and_thaw_resumes_them(vm: VM) -> None:
    _boot(vm)
    started = time.monotonic()
    chaos.freeze_instance(vm.name)
    vm.timed("freeze", time.monotonic() - started)
    try:
        assert _status(vm) == "paused", "Docker (and so Nova) must see the VM paused"
        recorded = sorted(d for _, d in chaos.frozen_record(vm.id))
        assert recorded == _inner_cgroup_dirs(vm)
        procs = _vm_processes(vm)
        assert {p.cgroup.path for p in procs.values() if p.cgroup} >= {
            f"/docker/{i}" for i in vm.inner_ids
        }
        for folder in [*recorded, Path(f"/sys/fs/cgroup/freezer/docker/{vm.id}")]:
            assert (folder / "freezer.state").read_text().strip() == "FROZEN", folder
        # A frozen task sleeps in the freezer (state D), a zombie stays one.
        states = {p.pid: _state(p.pid) for p in procs.values()}
        assert set(states.values()) <= {"D", "Z"}, f"VM processes not frozen: {states}"
        _still(vm)
        chaos.freeze_instance(vm.name)  # twice is harmless
        assert chaos.frozen_record(vm.id) == [(1, d) for d in recorded]
    finally:
        # Thawed from another process, as `nmpi-devstack thaw` would (the record tells it).
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-c", "import sys; from nmpi_devstack import chaos; "
             "chaos.thaw_instance(sys.argv[1])", vm.name],
            check=True, timeout=60, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        vm.timed("thaw (a new python process)", time.monotonic() - started)
    assert _status(vm) == "running"
    assert chaos.frozen_record(vm.id) == []
    _counting(vm, (*INNER, "vm"), timeout=10)
    chaos.thaw_instance(vm.name)  # twice is harmless


def test_freeze_and_thaw_in_process_times(vm: VM) -> None:
    _boot(vm)
    for _ in range(3):
        started = time.monotonic()
        chaos.freeze_instance(vm.name)
        vm.timed("freeze", time.monotonic() - started)
        before = _counts(vm)
        time.sleep(0.5)
        assert _counts(vm) == before
        started = time.monotonic()
        chaos.thaw_instance(vm.name)
        vm.timed("thaw", time.monotonic() - started)
        _counting(vm, (*INNER, "vm"), timeout=10)


def test_docker_kill_alone_kills_the_inner_containers_processes(vm: VM) -> None:
    """The kernel kills a PID namespace's processes when its init dies: nested ones too."""
    _boot(vm)
    procs = _vm_processes(vm)
    inner_cgroups = {f"/docker/{i}" for i in vm.inner_ids}
    inner = [p for p in procs.values() if p.cgroup and p.cgroup.path in inner_cgroups]
    assert len([p for p in inner if p.comm == "sh"]) == len(INNER), inner
    _docker("kill", vm.name)
    wait_until("the VM to exit", lambda: _status(vm) == "exited", 30, interval=0.2)
    assert _alive(procs) == []
    _still(vm, 1.0)


def test_kill_of_a_frozen_vm_leaves_no_process_and_it_boots_again(vm: VM) -> None:
    _boot(vm)
    chaos.freeze_instance(vm.name)
    procs = _vm_processes(vm)
    before = _counts(vm)
    started = time.monotonic()
    chaos.kill_instance(vm.name)
    vm.timed("kill of the frozen VM", time.monotonic() - started)
    assert _status(vm) == "exited"
    assert _alive(procs) == []
    assert chaos.frozen_record(vm.id) == []
    for folder in _inner_cgroup_dirs(vm):
        if folder.exists():
            assert (folder / "freezer.state").read_text().strip() == "THAWED"
    # Nothing ran after the freeze: SIGKILL reached every process before it was thawed.
    assert _counts(vm) == before
    with pytest.raises(chaos.ChaosError, match="not running"):
        chaos.freeze_instance(vm.name)
    chaos.kill_instance(vm.name)  # killing a dead VM is harmless
    # Booted again, the VM's engine restarts its containers, in the same cgroups: they count.
    _boot(vm)
