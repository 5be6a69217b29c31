"""Helpers shared by the test suites: where the repository is and how to run its tools."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parent.parent
ROLES = REPO / "roles"


def read_images_env() -> dict[str, str]:
    """images/images.env as a dict: the one place image names and tags are kept."""
    env: dict[str, str] = {}
    for line in (REPO / "images" / "images.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    return env


def tool_env(**extra: str) -> dict[str, str]:
    """The environment the project's tools run in: the locked venv first on PATH, plain output."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_ROLES_PATH=str(ROLES),
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_NOCOLOR="1",
        NO_COLOR="1",
        PY_COLORS="0",
    )
    env.update(read_images_env())
    env.update(extra)
    return env


def run_playbook(
    playbook: str, tmp_path: Path, extra_vars: dict[str, object], *args: str
) -> subprocess.CompletedProcess[str]:
    """Run a playbook against localhost (local connection, this interpreter)."""
    play = tmp_path / "play.yml"
    play.write_text(playbook)
    varfile = tmp_path / "vars.json"
    varfile.write_text(json.dumps(extra_vars))
    return subprocess.run(
        [
            "ansible-playbook",
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "-e",
            f"@{varfile}",
            *args,
            str(play),
        ],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


# --- Role prechecks, many cases in one ansible-playbook run ---------------------------------
#
# Each case (a role and the variables it is given) becomes a host of its own in one inventory
# (local connection, this interpreter), with the case's variables as that host's variables; one
# play per role runs the role on its hosts with --tags precheck. Starting ansible-playbook,
# loading the roles and forking the workers is most of a precheck's time: paid once for all.
#
# - Every play also holds PRECHECK_SENTINEL, which leaves the play at once (meta: end_host) and
#   never fails: Ansible ends the whole run after a play in which every host failed.
# - Host variables lose to role vars/, task vars and set_fact, where the extra vars of a run of
#   one case win over everything: a case's variables must be none of those (roles' internal
#   variables are __-prefixed; tests/unit's cases were compared with runs of their own).
# - A case's host is named case-<n>; in its output that name reads "localhost", the host a run
#   of its own has (messages name the host).
# - The results are recorded per host by a callback (_CALLBACK below): each failed task's error
#   as the default callback prints it ([ERROR]: ..., shown even under no_log), then its result.
#   The default callback's own output, for every host at once, is kept as the run's output.

PRECHECK_SENTINEL = "precheck-sentinel"
# In a case's variables: replaced by a folder of that case's own (e.g. pki_ca_dir).
CASE_TMP = "@CASE_TMP@"
# ansible-playbook's exit codes when a host failed, and when one was unreachable.
RC_FAILED = 2
RC_UNREACHABLE = 4
# Result keys the default callback leaves out without -vvv (the error is shown on its own).
_HIDDEN_KEYS = frozenset({"invocation", "diff", "exception", "warnings", "deprecations"})

_CALLBACK = '''\
"""Every task result, per host, as a JSON line in $PRECHECK_RESULTS (tests/support.py)."""
import json
import os

from ansible.parsing.ajson import AnsibleJSONEncoder
from ansible.plugins.callback import CallbackBase

try:  # the text the default callback prints for an error or warning (ansible-core 2.19)
    from ansible._internal._display_utils import format_message
except ImportError:
    format_message = None


def _text(summary):
    if format_message is None:
        return str(getattr(getattr(summary, "event", None), "msg", summary))
    return format_message(summary, False)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "precheck_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._file = open(os.environ["PRECHECK_RESULTS"], "w", encoding="utf-8")

    def _write(self, record):
        self._file.write(json.dumps(record, cls=AnsibleJSONEncoder) + "\\n")
        self._file.flush()

    def _record(self, status, result, item=False):
        exception = getattr(result, "exception", None)
        self._write({
            "host": result._host.get_name(),
            "task": result._task.get_name(),
            "status": status,
            "item": item,
            "error": _text(exception) if exception else None,
            "warnings": [_text(w) for w in getattr(result, "warnings", ())],
            "deprecations": [_text(d) for d in getattr(result, "deprecations", ())],
            "result": result._result,
        })

    def v2_runner_on_ok(self, result):
        self._record("ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record("failed", result)

    def v2_runner_on_skipped(self, result):
        self._record("skipped", result)

    def v2_runner_on_unreachable(self, result):
        self._record("unreachable", result)

    def v2_runner_item_on_ok(self, result):
        self._record("ok", result, item=True)

    def v2_runner_item_on_failed(self, result):
        self._record("failed", result, item=True)

    def v2_runner_item_on_skipped(self, result):
        self._record("skipped", result, item=True)

    def v2_playbook_on_stats(self, stats):
        hosts = sorted(stats.processed)
        self._write({"stats": {host: stats.summarize(host) for host in hosts}})
        self._file.close()
'''


@dataclass(frozen=True)
class PrecheckCase:
    """A role and the variables (the inventory) its precheck is run with."""

    role: str
    variables_json: str

    @property
    def variables(self) -> dict[str, Any]:
        variables: dict[str, Any] = json.loads(self.variables_json)
        return variables


@dataclass(frozen=True)
class PrecheckResult:
    """A case's result: the exit code a run of its own would have, and what its host printed.

    output: each failed (or unreachable) task of the case's host: its name, its error and its
    result, as the default callback shows them. host_results: every result of the host, in
    full. run_output: the whole run's output. everything: the two, for what must never show.
    """

    rc: int
    output: str
    host_results: str
    run_output: str

    @property
    def everything(self) -> str:
        return f"{self.host_results}\n{self.run_output}"


# Every case declared so far, in order: a test module declares its cases when it is imported
# (collected), so that the first test to ask for a result runs them all in one go.
_PRECHECK_CASES: dict[PrecheckCase, None] = {}


def precheck_case(role: str, variables: Mapping[str, object]) -> PrecheckCase:
    """Declare (or find) the case `role` with `variables`; see PrecheckRunner."""
    case = PrecheckCase(role, json.dumps(variables, sort_keys=True))
    _PRECHECK_CASES.setdefault(case, None)
    return case


class PrecheckRunner:
    """Results of the declared cases: the first request runs all cases not yet run."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._results: dict[PrecheckCase, PrecheckResult] = {}
        self._runs = 0

    def __call__(self, case: PrecheckCase) -> tuple[int, str]:
        """The exit code and output of `case`, as a run of its own would give them."""
        result = self.result(case)
        return result.rc, result.output

    def result(self, case: PrecheckCase) -> PrecheckResult:
        if case not in self._results:
            _PRECHECK_CASES.setdefault(case, None)
            self.run_pending()
        return self._results[case]

    def run_pending(self) -> None:
        """Run every declared case not yet run, all in one go."""
        pending = [case for case in _PRECHECK_CASES if case not in self._results]
        if pending:
            self._runs += 1
            run_dir = self._workdir / f"run-{self._runs}"
            run_dir.mkdir()
            self._results.update(run_prechecks(pending, run_dir))


def _with_case_tmp(value: object, folder: Path) -> object:
    if isinstance(value, str):
        return value.replace(CASE_TMP, str(folder))
    if isinstance(value, list):
        return [_with_case_tmp(v, folder) for v in value]
    if isinstance(value, dict):
        return {k: _with_case_tmp(v, folder) for k, v in value.items()}
    return value


def _result_text(value: object, hidden: frozenset[str] = frozenset()) -> str:
    """A task result as text, strings as they are (no quoting or escaping, unlike JSON)."""
    return "\n".join(_result_lines(value, hidden, ""))


def _result_lines(value: object, hidden: frozenset[str], indent: str) -> list[str]:
    if isinstance(value, dict):
        items = [
            (f"{key}:", item)
            for key, item in value.items()
            if key not in hidden and not key.startswith("_ansible_")
        ]
    elif isinstance(value, list):
        items = [("-", item) for item in value]
    else:
        return [f"{indent}{value}"]
    lines = []
    for label, item in items:
        if isinstance(item, dict | list) and item:
            lines.append(f"{indent}{label}")
            lines += _result_lines(item, hidden, indent + "  ")
        else:
            lines.append(f"{indent}{label} {item}")
    return lines


def _shown(record: dict[str, Any], hidden: frozenset[str] = _HIDDEN_KEYS) -> str:
    """A result as the default callback shows a failed one: its error, warnings and result."""
    item = " (item)" if record["item"] else ""
    lines = [f"TASK [{record['task']}] {record['status']}{item}: [{record['host']}]"]
    lines += [f"[WARNING]: {text}" for text in record["warnings"]]
    lines += [f"[DEPRECATION WARNING]: {text}" for text in record["deprecations"]]
    if record["error"]:
        lines.append(f"[ERROR]: {record['error']}")
    lines.append(_result_text(record["result"], hidden))
    return "\n".join(lines)


def _as_localhost(text: str, host: str) -> str:
    """`text` with the host name `host` (not a part of a longer name) read as localhost."""
    return re.sub(rf"(?<![\w.-]){re.escape(host)}(?![\w-]|\.\w)", "localhost", text)


def run_prechecks(
    cases: Sequence[PrecheckCase], workdir: Path
) -> dict[PrecheckCase, PrecheckResult]:
    """Run the prechecks of `cases` in one ansible-playbook run (see the comment above).

    Should the run fail as a whole (no result for some case: an error that is no host's, e.g.
    a role Ansible cannot load), the roles are split in two halves, each run on its own, and so
    on; the cases of a role whose run fails as a whole too run alone, as one case always did:
    a broken role never fails the cases of the others, and its own fail as they would alone.
    """
    results = _run_batch(cases, workdir)
    if results is not None:
        return results
    roles = list(dict.fromkeys(case.role for case in cases))
    if len(roles) > 1:
        warnings.warn(
            f"the prechecks' run of {len(roles)} roles failed as a whole (see "
            f"{workdir / 'output.txt'}): run again in two halves",
            stacklevel=2,
        )
        results = {}
        for half, half_roles in enumerate((roles[: len(roles) // 2], roles[len(roles) // 2 :])):
            half_dir = workdir / f"half-{half}"
            half_dir.mkdir()
            half_cases = [case for case in cases if case.role in half_roles]
            results.update(run_prechecks(half_cases, half_dir))
        return results
    if len(cases) > 1:
        warnings.warn(
            f"the prechecks' run of the role {roles[0]} failed as a whole (see "
            f"{workdir / 'output.txt'}): each of its {len(cases)} cases runs alone",
            stacklevel=2,
        )
    alone = workdir / "alone"
    alone.mkdir()
    return {case: _precheck_alone(case, alone / f"case-{i:03d}") for i, case in enumerate(cases)}


def _run_batch(
    cases: Sequence[PrecheckCase], workdir: Path
) -> dict[PrecheckCase, PrecheckResult] | None:
    """The results of `cases` run together, or None when the run failed as a whole."""
    hosts = {f"case-{i:03d}": case for i, case in enumerate(cases)}
    members: dict[str, dict[str, object]] = {}
    for host, case in hosts.items():
        (workdir / host).mkdir()
        members.setdefault(case.role, {})[host] = _with_case_tmp(case.variables, workdir / host)
    groups = {
        f"precheck_{role}": {"hosts": {**role_hosts, PRECHECK_SENTINEL: None}}
        for role, role_hosts in members.items()
    }
    inventory = workdir / "inventory.yml"
    connection = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory.write_text(json.dumps({"all": {"vars": connection, "children": groups}}))
    sentinel = {
        "name": "The sentinel leaves the play",
        "ansible.builtin.meta": "end_host",
        "when": f"inventory_hostname == '{PRECHECK_SENTINEL}'",
        "tags": ["always"],
    }
    plays = [
        {
            "name": f"Precheck {role}",
            "hosts": f"precheck_{role}",
            "gather_facts": False,
            "pre_tasks": [sentinel],
            "roles": [{"role": role}],
        }
        for role in members
    ]
    playbook = workdir / "play.yml"
    playbook.write_text(json.dumps(plays))
    plugins = workdir / "callback_plugins"
    plugins.mkdir()
    (plugins / "precheck_results.py").write_text(_CALLBACK)
    records_file = workdir / "results.jsonl"
    run = subprocess.run(
        ["ansible-playbook", "-i", str(inventory), "--tags", "precheck", str(playbook)],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        env=tool_env(
            ANSIBLE_CALLBACK_PLUGINS=str(plugins),
            ANSIBLE_CALLBACKS_ENABLED="precheck_results",
            PRECHECK_RESULTS=str(records_file),
        ),
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    run_output = run.stdout + run.stderr
    (workdir / "output.txt").write_text(run_output)
    try:
        records = [json.loads(line) for line in records_file.read_text().splitlines()]
    except (OSError, ValueError):  # no results, or cut short
        return None
    stats: dict[str, dict[str, int]] = next((r["stats"] for r in records if "stats" in r), {})
    if run.returncode not in (0, RC_FAILED, RC_UNREACHABLE) or not set(hosts) <= set(stats):
        return None
    shown: dict[str, list[str]] = {host: [] for host in hosts}
    everything: dict[str, list[str]] = {host: [] for host in hosts}
    for record in records:
        host = record.get("host")
        if host in hosts:
            everything[host].append(_shown(record, hidden=frozenset()))
            if record["status"] in ("failed", "unreachable"):
                shown[host].append(_shown(record))
    results = {}
    for host, case in hosts.items():
        failed, unreachable = stats[host]["failures"], stats[host]["unreachable"]
        rc = RC_FAILED if failed else RC_UNREACHABLE if unreachable else 0
        output = _as_localhost("\n".join(shown[host]), host)
        results[case] = PrecheckResult(rc, output, "\n".join(everything[host]), run_output)
    return results


def _precheck_alone(case: PrecheckCase, folder: Path) -> PrecheckResult:
    """One case in a run of its own: the role on localhost, the variables as extra vars."""
    folder.mkdir()
    play = f"- hosts: localhost\n  gather_facts: false\n  roles:\n    - role: {case.role}\n"
    variables = _with_case_tmp(case.variables, folder)
    assert isinstance(variables, dict)
    run = run_playbook(play, folder, variables, "--tags", "precheck")
    output = run.stdout + run.stderr
    return PrecheckResult(run.returncode, output, "", output)


_T = TypeVar("_T")


def eventually(check: Callable[[], _T], timeout: float = 120.0, every: float = 5.0) -> _T:
    """The first truthy result of `check`, or its last result after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(every)
