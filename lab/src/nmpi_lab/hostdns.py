"""Let this machine resolve the lab's public name through the lab's own DNS server.

    sudo .venv/bin/python -m nmpi_lab.hostdns on       # `make lab` runs it after site.yml
    .venv/bin/python -m nmpi_lab.hostdns status        # is it in place, does the name resolve
    sudo .venv/bin/python -m nmpi_lab.hostdns off      # `make lab-down` runs it first

The public name (api.nmpi.lab.example) lives in the zone that the witness's BIND9 serves, and
a failover moves it from castor's floating IP to jusuf's by an RFC 2136 update there. A line
in /etc/hosts would pin it to one site. Instead, `on` puts a marked block at the top of
/etc/resolv.conf, above the machine's own nameservers:

    # >>> nmpi-infra lab DNS: ... >>>
    # lab zone: nmpi.lab.example.  public name: api.nmpi.lab.example
    nameserver 198.18.83.x                 (the witness's floating IP)
    options timeout:1 attempts:2
    # <<< nmpi-infra lab DNS <<<

Why that is enough, and changes nothing else:
- The witness's BIND is authoritative only (`recursion no`, no cache access): it answers its
  zone and REFUSES every other name without asking anyone. `on` checks both before writing.
- glibc's resolver takes REFUSED (like SERVFAIL) as "ask the next nameserver": every other name
  goes on to the machine's own nameservers, as before, after one round trip on the lab network.
- glibc keeps no cache: each lookup asks the witness again, so the name follows a failover at
  once (well within the record's 30 s TTL). No forwarder, no new daemon, no traffic off the lab
  network.
- `options timeout:1 attempts:2`: when the lab is down with the block still in place, a lookup
  waits 1 s for the witness instead of 5 (options the machine sets further down win). That is
  why `make lab-down` removes the block first.

Limits, checked: glibc reads three nameservers at most (the block takes one; a warning names
the one that drops out); `options rotate` would send the lab's name to the machine's servers
half the time (refused); a file that names no nameserver means "127.0.0.1" to glibc (the block
keeps that). /etc/resolv.conf is written in place (same inode: a bind mount or a symlink's
target stays what it is, never renamed over), padded so a reader never sees half of it, read
back, and put back as it was on any error. A symlink into /run/systemd/resolve/ belongs to
systemd-resolved, which rewrites it and answers on 127.0.0.53: nothing is written, the
`resolvectl` commands that route the zone there are printed. Whatever else rewrites the file
(NetworkManager, resolvconf, a DHCP client) drops the block with it: run `on` again.

Exit codes: 0 done (or nothing to do); 1 failed, nothing changed; 3 not done on purpose, nothing
changed, the command to run was printed (not root, or systemd-resolved's file, or rotate).
`make lab` accepts 3 (the platform is deployed; nmpi_lab.info prints the command again);
`make lab-down` does not: it stops before destroying anything, so the block never outlives the
lab's DNS server.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import ipaddress
import os
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
from nmpi_devstack.paths import REPO_ROOT as REPO

RESOLV_CONF = Path("/etc/resolv.conf")
HOSTS_FILE = Path("/etc/hosts")
BEGIN_PREFIX = "# >>> nmpi-infra lab DNS"
END_PREFIX = "# <<< nmpi-infra lab DNS"
BEGIN = (
    f"{BEGIN_PREFIX}: written by `python -m nmpi_lab.hostdns on`, "
    "removed by `make lab-down` (... hostdns off) >>>"
)
END = f"{END_PREFIX} <<<"
OPTIONS = "options timeout:1 attempts:2"
# glibc's MAXNS: nameserver lines after the third are ignored.
MAX_NAMESERVERS = 3
# systemd-resolved's files (stub-resolv.conf, resolv.conf): it rewrites them and caches.
RESOLVED_DIR = "/run/systemd/resolve/"
# A name no lab zone holds (.invalid is reserved): an authoritative-only server REFUSES it.
OUTSIDE_NAME = "nmpi-infra-hostdns-check.invalid."
_ZONE_LINE = re.compile(r"^# lab zone: (\S+)\s+public name: (\S+)\s*$")

# Exit codes (see the module's docstring).
OK, FAILED, NOT_DONE = 0, 1, 3


class BlockError(ValueError):
    """The file holds a damaged nmpi-infra block: only a person can say what to keep."""


@dataclass(frozen=True)
class Block:
    server: str
    zone: str | None
    name: str | None
    first: bool  # its nameserver is the first one glibc reads


# --- the text of resolv.conf (pure functions) -----------------------------------------------


def _lines(text: str) -> list[str]:
    """The lines as glibc reads them (split at \\n only), each with its newline."""
    parts = text.split("\n")
    return [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _keyword(line: str) -> str:
    """The line's keyword as glibc reads it (comments start with # or ;)."""
    words = line.split()
    return "" if not words or words[0][0] in "#;" else words[0]


