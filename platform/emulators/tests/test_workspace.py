"""workspace.prepare: inline code, a .py URL, archives (and hostile ones), a git repository.

URLs are served by a local http.server on 127.0.0.1; the git repository is a local bare one
cloned over file:// (allowed for the test only).
"""

from __future__ import annotations

import functools
import io
import os
import subprocess
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from nmpi_emulator.errors import JobInputError
from nmpi_emulator.workspace import InputLimits, prepare

MiB = 1 << 20
LIMITS = InputLimits(max_download_bytes=MiB, max_unpacked_bytes=4 * MiB, max_files=50)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up on an oversized file: expected


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """(folder, base URL) of an http server on 127.0.0.1 for the folder's files."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
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


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
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
