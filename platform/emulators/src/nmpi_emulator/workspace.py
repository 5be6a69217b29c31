"""The job's code into its (empty) folder: inline code, a .py URL, an archive URL or a git URL.

What `code` is taken to be, as the reference Demo provider (hbp-neuromorphic-client's
nmpi_saga.py) does, plus the .py URL:

- a URL whose path ends in .zip, .tar, .tar.gz, .tgz, .tar.bz2, .tbz2, .tar.xz or .txz: an archive,
  downloaded and unpacked. If its top level is a single folder (a GitHub "Download ZIP"), that
  folder's contents are moved up so that `run.py` is where the default command looks (the
  reference unpacks as is);
- the URL of an archive stored in the job queue itself (POST /code-archives/ answers its path),
  exactly `<queue URL's path>/code-archives/<sha256>.<zip|tar|tar.gz|tar.bz2|tar.xz>` on the
  queue's scheme, host and port, nothing more (no query, fragment or user): fetched from the
  queue with the site's provider key (x-api-key) and the queue's TLS trust (--ca-file), no
  redirect followed, no address check (the operator chose that host; in the lab it is a private
  address); its SHA-256 must be the one in its name; then unpacked as any other archive. The key
  goes nowhere else: the queue hands its archives to provider keys only, while every other URL,
  redirects included, is the user's to choose, and a key sent there would be theirs to reuse;
- a URL ending in .git, or starting with git+https:// (git+http://): a git repository, cloned
  shallow, without hooks, submodules or symlinks; its .git folder is removed after;
- a URL ending in .py: the script, saved under its own name and, if that is not run.py, also as
  run.py (the default command; the reference has no such case: it would write the URL as code);
- any other URL: refused (one line of URL is never Python; the reference tries git clone);
- anything else: Python source, written as run.py.

Downloads are capped in size and time; URLs (and redirects) to loopback, private or link-local
addresses are refused (but for the queue's own archives), so a job cannot read the site's
internal services through its code URL (a DNS answer that changes between the check and the
connection is not caught).
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from nmpi_emulator.errors import JobInputError
from nmpi_emulator.queue import tls_trust
from nmpi_emulator.sandbox import folder_size

MiB = 1 << 20
SCRIPT_NAME = "run.py"
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")  # never the start of a line of Python
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.py")
_CHUNK = 65536
# Below the queue URL's path: an archive stored in the queue (POST /code-archives/ answers it).
_QUEUE_ARCHIVE = re.compile(r"/code-archives/([0-9a-f]{64})\.(?:zip|tar|tar\.gz|tar\.bz2|tar\.xz)")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class InputLimits:
    max_download_bytes: int = 50 * MiB
    max_unpacked_bytes: int = 200 * MiB
    max_files: int = 10_000
    timeout_seconds: float = 60.0


@dataclass(frozen=True)
class QueueSource:
    """The job queue the site polls, for the code archives stored in it: its base URL (as
    --queue-url), the site's provider key and its QueueClient's `verify` (a CA file or a bool)."""

    base_url: str
    api_key: str = field(repr=False)  # never in a log line or a traceback
    verify: str | bool = True


def prepare(
    code: str,
    job_dir: Path,
    limits: InputLimits,
    *,
    git_protocols: str = "https:http",
    allow_private_hosts: bool = False,
    queue_source: QueueSource | None = None,
) -> str:
    """Fill the empty job_dir from `code`; returns one line for the job's log.

    git_protocols is git's GIT_ALLOW_PROTOCOL (tests add "file"); allow_private_hosts lets URLs
    reach loopback and private addresses (tests serve files on 127.0.0.1); queue_source is the
    job queue whose own archive URLs are fetched with its key (None: no URL is).
    """
    if any(job_dir.iterdir()):
        raise ValueError(f"{job_dir} is not empty")
    text = code.strip()
    if not text:
        raise JobInputError("code is empty: give Python source, or the URL of a script or archive")
    allowed = git_protocols.split(":")
    if _URL.match(text) and not any(char.isspace() for char in text):
        parts = urlsplit(text)
        path = parts.path.lower()
        scheme = parts.scheme.lower()
        if scheme.startswith("git+") or path.rstrip("/").endswith(".git"):
            transport = scheme.removeprefix("git+")
            if transport not in allowed:
                raise JobInputError(
                    f"code is the git URL {_shown(text)}, whose protocol {transport!r} is not"
                    f" allowed; use one of: {', '.join(allowed)}"
                )
            url = text[4:] if scheme.startswith("git+") else text
            return _clone(url, job_dir, limits, git_protocols, allow_private_hosts)
        if scheme in ("http", "https") and path.endswith(ARCHIVE_SUFFIXES):
            return _archive(text, job_dir, limits, allow_private_hosts, queue_source)
        if scheme in ("http", "https") and path.endswith(".py"):
            return _script(text, job_dir, limits, allow_private_hosts)
        raise JobInputError(
            f"code is the URL {_shown(text)}, which is not an http(s) URL of a .py file or an"
            f" archive ({', '.join(ARCHIVE_SUFFIXES)}), nor a git repository (ending in .git,"
            " or starting with git+https://)"
        )
    data = code.encode("utf-8", "surrogatepass")
    if len(data) > limits.max_download_bytes:
        raise JobInputError(
            f"the inline code is {len(data)} bytes; at most {limits.max_download_bytes}"
        )
    (job_dir / SCRIPT_NAME).write_bytes(data)
    return f"inline code ({len(data)} bytes) as {SCRIPT_NAME}"


def _script(url: str, job_dir: Path, limits: InputLimits, allow_private: bool) -> str:
    name = PurePosixPath(unquote(urlsplit(url).path)).name
    if not _SAFE_NAME.fullmatch(name):
        name = SCRIPT_NAME
    target = job_dir / name
    size = _download(url, target, limits, allow_private)
    saved = name
    if name != SCRIPT_NAME:
        shutil.copyfile(target, job_dir / SCRIPT_NAME)
        saved = f"{name} and {SCRIPT_NAME}"
    return f"script {_shown(url)} ({size} bytes) as {saved}"


def _archive(
    url: str, job_dir: Path, limits: InputLimits, allow_private: bool, queue: QueueSource | None
) -> str:
    path = urlsplit(url).path.lower()
    expected = _queue_archive_hash(url, queue)
    with tempfile.TemporaryDirectory(prefix="nmpi-download-") as scratch:
        archive = Path(scratch) / "archive"
        _download(url, archive, limits, allow_private, queue if expected else None)
        if expected:
            _check_sha256(archive, expected, url)
        staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=job_dir))
        try:
            if path.endswith(".zip"):
                count, size = _unzip(archive, staging, limits)
            else:
                count, size = _untar(archive, staging, limits)
            flattened = _move_up(staging, job_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    note = f", single top-level folder {flattened}/ moved up" if flattened else ""
    origin = " from the job queue, SHA-256 checked" if expected else ""
    return f"archive {_shown(url)}{origin} ({count} files, {size} bytes unpacked{note})"


def _queue_archive_hash(url: str, queue: QueueSource | None) -> str | None:
    """The SHA-256 in `url` if it is one of the queue's own archives, else None."""
    # A query, fragment or user part is never in a URL the queue hands out, and a backslash is
    # read as "/" by some URL parsers: whatever is not exactly the form gets no key.
    if queue is None or any(char in url for char in "?#@\\"):
        return None
    mine, theirs = urlsplit(url), urlsplit(queue.base_url)
    scheme = mine.scheme.lower()
    try:
        port = mine.port or _DEFAULT_PORTS.get(scheme)
        queue_port = theirs.port or _DEFAULT_PORTS.get(theirs.scheme.lower())
    except ValueError:  # not a port number
        return None
    if (
        scheme != theirs.scheme.lower()
        or mine.hostname is None
        or mine.hostname != theirs.hostname  # both lowercased by urlsplit
        or port != queue_port
        or ".." in mine.path.split("/")
    ):
        return None
    prefix = theirs.path.rstrip("/")
    if not mine.path.startswith(prefix):
        return None
    match = _QUEUE_ARCHIVE.fullmatch(mine.path[len(prefix) :])
    return match.group(1) if match else None