def _blocks(lines: list[str]) -> list[tuple[int, int]]:
    """(first, last) line index of every block; BlockError when a marker has no partner."""
    found: list[tuple[int, int]] = []
    start: int | None = None
    for index, line in enumerate(lines):
        text = line.strip()
        if text.startswith(BEGIN_PREFIX):
            if start is not None:
                raise BlockError(f"line {index + 1}: a second block begins inside the block")
            start = index
        elif text.startswith(END_PREFIX):
            if start is None:
                raise BlockError(f"line {index + 1}: the block's end marker without its beginning")
            found.append((start, index))
            start = None
    if start is not None:
        raise BlockError(f"line {start + 1}: the block begins but never ends")
    return found


def remove_block(text: str) -> str:
    """The text without the nmpi-infra block (every copy of it), byte for byte otherwise."""
    lines = _lines(text)
    drop = {i for first, last in _blocks(lines) for i in range(first, last + 1)}
    return "".join(line for i, line in enumerate(lines) if i not in drop)


def nameservers(text: str) -> list[str]:
    """The nameserver addresses, in the order glibc tries them (every line, no limit)."""
    found = []
    for line in _lines(text):
        words = line.split()
        if _keyword(line) == "nameserver" and len(words) > 1:
            found.append(words[1])
    return found


def resolver_options(text: str) -> list[str]:
    """Every word of the `options` lines, in order."""
    return [w for line in _lines(text) if _keyword(line) == "options" for w in line.split()[1:]]


def parse_block(text: str) -> Block | None:
    """The block glibc reads first (its server, the zone and name it was written for)."""
    lines = _lines(text)
    blocks = _blocks(lines)
    if not blocks:
        return None
    first, last = blocks[0]
    inside = "".join(lines[first : last + 1])
    servers = nameservers(inside)
    if not servers:
        raise BlockError(f"line {first + 1}: the block names no nameserver")
    zone = name = None
    for line in lines[first : last + 1]:
        match = _ZONE_LINE.match(line.strip())
        if match:
            zone, name = (None if v == "-" else v for v in match.groups())
    everywhere = nameservers(text)
    return Block(servers[0], zone, name, first=bool(everywhere) and everywhere[0] == servers[0])


def render_block(
    server: str, zone: str | None = None, name: str | None = None, *, loopback: bool = False
) -> str:
    """The block's lines. `loopback`: the file names no nameserver, which glibc reads as
    127.0.0.1; the block then names it after the lab's, so other names still go there."""
    lines = [
        BEGIN,
        f"# lab zone: {zone or '-'}  public name: {name or '-'}",
        "# The lab's authoritative DNS (the witness's BIND) answers its zone and REFUSES every",
        "# other name: glibc then asks the next nameserver, the machine's own, as before.",
        f"nameserver {server}",
    ]
    if loopback:
        lines.append("nameserver 127.0.0.1  # glibc's default when the file names none")
    lines += [OPTIONS, END]
    return "".join(line + "\n" for line in lines)


def _insertion_index(lines: list[str]) -> int:
    """After the file's leading comments (a generator's header stays on top), before the
    first line glibc reads."""
    for index, line in enumerate(lines):
        if line.strip() and line.lstrip()[0] not in "#;":
            return index
    # Comments only: at the end, unless the last line has no newline to follow.
    return len(lines) if not lines or lines[-1].endswith("\n") else 0


def add_block(text: str, server: str, zone: str | None = None, name: str | None = None) -> str:
    """The text with the block (for this server) above the machine's own nameservers; an
    earlier block is replaced, so running it twice gives the same text as once."""
    base = remove_block(text)
    lines = _lines(base)
    block = render_block(server, zone, name, loopback=not nameservers(base))
    index = _insertion_index(lines)
    return "".join(lines[:index]) + block + "".join(lines[index:])


