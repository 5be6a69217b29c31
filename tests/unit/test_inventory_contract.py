"""An inventory with a missing or wrong variable stops site.yml before any cloud is touched.

The checks run on the controller only (roles/location_contract): no host, no cloud is contacted,
so these run without the lab; clouds.yaml points nowhere to prove it. The inventories are
copied first: the lab copy generates its secrets inside the copy, and the production copy gets
a vault made by scripts/new-vault-secrets with a throwaway password.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.new_vault_secrets import SECRETS
from tests.support import REPO, tool_env

LOCATIONS = ("castor", "jusuf", "witness")


def provision_precheck(
    inventory: Path, tmp_path: Path, *args: str, playbook: str = "playbooks/provision.yml"
) -> subprocess.CompletedProcess[str]:
    """`playbook` in check mode, with a clouds.yaml that names no cloud at all."""
    empty_clouds = tmp_path / "clouds.yaml"
    empty_clouds.write_text("clouds: {}\n")
    return subprocess.run(
        ["ansible-playbook", playbook, "-i", str(inventory), "--check", *args],
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
    # The lab generates its secrets on first use: into the copy, never into the lab's own folder.
    edit_yaml(
        inventory / "group_vars" / "all" / "main.yml",
        lambda d: d.update(nmpi_generated_dir=str(inventory / "generated")),
    )
    edit(inventory)
    return inventory


def edit_yaml(path: Path, change: Callable[[dict[str, Any]], object]) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))


def test_lab_inventory_meets_the_contract(tmp_path: Path) -> None:
    result = provision_precheck(lab_copy(tmp_path, lambda _: None), tmp_path, "--tags", "precheck")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Inventory | Three etcd members" in result.stdout


BROKEN = {
    "missing location_cloud": (
        "group_vars/castor/main.yml",
        lambda d: d.pop("location_cloud"),
        "location_cloud",
    ),
    "location_network_cidr not a CIDR": (
        "group_vars/jusuf/main.yml",
        lambda d: d.update(location_network_cidr="10.82.10.0"),
        "location_network_cidr",
    ),
    "nmpi_location not a location": (
        "group_vars/witness/main.yml",
        lambda d: d.update(nmpi_location="elsewhere"),
        "nmpi_location",
    ),
    "volume size not a number": (
        "group_vars/db/main.yml",
        lambda d: d.update(location_server_volume_size="ten"),
        "location_server_volume_size",
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


# Secrets: the failure names the variable (and the host), never the value. -vvv shows results in
# full, so nothing can hide in a detail a normal run leaves out.
SHORT_PASSWORD = secrets.token_hex(6)[:11]  # 11 characters, made per run
NOT_BASE64 = "Not*Base64*But*Long*Enough*For*Any*Length*Check"
SHORT_TSIG = base64.b64encode(secrets.token_bytes(16)).decode()  # valid base64 of 16 bytes

SECRET_CASES: dict[str, tuple[Callable[[dict[str, Any]], object], str, str | None]] = {
    "missing nmpi_db_app_password": (
        lambda d: d.pop("nmpi_db_app_password"),
        "nmpi_db_app_password on castor-web-1 is not set",
        None,
    ),
    "short nmpi_db_rewind_password": (
        lambda d: d.update(nmpi_db_rewind_password=SHORT_PASSWORD),
        "nmpi_db_rewind_password on castor-web-1 is shorter than 12 characters",
        SHORT_PASSWORD,
    ),
    "nmpi_tsig_failover_secret not base64": (
        lambda d: d.update(nmpi_tsig_failover_secret=NOT_BASE64),
        "nmpi_tsig_failover_secret on castor-web-1 is not a TSIG secret",
        NOT_BASE64,
    ),
    "nmpi_tsig_deploy_secret too short": (
        lambda d: d.update(nmpi_tsig_deploy_secret=SHORT_TSIG),
        "nmpi_tsig_deploy_secret on castor-web-1 is not a TSIG secret",
        SHORT_TSIG,
    ),
}


@pytest.mark.parametrize("case", sorted(SECRET_CASES))
def test_bad_secret_fails_naming_it_and_never_shows_a_value(case: str, tmp_path: Path) -> None:
    change, message, value = SECRET_CASES[case]
    inventory = lab_copy(
        tmp_path, lambda inv: edit_yaml(inv / "group_vars" / "all" / "secrets.yml", change)
    )
    result = provision_precheck(inventory, tmp_path, "-vvv")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert message in output, output[-3000:]
    assert "SSH key pair on the controller" not in output
    # Neither the bad value nor any secret the lab copy generated appears anywhere.
    shown = [value] if value else []
    shown += [f.read_text().split()[0] for f in (inventory / "generated" / "secrets").iterdir()]
    assert shown, "the lab copy generated no secrets: the check proves nothing"
    for secret in shown:
        assert secret not in output


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A copy of the production inventories with a vault made by scripts/new-vault-secrets.

    Returns the copy of inventories/ and the throwaway vault password file. The operators'
    vault, if the repository has one, is left out: its password is not here.
    """
    root = tmp_path_factory.mktemp("production")
    inventories = root / "inventories"
    shutil.copytree(
        REPO / "inventories",
        inventories,
        symlinks=True,
        ignore=shutil.ignore_patterns("lab", "vault.yml"),
    )
    password = root / "test.vault-pass"
    password.write_text("a throwaway vault password for the tests\n")
    made = subprocess.run(
        [
            str(REPO / "scripts" / "new-vault-secrets"),
            "--inventory",
            str(inventories / "production"),
            "--vault-password-file",
            str(password),
        ],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    return inventories, password


@pytest.mark.parametrize("name", ["production", *LOCATIONS])
def test_production_inventories_meet_the_contract(
    name: str, production: tuple[Path, Path], tmp_path: Path
) -> None:
    inventories, password = production
    result = provision_precheck(
        inventories / name, tmp_path, "--tags", "precheck", "--vault-password-file", str(password)
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "Inventory | TSIG secrets are base64" in result.stdout
    assert "Inventory | Three etcd members" in result.stdout
    partial = f"This inventory holds {name} only"
    assert (partial in result.stdout) == (name != "production"), result.stdout[-3000:]


def inventory_list(inventory: Path, tmp_path: Path, *args: str) -> dict[str, Any]:
    listed = subprocess.run(
        ["ansible-inventory", "-i", str(inventory), "--list", *args],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    data: dict[str, Any] = json.loads(listed.stdout)
    return data


def groups_of(listing: dict[str, Any]) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    return {
        name: (frozenset(group.get("hosts", [])), frozenset(group.get("children", [])))
        for name, group in listing.items()
        if name not in ("_meta", "ungrouped")
    }


def test_production_has_the_labs_hosts_and_groups(
    production: tuple[Path, Path], tmp_path: Path
) -> None:
    inventories, password = production
    combined = inventory_list(
        inventories / "production", tmp_path, "--vault-password-file", str(password)
    )
    lab = inventory_list(lab_copy(tmp_path, lambda _: None), tmp_path)
    # The lab's emulated hardware sites are its own (the real sites run theirs): the rest alike.
    hardware = {"hardware", "hardware_sites"}
    assert hardware <= set(groups_of(lab))
    platform = {
        name: (hosts - {"hardware-1"}, children - hardware)
        for name, (hosts, children) in groups_of(lab).items()
        if name not in hardware
    }
    assert groups_of(combined) == platform


def test_a_locations_variables_live_once(production: tuple[Path, Path], tmp_path: Path) -> None:
    # In the repository: the combined inventory links to each location's files, and each
    # location links to the shared group_vars/all.
    here = REPO / "inventories"
    for site in LOCATIONS:
        assert (here / "production" / f"{site}.yml").is_symlink()
        assert (here / "production" / f"{site}.yml").resolve() == here / site / "hosts.yml"
        assert (here / "production" / "group_vars" / site).is_symlink()
        assert (
            here / "production" / "group_vars" / site
        ).resolve() == here / site / "group_vars" / site
        assert (here / site / "group_vars" / "all").is_symlink()
        assert (
            here / site / "group_vars" / "all"
        ).resolve() == here / "production" / "group_vars" / "all"
    # Through Ansible: every host has the same variables in its location's inventory and in
    # the combined one, secrets from the one vault included.
    inventories, password = production
    vault = ("--vault-password-file", str(password))
    combined = inventory_list(inventories / "production", tmp_path, *vault)["_meta"]["hostvars"]
    seen = set()
    for site in LOCATIONS:
        alone = inventory_list(inventories / site, tmp_path, *vault)["_meta"]["hostvars"]
        assert alone, site
        for host, variables in alone.items():
            assert variables["nmpi_location"] == site
            assert variables == combined[host], host
            assert set(SECRETS) <= set(variables)
            seen.add(host)
    assert seen == set(combined)


def test_site_yml_refuses_an_inventory_of_one_location(tmp_path: Path) -> None:
    result = provision_precheck(REPO / "inventories" / "castor", tmp_path, playbook="site.yml")
    assert result.returncode != 0
    output = " ".join(result.stdout.split())
    assert "needs castor, jusuf and the witness" in output, output[-3000:]
    assert "this inventory holds castor." in output
    assert "PLAY [Check the inventory before touching any cloud]" not in output  # stopped first
