"""An inventory with a missing or wrong variable stops site.yml before any cloud is touched.

The checks run on the controller only (roles/site_inventory): no host, no cloud is contacted,
so these run without the lab; clouds.yaml points nowhere to prove it.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import REPO, tool_env


def provision_precheck(
    inventory: Path, tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    empty_clouds = tmp_path / "clouds.yaml"
    empty_clouds.write_text("clouds: {}\n")
    return subprocess.run(
        ["ansible-playbook", "playbooks/provision.yml", "-i", str(inventory), "--check", *args],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        env=tool_env(OS_CLIENT_CONFIG_FILE=str(empty_clouds)),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def lab_copy(tmp_path: Path, edit: Callable[[Path], None]) -> Path:
    inventory = tmp_path / "lab"
    shutil.copytree(
        REPO / "inventories" / "lab", inventory, ignore=shutil.ignore_patterns("generated")
    )
    edit(inventory)
    return inventory


def edit_yaml(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))


def test_lab_inventory_meets_the_contract(tmp_path: Path) -> None:
    result = provision_precheck(lab_copy(tmp_path, lambda _: None), tmp_path, "--tags", "precheck")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Inventory | Three etcd members" in result.stdout


BROKEN = {
    "missing site_cloud": (
        "group_vars/castor/main.yml",
        lambda d: d.pop("site_cloud"),
        "site_cloud",
    ),
    "site_network_cidr not a CIDR": (
        "group_vars/jusuf/main.yml",
        lambda d: d.update(site_network_cidr="10.82.10.0"),
        "site_network_cidr",
    ),
    "nmpi_site not a location": (
        "group_vars/witness/main.yml",
        lambda d: d.update(nmpi_site="elsewhere"),
        "nmpi_site",
    ),
    "volume size not a number": (
        "group_vars/db/main.yml",
        lambda d: d.update(site_server_volume_size="ten"),
        "site_server_volume_size",
    ),
    "public name outside the zone": (
        "group_vars/all/main.yml",
        lambda d: d.update(nmpi_public_name="api.example.org."),
        "nmpi_public_name",
    ),
    "two etcd members": (
        "hosts.yml",
        lambda d: d["all"]["children"]["etcd"]["hosts"].pop("witness-1"),
        "etcd group must hold three hosts",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_inventory_fails_before_any_cloud_call(case: str, tmp_path: Path) -> None:
    file, change, named = BROKEN[case]
    inventory = lab_copy(tmp_path, lambda inv: edit_yaml(inv / file, change))
    result = provision_precheck(inventory, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert named in output, output[-3000:]
    # Nothing got as far as a cloud: no task of the cloud roles ran.
    assert "cloud_network :" not in output
    assert "openssh_keypair" not in output
    assert "SSH key pair on the controller" not in output