def refusals(text: str) -> list[str]:
    """Why the block would not work in this file (the machine's part, the block left out)."""
    found = []
    if "rotate" in resolver_options(remove_block(text)):
        found.append(
            "`options rotate` makes glibc start with a different nameserver each time: the "
            "lab's name would get the machine's NXDOMAIN about half the time. Remove `rotate` "
            "(or add the lab's zone to a local resolver that routes it) first."
        )
    return found


def warnings(text: str) -> list[str]:
    """What the block costs in this file (glibc ignores nameservers after the third)."""
    base = remove_block(text)
    own = nameservers(base)
    if len(own) >= MAX_NAMESERVERS:
        ignored = ", ".join(own[MAX_NAMESERVERS - 1 :])
        return [
            f"glibc reads {MAX_NAMESERVERS} nameservers at most: with the lab's first, this "
            f"machine's {ignored} is no longer asked"
        ]
    return []


def hosts_pins(text: str, name: str) -> list[str]:
    """The /etc/hosts lines that name `name`: they win over DNS and defeat a failover."""
    wanted = name.rstrip(".").lower()
    found = []
    for line in _lines(text):
        words = line.split("#", 1)[0].split()
        if len(words) > 1 and wanted in (w.rstrip(".").lower() for w in words[1:]):
            found.append(line.strip())
    return found


# --- the file on disk -----------------------------------------------------------------------


def read_text(path: Path) -> str:
    return path.read_bytes().decode("utf-8", "surrogateescape")


def read_block(path: Path = RESOLV_CONF) -> Block | None:
    """The block in the file; None when the file or the block is missing or damaged."""
    try:
        return parse_block(read_text(path))
    except (OSError, BlockError):
        return None


def _read_all(fd: int) -> bytes:
    data = b""
    while chunk := os.pread(fd, 65536, len(data)):
        data += chunk
    return data


def _write_all(fd: int, data: bytes) -> None:
    """Replace the file's content in place: one write of the new text, padded with newlines to
    the old size (a reader in between sees the new text and blank lines, never a mix), then
    the cut to size, fsync, and a read-back."""
    size = os.fstat(fd).st_size
    padded = data + b"\n" * max(0, size - len(data))
    if os.pwrite(fd, padded, 0) != len(padded):
        raise OSError("short write")
    os.ftruncate(fd, len(data))
    os.fsync(fd)
    if _read_all(fd) != data:
        raise OSError("the file reads back different from what was written")


def rewrite(path: Path, change: Callable[[str], str]) -> tuple[str, str]:
    """Apply `change` to the file's text in place (same inode, through a symlink to its
    target; never a new file renamed over it), under a lock against a second run; on any
    error the old content goes back. Returns (old, new)."""
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        with contextlib.suppress(OSError):  # a file system without locks: still one write
            fcntl.lockf(fd, fcntl.LOCK_EX)
        old_bytes = _read_all(fd)
        old = old_bytes.decode("utf-8", "surrogateescape")
        new = change(old)
        if new != old:
            try:
                _write_all(fd, new.encode("utf-8", "surrogateescape"))
            except BaseException:
                _write_all(fd, old_bytes)
                raise
        return old, new
    finally:
        os.close(fd)


def managed_by_resolved(path: Path) -> bool:
    return os.path.realpath(path).startswith(RESOLVED_DIR)


# --- DNS ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    rcode: str
    addresses: tuple[str, ...]
    ttl: int | None


def ask(server: str, name: str, timeout: float = 3.0) -> Answer:
    """The A records of `name` straight from `server` (UDP, TCP if truncated), asked as glibc
    asks (recursion desired). Raises dns.exception.DNSException or OSError."""
    query = dns.message.make_query(name.rstrip(".") + ".", dns.rdatatype.A)
    response, _ = dns.query.udp_with_fallback(query, server, timeout=timeout)
    addresses: list[str] = []
    ttl = None
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.A:
            addresses += [item.address for item in rrset]
            ttl = rrset.ttl
    return Answer(dns.rcode.to_text(response.rcode()), tuple(sorted(addresses)), ttl)


