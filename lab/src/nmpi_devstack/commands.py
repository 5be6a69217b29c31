"""One-shot commands of the lab (schema syncs, manage commands): output kept in a log file."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from nmpi_lab.processes import tail

from .supervisor import LabError


def run(
    argv: Sequence[str | Path],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 900.0,
    ok_codes: tuple[int, ...] = (0,),
    what: str = "",
    input_text: str | None = None,
    cwd: Path | None = None,
) -> str:
    """Run a command, appending its output to `log`; return stdout. Fails with the log's tail."""
    args = [str(x) for x in argv]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n===== {time.strftime('%H:%M:%S')} $ {' '.join(args)}\n".encode())
        out.flush()
        try:
            proc = subprocess.run(
                args,
                input=input_text.encode() if input_text is not None else None,
                stdin=None if input_text is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=out,
                env=dict(env) if env is not None else None,
                timeout=timeout,
                check=False,
                cwd=cwd,
            )
        except subprocess.TimeoutExpired as e:
            raise LabError(
                f"{what or args[0]}: timed out after {timeout:.0f} s\n  log: {log}"
            ) from e
        except FileNotFoundError as e:
            raise LabError(f"{what or args[0]}: {e}") from e
        out.write(proc.stdout)
    if proc.returncode not in ok_codes:
        lines = "\n".join("    " + line for line in tail(log).splitlines())
        raise LabError(
            f"{what or ' '.join(args)}: exit code {proc.returncode}\n  log: {log}\n"
            f"  last lines:\n{lines}"
        )
    return proc.stdout.decode(errors="replace")