def _check_sha256(archive: Path, expected: str, url: str) -> None:
    with archive.open("rb") as file:
        actual = hashlib.file_digest(file, "sha256").hexdigest()
    if actual != expected:
        raise JobInputError(
            f"the code archive {_shown(url)} from the job queue has SHA-256 {actual}, not the"
            f" {expected} its name says: refused"
        )


def _clone(
    url: str, job_dir: Path, limits: InputLimits, protocols: str, allow_private: bool
) -> str:
    if urlsplit(url).scheme.lower() in ("http", "https"):
        _check_host(url, allow_private)
    with tempfile.TemporaryDirectory(prefix="nmpi-git-") as home:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": home,  # no user config
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_ALLOW_PROTOCOL": protocols,  # also for redirects and submodules
            "GIT_TERMINAL_PROMPT": "0",  # a private repository fails instead of waiting
            "GIT_LFS_SKIP_SMUDGE": "1",
        }
        for name in ("SSL_CERT_FILE", "SSL_CERT_DIR", "https_proxy", "http_proxy", "no_proxy"):
            if name in os.environ:
                env[name] = os.environ[name]
        # A fresh hidden name: no file of the repository can clash with it when moving up.
        target = Path(tempfile.mkdtemp(prefix=".clone-", dir=job_dir))
        command = [
            "git",
            "-c",
            "core.hooksPath=/dev/null",  # no code of the repository runs outside the sandbox
            "-c",
            "core.symlinks=false",  # links checked out as small files: none can point out
            "-c",
            "http.followRedirects=false",  # a redirect could lead to an internal address
            "clone",
            "--depth",
            "1",
            "--no-tags",
            "--single-branch",
            "--quiet",
            "--",
            url,
            str(target),
        ]
        error = _run_bounded(command, env, target, limits)
        if error:
            raise JobInputError(f"could not clone the git repository {_shown(url)}: {error}")
        commit = subprocess.run(
            ["git", "-C", str(target), "rev-parse", "--short=12", "HEAD"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout.strip()
    shutil.rmtree(target / ".git", ignore_errors=True)  # history: not the job's code
    count, size = _count(target)
    if count > limits.max_files or size > limits.max_unpacked_bytes:
        raise JobInputError(
            f"the git repository {_shown(url)} has {count} files, {size} bytes; at most"
            f" {limits.max_files} files, {limits.max_unpacked_bytes} bytes"
        )
    _move_up(target, job_dir, flatten=False)
    target.rmdir()
    return f"git repository {_shown(url)} at commit {commit or '?'} ({count} files)"


def _run_bounded(command: list[str], env: dict[str, str], target: Path, limits: InputLimits) -> str:
    """Run git with a deadline and a cap on what it writes; '' or what went wrong."""
    cap = limits.max_unpacked_bytes + limits.max_download_bytes  # checkout + pack
    deadline = time.monotonic() + limits.timeout_seconds
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,  # git-remote-https is a child: killed with it
        )
        problem = ""
        while process.poll() is None:
            if time.monotonic() > deadline:
                problem = f"it took longer than {limits.timeout_seconds:g} s"
            elif target.exists() and folder_size(target) > cap:
                problem = f"it is larger than {cap} bytes"
            if problem:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return problem
            time.sleep(0.2)
        if process.returncode != 0:
            stderr.seek(0)
            message = stderr.read(2000).decode("utf-8", "replace").strip()
            return message.splitlines()[-1] if message else f"git exited with {process.returncode}"
    return ""


def _download(
    url: str,
    target: Path,
    limits: InputLimits,
    allow_private: bool,
    queue: QueueSource | None = None,
) -> int:
    """Stream url to target, at most max_download_bytes within timeout_seconds. With `queue`
    (url is one of its archives): its key and TLS trust, no redirect, no address check."""
    cap = limits.max_download_bytes
    deadline = time.monotonic() + limits.timeout_seconds
    shown = _shown(url)

    def check(request: httpx.Request) -> None:  # each request, redirects included
        _check_host(str(request.url), allow_private)

    if queue is None:
        client = httpx.Client(
            # The system's CAs; OpenSSL's default paths honour SSL_CERT_FILE / SSL_CERT_DIR.
            verify=ssl.create_default_context(),
            timeout=limits.timeout_seconds,
            follow_redirects=True,
            max_redirects=5,
            event_hooks={"request": [check]},
        )
    else:
        client = httpx.Client(
            verify=tls_trust(queue.verify),
            timeout=limits.timeout_seconds,
            # identity: the bytes read (raw) are the ones the hash in the URL is of.
            headers={"x-api-key": queue.api_key, "Accept-Encoding": "identity"},
            # httpx would keep a custom header on a redirect to another host: none is followed.
            follow_redirects=False,
        )
    try:
        with client, client.stream("GET", url) as response:
            if response.status_code != 200:
                raise JobInputError(_http_refusal(shown, response.status_code, queue is not None))
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > cap:
                raise JobInputError(f"{shown} is {declared} bytes; at most {cap} allowed")
            size = 0
            with target.open("wb") as file:
                for chunk in response.iter_raw(_CHUNK):
                    size += len(chunk)
                    if size > cap:
                        raise JobInputError(f"{shown} is larger than {cap} bytes")
                    if time.monotonic() > deadline:
                        raise JobInputError(
                            f"downloading {shown} took longer than {limits.timeout_seconds:g} s"
                        )
                    file.write(chunk)
    except httpx.HTTPError as error:
        raise JobInputError(f"could not download {shown}: {error}") from None
    return size


def _http_refusal(shown: str, status: int, from_queue: bool) -> str:
    if not from_queue:
        return f"could not download {shown}: HTTP {status}"
    if status == 404:
        return (
            f"the code archive {shown} is not (or no longer) stored in the job queue (HTTP 404);"
            " upload it again"
        )
    if 300 <= status < 400:
        return (
            f"the job queue answered {shown} with a redirect (HTTP {status}): refused, its code"
            " archives are served directly"
        )
    return f"could not download {shown} from the job queue: HTTP {status}"


def _check_host(url: str, allow_private: bool) -> None:
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        raise JobInputError(f"the URL {_shown(url)} has no host")
    if allow_private:
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError) as error:
        raise JobInputError(f"cannot resolve the host of {_shown(url)}: {error}") from None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global:
            raise JobInputError(
                f"the URL {_shown(url)} points to a non-public address ({address}): refused"
            )