def check_server(server: str, name: str | None) -> list[str]:
    """Why `server` must not go first in resolv.conf (empty: it may)."""
    try:
        outside = ask(server, OUTSIDE_NAME)
        if outside.rcode != "REFUSED":
            return [
                f"{server} answers {outside.rcode} for {OUTSIDE_NAME} (outside the lab's zones), "
                "not REFUSED: it is not authoritative-only, and glibc would take its answer for "
                "every name of this machine"
            ]
        if name:
            answer = ask(server, name)
            if not answer.addresses:
                return [f"{server} has no A record for {name} ({answer.rcode})"]
    except (dns.exception.DNSException, OSError) as exc:
        return [f"{server} does not answer DNS queries: {exc or type(exc).__name__}"]
    return []


def host_addresses(name: str) -> list[str]:
    """IPv4 addresses of `name` through this machine's resolver (nsswitch: /etc/hosts, DNS)."""
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in infos})


def check_answer(server: str, name: str) -> tuple[str, ...]:
    """The addresses the server gives for `name` (none when it does not answer)."""
    try:
        return ask(server, name).addresses
    except (dns.exception.DNSException, OSError):
        return ()


def host_resolves(name: str, expected: list[str] | tuple[str, ...]) -> bool:
    """Whether this machine's resolver gives exactly the addresses the lab's DNS gives."""
    return bool(expected) and host_addresses(name) == sorted(expected)


# --- the command line -----------------------------------------------------------------------


def sudo_command(
    action: str,
    *,
    server: str | None = None,
    zone: str | None = None,
    name: str | None = None,
    resolv_conf: Path = RESOLV_CONF,
) -> str:
    """The command that does `action` as root, to print for a person."""
    words = [sys.executable, "-m", "nmpi_lab.hostdns", action]
    for flag, value in (("--server", server), ("--zone", zone), ("--name", name)):
        if value:
            words += [flag, value]
    if resolv_conf != RESOLV_CONF:
        words += ["--resolv-conf", str(resolv_conf)]
    return f"cd {shlex.quote(str(REPO))} && sudo {shlex.join(words)}"


def _why_not_writable() -> str:
    return "a read-only mount?" if os.geteuid() == 0 else f"uid {os.geteuid()}, not root"


def _say(message: str) -> None:
    print(f"hostdns: {message}", file=sys.stderr)


def _lab() -> tuple[str, str, str]:
    """(DNS server, zone, public name) of the deployed lab (LookupError when not deployed)."""
    from nmpi_lab import deployment  # the OpenStack SDK: only when the lab is asked

    # `sudo .venv/bin/python ...` runs with sudo's PATH: the venv's ansible-inventory first.
    venv_bin = str(Path(sys.executable).parent)
    if venv_bin not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join(filter(None, [venv_bin, os.environ.get("PATH")]))
    lab = deployment.load()
    return lab.dns_server.public_ip, lab.zone, lab.public_name


