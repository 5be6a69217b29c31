"""Freezing a lab VM (nmpi_devstack.chaos): which processes belong to the VM, which freezer
cgroups freeze it, and the freezer's files.

No Docker, no real cgroups: process tables are written here, shaped like the lab host's (a VM
container whose inner Docker engine makes its containers' cgroups beside the VM's own, as
seen with `ps` and /proc/<pid>/cgroup on it), and the cgroup files are plain files in a
temporary folder. test_lab_freeze.py does the same on real VMs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from nmpi_devstack import chaos
from nmpi_devstack.chaos import Cgroup, ChaosError, Proc

VM = "/docker/3deac1119d04"
INNER = "/docker/f16a7b42a91b"

# /proc/<pid>/cgroup of a VM's init on the cgroup-v1 (hybrid) lab host.
HYBRID = f"""13:perf_event:/
10:net_cls,net_prio:/
9:name=systemd:{VM}/init.scope
8:pids:{VM}/init.scope
6:freezer:{VM}
4:memory:{VM}/init.scope
1:cpu:{VM}/init.scope
0::{VM}/init.scope
"""

# /proc/self/mountinfo of the lab host (cgroup v1 with the unified hierarchy beside).
MOUNTINFO = """22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""


def proc(pid: int, ppid: int, path: str | None, comm: str = "sh", version: int = 1) -> Proc:
    return Proc(pid, ppid, 1000 + pid, comm, None if path is None else Cgroup(version, path))


def table(*procs: Proc) -> dict[int, Proc]:
    return {p.pid: p for p in procs}


def host_with_vm(*extra: Proc) -> dict[int, Proc]:
    """The host's processes and a VM (init 100) running one inner container (107, 108)."""
    return table(
        proc(1, 0, "/", "init"),
        proc(3, 1, "/", "containerd-shim"),  # the host's shim of the VM container
        proc(4, 1, "/", "dockerd"),
        proc(100, 3, VM, "systemd"),
        proc(101, 100, VM, "systemd-journal"),
        proc(102, 100, VM, "dockerd"),
        proc(103, 100, VM, "containerd"),
        proc(106, 100, VM, "containerd-shim"),  # the inner engine's shim
        proc(107, 106, INNER, "postgres"),
        proc(108, 107, INNER, "postgres"),
        proc(120, 3, VM, "bash"),  # docker exec: its parent is the host's shim
        proc(121, 120, VM, "sleep"),
        proc(200, 1, "/docker/other", "nginx"),  # another container on the host
        *extra,
    )


# --- /proc parsing -----------------------------------------------------------------------------


def test_freezer_cgroup_v1_line_wins_on_a_hybrid_host() -> None:
    assert chaos.freezer_cgroup(HYBRID) == Cgroup(1, VM)


def test_freezer_cgroup_v1_freezer_mounted_with_other_controllers() -> None:
    assert chaos.freezer_cgroup("5:cpu,freezer:/a/b\n0::/x\n") == Cgroup(1, "/a/b")


def test_freezer_cgroup_v2_only_host() -> None:
    assert chaos.freezer_cgroup("0::/system.slice/docker-abc.scope\n") == Cgroup(
        2, "/system.slice/docker-abc.scope"
    )


def test_freezer_cgroup_none_without_freezer_or_unified() -> None:
    assert chaos.freezer_cgroup("1:cpu:/\n9:name=systemd:/\n") is None
    assert chaos.freezer_cgroup("") is None


def test_parse_stat_with_a_comm_holding_spaces_and_parentheses() -> None:
    fields = " ".join(str(n) for n in range(5, 53))  # fields 5..52 of /proc/<pid>/stat
    text = f"4242 (we (ird) name) S 17 {fields}\n"
    assert chaos.parse_stat(text) == ("we (ird) name", "S", 17, 22)


def test_cgroup_within() -> None:
    assert chaos.cgroup_within(f"{INNER}/sub", INNER)
    assert chaos.cgroup_within(INNER, INNER + "/")
    assert not chaos.cgroup_within("/docker/f16a7b42a91b0", INNER)  # a name prefix only
    assert chaos.cgroup_within("/anything", "/")


def test_process_table_reads_proc(tmp_path: Path) -> None:
    fields = " ".join(["0"] * 48)
    for pid, ppid, cgroup in ((1, 0, "6:freezer:/\n"), (57, 1, HYBRID)):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(f"{pid} (x) S {ppid} {fields}\n")
        (tmp_path / str(pid) / "cgroup").write_text(cgroup)
    (tmp_path / "58").mkdir()  # exited meanwhile: no files any more
    (tmp_path / "self").mkdir()
    found = chaos.process_table(tmp_path)
    assert sorted(found) == [1, 57]
    assert found[57] == Proc(57, 1, 0, "x", Cgroup(1, VM))


