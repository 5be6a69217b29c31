#!/usr/bin/env python3
"""Create or complete the ansible-vault file of a production inventory's secrets.

scripts/new-vault-secrets is this file (a link): run it by that name. See --help.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import shutil
import string
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_PYTHON = REPO / ".venv" / "bin" / "python"

try:
    # PyYAML comes with ansible (ansible-core depends on it): the repository's venv has both.
    import yaml
except ModuleNotFoundError:  # pragma: no cover - started with a Python outside the venv
    if VENV_PYTHON.exists() and Path(sys.executable) != VENV_PYTHON:
        os.execv(VENV_PYTHON, [str(VENV_PYTHON), str(Path(__file__).resolve()), *sys.argv[1:]])
    sys.exit("new-vault-secrets: needs the repository's venv with ansible: run `make setup` first")

PROG = "new-vault-secrets"
DEFAULT_INVENTORY = Path("inventories/production")
VAULT_FILE = Path("group_vars/all/vault.yml")
VAULT_HEADER = b"$ANSIBLE_VAULT;"

# Letters and digits only: the values reach PostgreSQL, Patroni's YAML and a `docker --env-file`
# verbatim, where no character needs quoting. 32 of them carry about 190 bits.
PASSWORD_ALPHABET = string.ascii_letters + string.digits
PASSWORD_LENGTH = 32
# hmac-sha256, the TSIG algorithm of the DNS roles: a key as long as the hash (RFC 8945).
TSIG_BYTES = 32

# The kinds of value: random letters and digits, or a TSIG key (base64 of random bytes).
RANDOM_TEXT = "random-text"
TSIG_KEY = "tsig-key"

# Every secret the playbooks consume (inventories/<inv>/group_vars/all/main.yml maps
# nmpi_x: "{{ vault_nmpi_x }}"), and what it is.
SECRETS: dict[str, str] = {
    "vault_nmpi_db_superuser_password": RANDOM_TEXT,
    "vault_nmpi_db_replication_password": RANDOM_TEXT,
    "vault_nmpi_db_rewind_password": RANDOM_TEXT,
    "vault_nmpi_db_app_password": RANDOM_TEXT,
    "vault_nmpi_db_monitor_password": RANDOM_TEXT,
    "vault_nmpi_tsig_deploy_secret": TSIG_KEY,
    "vault_nmpi_tsig_failover_secret": TSIG_KEY,
    "vault_nmpi_monitoring_web_password": RANDOM_TEXT,
    "vault_nmpi_pgbackrest_cipher_pass": RANDOM_TEXT,
}

# Secrets that --rotate refuses, and why: a new value would not re-key what the old one protects.
NOT_ROTATABLE: dict[str, str] = {
    "vault_nmpi_pgbackrest_cipher_pass": (
        "it encrypts the backup repository at the witness; a new value cannot read the existing "
        "backups and WAL (a new repository needs a new stanza and a new full backup: "
        "docs/backups.md)"
    ),
}

DESCRIPTION = f"""\
Create or complete the ansible-vault file of a production inventory's secrets,
<inventory>/{VAULT_FILE}, without ever printing a secret.

Every variable the inventory's group_vars/all/main.yml maps from the vault gets a strong
random value: the passwords and the backup repository's passphrase {PASSWORD_LENGTH} random
letters and digits, the TSIG secrets the base64 of {TSIG_BYTES} random bytes (hmac-sha256).
The file is encrypted with `ansible-vault encrypt` (the plaintext never touches the disk) and
written atomically.

Re-running is safe: values already in the vault are kept, only missing ones are added, and
a vault with nothing missing is left untouched (not even re-encrypted). Changing a secret is
explicit: --rotate NAME. Other variables in the vault (added with `ansible-vault edit`) are kept.
Only the variables' names are printed."""

