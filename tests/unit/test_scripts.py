"""The entry points in scripts/ and images/: Docker bring-up, the image catalogue, the vault."""

from __future__ import annotations

import base64
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from scripts.new_vault_secrets import SECRETS, TSIG_KEY
from tests.support import REPO, read_images_env, tool_env


def run(cmd: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        env=tool_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_docker_up_explains_what_to_install_on_other_systems(tmp_path: Path) -> None:
    os_release = tmp_path / "os-release"
    os_release.write_text('ID=fedora\nID_LIKE="rhel centos"\n')
    result = run(
        ["scripts/docker-up.sh"],
        NMPI_OS_RELEASE=str(os_release),
        DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock",  # no engine answers here
    )
    assert result.returncode == 1
    assert "not Debian/Ubuntu (ID=fedora)" in result.stderr
    assert "install Docker Engine" in result.stderr


def test_image_list_comes_from_images_env() -> None:
    env = read_images_env()
    result = run(["images/build.sh", "--list"])
    assert result.returncode == 0, result.stderr
    listed = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert list(listed) == env["NMPI_IMAGES"].split()
    assert listed["vm"] == f"{env['NMPI_IMAGE_VM']}:{env['NMPI_IMAGE_TAG']}"
    dockerfiles = {p.parent.name for p in (REPO / "images").glob("*/Dockerfile")}
    assert dockerfiles == set(listed)


def test_unlisted_dockerfile_is_refused(tmp_path: Path) -> None:
    images = tmp_path / "images"
    shutil.copytree(REPO / "images", images)
    (images / "extra").mkdir()
    (images / "extra" / "Dockerfile").write_text("FROM debian:bookworm-slim\n")
    result = run([str(images / "build.sh"), "--list"])
    assert result.returncode == 1
    assert "images/extra/Dockerfile is not listed in NMPI_IMAGES" in result.stderr


def test_unknown_image_name_is_refused() -> None:
    result = run(["images/build.sh", "no-such-image"])
    assert result.returncode == 1
    assert "unknown image 'no-such-image'" in result.stderr


# scripts/new-vault-secrets, on a copy of the production inventories with a throwaway password.
NEW_VAULT_SECRETS = str(REPO / "scripts" / "new-vault-secrets")


@pytest.fixture
def vault_inventory(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of inventories/ without a vault, and a vault password file: (production, pw)."""
    inventories = tmp_path / "inventories"
    shutil.copytree(
        REPO / "inventories",
        inventories,
        symlinks=True,
        ignore=shutil.ignore_patterns("lab", "vault.yml"),
    )
    password = tmp_path / "test.vault-pass"
    password.write_text("a throwaway vault password for the tests\n")
    return inventories / "production", password


def new_vault_secrets(
    inventory: Path, password: Path | None, *args: str
) -> subprocess.CompletedProcess[str]:
    given = ["--vault-password-file", str(password)] if password else []
    return run(
        [NEW_VAULT_SECRETS, "--inventory", str(inventory), *given, *args],
        ANSIBLE_VAULT_PASSWORD_FILE="",
    )


def vault_of(inventory: Path) -> Path:
    return inventory / "group_vars" / "all" / "vault.yml"


def read_vault(inventory: Path, password: Path) -> dict[str, str]:
    shown = run(
        [
            "ansible-vault",
            "decrypt",
            "--vault-password-file",
            str(password),
            "--output",
            "-",
            str(vault_of(inventory)),
        ]
    )
    assert shown.returncode == 0, shown.stderr
    data: dict[str, str] = yaml.safe_load(shown.stdout)
    return data


def encrypt_vault(inventory: Path, password: Path, values: dict[str, str]) -> None:
    made = subprocess.run(
        [
            "ansible-vault",
            "encrypt",
            "--vault-password-file",
            str(password),
            "--output",
            str(vault_of(inventory)),
            "-",
        ],
        input=yaml.safe_dump(values),
        cwd=REPO,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert made.returncode == 0, made.stderr


def assert_strong(values: dict[str, str]) -> None:
    for name, kind in SECRETS.items():
        value = values[name]
        if kind == TSIG_KEY:
            assert len(base64.b64decode(value, validate=True)) == 32, name
        else:
            assert len(value) == 32, name
            assert value.isascii(), name
            assert value.isalnum(), name


def assert_never_shown(result: subprocess.CompletedProcess[str], values: dict[str, str]) -> None:
    for value in values.values():
        assert value not in result.stdout + result.stderr


def test_new_vault_secrets_makes_every_secret_encrypted(vault_inventory: tuple[Path, Path]) -> None:
    inventory, password = vault_inventory
    result = new_vault_secrets(inventory, password)
    assert result.returncode == 0, result.stderr
    assert vault_of(inventory).read_bytes().startswith(b"$ANSIBLE_VAULT;")
    assert vault_of(inventory).stat().st_mode & 0o077 == 0
    values = read_vault(inventory, password)
    assert set(values) == set(SECRETS)
    assert_strong(values)
    assert len(set(values.values())) == len(SECRETS)
    for name in SECRETS:
        assert f"added: {name}" in result.stdout
    assert_never_shown(result, values)


def test_new_vault_secrets_keeps_values_and_rotates_only_the_named_one(
    vault_inventory: tuple[Path, Path],
) -> None:
    inventory, password = vault_inventory
    assert new_vault_secrets(inventory, password).returncode == 0
    first = read_vault(inventory, password)
    encrypted = vault_of(inventory).read_bytes()

    again = new_vault_secrets(inventory, password)
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stdout
    assert vault_of(inventory).read_bytes() == encrypted  # not even re-encrypted
    # A location's inventory reaches the same vault through its link to group_vars/all.
    castor = new_vault_secrets(inventory.parent / "castor", password)
    assert castor.returncode == 0, castor.stderr
    assert vault_of(inventory).read_bytes() == encrypted

    rotated = new_vault_secrets(inventory, password, "--rotate", "vault_nmpi_db_app_password")
    assert rotated.returncode == 0, rotated.stderr
    assert "rotated: vault_nmpi_db_app_password" in rotated.stdout
    assert vault_of(inventory).read_bytes().startswith(b"$ANSIBLE_VAULT;")
    second = read_vault(inventory, password)
    assert second["vault_nmpi_db_app_password"] != first["vault_nmpi_db_app_password"]
    assert {k: v for k, v in second.items() if k != "vault_nmpi_db_app_password"} == {
        k: v for k, v in first.items() if k != "vault_nmpi_db_app_password"
    }
    assert_strong(second)
    assert_never_shown(rotated, first | second)

    # The backup repository's passphrase cannot be rotated: the old backups need the old one.
    cipher = new_vault_secrets(inventory, password, "--rotate", "vault_nmpi_pgbackrest_cipher_pass")
    assert cipher.returncode == 2
    assert "cannot be rotated" in cipher.stderr
    assert read_vault(inventory, password) == second


def test_new_vault_secrets_adds_only_the_missing_and_keeps_other_variables(
    vault_inventory: tuple[Path, Path],
) -> None:
    inventory, password = vault_inventory
    mine = {
        "vault_nmpi_db_superuser_password": "operator-chosen-" + secrets.token_hex(8),
        "vault_pki_note": "another variable, added with ansible-vault edit",
    }
    encrypt_vault(inventory, password, mine)
    checked = new_vault_secrets(inventory, password, "--check")
    assert checked.returncode == 1
    assert "missing: vault_nmpi_db_app_password" in checked.stdout
    assert "missing: vault_nmpi_db_superuser_password" not in checked.stdout

    result = new_vault_secrets(inventory, password)
    assert result.returncode == 0, result.stderr
    assert "kept: vault_nmpi_db_superuser_password" in result.stdout
    values = read_vault(inventory, password)
    assert values["vault_nmpi_db_superuser_password"] == mine["vault_nmpi_db_superuser_password"]
    assert values["vault_pki_note"] == mine["vault_pki_note"]
    assert set(values) == set(SECRETS) | set(mine)
    assert new_vault_secrets(inventory, password, "--check").returncode == 0
    assert_never_shown(result, values)


def test_new_vault_secrets_refuses_without_password_or_over_a_plaintext_vault(
    vault_inventory: tuple[Path, Path], tmp_path: Path
) -> None:
    inventory, password = vault_inventory
    no_password = new_vault_secrets(inventory, None)
    assert no_password.returncode == 2
    assert "no vault password" in no_password.stderr
    assert not vault_of(inventory).exists()

    vault_of(inventory).write_text("vault_nmpi_db_app_password: plaintext-on-disk\n")
    plaintext = new_vault_secrets(inventory, password)
    assert plaintext.returncode == 2
    assert "is not ansible-vault encrypted" in plaintext.stderr
    assert "plaintext-on-disk" not in plaintext.stdout + plaintext.stderr

    wrong = tmp_path / "wrong.vault-pass"
    wrong.write_text("not the password\n")
    vault_of(inventory).unlink()
    assert new_vault_secrets(inventory, password).returncode == 0
    refused = new_vault_secrets(inventory, wrong)
    assert refused.returncode == 2
    assert "cannot decrypt" in refused.stderr


def test_new_vault_secrets_refuses_the_lab_and_unknown_names(
    vault_inventory: tuple[Path, Path],
) -> None:
    inventory, password = vault_inventory
    lab = new_vault_secrets(REPO / "inventories" / "lab", password)
    assert lab.returncode == 2
    assert "not a production inventory" in lab.stderr
    assert not vault_of(REPO / "inventories" / "lab").exists()
    typo = new_vault_secrets(inventory, password, "--rotate", "nmpi_db_app_password")
    assert typo.returncode == 2
    assert "invalid choice" in typo.stderr
    assert not vault_of(inventory).exists()


def test_new_vault_secrets_help_teaches() -> None:
    result = run([NEW_VAULT_SECRETS, "--help"])
    assert result.returncode == 0
    for topic in (
        "ANSIBLE_VAULT_PASSWORD_FILE",
        "--rotate",
        "--check",
        "ansible-vault edit",
        "umask 077",
        *SECRETS,
    ):
        assert topic in result.stdout, topic
