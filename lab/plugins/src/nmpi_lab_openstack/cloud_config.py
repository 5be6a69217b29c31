"""What cloud-init does on a cloud image, for the lab's instances (no OpenStack imports here).

The lab hypervisor (nova_driver.py) turns an instance's key pair and user_data into two shell
scripts that run inside the instance at its first boot, as systemd units of the instance
itself (docker_vm.py installs them), like cloud-init's own stages:

- ``init``  (before sshd starts): ``write_files`` (not deferred), ``hostname``/``fqdn``,
  groups, the default user and ``users``, SSH keys. Once sshd answers, the key is in place.
- ``final`` (after sshd, Docker and the network are up): ``package_update``/``_upgrade``,
  ``packages``, deferred ``write_files``, user-data scripts, ``runcmd``, the SSH host keys
  on the console as cloud-init's keys-to-console prints them, ``final_message``;
  then /var/lib/cloud/instance/boot-finished, and ``cloud-init status`` says ``done``.

Each stage runs once per instance (a marker in /var/lib/nmpi-lab) and prints its progress to
the instance's console as ``nmpi-lab-init: ...`` lines (the Nova console log shows them).
Nothing here raises on bad user data: what the lab does not support is a WARNING line naming
the key, on the console and in the list returned to the driver, and the rest still applies.

The default user is Debian's cloud-image user: ``debian`` (configurable), groups adm, dialout,
cdrom, floppy, sudo, audio, dip, video, plugdev, sudo without password, bash, no password;
the instance's key pair goes to its ~/.ssh/authorized_keys.

User data (Nova passes it base64-encoded; gzip is undone) may be:

- ``#cloud-config`` YAML. Supported keys:
    ``users`` (list or comma string; ``default`` is the default user; a dict may have name,
    gecos, groups (list or comma string), shell, sudo (rule, list of rules, false/null),
    ssh_authorized_keys, lock_passwd, homedir, primary_group, uid, system, no_create_home),
    ``groups`` (names, or {name: [members]}), ``ssh_authorized_keys`` (for the default user),
    ``write_files`` (path, content, encoding text/b64/base64/gz/gzip/gz+b64/gzip+base64,
    permissions, owner, append, defer),
    ``runcmd`` (a string is a shell line, a list is an argv; the whole list is one sh script,
    as cloud-init runs it: a failing line does not stop the next ones),
    ``hostname``, ``fqdn``, ``packages`` (names or [name, version]), ``package_update``,
    ``package_upgrade``, ``final_message``.
  As cloud-init does, a ``users`` list without ``default`` means no default user (and so the
  key pair is not installed: a warning says so).
- a ``#!`` script: run once in the final stage (before runcmd, as cloud-init's scripts-user).
- MIME multipart (what ``cloud-init devel make-mime`` writes): text/cloud-config parts (merged,
  a later part's keys replace an earlier one's) and text/x-shellscript parts.
Anything else (``#include``, ``#cloud-boothook``, jinja templates, unknown keys) is reported.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email
import email.message
import email.policy
import gzip
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

LOG_PREFIX = "nmpi-lab-init"
STATE_DIR = "/var/lib/nmpi-lab"
INIT_DONE = f"{STATE_DIR}/init.done"
FINAL_DONE = f"{STATE_DIR}/final.done"
BOOT_FINISHED = "/var/lib/cloud/instance/boot-finished"
SCRIPTS_DIR = "/var/lib/cloud/instance/scripts"

DEFAULT_USER_GROUPS = (
    "adm",
    "dialout",
    "cdrom",
    "floppy",
    "sudo",
    "audio",
    "dip",
    "video",
    "plugdev",
)
DEFAULT_SUDO = "ALL=(ALL) NOPASSWD:ALL"
SUDOERS_FILE = "/etc/sudoers.d/90-cloud-init-users"

SUPPORTED_KEYS = frozenset(
    {
        "users",
        "groups",
        "ssh_authorized_keys",
        "write_files",
        "runcmd",
        "hostname",
        "fqdn",
        "packages",
        "package_update",
        "package_upgrade",
        "final_message",
    }
)
USER_KEYS = frozenset(
    {
        "name",
        "gecos",
        "groups",
        "shell",
        "sudo",
        "ssh_authorized_keys",
        "lock_passwd",
        "homedir",
        "primary_group",
        "uid",
        "system",
        "no_create_home",
    }
)
WRITE_FILE_KEYS = frozenset(
    {"path", "content", "encoding", "permissions", "owner", "append", "defer"}
)
B64_ENCODINGS = frozenset({"b64", "base64"})
GZ_ENCODINGS = frozenset({"gz", "gzip"})
GZ_B64_ENCODINGS = frozenset({"gz+b64", "gzip+base64", "gz+base64", "gzip+b64"})
TEXT_ENCODINGS = frozenset({"text/plain", "text", ""})


@dataclass
class UserData:
    """User data split into what the stages apply."""

    config: dict[str, Any] = field(default_factory=dict)
    scripts: list[bytes] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class User:
    name: str
    gecos: str | None = None
    groups: tuple[str, ...] = ()
    shell: str | None = None
    sudo: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    homedir: str | None = None
    primary_group: str | None = None
    uid: int | None = None
    system: bool = False
    no_create_home: bool = False


@dataclass(frozen=True)
class InitScripts:
    """The two stage scripts and what was reported while making them."""

    init: str
    final: str
    warnings: tuple[str, ...]


# ---------------------------------------------------------------------------------------------
# user data parsing


def decode_user_data(user_data: str | bytes | None) -> bytes:
    """Nova's instance.user_data (base64 text) to the raw bytes the user gave; gzip undone.

    Raw (not base64) text is accepted too, so the function also serves tests and tools.
    """
    if not user_data:
        return b""
    data = user_data.encode() if isinstance(user_data, str) else user_data
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        decoded = data
    if decoded[:2] == b"\x1f\x8b":
        with contextlib.suppress(OSError, EOFError):
            decoded = gzip.decompress(decoded)
    return decoded


def parse_user_data(raw: bytes) -> UserData:
    """Split raw user data into cloud-config, scripts and warnings; never raises."""
    result = UserData()
    if not raw.strip():
        return result
    _parse_part(raw, result, "user data")
    return result


def _parse_part(raw: bytes, result: UserData, where: str) -> None:
    text_head = raw.lstrip()[:64]
    if text_head.startswith(b"#cloud-config"):
        _merge_cloud_config(raw, result, where)
    elif text_head.startswith(b"#!"):
        result.scripts.append(raw)
    elif text_head.lower().startswith((b"content-type:", b"mime-version:")):
        _parse_mime(raw, result)
    elif text_head.startswith(b"## template: jinja"):
        result.warnings.append(f"{where}: jinja templates are not supported; ignored")
    else:
        first = text_head.splitlines()[0].decode(errors="replace") if text_head else ""
        result.warnings.append(
            f"{where}: not #cloud-config, a #! script or MIME multipart"
            f" (starts with {first!r}); ignored"
        )


def _parse_mime(raw: bytes, result: UserData) -> None:
    try:
        message = email.message_from_bytes(raw, policy=email.policy.compat32)
    except Exception as exc:  # email is lenient; be safe anyway
        result.warnings.append(f"user data: unreadable MIME message ({exc}); ignored")
        return
    parts = [part for part in message.walk() if not part.is_multipart()]
    for index, part in enumerate(parts, start=1):
        ctype = part.get_content_type()
        payload = part.get_payload(decode=True)
        body = payload if isinstance(payload, bytes) else b""
        if body[:2] == b"\x1f\x8b":
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError):
                result.warnings.append(f"MIME part {index} ({ctype}): bad gzip data; ignored")
                continue
        where = f"MIME part {index} ({ctype})"
        if ctype == "text/cloud-config":
            _merge_cloud_config(body, result, where)
        elif ctype == "text/x-shellscript":
            result.scripts.append(body)
        elif ctype in ("text/plain", "text/x-not-multipart"):
            _parse_part(body, result, where)
        else:
            result.warnings.append(f"{where}: content type not supported; ignored")


def _merge_cloud_config(raw: bytes, result: UserData, where: str) -> None:
    try:
        loaded = yaml.safe_load(raw.decode("utf-8", errors="replace"))
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())
        result.warnings.append(f"{where}: cloud-config is not valid YAML ({problem}); ignored")
        return
    if loaded is None:
        return
    if not isinstance(loaded, dict):
        result.warnings.append(
            f"{where}: cloud-config is a {type(loaded).__name__}, not a mapping; ignored"
        )
        return
    for key, value in loaded.items():
        key_name = str(key)
        if key_name not in SUPPORTED_KEYS:
            result.warnings.append(
                f"cloud-config key {key_name!r} is not supported by the lab; ignored"
            )
            continue
        result.config[key_name] = value


# ---------------------------------------------------------------------------------------------
# cloud-config interpretation


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def _str_list(value: Any, what: str, warnings: list[str]) -> tuple[str, ...]:
    items: list[str] = []
    for item in _as_list(value):
        if isinstance(item, str | int | float) and not isinstance(item, bool):
            items.append(str(item))
        else:
            warnings.append(f"{what}: {item!r} is not a string; ignored")
    return tuple(items)


def _keys(value: Any, what: str, warnings: list[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        warnings.append(f"{what}: expected a list of keys; ignored")
        return ()
    keys: list[str] = []
    for item in value:
        if isinstance(item, str) and item.strip():
            keys.extend(line.strip() for line in item.splitlines() if line.strip())
        else:
            warnings.append(f"{what}: {item!r} is not a key; ignored")
    return tuple(keys)


def _sudo(value: Any, what: str, warnings: list[str]) -> tuple[str, ...]:
    if value is None or value is False:
        return ()
    if isinstance(value, str):
        return (value,) if value.strip() else ()
    if isinstance(value, list) and all(isinstance(rule, str) for rule in value):
        return tuple(rule for rule in value if rule.strip())
    warnings.append(f"{what}: sudo must be a rule, a list of rules or false; ignored")
    return ()


def default_user(name: str, keys: Sequence[str]) -> User:
    return User(
        name=name,
        gecos=name.capitalize(),
        groups=DEFAULT_USER_GROUPS,
        shell="/bin/bash",
        sudo=(DEFAULT_SUDO,),
        keys=tuple(keys),
    )


def resolve_users(
    config: Mapping[str, Any], default_name: str, instance_keys: Sequence[str], warnings: list[str]
) -> list[User]:
    """The users to create, in order; 'default' expands to the default user (with the keys)."""
    extra_default_keys = _keys(config.get("ssh_authorized_keys"), "ssh_authorized_keys", warnings)
    entries = _as_list(config["users"]) if "users" in config else ["default"]
    users: list[User] = []
    has_default = False
    for index, entry in enumerate(entries):
        what = f"users[{index}]"
        if entry == "default" or (isinstance(entry, dict) and entry.get("name") == "default"):
            if not has_default:
                has_default = True
                users.append(default_user(default_name, [*instance_keys, *extra_default_keys]))
            continue
        if isinstance(entry, str):
            users.append(User(name=entry))
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            warnings.append(f"{what}: a user is a name or a mapping with a 'name'; ignored")
            continue
        for key in entry:
            if key not in USER_KEYS:
                warnings.append(f"{what}: key {key!r} is not supported by the lab; ignored")
        if entry.get("lock_passwd") is False:
            warnings.append(f"{what}: lock_passwd: false has no effect (no password is set)")
        uid = entry.get("uid")
        if uid is not None and not isinstance(uid, int):
            try:
                uid = int(uid)
            except (TypeError, ValueError):
                warnings.append(f"{what}: uid {uid!r} is not a number; ignored")
                uid = None
        users.append(
            User(
                name=entry["name"],
                gecos=str(entry["gecos"]) if entry.get("gecos") is not None else None,
                groups=_str_list(entry.get("groups"), f"{what}.groups", warnings),
                shell=str(entry["shell"]) if entry.get("shell") else None,
                sudo=_sudo(entry.get("sudo"), what, warnings),
                keys=_keys(
                    entry.get("ssh_authorized_keys"), f"{what}.ssh_authorized_keys", warnings
                ),
                homedir=str(entry["homedir"]) if entry.get("homedir") else None,
                primary_group=str(entry["primary_group"]) if entry.get("primary_group") else None,
                uid=uid,
                system=bool(entry.get("system", False)),
                no_create_home=bool(entry.get("no_create_home", False)),
            )
        )
    if not has_default:
        if instance_keys:
            warnings.append(
                "users: does not list 'default': no default user, so the instance's key pair"
                " is not installed (as with cloud-init)"
            )
        if extra_default_keys:
            warnings.append("ssh_authorized_keys: no default user to give the keys to; ignored")
    return users


def _permissions(value: Any, what: str, warnings: list[str]) -> str:
    if value is None:
        return "0644"
    try:
        if isinstance(value, int) and not isinstance(value, bool):
            mode = value
        else:
            text = str(value).strip().lower()
            mode = int(text[2:] if text.startswith("0o") else text, 8)
    except ValueError:
        warnings.append(f"{what}: permissions {value!r} are not octal; 0644 used")
        return "0644"
    if not 0 <= mode <= 0o7777:
        warnings.append(f"{what}: permissions {value!r} out of range; 0644 used")
        return "0644"
    return f"{mode:04o}"


def _strict_b64decode(data: bytes) -> bytes:
    """base64 that may be wrapped over lines (YAML block scalars) but is otherwise valid."""
    return base64.b64decode(b"".join(data.split()), validate=True)


def _file_content(entry: Mapping[str, Any], what: str, warnings: list[str]) -> bytes | None:
    content = entry.get("content", "")
    if content is None:
        content = ""
    if not isinstance(content, str | bytes):
        content = str(content)
    data = content.encode() if isinstance(content, str) else content
    encoding = str(entry.get("encoding") or "").strip().lower()
    try:
        if encoding in B64_ENCODINGS:
            return _strict_b64decode(data)
        if encoding in GZ_B64_ENCODINGS:
            return gzip.decompress(_strict_b64decode(data))
        if encoding in GZ_ENCODINGS:
            return gzip.decompress(data)
    except (binascii.Error, ValueError, OSError, EOFError) as exc:
        warnings.append(f"{what}: content is not valid {encoding} ({exc}); file not written")
        return None
    if encoding not in TEXT_ENCODINGS:
        warnings.append(f"{what}: encoding {encoding!r} is not supported; written as text")
    return data


# ---------------------------------------------------------------------------------------------
# shell rendering

_PRELUDE = r"""set -u
umask 022
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
export DEBIAN_FRONTEND=noninteractive
ERRORS=0
log() { printf '%s: %s\n' "$PREFIX" "$*"; }
warn() { printf '%s: WARNING: %s\n' "$PREFIX" "$*"; }
fail() { printf '%s: ERROR: %s\n' "$PREFIX" "$*"; ERRORS=$((ERRORS + 1)); }
# run WHAT CMD...: run a command, count a failure
run() { what=$1; shift; "$@" || fail "$what: exit status $?"; }
# write_file PATH BASE64 MODE OWNER APPEND(0|1)
write_file() {
  mkdir -p "$(dirname "$1")" || { fail "write_files: cannot create the folder of $1"; return; }
  if [ "$5" = 1 ]; then
    printf '%s' "$2" | base64 -d >> "$1" || { fail "write_files: cannot append to $1"; return; }
  else
    printf '%s' "$2" | base64 -d > "$1" || { fail "write_files: cannot write $1"; return; }
  fi
  chown "$4" "$1" || fail "write_files: chown $4 $1"
  chmod "$3" "$1" || fail "write_files: chmod $3 $1"
  log "write_files: $1"
}
# add_keys USER BASE64 (one key a line): append to ~USER/.ssh/authorized_keys, once each
add_keys() {
  home=$(getent passwd "$1" | cut -d: -f6)
  [ -n "$home" ] || { fail "ssh keys: user $1 has no home folder"; return; }
  group=$(id -gn "$1") || group=$1
  mkdir -p "$home/.ssh" && chmod 700 "$home/.ssh" || { fail "ssh keys: $home/.ssh"; return; }
  keys="$home/.ssh/authorized_keys"
  touch "$keys" && chmod 600 "$keys" || { fail "ssh keys: $keys"; return; }
  printf '%s' "$2" | base64 -d | while IFS= read -r key || [ -n "$key" ]; do
    [ -n "$key" ] || continue
    grep -qxF -- "$key" "$keys" || printf '%s\n' "$key" >> "$keys"
  done
  chown -R "$1:$group" "$home/.ssh" || fail "ssh keys: chown $home/.ssh"
  log "ssh keys: $(grep -c . "$keys") in $keys"
}
# ensure_group NAME
ensure_group() {
  getent group "$1" >/dev/null || run "groupadd $1" groupadd "$1"
}
"""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _q(value: str) -> str:
    return shlex.quote(value)


# cloud-init's keys-to-console (its write-ssh-key-fingerprints script), after scripts-user as
# in cloud_final_modules: the host keys' fingerprints, then the public keys between the lines
# that tools read them from (`openstack console log show`). ssh-dss is left out, as there.
KEYS_TO_CONSOLE = r"""host_keys() {
  for f in /etc/ssh/ssh_host_*key.pub; do
    [ -f "$f" ] || continue
    read -r ktype _ < "$f"
    [ "$ktype" = ssh-dss ] || "$@" "$f"
  done
}
{ echo; echo '#############################################################'
  echo '-----BEGIN SSH HOST KEY FINGERPRINTS-----'; host_keys ssh-keygen -l -f
  echo '-----END SSH HOST KEY FINGERPRINTS-----'
  echo '#############################################################'; } | sed 's/^/ec2: /'