EPILOG = f"""\
The vault password:
  It is the operators' to keep (a password manager, never git: *.vault-pass is git-ignored).
  Make one, outside the repository:
    mkdir -p ~/.nmpi && (umask 077 &&
      python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > ~/.nmpi/production.vault-pass)
  Give it with --vault-password-file FILE or the environment variable ANSIBLE_VAULT_PASSWORD_FILE,
  which ansible-playbook, ansible-inventory and ansible-vault read too.

Examples:
  # the first time: every secret, then commit the encrypted file
  export ANSIBLE_VAULT_PASSWORD_FILE=~/.nmpi/production.vault-pass
  scripts/{PROG}
  git add inventories/production/{VAULT_FILE}

  # after a new secret appeared in SECRETS: adds it, keeps the others
  scripts/{PROG}

  # is anything missing? (exit status 1 if so; writes nothing)
  scripts/{PROG} --check

  # change one secret on purpose (the next site.yml run applies it where the role supports it)
  scripts/{PROG} --rotate vault_nmpi_db_app_password

  # read or edit by hand
  ansible-vault view inventories/production/{VAULT_FILE}
  ansible-vault edit inventories/production/{VAULT_FILE}

The per-location inventories (inventories/castor, jusuf, witness) share production's
group_vars/all through a link: --inventory inventories/castor writes the same file.

Secrets made here: {", ".join(SECRETS)}."""


class RefusedError(Exception):
    """A reason to stop that the operator can act on (printed without a traceback)."""


def new_value(kind: str) -> str:
    if kind == TSIG_KEY:
        return base64.b64encode(secrets.token_bytes(TSIG_BYTES)).decode("ascii")
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))


