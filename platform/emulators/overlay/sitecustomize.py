"""Make ``import pyNN.spiNNaker`` resolve to the emulator's front-end (see ../README.md).

The runner puts this folder first on a job's ``PYTHONPATH``; Python imports ``sitecustomize`` at
start-up. ``pyNN`` is a real installed package (whose own ``spiNNaker`` module needs sPyNNaker),
so a folder here cannot stand in for it: instead a meta-path finder answers for that one module
name, before the normal finders. Nothing is imported until a script asks for the module, so
other Python processes in the job pay nothing. ``pynn_brainscales`` is not installed anywhere,
so it is a plain package in this folder.

If another ``sitecustomize`` exists further along ``sys.path`` (Debian's system Python ships
one; a venv has none), it is run too, as this module shadows it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType

# Import name users write -> module of the emulator that serves it.
ALIASES = {"pyNN.spiNNaker": "nmpi_emulator.frontends.spinnaker"}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # a placeholder, replaced in exec_module

    def exec_module(self, module: ModuleType) -> None:
        # The import system returns whatever sys.modules holds after exec_module, so the alias
        # and the front-end are one module object (one state), with the front-end's own spec.
        sys.modules[module.__name__] = importlib.import_module(self.target)


class AliasFinder(importlib.abc.MetaPathFinder):
    """Finds the aliased module names and nothing else."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in ALIASES:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(ALIASES[fullname]))


def _install() -> None:
    if not any(isinstance(f, AliasFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, AliasFinder())


def _chain_shadowed_sitecustomize() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        if not entry or os.path.abspath(entry) == here:
            continue
        candidate = os.path.join(entry, "sitecustomize.py")
        if os.path.isfile(candidate):
            spec = importlib.util.spec_from_file_location("_shadowed_sitecustomize", candidate)
            if spec is None or spec.loader is None:
                return
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            try:
                spec.loader.exec_module(module)
            except Exception as err:  # as site.py does: a broken hook must not stop Python
                print(f"Error in {candidate}: {err!r}", file=sys.stderr)
            return


_install()
_chain_shadowed_sitecustomize()
