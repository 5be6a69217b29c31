"""Repository-wide pytest hooks for every suite of testpaths (pyproject: -p tests.session_hooks).

Ansible refuses to start when stdin, stdout or stderr is non-blocking ("Ansible requires
blocking IO"). A child process that shares the test session's standard streams can leave
them non-blocking, e.g. an OpenSSH client killed by a timeout never restores the flag, and
every later ansible-playbook or molecule run would then fail. Tests start their children
with stdin=subprocess.DEVNULL; this hook is the safety net: it names the test that left a
stream non-blocking and restores it, so one test cannot fail the rest of the session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

STANDARD_STREAMS = {0: "stdin", 1: "stdout", 2: "stderr"}


def _non_blocking_streams() -> list[int]:
    found = []
    for fd in STANDARD_STREAMS:
        try:
            if not os.get_blocking(fd):
                found.append(fd)
        except OSError:  # closed
            continue
    return found


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    yield
    reporter = item.config.pluginmanager.get_plugin("terminalreporter")
    for fd in _non_blocking_streams():
        os.set_blocking(fd, True)
        if reporter is not None:
            reporter.write_line(
                f"WARNING: {item.nodeid} left {STANDARD_STREAMS[fd]} non-blocking (restored); "
                "start its child processes with stdin=subprocess.DEVNULL",
                yellow=True,
            )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses the local OpenStack must carry the mark "lab": scripts/run-tests
    (make test) runs them in one pytest process of their own (the process that started the lab
    stops it at its end, and two site.yml runs must never overlap), the rest in another.
    The chaos suite comes after every other test."""
    missing = [
        item.nodeid
        for item in items
        if "openstack_lab" in getattr(item, "fixturenames", ())
        and item.get_closest_marker("lab") is None
    ]
    if missing:
        raise pytest.UsageError(
            "tests using the openstack_lab fixture without pytest.mark.lab: "
            + ", ".join(missing[:5])
        )
    # The chaos suite runs last, on the deployment tests/lab made (and checked): deploy once.
    items.sort(key=lambda item: item.nodeid.startswith("tests/chaos/"))