def _resolved_advice(path: Path, server: str, zone: str | None) -> str:
    """What to do instead when systemd-resolved owns the file: route the zone to the server."""
    link = "<link>"
    try:
        route = subprocess.run(
            ["ip", "-o", "route", "get", server],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.split()
        if "dev" in route[:-1]:
            link = route[route.index("dev") + 1]
    except (OSError, subprocess.SubprocessError):
        pass
    domain = (zone or "<lab zone>").rstrip(".")
    return (
        f"{path} is systemd-resolved's ({os.path.realpath(path)}): resolved rewrites it and "
        "answers on 127.0.0.53, so this tool leaves it alone (nothing changed). Route the "
        "lab's zone to the lab's DNS in resolved instead (it honours the record's TTL):\n"
        f"  sudo resolvectl dns {link} {server}\n"
        f"  sudo resolvectl domain {link} '~{domain}'\n"
        f"and undo it with `sudo resolvectl revert {link}` ({link}: the interface that reaches "
        f"{server}, `ip route get {server}`)."
    )


def pinned(name: str, hosts_file: Path = HOSTS_FILE) -> list[str]:
    """The lines of the hosts file that pin `name` (none when the file cannot be read)."""
    try:
        return hosts_pins(read_text(hosts_file), name)
    except OSError:
        return []


def _warn_about(text: str, name: str | None, hosts_file: Path) -> None:
    for warning in warnings(text):
        _say(f"warning: {warning}")
    if name:
        for pin in pinned(name, hosts_file):
            _say(
                f"warning: {hosts_file} pins {name} ({pin!r}): it wins over DNS and defeats a "
                "failover; remove that line"
            )


def cmd_on(args: argparse.Namespace) -> int:
    path: Path = args.resolv_conf
    server, zone, name = args.server, args.zone, args.name
    if server is None:
        try:
            server, zone, name = _lab()
        except Exception as exc:  # the inventory or the clouds: say what, change nothing
            _say(f"cannot read the lab's DNS server ({exc}); run `make lab` first, or --server")
            return FAILED
    if managed_by_resolved(path):
        _say(_resolved_advice(path, server, zone))
        return NOT_DONE
    try:
        text = read_text(path)
        new = add_block(text, server, zone, name)
    except FileNotFoundError:
        _say(f"{path} does not exist (glibc then asks 127.0.0.1 only); nothing changed")
        return FAILED
    except BlockError as exc:
        _say(f"{path}: {exc}; fix the file by hand (nothing changed)")
        return FAILED
    reasons = refusals(text)
    if reasons:
        _say(f"{path}: {reasons[0]} Nothing changed.")
        return NOT_DONE
    problems = [] if args.no_check else check_server(server, name)
    if problems:
        _say(f"{problems[0]}; {path} is unchanged")
        return FAILED
    if new == text:
        print(f"hostdns: {path} already asks the lab's DNS ({server}) first")
        _warn_about(text, name, args.hosts)
        return OK
    if not os.access(path, os.W_OK):
        _say(
            f"{path} is not writable here ({_why_not_writable()}); nothing changed. "
            f"To resolve {name or 'the lab zone'} through the lab's DNS, run as root (on a "
            "writable file):\n  "
            + sudo_command("on", server=server, zone=zone, name=name, resolv_conf=path)
        )
        return NOT_DONE
    try:
        rewrite(path, lambda old: add_block(old, server, zone, name))
    except (OSError, BlockError) as exc:
        _say(f"could not write {path}: {exc}; it is as it was")
        return FAILED
    print(
        f"hostdns: {path} asks the lab's DNS ({server}) first, for {zone or 'the lab zones'}; "
        "other names go on to the machine's nameservers (undo: hostdns off)"
    )
    _warn_about(text, name, args.hosts)
    if name and os.path.realpath(path) == os.path.realpath(RESOLV_CONF):
        expected = check_answer(server, name)
        if expected and not host_resolves(name, expected):
            _say(
                f"warning: this machine resolves {name} to {host_addresses(name) or 'nothing'}, "
                f"the lab's DNS to {list(expected)}"
            )
    return OK


def cmd_off(args: argparse.Namespace) -> int:
    path: Path = args.resolv_conf
    try:
        text = read_text(path)
        block = parse_block(text)
    except FileNotFoundError:
        print(f"hostdns: {path} does not exist; nothing to remove")
        return OK
    except BlockError as exc:
        _say(f"{path}: {exc}; fix the file by hand (nothing changed)")
        return FAILED
    if block is None:
        print(f"hostdns: {path} has no nmpi-infra block; nothing to remove")
        return OK
    if not os.access(path, os.W_OK):
        _say(
            f"{path} is not writable here ({_why_not_writable()}); the block that asks "
            f"the lab's DNS ({block.server}) first is still there. Remove it as root:\n  "
            + sudo_command("off", resolv_conf=path)
        )
        return NOT_DONE
    try:
        rewrite(path, remove_block)
    except (OSError, BlockError) as exc:
        _say(f"could not write {path}: {exc}; it is as it was")
        return FAILED
    print(f"hostdns: removed the nmpi-infra block (nameserver {block.server}) from {path}")
    return OK


def cmd_status(args: argparse.Namespace) -> int:
    path: Path = args.resolv_conf
    try:
        block = parse_block(read_text(path))
    except FileNotFoundError:
        block = None
    except BlockError as exc:
        _say(f"{path}: {exc}")
        return FAILED
    server = args.server or (block.server if block else None)
    name = args.name or (block.name if block else None)
    if server is None or name is None:
        try:
            lab_server, _, lab_name = _lab()
            server, name = server or lab_server, name or lab_name
        except Exception as exc:  # lab not deployed: say so, the block's state still counts
            print(f"lab: not readable ({exc})")
    if block is None:
        print(f"{path}: no nmpi-infra block (the lab's DNS is not asked)")
    else:
        where = "first" if block.first else "NOT first: another nameserver is asked before it"
        print(
            f"{path}: nmpi-infra block in place, nameserver {block.server} ({where}); "
            f"lab zone {block.zone or '?'}, public name {block.name or '?'}"
        )
    same = False
    if server and name:
        try:
            answer = ask(server, name)
            at_lab = f"{', '.join(answer.addresses) or answer.rcode} (TTL {answer.ttl} s)"
        except (dns.exception.DNSException, OSError) as exc:
            answer, at_lab = None, f"no answer ({exc or type(exc).__name__})"
        here = host_addresses(name)
        same = answer is not None and host_resolves(name, answer.addresses)
        print(f"{name} at the lab's DNS ({server}): {at_lab}")
        print(
            f"{name} through this machine's resolver: {', '.join(here) or 'does not resolve'}"
            f"{' (same)' if same else ' (DIFFERENT)' if here else ''}"
        )
    _warn_about(read_text(path) if path.exists() else "", name, args.hosts)
    pins = pinned(name, args.hosts) if name else []
    return OK if block is not None and block.first and same and not pins else FAILED


def _address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address: {value!r}") from None


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(
        prog="python -m nmpi_lab.hostdns",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Let this machine resolve the lab's public name through the lab's DNS server (the\n"
            "witness's authoritative BIND), so the name follows a failover from castor to jusuf.\n"
            "\n"
            "  on      put a marked block first in /etc/resolv.conf: `nameserver <witness>` and\n"
            "          `options timeout:1 attempts:2`. The witness answers the lab's zone and\n"
            "          REFUSES every other name, and glibc then asks the machine's own\n"
            "          nameservers: nothing else changes. Replaces an earlier block (the\n"
            "          witness's address may change between deployments). Checks first that\n"
            "          the server answers the public name and refuses outside names.\n"
            "  off     remove exactly that block (`make lab-down` does this first)\n"
            "  status  is the block there, which server, and does the public name resolve here\n"
            "          to what the lab's DNS says (exit 0 only then)"
        ),
        epilog=(
            "The server, zone and name come from the deployed lab (nmpi_lab.deployment)\n"
            "unless given. The file is rewritten in place (never renamed over: bind mounts and\n"
            "symlinks stay), never left half-written. systemd-resolved's resolv.conf is left\n"
            "alone: the resolvectl commands are printed instead.\n"
            "\n"
            "exit codes: 0 done or nothing to do; 1 failed, nothing changed; 3 not done on\n"
            "purpose (not root, systemd-resolved, options rotate), nothing changed, the command\n"
            "to run was printed.\n"
            "\n"
            "examples:\n"
            "  sudo .venv/bin/python -m nmpi_lab.hostdns on\n"
            "  .venv/bin/python -m nmpi_lab.hostdns status\n"
            "  python -m nmpi_lab.hostdns on --server 198.18.83.10 --name api.nmpi.lab.example"
            " \\\n      --resolv-conf /tmp/resolv.conf --no-check   # try it on a copy"
        ),
    )
    result.add_argument("action", choices=("on", "off", "status"), help="see above")
    result.add_argument(
        "--resolv-conf",
        type=Path,
        default=RESOLV_CONF,
        metavar="PATH",
        help=f"the file to change or read (default {RESOLV_CONF})",
    )
    result.add_argument(
        "--server",
        type=_address,
        metavar="IP",
        help="the lab's DNS server (default: the dns_server host's floating IP)",
    )
    result.add_argument("--zone", help="the lab's zone, for the block's comment")
    result.add_argument(
        "--name", help="the public name to check (default: the lab's, or the block's)"
    )
    result.add_argument(
        "--hosts",
        type=Path,
        default=HOSTS_FILE,
        metavar="PATH",
        help=f"the hosts file searched for lines that pin the name (default {HOSTS_FILE})",
    )
    result.add_argument(
        "--no-check",
        action="store_true",
        help="on: do not ask the server first (it must be authoritative-only)",
    )
    return result


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    command = {"on": cmd_on, "off": cmd_off, "status": cmd_status}[args.action]
    return command(args)


if __name__ == "__main__":
    sys.exit(main())
