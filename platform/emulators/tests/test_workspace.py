"""workspace.prepare: inline code, a .py URL, archives (and hostile ones), a git repository,
archives stored in the job queue.

URLs are served by a local http.server on 127.0.0.1; the git repository is a local bare one
cloned over file:// (allowed for the test only); the queue's stored archives by ArchiveServer.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import hashlib
import io
import lzma
import os
import subprocess
import tarfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from emulator_testkit import ArchiveServer
from nmpi_emulator.errors import JobInputError
from nmpi_emulator.workspace import InputLimits, QueueSource, _queue_archive_hash, prepare

MiB = 1 << 20
LIMITS = InputLimits(max_download_bytes=MiB, max_unpacked_bytes=4 * MiB, max_files=50)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up on an oversized file: expected


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def served(tmp_path: Path, no_proxy: None) -> Iterator[tuple[Path, str]]:
    """(folder, base URL) of an http server on 127.0.0.1 for the folder's files."""
    root = tmp_path / "served"
    root.mkdir()
    server = _Server(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "job"
    folder.mkdir()
    return folder


def fill(code: str, job_dir: Path, limits: InputLimits = LIMITS, **options: Any) -> str:
    return prepare(code, job_dir, limits, allow_private_hosts=True, **options)


def listing(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def tar_gz(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in entries:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


def member(
    name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "", mode: int | None = None
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = mode if mode is not None else 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info


def test_inline_code_is_written_as_run_py(job_dir: Path) -> None:
    code = "import pyNN.spiNNaker as sim\nsim.setup()\n"
    assert fill(code, job_dir) == f"inline code ({len(code)} bytes) as run.py"
    assert (job_dir / "run.py").read_text() == code


@pytest.mark.parametrize("code", ["", "  \n\t"])
def test_empty_code_is_refused(job_dir: Path, code: str) -> None:
    with pytest.raises(JobInputError, match="code is empty"):
        fill(code, job_dir)


def test_a_folder_that_is_not_empty_is_a_bug(job_dir: Path) -> None:
    (job_dir / "left.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        fill("print(1)", job_dir)


def test_a_script_url_is_saved_under_its_name_and_as_run_py(
    served: tuple[Path, str], job_dir: Path
) -> None:
    root, base = served
    (root / "model.py").write_text("print('model')\n")
    description = fill(f"{base}/model.py?token=secret", job_dir)
    assert description == f"script {base}/model.py (15 bytes) as model.py and run.py"
    assert (job_dir / "run.py").read_text() == (job_dir / "model.py").read_text()


def test_a_zip_with_one_top_folder_is_moved_up(served: tuple[Path, str], job_dir: Path) -> None:
    root, base = served
    with zipfile.ZipFile(root / "code.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("repo-main/run.py", "print(1)\n")
        archive.writestr("repo-main/lib/helpers.py", "X = 1\n")
        archive.writestr("repo-main/lib/", "")
    description = fill(f"{base}/code.zip", job_dir)
    assert description.startswith(f"archive {base}/code.zip (3 files")
    assert "single top-level folder repo-main/ moved up" in description
    assert listing(job_dir) == ["lib", "lib/helpers.py", "run.py"]


def test_a_tar_gz_unpacks_as_is(served: tuple[Path, str], job_dir: Path) -> None:
    root, base = served
    (root / "code.tgz").write_bytes(
        tar_gz(
            [
                (member("run.py"), b"print(1)\n"),
                (member("data", tarfile.DIRTYPE), b""),
                (member("data/in.txt"), b"1 2 3\n"),
                (member("data/link.txt", tarfile.SYMTYPE, "in.txt"), b""),
            ]
        )
    )
    fill(f"{base}/code.tgz", job_dir)
    assert listing(job_dir) == ["data", "data/in.txt", "data/link.txt", "run.py"]
    assert (job_dir / "data" / "link.txt").read_text() == "1 2 3\n"


def test_tar_unpacks_on_a_python_without_extraction_filters(
    served: tuple[Path, str], job_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The image's Python (Debian bookworm's 3.11.2) lacks PEP 706's filters: a tar archive
    once failed there with "module 'tarfile' has no attribute 'FilterError'" while these tests
    passed on a newer 3.11. Without them, the same archive unpacks the same way."""
    for name in ("data_filter", "FilterError", "AbsolutePathError", "OutsideDestinationError"):
        monkeypatch.delattr(tarfile, name, raising=False)
    root, base = served
    (root / "code.tar.gz").write_bytes(
        tar_gz(
            [
                (member("run.py", mode=0o4755), b"print(1)\n"),
                (member("data", tarfile.DIRTYPE), b""),
                (member("data/in.txt"), b"1 2 3\n"),
                (member("data/link.txt", tarfile.SYMTYPE, "in.txt"), b""),
                (member("data/copy.txt", tarfile.LNKTYPE, "data/in.txt"), b""),
            ]
        )
    )
    fill(f"{base}/code.tar.gz", job_dir)
    assert listing(job_dir) == ["data", "data/copy.txt", "data/in.txt", "data/link.txt", "run.py"]
    assert (job_dir / "data" / "link.txt").read_text() == "1 2 3\n"
    assert not (job_dir / "data" / "copy.txt").is_symlink()
    assert (job_dir / "data" / "copy.txt").read_text() == "1 2 3\n"
    assert (job_dir / "run.py").stat().st_mode & 0o7777 == 0o755  # set-uid dropped


def test_zip_slip_is_refused(served: tuple[Path, str], job_dir: Path, tmp_path: Path) -> None:
    root, base = served
    with zipfile.ZipFile(root / "slip.zip", "w") as archive:
        archive.writestr("run.py", "print(1)\n")
        archive.writestr("../../evil.py", "print('owned')\n")
    with pytest.raises(JobInputError, match=r"'\.\./\.\./evil\.py', outside its folder"):
        fill(f"{base}/slip.zip", job_dir)
    assert not (tmp_path / "evil.py").exists()
    assert listing(job_dir) == []


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (member("link", tarfile.SYMTYPE, "/etc/passwd"), "unsafe entry"),
        (member("link", tarfile.SYMTYPE, "../../outside"), "unsafe entry"),
        (member("hard", tarfile.LNKTYPE, "/etc/passwd"), "unsafe entry"),
        (member("/etc/cron.d/job"), "outside its folder"),
        (member("dev", tarfile.CHRTYPE), "devices and fifos are refused"),
        (member("pipe", tarfile.FIFOTYPE), "devices and fifos are refused"),
    ],
)
def test_hostile_tar_entries_are_refused(
    served: tuple[Path, str], job_dir: Path, entry: tarfile.TarInfo, expected: str
) -> None:
    root, base = served
    (root / "bad.tar.gz").write_bytes(tar_gz([(member("run.py"), b"print(1)\n"), (entry, b"")]))
    with pytest.raises(JobInputError, match=expected):
        fill(f"{base}/bad.tar.gz", job_dir)


def test_a_link_followed_by_a_write_through_it_is_refused(
    served: tuple[Path, str], job_dir: Path, tmp_path: Path
) -> None:
    root, base = served
    (tmp_path / "target").mkdir()
    entries = [
        (member("escape", tarfile.SYMTYPE, str(tmp_path / "target")), b""),
        (member("escape/planted.py"), b"print('owned')\n"),
    ]
    (root / "chain.tar.gz").write_bytes(tar_gz(entries))
    with pytest.raises(JobInputError):
        fill(f"{base}/chain.tar.gz", job_dir)
    assert not (tmp_path / "target" / "planted.py").exists()


def test_an_oversized_download_is_refused(served: tuple[Path, str], job_dir: Path) -> None:
    root, base = served
    (root / "big.zip").write_bytes(os.urandom(2 * MiB))
    with pytest.raises(JobInputError, match=f"at most {MiB} allowed"):
        fill(f"{base}/big.zip", job_dir)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_a_decompression_bomb_is_stopped(
    served: tuple[Path, str], job_dir: Path, kind: str
) -> None:
    root, base = served
    zeros = bytes(32 * MiB)  # compresses to ~32 kB, unpacks past the 4 MiB limit
    if kind == "zip":
        with zipfile.ZipFile(root / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("run.py", "print(1)\n")
            archive.writestr("zeros.bin", zeros)
    else:
        (root / "bomb.tar.gz").write_bytes(tar_gz([(member("zeros.bin"), zeros)]))
    assert (root / f"bomb.{kind}").stat().st_size < MiB
    with pytest.raises(JobInputError, match="unpacks to more than 4194304 bytes"):
        fill(f"{base}/bomb.{kind}", job_dir)
    assert sum(path.stat().st_size for path in job_dir.rglob("*") if path.is_file()) <= 4 * MiB


def test_too_many_files_are_refused(served: tuple[Path, str], job_dir: Path) -> None:
    root, base = served
    with zipfile.ZipFile(root / "many.zip", "w") as archive:
        for index in range(51):
            archive.writestr(f"f{index}.txt", "")
    with pytest.raises(JobInputError, match="more than 50 entries"):
        fill(f"{base}/many.zip", job_dir)


def test_a_damaged_archive_is_refused(served: tuple[Path, str], job_dir: Path) -> None:
    root, base = served
    (root / "broken.zip").write_bytes(b"not a zip")
    with pytest.raises(JobInputError, match="not a valid zip"):
        fill(f"{base}/broken.zip", job_dir)


def test_http_errors_are_reported(served: tuple[Path, str], job_dir: Path) -> None:
    _, base = served
    with pytest.raises(JobInputError, match=f"could not download {base}/missing.py: HTTP 404"):
        fill(f"{base}/missing.py", job_dir)


def test_private_addresses_are_refused_by_default(served: tuple[Path, str], job_dir: Path) -> None:
    root, base = served
    (root / "run.py").write_text("print(1)\n")
    with pytest.raises(JobInputError, match=r"non-public address \(127\.0\.0\.1\)"):
        prepare(f"{base}/run.py", job_dir, LIMITS)


def test_another_url_is_refused(job_dir: Path) -> None:
    with pytest.raises(JobInputError, match="not an http"):
        fill("https://example.org/notebook.ipynb", job_dir)


@pytest.fixture
def bare_repository(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    (work / "run.py").write_text("print('from git')\n")
    (work / "pkg").mkdir()
    (work / "pkg" / "mod.py").write_text("X = 1\n")
    os.symlink("/etc/passwd", work / "passwd")
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    for command in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "."],
        ["git", "commit", "-q", "-m", "code"],
        ["git", "clone", "-q", "--bare", ".", str(tmp_path / "repo.git")],
    ):
        subprocess.run(command, cwd=work, env=env, check=True)
    return tmp_path / "repo.git"


def test_a_git_repository_is_cloned_without_history_or_links(
    bare_repository: Path, job_dir: Path
) -> None:
    description = fill(f"file://{bare_repository}", job_dir, git_protocols="file")
    assert description.startswith(f"git repository file://{bare_repository} at commit ")
    assert description.endswith("(4 files)")
    assert listing(job_dir) == ["passwd", "pkg", "pkg/mod.py", "run.py"]
    assert not (job_dir / "passwd").is_symlink()
    assert (job_dir / "passwd").read_text() == "/etc/passwd"


def test_git_plus_scheme(bare_repository: Path, job_dir: Path) -> None:
    fill(f"git+file://{bare_repository}", job_dir, git_protocols="file")
    assert (job_dir / "run.py").read_text() == "print('from git')\n"


def test_git_protocols_are_restricted(bare_repository: Path, job_dir: Path) -> None:
    with pytest.raises(JobInputError, match="protocol 'file' is not allowed"):
        fill(f"file://{bare_repository}", job_dir)


def test_a_git_repository_too_large_is_refused(bare_repository: Path, job_dir: Path) -> None:
    limits = InputLimits(max_files=2)
    with pytest.raises(JobInputError, match="at most 2 files"):
        fill(f"file://{bare_repository}", job_dir, limits, git_protocols="file")


def test_a_missing_git_repository_is_reported(tmp_path: Path, job_dir: Path) -> None:
    with pytest.raises(JobInputError, match="could not clone"):
        fill(f"file://{tmp_path}/none.git", job_dir, git_protocols="file")


# -- archives stored in the job queue (POST /code-archives/) -----------------------------------

KEY = "the-provider-key"
RUN = b"print('from the queue')\n"


@pytest.fixture
def queue(no_proxy: None) -> Iterator[ArchiveServer]:
    """The job queue's /code-archives/, under the queue URL's path /api."""
    with ArchiveServer() as server:
        yield server


@pytest.fixture
def elsewhere(no_proxy: None) -> Iterator[ArchiveServer]:
    """Another server: same host as `queue`, another port."""
    with ArchiveServer() as server:
        yield server


def source(queue: ArchiveServer) -> QueueSource:
    return QueueSource(f"{queue.url}/api/", KEY)  # its trailing slash is not part of the path


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "tar": bytes,
    "tar.gz": gzip.compress,
    "tar.bz2": bz2.compress,
    "tar.xz": lzma.compress,
}


def archive_of(fmt: str, run: bytes = RUN) -> bytes:
    """An archive of the format the queue names (`fmt`) holding run.py."""
    buffer = io.BytesIO()
    if fmt == "zip":
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("run.py", run)
        return buffer.getvalue()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = member("run.py")
        info.size = len(run)
        tar.addfile(info, io.BytesIO(run))
    return COMPRESSORS[fmt](buffer.getvalue())


def store(server: ArchiveServer, data: bytes, fmt: str = "tar.gz", sha: str = "") -> str:
    """Store `data` as the queue does an upload (served to KEY only); its path."""
    path = f"/api/code-archives/{sha or hashlib.sha256(data).hexdigest()}.{fmt}"
    server.files[path] = data
    server.keyed[path] = KEY
    return path


@pytest.mark.parametrize("fmt", ["zip", "tar", "tar.gz", "tar.bz2", "tar.xz"])
def test_the_queues_own_archive_is_fetched_with_its_key(
    queue: ArchiveServer, job_dir: Path, fmt: str
) -> None:
    path = store(queue, archive_of(fmt), fmt)
    # No allow_private_hosts: the queue's host is the operator's, private or not.
    description = prepare(queue.url + path, job_dir, LIMITS, queue_source=source(queue))
    assert description.startswith(f"archive {queue.url}{path} from the job queue, SHA-256 checked")
    assert queue.requests == [(path, KEY)]
    assert (job_dir / "run.py").read_bytes() == RUN


def test_an_archive_on_another_port_does_not_get_the_key(
    queue: ArchiveServer, elsewhere: ArchiveServer, job_dir: Path
) -> None:
    data = archive_of("tar.gz")
    path = f"/api/code-archives/{hashlib.sha256(data).hexdigest()}.tar.gz"
    elsewhere.files[path] = data
    with pytest.raises(JobInputError, match="non-public address"):
        prepare(elsewhere.url + path, job_dir, LIMITS, queue_source=source(queue))
    description = fill(elsewhere.url + path, job_dir, queue_source=source(queue))
    assert "from the job queue" not in description
    assert elsewhere.requests == [(path, None)]
    assert queue.requests == []


@pytest.mark.parametrize(
    ("shape", "sent"),
    [
        pytest.param("/api/code-archives/{short}.tar.gz", None, id="hash-too-short"),
        pytest.param("/api/code-archives/{upper}.tar.gz", None, id="hash-in-capitals"),
        pytest.param("/api/code-archives/x/{sha}.tar.gz", None, id="extra-segment"),
        pytest.param("/api/code-archives/{sha}.tgz", None, id="not-a-queue-format"),
        pytest.param("/code-archives/{sha}.tar.gz", None, id="outside-the-queue-path"),
        pytest.param("/api/code-archives/{sha}.tar.gz?download=1", None, id="query"),
        pytest.param(
            "/api/code-archives/{sha}.tar.gz#top", "/api/code-archives/{sha}.tar.gz", id="fragment"
        ),
    ],
)
def test_a_lookalike_path_is_an_ordinary_url(
    queue: ArchiveServer, job_dir: Path, shape: str, sent: str | None
) -> None:
    data = archive_of("tar.gz")
    sha = hashlib.sha256(data).hexdigest()
    names = {"sha": sha, "short": sha[:63], "upper": sha.upper()}
    path = shape.format(**names)
    served = (sent or shape).format(**names)
    queue.files[served] = data  # served to anyone, as any web server would
    with pytest.raises(JobInputError, match="non-public address"):
        prepare(queue.url + path, job_dir, LIMITS, queue_source=source(queue))
    description = fill(queue.url + path, job_dir, queue_source=source(queue))
    assert "from the job queue" not in description
    assert queue.requests == [(served, None)]


@pytest.mark.parametrize(
    ("url", "own"),
    [
        ("https://queue.example.org/code-archives/{sha}.zip", True),
        ("https://QUEUE.Example.ORG:443/code-archives/{sha}.tar.xz", True),
        ("https://queue.example.org:8443/code-archives/{sha}.zip", False),
        ("http://queue.example.org/code-archives/{sha}.zip", False),
        ("http://queue.example.org:443/code-archives/{sha}.zip", False),
        ("https://other.example.org/code-archives/{sha}.zip", False),
        ("https://queue.example.org.evil.example/code-archives/{sha}.zip", False),
        ("https://user@queue.example.org/code-archives/{sha}.zip", False),
        ("https://queue.example.org/x/../code-archives/{sha}.zip", False),
        ("https://queue.example.org\\@other.example/code-archives/{sha}.zip", False),
        ("https://queue.example.org/code-archives/{sha}.zip/", False),
        ("https://queue.example.org/code-archives/{sha}.zip?", False),
        ("https://queue.example.org/code-archives/{sha}.rar", False),
        ("https://queue.example.org/code-archives/{sha}0.zip", False),
        ("https://queue.example.org:notaport/code-archives/{sha}.zip", False),
    ],
)
def test_what_is_the_queues_own_archive(url: str, own: bool) -> None:
    sha = "0123456789abcdef" * 4
    found = _queue_archive_hash(url.format(sha=sha), QueueSource("https://queue.example.org", KEY))
    assert found == (sha if own else None)


def test_a_queue_under_a_path_owns_only_that_path() -> None:
    sha = "f" * 64
    queue = QueueSource("http://127.0.0.1:8000/api/", KEY)
    assert _queue_archive_hash(f"http://127.0.0.1:8000/api/code-archives/{sha}.tar", queue) == sha
    assert _queue_archive_hash(f"http://localhost:8000/api/code-archives/{sha}.tar", queue) is None
    assert _queue_archive_hash(f"http://127.0.0.1:8000/apix/code-archives/{sha}.tar", queue) is None
    assert _queue_archive_hash(f"http://127.0.0.1:8000/code-archives/{sha}.tar", queue) is None
    assert _queue_archive_hash(f"http://127.0.0.1:8000/api/code-archives/{sha}.tar", None) is None


def test_an_archive_whose_hash_does_not_match_is_refused(
    queue: ArchiveServer, job_dir: Path
) -> None:
    named = "0" * 64
    path = store(queue, archive_of("tar.gz"), sha=named)
    actual = hashlib.sha256(queue.files[path]).hexdigest()
    with pytest.raises(JobInputError, match=f"has SHA-256 {actual}, not the {named} its name says"):
        prepare(queue.url + path, job_dir, LIMITS, queue_source=source(queue))
    assert queue.requests == [(path, KEY)]
    assert listing(job_dir) == []


def test_an_archive_the_queue_does_not_hold_is_reported(
    queue: ArchiveServer, job_dir: Path
) -> None:
    path = store(queue, archive_of("zip"), "zip")
    missing = f"/api/code-archives/{'e' * 64}.zip"
    expected = r"is not \(or no longer\) stored in the job queue \(HTTP 404\)"
    with pytest.raises(JobInputError, match=f"code archive {queue.url}{missing} {expected}"):
        prepare(queue.url + missing, job_dir, LIMITS, queue_source=source(queue))
    # Answered 404 too without a valid provider key (the queue's contract).
    wrong = QueueSource(f"{queue.url}/api", "not-the-key")
    with pytest.raises(JobInputError, match=expected):
        prepare(queue.url + path, job_dir, LIMITS, queue_source=wrong)
    assert queue.requests == [(missing, KEY), (path, "not-the-key")]


def test_a_redirect_from_the_queue_is_refused(
    queue: ArchiveServer, elsewhere: ArchiveServer, job_dir: Path
) -> None:
    data = archive_of("zip")
    path = store(queue, data, "zip")
    elsewhere.files[path] = data
    queue.redirects[path] = elsewhere.url + path
    with pytest.raises(JobInputError, match=r"answered .* with a redirect \(HTTP 302\): refused"):
        prepare(queue.url + path, job_dir, LIMITS, queue_source=source(queue))
    assert elsewhere.requests == []  # the key went nowhere else


def test_the_key_is_not_shown(queue: ArchiveServer) -> None:
    assert KEY not in repr(source(queue))
