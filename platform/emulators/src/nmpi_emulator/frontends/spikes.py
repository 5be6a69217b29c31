"""Spike rasters a browser can plot: ``<file>.spikes.json`` beside each neo file PyNN writes.

The Job Manager draws a raster from a job's spikes, but the files users' scripts write are neo
formats (a pickle, NIX/HDF5, ...) that a browser cannot read, and that the service must never
open (unpickling a user's file is running the user's code outside the sandbox). So the
front-ends, inside the job's own process, write a small JSON beside each neo file written
through PyNN, from the neo Block PyNN just handed to the file's IO.

Hook (``install``): every PyNN 0.13 way of writing recorded data ends in a neo IO's
``write_block``: ``Population.write_data``/``PopulationView.write_data`` and the files of
``record(..., to_file=...)`` written by ``end()`` all go through
``pyNN.recording.Recorder.write``; ``Assembly.write_data`` calls ``io.write`` itself. Both are
wrapped: the IO (a file name is turned into one by ``pyNN.recording.get_io``, as PyNN does) gets
a ``write_block`` of its own for the length of the call, which calls the real one and then writes
the JSON. Data written with neo directly (``PickleIO(...).write_block(pop.get_data())``) has no
JSON.

The document (format ``nmpi-spikes/1``, compact JSON)::

    {"format": "nmpi-spikes/1", "label": "<the population's or assembly's label>",
     "t_stop": 1000.0, "populations": [{"label": "exc", "spiketrains": [[1.5, 20.25], []]}],
     "truncated": false}

Times in ms rounded to 0.01 ms, one list per spike train (cell) in the file's order, grouped by
the population that recorded them (an Assembly's file has several). Only the last segment that
has spike trains (the last run since a ``reset()``); no JSON when there is none. At most
``MAX_SPIKETRAINS`` trains (the first ones) and ``MAX_SPIKES`` spikes (the earliest ones: the
raster is complete up to a time); ``truncated`` says whether anything was left out.

Writing the JSON never breaks the script: a failure is one line on stderr.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "nmpi-spikes/1"
SUFFIX = ".spikes.json"
MAX_SPIKES = 200_000
MAX_SPIKETRAINS = 10_000
_WRAPPED = "_nmpi_spikes_wrapped"


@functools.lru_cache(maxsize=16)
def _ms_per(unit: str) -> float:
    import quantities as pq  # type: ignore[import-untyped]

    return float(pq.Quantity(1.0, unit).rescale(pq.ms).magnitude)


def _milliseconds(quantity: Any) -> np.ndarray:
    """A quantity's values in ms (one conversion factor per unit: rescale() is slow per train)."""
    values: np.ndarray = np.asarray(quantity.magnitude, dtype=float)
    return values * _ms_per(quantity.dimensionality.string)


def raster(
    block: Any, *, max_spikes: int = MAX_SPIKES, max_spiketrains: int = MAX_SPIKETRAINS
) -> dict[str, Any] | None:
    """The ``nmpi-spikes/1`` document of a neo Block, or None if it has no spike trains."""
    segments = [s for s in block.segments if len(s.spiketrains) > 0]
    if not segments:
        return None
    trains = list(segments[-1].spiketrains)
    truncated = len(trains) > max_spiketrains
    trains = trains[:max_spiketrains]
    times = [np.sort(np.ravel(_milliseconds(t))) for t in trains]
    if sum(t.size for t in times) > max_spikes:
        truncated = True
        # The earliest max_spikes spikes at most: those before the (max_spikes+1)-th time.
        cutoff = np.partition(np.concatenate(times), max_spikes)[max_spikes]
        times = [t[t < cutoff] for t in times]
    label = str(block.name or block.annotations.get("label") or "")
    populations: dict[str, list[list[float]]] = {}
    for train, spikes in zip(trains, times, strict=True):
        source = train.annotations.get("source_population")
        population = str(source) if source is not None else label
        populations.setdefault(population, []).append(np.round(spikes, 2).tolist())
    t_stop = max(float(_milliseconds(t.t_stop)) for t in trains)
    return {
        "format": FORMAT,
        "label": label,
        "t_stop": round(t_stop, 2),
        "populations": [{"label": k, "spiketrains": v} for k, v in populations.items()],
        "truncated": truncated,
    }


def json_path(filename: str | os.PathLike[str]) -> Path:
    """Where the JSON of the neo file `filename` goes."""
    return Path(os.fsdecode(filename) + SUFFIX)


def write_beside(filename: str | os.PathLike[str], block: Any, **bounds: int) -> Path | None:
    """Write `block`'s raster beside `filename`; never raises (a failure: one line on stderr)."""
    path: Path | None = None
    try:
        path = json_path(filename)
        document = raster(block, **bounds)
        if document is None:
            return None
        text = json.dumps(document, separators=(",", ":"), allow_nan=False)
        # Created as the script's own files are (0666 less the umask: the outputs server reads
        # them through the group), under a temporary name, then renamed over the old one.
        tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path
    except Exception as err:  # whatever it is, the script goes on
        where = path if path is not None else filename
        message = " ".join(f"{type(err).__name__}: {err}".split())
        with contextlib.suppress(Exception):
            print(f"nmpi-emulator: spike raster {where} not written: {message}", file=sys.stderr)
        return None


@contextlib.contextmanager
def _watching(io: Any) -> Iterator[None]:
    """While inside: `io.write_block(block)` also writes the block's raster beside the file."""
    try:
        real = io.write_block
        own = vars(io).get("write_block")

        def write_block(block: Any, *args: Any, **kwargs: Any) -> Any:
            result = real(block, *args, **kwargs)
            filename = getattr(io, "filename", None)
            if isinstance(filename, str | os.PathLike):
                write_beside(filename, block)
            return result

        io.write_block = write_block
    except Exception:  # an IO we cannot watch is written as usual
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            if own is None:
                del io.write_block
            else:
                io.write_block = own


def _resolve(io: Any) -> Any:
    """A file name to the neo IO PyNN would make for it (the same call PyNN makes)."""
    if isinstance(io, str):
        from pyNN import recording  # type: ignore[import-untyped]

        return recording.get_io(io)
    return io


def _wrap_recorder_write(write: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(write)
    def wrapper(self: Any, variables: Any, file: Any = None, *args: Any, **kwargs: Any) -> Any:
        io = _resolve(file)
        target = io or self.file
        if target is None or isinstance(target, str):
            return write(self, variables, io, *args, **kwargs)
        with _watching(target):
            return write(self, variables, io, *args, **kwargs)

    setattr(wrapper, _WRAPPED, True)
    return wrapper


def _wrap_assembly_write_data(write_data: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(write_data)
    def wrapper(self: Any, io: Any, *args: Any, **kwargs: Any) -> Any:
        io = _resolve(io)
        with _watching(io):
            return write_data(self, io, *args, **kwargs)

    setattr(wrapper, _WRAPPED, True)
    return wrapper


def install() -> None:
    """Wrap PyNN's two writers (module docstring); once per process, whichever front-end."""
    from pyNN import recording
    from pyNN.common import populations  # type: ignore[import-untyped]

    if not getattr(recording.Recorder.write, _WRAPPED, False):
        recording.Recorder.write = _wrap_recorder_write(recording.Recorder.write)
    if not getattr(populations.Assembly.write_data, _WRAPPED, False):
        populations.Assembly.write_data = _wrap_assembly_write_data(populations.Assembly.write_data)