def ansible_vault() -> str:
    """ansible-vault next to this interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "ansible-vault"
    if beside.exists():
        return str(beside)
    found = shutil.which("ansible-vault")
    if found is None:
        raise RefusedError(
            "ansible-vault not found: run `make setup`, then use the repository's .venv"
        )
    return found


def password_file(given: Path | None) -> Path:
    """The vault password file from --vault-password-file or ANSIBLE_VAULT_PASSWORD_FILE."""
    name = str(given) if given is not None else os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE", "")
    if not name:
        raise RefusedError(
            "no vault password: give --vault-password-file FILE or set ANSIBLE_VAULT_PASSWORD_FILE "
            f"(see `{PROG} --help` to make one)"
        )
    path = Path(name).expanduser()
    if not path.is_file():
        raise RefusedError(f"vault password file {path} does not exist (see `{PROG} --help`)")
    if inside_repository_and_tracked(path):
        raise RefusedError(
            f"vault password file {path} is inside the repository and not git-ignored: "
            "keep it outside (or name it *.vault-pass), the vault password must never be committed"
        )
    return path


def inside_repository_and_tracked(path: Path) -> bool:
    """True when path is in this repository's work tree and git would not ignore it."""
    try:
        path.resolve().relative_to(REPO)
    except ValueError:
        return False
    git = shutil.which("git")
    if git is None or not (REPO / ".git").exists():
        return False
    ignored = subprocess.run(
        [git, "-C", str(REPO), "check-ignore", "-q", str(path.resolve())],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    return ignored.returncode != 0


def read_vault(vault: Path, tool: str, pw_file: Path) -> dict[str, object]:
    """The decrypted mapping of an existing vault file; {} when there is none."""
    if not vault.exists():
        return {}
    if not vault.read_bytes().startswith(VAULT_HEADER):
        raise RefusedError(
            f"{vault} exists but is not ansible-vault encrypted: encrypt it "
            f"(ansible-vault encrypt {vault}) or move it away, then run {PROG} again"
        )
    result = subprocess.run(
        [tool, "decrypt", "--vault-password-file", str(pw_file), "--output", "-", str(vault)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        # ansible-vault's own message (wrong password, damaged file); never the plaintext.
        raise RefusedError(
            f"cannot decrypt {vault}: {result.stderr.decode(errors='replace').strip()}"
        )
    data = yaml.safe_load(result.stdout.decode())
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RefusedError(
            f"{vault} does not hold a mapping of variables: fix it with ansible-vault edit"
        )
    return {str(key): value for key, value in data.items()}


def render(values: dict[str, object]) -> str:
    body = yaml.safe_dump(values, default_flow_style=False, sort_keys=False, width=1000)
    return (
        "---\n"
        f"# Production secrets, encrypted with ansible-vault. Made by scripts/{PROG}, which keeps\n"
        "# existing values and adds missing ones; change one with --rotate NAME, or by hand with\n"
        "# ansible-vault edit. group_vars/all/main.yml maps nmpi_x to vault_nmpi_x.\n" + body
    )


def write_vault(vault: Path, plaintext: str, tool: str, pw_file: Path) -> None:
    """Encrypt plaintext from a pipe into a temporary file beside vault, then rename it."""
    fd, tmp_name = tempfile.mkstemp(prefix=".vault-", suffix=".yml", dir=vault.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        result = subprocess.run(
            [tool, "encrypt", "--vault-password-file", str(pw_file), "--output", str(tmp), "-"],
            input=plaintext.encode(),
            capture_output=True,
            check=False,
        )
        if result.returncode != 0 or not tmp.read_bytes().startswith(VAULT_HEADER):
            raise RefusedError(f"ansible-vault encrypt failed: {result.stderr.decode().strip()}")
        tmp.chmod(0o600)
        os.replace(tmp, vault)
    finally:
        tmp.unlink(missing_ok=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--inventory",
        "-i",
        type=Path,
        default=DEFAULT_INVENTORY,
        metavar="DIR",
        help=f"the inventory whose {VAULT_FILE} to write (default: {DEFAULT_INVENTORY}, "
        "relative to the repository)",
    )
    parser.add_argument(
        "--vault-password-file",
        type=Path,
        metavar="FILE",
        help="the vault password (default: $ANSIBLE_VAULT_PASSWORD_FILE)",
    )
    parser.add_argument(
        "--rotate",
        action="append",
        default=[],
        metavar="NAME",
        choices=sorted(SECRETS),
        help="give this secret a new value (repeatable); the others are kept",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="only say which secrets are missing (exit status 1 if any); write nothing",
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    inventory: Path = args.inventory
    if not inventory.is_absolute() and not inventory.exists():
        inventory = REPO / inventory
    group_all = inventory / VAULT_FILE.parent
    if not group_all.is_dir():
        raise RefusedError(
            f"{group_all} is not a folder: is {args.inventory} a production inventory?"
        )
    mapped = [f for f in group_all.glob("*.yml") if f.name != VAULT_FILE.name]
    if not any("vault_nmpi_" in f.read_text() for f in mapped):
        raise RefusedError(
            f"{group_all} maps no vault_nmpi_* variable: not a production inventory "
            "(the lab generates its secrets itself)"
        )
    vault = inventory / VAULT_FILE
    # The per-location inventories reach production's group_vars/all through a link.
    real_vault = vault.parent.resolve() / vault.name

    tool = ansible_vault()
    pw_file = password_file(args.vault_password_file)
    values = read_vault(real_vault, tool, pw_file)

    missing = [name for name in SECRETS if not values.get(name)]
    if args.check:
        for name in missing:
            print(f"missing: {name}")
        print(f"{real_vault}: {len(SECRETS) - len(missing)} of {len(SECRETS)} secrets present")
        return 1 if missing else 0

    for name in args.rotate:
        if name in NOT_ROTATABLE and name not in missing:
            raise RefusedError(f"{name} cannot be rotated here: {NOT_ROTATABLE[name]}")
    rotated = [name for name in args.rotate if name not in missing]
    for name in SECRETS:
        if name in missing or name in rotated:
            values[name] = new_value(SECRETS[name])
    if not missing and not rotated:
        print(f"{real_vault}: all {len(SECRETS)} secrets present, nothing to do")
        return 0

    write_vault(real_vault, render(values), tool, pw_file)
    for name in SECRETS:
        status = "added" if name in missing else "rotated" if name in rotated else "kept"
        print(f"{status}: {name}")
    print(f"{real_vault}: written, encrypted with ansible-vault")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except RefusedError as refused:
        print(f"{PROG}: {refused}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