# --- which processes, which cgroups --------------------------------------------------------


def test_vm_pids_are_the_init_its_cgroup_and_their_descendants() -> None:
    assert chaos.vm_pids(host_with_vm(), 100) == {100, 101, 102, 103, 106, 107, 108, 120, 121}


def test_vm_pids_init_gone() -> None:
    with pytest.raises(ChaosError, match=r"init \(pid 99\) is gone"):
        chaos.vm_pids(host_with_vm(), 99)


def test_freeze_plan_inner_containers_beside_the_vm() -> None:
    second = (proc(130, 106, "/docker/second"), proc(131, 130, "/docker/second/sub"))
    plan = chaos.freeze_plan(host_with_vm(*second), 100)
    assert plan.own == Cgroup(1, VM)
    # /docker/second/sub freezes with /docker/second; the VM's own cgroup is docker pause's.
    assert plan.inner == (Cgroup(1, INNER), Cgroup(1, "/docker/second"))
    assert 131 in plan.pids


def test_freeze_plan_inner_cgroups_inside_the_vm_are_left_to_docker_pause() -> None:
    nested = proc(140, 106, f"{VM}/docker/nested")
    assert chaos.freeze_plan(host_with_vm(nested), 100).inner == (Cgroup(1, INNER),)


def test_freeze_plan_vm_without_inner_containers() -> None:
    vm = table(proc(1, 0, "/"), proc(100, 1, VM), proc(101, 100, VM))
    plan = chaos.freeze_plan(vm, 100)
    assert plan.inner == ()
    assert plan.pids == {100, 101}


def test_freeze_plan_refuses_a_cgroup_shared_with_the_host() -> None:
    intruder = proc(300, 1, INNER, "intruder")
    with pytest.raises(ChaosError, match=r"f16a7b42a91b holds .* outside it \(300 \(intruder\)\)"):
        chaos.freeze_plan(host_with_vm(intruder), 100)


def test_freeze_plan_refuses_a_cgroup_whose_subtree_holds_outsiders() -> None:
    intruder = proc(300, 1, f"{INNER}/deeper", "intruder")
    with pytest.raises(ChaosError, match="not freezing it"):
        chaos.freeze_plan(host_with_vm(intruder), 100)


def test_freeze_plan_refuses_the_root_cgroup() -> None:
    escaped = proc(150, 106, "/", "escaped")
    with pytest.raises(
        ChaosError, match=r"root cgroup \(150 \(escaped\)\): freezing it would freeze the host"
    ):
        chaos.freeze_plan(host_with_vm(escaped), 100)


def test_freeze_plan_refuses_a_vm_in_the_root_cgroup() -> None:
    vm = table(proc(1, 0, "/"), proc(100, 1, "/"))
    with pytest.raises(ChaosError, match="is in the root cgroup"):
        chaos.freeze_plan(vm, 100)


def test_freeze_plan_refuses_a_vm_process_without_freezer() -> None:
    with pytest.raises(ChaosError, match=r"process 150 \(odd\) of the VM has no freezer"):
        chaos.freeze_plan(host_with_vm(proc(150, 106, None, "odd")), 100)


def test_freeze_plan_cgroup_v2() -> None:
    vm = table(
        proc(1, 0, "/init.scope", version=2),
        proc(100, 1, "/system.slice/docker-vm.scope", version=2),
        proc(107, 100, "/system.slice/docker-inner.scope", version=2),
    )
    plan = chaos.freeze_plan(vm, 100)
    assert plan.inner == (Cgroup(2, "/system.slice/docker-inner.scope"),)


# --- mounts and directories ------------------------------------------------------------------


def test_cgroup_mounts_of_a_hybrid_host() -> None:
    assert chaos.cgroup_mounts(MOUNTINFO) == {
        1: ("/", "/sys/fs/cgroup/freezer"),
        2: ("/", "/sys/fs/cgroup/unified"),
    }


def test_cgroup_mounts_v2_only_with_a_namespaced_root_and_escapes() -> None:
    text = "30 22 0:26 /lab /sys/fs/my\\040cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n"
    assert chaos.cgroup_mounts(text) == {2: ("/lab", "/sys/fs/my cgroup")}


def test_cgroup_dir() -> None:
    mounts = chaos.cgroup_mounts(MOUNTINFO)
    assert chaos.cgroup_dir(Cgroup(1, INNER), mounts) == Path(f"/sys/fs/cgroup/freezer{INNER}")
    assert chaos.cgroup_dir(Cgroup(1, "/"), mounts) == Path("/sys/fs/cgroup/freezer")
    inside = {2: ("/lab", "/sys/fs/cgroup")}
    assert chaos.cgroup_dir(Cgroup(2, "/lab/vm"), inside) == Path("/sys/fs/cgroup/vm")
    with pytest.raises(ChaosError, match="outside the mounted /lab"):
        chaos.cgroup_dir(Cgroup(2, "/other"), inside)
    with pytest.raises(ChaosError, match="v1 freezer hierarchy is not mounted"):
        chaos.cgroup_dir(Cgroup(1, INNER), inside)