def _unzip(archive: Path, dest: Path, limits: InputLimits) -> tuple[int, int]:
    try:
        zipped = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as error:
        raise JobInputError(f"the code archive is not a valid zip file: {error}") from None
    count = size = 0
    with zipped:
        for info in zipped.infolist():
            count += 1
            _check_count(count, limits)
            target = _member_path(dest, info.filename)
            mode = info.external_attr >> 16  # Unix mode, if made on Unix; type bits optional
            if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise JobInputError(
                    f"the code archive holds {info.filename!r}, which is not a regular file or"
                    " folder (links and devices are refused)"
                )
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zipped.open(info) as source, target.open("wb") as sink:
                    size = _copy(source.read, sink.write, size, limits)
            except (zipfile.BadZipFile, OSError, EOFError) as error:
                raise JobInputError(f"the code archive is damaged: {error}") from None
            if mode & 0o111:
                target.chmod(0o755)
    return count, size


def _untar(archive: Path, dest: Path, limits: InputLimits) -> tuple[int, int]:
    count = size = 0
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:  # reads members as it goes: the limits hold before unpacking
                count += 1
                _check_count(count, limits)
                _member_path(dest, member.name)
                if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
                    raise JobInputError(
                        f"the code archive holds {member.name!r}, which is not a file, folder"
                        " or link (devices and fifos are refused)"
                    )
                size += member.size if member.isreg() else 0
                if size > limits.max_unpacked_bytes:
                    raise JobInputError(
                        f"the code archive unpacks to more than {limits.max_unpacked_bytes} bytes"
                    )
                _extract(tar, member, dest, limits)
    except (tarfile.TarError, OSError, EOFError) as error:
        raise JobInputError(f"the code archive is not a valid tar file: {error}") from None
    return count, size


