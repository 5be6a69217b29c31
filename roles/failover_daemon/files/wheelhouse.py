"""Build (or describe) the wheelhouse nmpi-failover is installed from, on the controller.

    wheelhouse.py build PROJECT_DIR CACHE_DIR PYTHON_VERSION ARCH GLIBC_VERSION
    wheelhouse.py describe WHEELHOUSE_DIR

`build` makes CACHE_DIR/<key>/ holding requirements.txt (uv.lock's pins for nmpi-failover,
from `uv export --frozen`), a wheel for each of them for the target (CPython PYTHON_VERSION
on ARCH with glibc GLIBC_VERSION, manylinux wheels from the package index), the
nmpi-failover wheel itself (`uv build`) and SHA256SUMS. <key> hashes everything the result
depends on (uv.lock, the pyproject files, failover/src, this script, the target), so an
unchanged tree finds its wheelhouse and builds nothing. `describe` reports a prebuilt one.

Both print one JSON object: {"changed", "path", "id", "wheel", "files"}; `id` hashes the
wheelhouse's contents (the host reinstalls only when it changes). Standard library only:
the controller runs it with ansible's own Python.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGE = "nmpi-failover"
WHEEL_PREFIX = "nmpi_failover-"
SOURCES = ("pyproject.toml", "uv.lock", "failover/pyproject.toml")
SOURCE_TREE = "failover/src"
KEEP_BUILDS = 3


def fail(message: str) -> None:
    print(f"wheelhouse: {message}", file=sys.stderr)
    sys.exit(1)


def run(argv: list[str], cwd: Path) -> None:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        fail(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")


def find_uv(project: Path) -> str:
    """The uv on PATH, else the copy scripts/setup.sh keeps under .cache/tools."""
    uv = shutil.which("uv") or str(project / ".cache" / "tools" / "bin" / "uv")
    if not os.access(uv, os.X_OK):
        fail("uv not found on PATH nor in .cache/tools/bin (run make setup)")
    return uv


def source_key(project: Path, target: list[str]) -> str:
    digest = hashlib.sha256()
    digest.update(("target " + " ".join(target) + "\n").encode())
    digest.update(Path(__file__).read_bytes())
    files = [project / name for name in SOURCES]
    files += sorted(
        p
        for p in (project / SOURCE_TREE).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )
    for path in files:
        digest.update(f"{path.relative_to(project)}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).hexdigest().encode())
    return digest.hexdigest()[:20]


def platforms(arch: str, glibc: str) -> list[str]:
    """manylinux tags the target's glibc runs, newest first (pip does not expand them)."""
    major, _, minor = glibc.partition(".")
    if major != "2" or not minor.isdigit():
        fail(f"unexpected glibc version {glibc!r}")
    tags = [f"manylinux_2_{m}_{arch}" for m in range(int(minor), 4, -1)]
    return [*tags, f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]


def checksums(folder: Path) -> str:
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n"
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != "SHA256SUMS" and not p.name.startswith(".")
    ]
    return "".join(lines)


def describe(folder: Path, changed: bool) -> dict[str, object]:
    if not (folder / "requirements.txt").is_file():
        fail(f"{folder} has no requirements.txt")
    wheels = sorted(p.name for p in folder.glob(f"{WHEEL_PREFIX}*.whl"))
    if len(wheels) != 1:
        fail(f"{folder} must hold exactly one {WHEEL_PREFIX}*.whl, found {len(wheels)}")
    sums = checksums(folder)
    return {
        "changed": changed,
        "path": str(folder),
        "id": hashlib.sha256(sums.encode()).hexdigest(),
        "wheel": wheels[0],
        "files": sorted(p.name for p in folder.iterdir() if p.is_file()),
    }


def build(project: Path, cache: Path, python: str, arch: str, glibc: str) -> dict[str, object]:
    key = source_key(project, [python, arch, glibc])
    out = cache / key
    if (out / "SHA256SUMS").is_file():
        return describe(out, changed=False)
    cache.mkdir(parents=True, exist_ok=True)
    uv = find_uv(project)
    # pip from the controller's own Python (ensurepip): no download, same for every build.
    pip_venv = cache / "pip-venv"
    pip = pip_venv / "bin" / "pip"
    if not pip.exists():
        run([sys.executable, "-m", "venv", str(pip_venv)], project)
    with tempfile.TemporaryDirectory(prefix=".build-", dir=cache) as tmp:
        stage = Path(tmp) / "wheels"
        stage.mkdir()
        requirements = stage / "requirements.txt"
        export = ["export", "--frozen", "--package", PACKAGE, "--no-dev", "--no-emit-workspace"]
        run([uv, *export, "--no-hashes", "--quiet", "--output-file", str(requirements)], project)
        dist = Path(tmp) / "dist"
        uv_build = ["build", "--package", PACKAGE, "--wheel", "--quiet"]
        run([uv, *uv_build, "--out-dir", str(dist)], project)
        for wheel in dist.glob("*.whl"):
            shutil.move(wheel, stage / wheel.name)
        # --no-deps: the export is the complete, pinned set. Without --only-binary, a package
        # that has no wheel for the target comes as an sdist and is built below.
        download = [str(pip), "download", "--quiet", "--no-deps", "--prefer-binary"]
        download += [f"--platform={tag}" for tag in platforms(arch, glibc)]
        download += ["--implementation=cp", f"--python-version={python}"]
        download += [f"--abi=cp{python.replace('.', '')}", "--abi=abi3", "--abi=none"]
        run([*download, "--requirement", str(requirements), "--dest", str(stage)], project)
        for sdist in [*stage.glob("*.tar.gz"), *stage.glob("*.zip")]:
            wheel_cmd = [str(pip), "wheel", "--quiet", "--no-deps", "--wheel-dir", str(stage)]
            run([*wheel_cmd, str(sdist)], project)
            sdist.unlink()
        (stage / "SHA256SUMS").write_text(checksums(stage))
        try:
            stage.rename(out)
        except OSError:
            if not (out / "SHA256SUMS").is_file():  # not a concurrent build of the same key
                raise
    prune(cache, keep=KEEP_BUILDS)
    return describe(out, changed=True)


def prune(cache: Path, keep: int) -> None:
    """Drop all but the `keep` newest wheelhouses (each is a few tens of MB)."""
    builds = [p for p in cache.iterdir() if p.is_dir() and (p / "SHA256SUMS").is_file()]
    builds.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for old in builds[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def main(argv: list[str]) -> None:
    if len(argv) == 6 and argv[0] == "build":
        project, cache = Path(argv[1]).resolve(), Path(argv[2])
        result = build(project, cache, argv[3], argv[4], argv[5])
    elif len(argv) == 2 and argv[0] == "describe":
        result = describe(Path(argv[1]), changed=False)
    else:
        fail(__doc__ or "usage")
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