# --- the freezer's files ---------------------------------------------------------------------


def v1_cgroup(folder: Path, state: str = "THAWED", self_freezing: str = "0") -> Path:
    folder.mkdir(parents=True)
    (folder / "freezer.state").write_text(state + "\n")
    (folder / "freezer.self_freezing").write_text(self_freezing + "\n")
    return folder


def test_set_frozen_v1(tmp_path: Path) -> None:
    cg = v1_cgroup(tmp_path / "cg")
    assert not chaos.is_frozen(cg, 1)
    chaos.set_frozen(cg, 1, True)
    assert (cg / "freezer.state").read_text() == "FROZEN"
    assert chaos.is_frozen(cg, 1)
    chaos.set_frozen(cg, 1, False)
    assert (cg / "freezer.state").read_text() == "THAWED"


def test_self_frozen_v1_tells_a_frozen_parent_apart(tmp_path: Path) -> None:
    assert not chaos.self_frozen(v1_cgroup(tmp_path / "a", "FROZEN", "0"), 1)
    assert chaos.is_frozen(tmp_path / "a", 1)
    assert chaos.self_frozen(v1_cgroup(tmp_path / "b", "FROZEN", "1"), 1)
    assert chaos.is_frozen(v1_cgroup(tmp_path / "c", "FREEZING", "1"), 1)


def test_set_frozen_v2(tmp_path: Path) -> None:
    (tmp_path / "cgroup.freeze").write_text("0\n")
    (tmp_path / "cgroup.events").write_text("populated 1\nfrozen 1\n")  # the kernel's answer
    chaos.set_frozen(tmp_path, 2, True)
    assert (tmp_path / "cgroup.freeze").read_text() == "1"
    assert chaos.self_frozen(tmp_path, 2)
    assert chaos.is_frozen(tmp_path, 2)


def test_set_frozen_v2_times_out_clearly(tmp_path: Path) -> None:
    (tmp_path / "cgroup.freeze").write_text("0\n")
    (tmp_path / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    with pytest.raises(ChaosError, match="did not become 'frozen 1'"):
        chaos.set_frozen(tmp_path, 2, True, timeout=0.05)


def test_set_frozen_missing_cgroup_is_a_chaos_error(tmp_path: Path) -> None:
    with pytest.raises(ChaosError, match="cannot write FROZEN"):
        chaos.set_frozen(tmp_path / "gone", 1, True)


# --- freeze and thaw of the inner cgroups, with a recorded state -----------------------------


def test_freeze_inner_records_and_thaw_undoes_exactly_that(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "freezer"
    v1_cgroup(root / VM.strip("/"), "FROZEN", "1")  # docker pause froze it
    inner = v1_cgroup(root / INNER.strip("/"))
    paused = v1_cgroup(root / "docker/paused", "FROZEN", "1")  # paused by the VM's engine
    procs = host_with_vm(proc(130, 106, "/docker/paused"))
    monkeypatch.setattr(chaos, "process_table", lambda: procs)
    monkeypatch.setattr(chaos, "STATE_DIR", tmp_path / "state")
    mounts = {1: ("/", str(root))}

    chaos._freeze_inner("vm-id", 100, mounts)
    assert (inner / "freezer.state").read_text() == "FROZEN"
    assert chaos.frozen_record("vm-id") == [(1, inner)]
    chaos._freeze_inner("vm-id", 100, mounts)  # twice is harmless
    assert chaos.frozen_record("vm-id") == [(1, inner)]

    chaos._thaw_recorded("vm-id")  # as a new process would: from the record
    assert (inner / "freezer.state").read_text() == "THAWED"
    assert (paused / "freezer.state").read_text().strip() == "FROZEN"  # not ours: stays
    assert chaos.frozen_record("vm-id") == []
    assert not (tmp_path / "state" / "vm-id.json").exists()


def test_freeze_inner_needs_the_vm_itself_frozen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "freezer"
    v1_cgroup(root / VM.strip("/"))  # docker pause did not happen
    v1_cgroup(root / INNER.strip("/"))
    monkeypatch.setattr(chaos, "process_table", host_with_vm)
    monkeypatch.setattr(chaos, "STATE_DIR", tmp_path / "state")
    with pytest.raises(ChaosError, match="not frozen after docker pause"):
        chaos._freeze_inner("vm-id", 100, {1: ("/", str(root))})