def _extract(
    tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path, limits: InputLimits
) -> None:
    """Unpack one member as tarfile's "data" filter would (PEP 706), by hand: the emulator
    image's Python (Debian bookworm's 3.11.2) has no extraction filters, and one code path for
    every interpreter is what the tests then prove. Names are checked by _member_path (no
    absolute name, no '..', nothing that resolves out of dest through a link unpacked before);
    links must point inside dest; hard links become copies; modes are 644 or 755 (no set-uid);
    an existing entry is replaced, never written through."""
    target = _member_path(dest, member.name)
    if member.isdir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.is_file():
        target.unlink()
    if member.issym():
        link = PurePosixPath(member.linkname)
        inside = (target.parent / link).resolve().is_relative_to(dest.resolve())
        if link.is_absolute() or not inside:
            raise JobInputError(
                f"the code archive has an unsafe entry: {member.name!r} links to"
                f" {member.linkname!r}, outside its folder"
            )
        target.symlink_to(member.linkname)
        return
    if member.islnk():
        linked = (dest / member.linkname).resolve()
        if not linked.is_relative_to(dest.resolve()) or not linked.is_file():
            raise JobInputError(
                f"the code archive has an unsafe entry: {member.name!r} is a hard link to"
                f" {member.linkname!r}, which is not a file unpacked in its folder"
            )
        shutil.copyfile(linked, target)
        return
    extracted = tar.extractfile(member)
    if extracted is None:  # a regular member always has data; a broken archive may not
        raise JobInputError(f"the code archive's {member.name!r} cannot be read")
    with extracted as data, target.open("xb") as sink:
        _copy(data.read, sink.write, 0, limits)
    target.chmod(0o755 if member.mode & 0o111 else 0o644)