keys=$(host_keys cat)
printf '%s\n%s\n%s\n' '-----BEGIN SSH HOST KEY KEYS-----' "$keys" '-----END SSH HOST KEY KEYS-----'
""".splitlines()


def _header(stage: str, instance_id: str) -> list[str]:
    return [
        "#!/bin/sh",
        f"# nmpi-lab-init, stage {stage}, instance {instance_id}: written by the lab hypervisor",
        "# (nmpi_lab_openstack/cloud_config.py), the lab's stand-in for cloud-init. Runs once.",
        f"PREFIX={_q(LOG_PREFIX)}",
        _PRELUDE,
        f"mkdir -p {STATE_DIR} /var/lib/cloud/data {SCRIPTS_DIR}",
    ]


def _footer(stage: str, done_marker: str, extra: Iterable[str] = ()) -> list[str]:
    lines = [*extra, f"touch {done_marker}"]
    lines += [
        'if [ "$ERRORS" -gt 0 ]; then',
        f'  log "stage {stage} finished with $ERRORS error(s)"',
        "  exit 1",
        "fi",
        f'log "stage {stage} finished"',
        "exit 0",
    ]
    return lines


def _user_lines(user: User) -> list[str]:
    lines: list[str] = []
    for group in user.groups:
        lines.append(f"ensure_group {_q(group)}")
    if user.primary_group:
        lines.append(f"ensure_group {_q(user.primary_group)}")
    create = ["useradd"]
    if user.no_create_home:
        create.append("-M")
    else:
        create.append("-m")
    if user.gecos is not None:
        create += ["-c", user.gecos]
    if user.shell:
        create += ["-s", user.shell]
    if user.homedir:
        create += ["-d", user.homedir]
    if user.primary_group:
        create += ["-g", user.primary_group]
    elif not user.system:
        create.append("-U")
    if user.uid is not None:
        create += ["-u", str(user.uid)]
    if user.system:
        create.append("-r")
    if user.groups:
        create += ["-G", ",".join(user.groups)]
    create.append(user.name)
    name = _q(user.name)
    lines.append(f"if getent passwd {name} >/dev/null; then")
    lines.append(f'  log "users: {user.name} exists"')
    if user.groups:
        groups = _q(",".join(user.groups))
        lines.append(f"  run {_q('usermod ' + user.name)} usermod -a -G {groups} {name}")
    if user.shell:
        lines.append(f"  run {_q('usermod ' + user.name)} usermod -s {_q(user.shell)} {name}")
    lines.append("else")
    lines.append(f"  run {_q('useradd ' + user.name)} {' '.join(_q(arg) for arg in create)}")
    lines.append(f'  log "users: created {user.name}"')
    lines.append("fi")
    if user.sudo:
        rules = "".join(f"{user.name} {rule}\n" for rule in user.sudo)
        lines.append(f"write_file {SUDOERS_FILE} {_q(_b64(rules.encode()))} 0440 root:root 1")
    if user.keys:
        keys = "".join(f"{key}\n" for key in user.keys)
        lines.append(f"add_keys {name} {_q(_b64(keys.encode()))}")
    return lines


def _groups_lines(value: Any, warnings: list[str]) -> list[str]:
    lines: list[str] = []
    for index, entry in enumerate(_as_list(value)):
        if isinstance(entry, str):
            lines.append(f"ensure_group {_q(entry)}")
        elif isinstance(entry, dict):
            for group, members in entry.items():
                lines.append(f"ensure_group {_q(str(group))}")
                for member in _str_list(members, f"groups[{index}].{group}", warnings):
                    lines.append(
                        f"run {_q('gpasswd ' + str(group))}"
                        f" gpasswd -a {_q(member)} {_q(str(group))} >/dev/null"
                    )
        else:
            warnings.append(f"groups[{index}]: a group is a name or {{name: [members]}}; ignored")
    return lines


def _write_files_lines(value: Any, warnings: list[str]) -> tuple[list[str], list[str]]:
    """Shell lines for write_files: (init stage, final stage for `defer: true`)."""
    init: list[str] = []
    final: list[str] = []
    if value is None:
        return init, final
    if not isinstance(value, list):
        warnings.append("write_files: expected a list; ignored")
        return init, final
    for index, entry in enumerate(value):
        what = f"write_files[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            warnings.append(f"{what}: an entry is a mapping with a 'path'; ignored")
            continue
        for key in entry:
            if key not in WRITE_FILE_KEYS:
                warnings.append(f"{what}: key {key!r} is not supported by the lab; ignored")
        path = entry["path"]
        if not path.startswith("/"):
            warnings.append(f"{what}: path {path!r} is not absolute; ignored")
            continue
        content = _file_content(entry, what, warnings)
        if content is None:
            continue
        mode = _permissions(entry.get("permissions"), what, warnings)
        owner = str(entry.get("owner") or "root:root")
        append = "1" if entry.get("append") else "0"
        line = f"write_file {_q(path)} {_q(_b64(content))} {mode} {_q(owner)} {append}"
        (final if entry.get("defer") else init).append(line)
    return init, final


def _hostname_lines(config: Mapping[str, Any], warnings: list[str]) -> list[str]:
    hostname = config.get("hostname")
    fqdn = config.get("fqdn")
    if hostname is None and fqdn is None:
        return []
    if (hostname is not None and not isinstance(hostname, str)) or (
        fqdn is not None and not isinstance(fqdn, str)
    ):
        warnings.append("hostname/fqdn: must be strings; ignored")
        return []
    short = hostname or (fqdn.split(".")[0] if fqdn else "")
    if hostname and "." in hostname and not fqdn:
        fqdn, short = hostname, hostname.split(".")[0]
    names = f"{fqdn} {short}" if fqdn and fqdn != short else short
    hosts_line = f"127.0.1.1 {names}\n"
    return [
        f"run hostname hostname {_q(short)}",
        f"printf '%s\\n' {_q(short)} > /etc/hostname || fail 'hostname: /etc/hostname'",
        # The guest agent applies it again at every boot (Docker resets /etc/hostname).
        f"mkdir -p /etc/nmpi-lab && printf '%s\\n' {_q(short)} > /etc/nmpi-lab/hostname",
        f"printf '%s\\n' {_q(fqdn or '')} > /etc/nmpi-lab/fqdn",
        f"grep -qF {_q(hosts_line.strip())} /etc/hosts"
        f" || printf '%s' {_q(hosts_line)} >> /etc/hosts",
        f'log "hostname: {short}' + (f" ({fqdn})" if fqdn else "") + '"',
    ]


def _packages_lines(config: Mapping[str, Any], warnings: list[str]) -> list[str]:
    lines: list[str] = []
    packages: list[str] = []
    for index, entry in enumerate(_as_list(config.get("packages"))):
        if isinstance(entry, str):
            packages.append(entry)
        elif (
            isinstance(entry, list)
            and len(entry) == 2
            and all(isinstance(part, str | int | float) for part in entry)
        ):
            packages.append(f"{entry[0]}={entry[1]}")
        else:
            warnings.append(f"packages[{index}]: a package is a name or [name, version]; ignored")
    update = bool(config.get("package_update")) or bool(config.get("package_upgrade")) or packages
    apt = "apt-get -q -y -o Dpkg::Options::=--force-confold"
    if update:
        lines.append('log "packages: apt-get update"')
        lines.append(f"run 'apt-get update' {apt} update")
    if config.get("package_upgrade"):
        lines.append('log "packages: apt-get upgrade"')
        lines.append(f"run 'apt-get upgrade' {apt} upgrade")
    if packages:
        names = " ".join(_q(package) for package in packages)
        lines.append(f'log "packages: installing {" ".join(packages)}"')
        lines.append(f"run 'apt-get install' {apt} install --no-install-recommends {names}")
    return lines


def _runcmd_script(value: Any, warnings: list[str]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, list):
        warnings.append("runcmd: expected a list of commands; ignored")
        return None
    lines = ["#!/bin/sh"]
    for index, entry in enumerate(value):
        if isinstance(entry, str):
            lines.append(entry)
        elif isinstance(entry, list) and all(
            isinstance(arg, str | int | float) and not isinstance(arg, bool) for arg in entry
        ):
            lines.append(" ".join(_q(str(arg)) for arg in entry))
        else:
            warnings.append(f"runcmd[{index}]: a command is a string or a list of strings; ignored")
    return "\n".join(lines) + "\n"


def render(
    *,
    instance_id: str,
    default_user_name: str,
    public_keys: Sequence[str],
    user_data: bytes,
) -> InitScripts:
    """The init and final stage scripts for one instance (raw user data, not base64)."""
    parsed = parse_user_data(user_data)
    warnings = list(parsed.warnings)
    config = parsed.config

    write_init, write_final = _write_files_lines(config.get("write_files"), warnings)
    hostname_lines = _hostname_lines(config, warnings)
    group_lines = _groups_lines(config.get("groups"), warnings)
    users = resolve_users(config, default_user_name, public_keys, warnings)
    package_lines = _packages_lines(config, warnings)
    scripts: list[tuple[str, bytes]] = [
        (f"part-{index + 1:03d}", script) for index, script in enumerate(parsed.scripts)
    ]
    runcmd = _runcmd_script(config.get("runcmd"), warnings)
    if runcmd is not None:
        scripts.append(("runcmd", runcmd.encode()))
    message = config.get("final_message")
    if message is not None and not isinstance(message, str):
        warnings.append("final_message: must be a string; ignored")
        message = None

    # -- init stage: before sshd. Every warning is printed here, first.
    init = _header("init", instance_id)
    init.append(f'log "stage init: instance {instance_id}"')
    init.append(f"printf '%s\\n' {_q(instance_id)} > /var/lib/cloud/data/instance-id")
    init += [f"warn {_q(message)}" for message in warnings]
    init += write_init
    init += hostname_lines
    init += group_lines
    for user in users:
        init += _user_lines(user)
    if any(user.sudo for user in users):
        init.append(
            f"visudo -c -q -f {SUDOERS_FILE} >/dev/null 2>&1"
            f" || {{ fail 'sudo: {SUDOERS_FILE} is invalid; removed'; rm -f {SUDOERS_FILE}; }}"
        )
    init += _footer("init", INIT_DONE)

    # -- final stage: after sshd, Docker and the network.
    final = _header("final", instance_id)
    final.append(f'log "stage final: instance {instance_id}"')
    final += package_lines
    final += write_final
    # cloud-init's scripts-user runs the scripts folder in name order: part-* before runcmd.
    for name, body in sorted(scripts):
        path = f"{SCRIPTS_DIR}/{name}"
        final.append(f"write_file {_q(path)} {_q(_b64(body))} 0700 root:root 0")
        final.append(f'log "scripts-user: running {name}"')
        final.append(f'(cd / && {_q(path)}) || fail "scripts-user: {name} exited $?"')
    final += KEYS_TO_CONSOLE
    final.append(f"printf '%s\\n' \"$(date -u +%FT%TZ)\" > {BOOT_FINISHED}")
    if message:
        final.append(f"log {_q(message)}")
    else:
        final.append(
            'log "finished at $(date -u +%FT%TZ), up $(ps -o etimes= -p 1 | tr -d " ") seconds"'
        )
    final += _footer("final", FINAL_DONE)
    return InitScripts(
        init="\n".join(init) + "\n", final="\n".join(final) + "\n", warnings=tuple(warnings)
    )


# A minimal `cloud-init` command for roles that wait for cloud-init (`cloud-init status --wait`).
CLOUD_INIT_SHIM = r"""#!/bin/sh
# The lab's stand-in for cloud-init's command line (nmpi_lab_openstack/cloud_config.py): only
# `cloud-init status [--wait] [--long]` is supported; the work is done by nmpi-lab-init.
case "${1:-}" in
  status) ;;
  *) echo "cloud-init (nmpi-lab): only 'status [--wait]' is supported" >&2; exit 2 ;;
esac
shift
wait=0
for arg in "$@"; do
  case "$arg" in --wait|-w) wait=1 ;; esac
done
while :; do
  if [ -e /var/lib/nmpi-lab/final.done ]; then
    if systemctl -q is-failed nmpi-lab-init.service nmpi-lab-final.service 2>/dev/null; then
      echo "status: error"; exit 1
    fi
    echo "status: done"; exit 0
  fi
  if [ "$wait" = 0 ]; then echo "status: running"; exit 0; fi
  sleep 1
done
"""