def _member_path(dest: Path, name: str) -> Path:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\x00" in name:
        raise JobInputError(f"the code archive holds {name!r}, outside its folder: refused")
    target = (dest / path).resolve()
    if not target.is_relative_to(dest.resolve()):
        raise JobInputError(f"the code archive holds {name!r}, outside its folder: refused")
    return target


def _check_count(count: int, limits: InputLimits) -> None:
    if count > limits.max_files:
        raise JobInputError(f"the code archive holds more than {limits.max_files} entries")


def _copy(
    read: Callable[[int], bytes], write: Callable[[bytes], object], size: int, limits: InputLimits
) -> int:
    while chunk := read(_CHUNK):
        size += len(chunk)
        if size > limits.max_unpacked_bytes:
            raise JobInputError(
                f"the code archive unpacks to more than {limits.max_unpacked_bytes} bytes"
            )
        write(chunk)
    return size


def _move_up(staging: Path, job_dir: Path, *, flatten: bool = True) -> str:
    """Move the unpacked files into job_dir; a single top-level folder's contents move up."""
    children = list(staging.iterdir())
    source = staging
    flattened = ""
    if flatten and len(children) == 1 and children[0].is_dir() and not children[0].is_symlink():
        source = children[0]
        flattened = children[0].name
    for child in source.iterdir():
        if child.name == staging.name:
            raise JobInputError(f"the code holds a folder named {child.name!r}: refused")
        child.rename(job_dir / child.name)
    return flattened


def _count(folder: Path) -> tuple[int, int]:
    count = size = 0
    for root, dirs, files in os.walk(folder):
        count += len(files) + len(dirs)
        for name in files:
            with contextlib.suppress(OSError):
                size += os.lstat(os.path.join(root, name)).st_size
    return count, size


def _shown(url: str) -> str:
    """The URL for the log, without credentials or query string (tokens often live there)."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
