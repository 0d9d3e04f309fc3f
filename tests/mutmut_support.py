"""Makes `mutmut run` see the mutants of the topic folders (imported only under mutmut: see conftest.py).

mutmut names a mutant after its file (`06_fcn/model.py` -> `06_fcn.model.x_build_model__mutmut_3`) and its trampolines
switch a mutant on only where the function's `__module__` equals that dotted path. Our topic folders start with digits,
so their modules are imported under other names: `topic_06_fcn_model` (tests/util.py `load`) or plain `model` (a
script's `from model import build_model`). Left alone, every mutant of those files would be reported "no tests" (stats
are keyed by `__module__` too) and could never be killed.

Fix: before any mutated module is imported, replace mutmut's trampoline decorator with one that gives the trampoline the
module name mutmut expects, derived from the function's file. The function callers see keeps its real `__module__`
(pickling, reprs), so behaviour outside the trampoline is unchanged. Written for mutmut 3.8.x (pinned in
tests/README.md); `common.*` modules already match and are left alone.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from mutmut.mutation import trampoline

ROOT = Path(__file__).resolve().parents[1]  # mutants/ while mutmut runs
_original_wrap = trampoline.wrap_in_trampoline


def mutmut_module_name(filename: str) -> str | None:
    """The module name mutmut gives `filename` (its path below the repository root, dotted), or None outside it."""
    try:
        relative = Path(filename).resolve().relative_to(ROOT)
    except ValueError:
        return None
    name = str(relative.with_suffix("")).replace(os.sep, ".")
    return name.removesuffix(".__init__")


class _RenamedMutants(dict):
    """A view of a module's mutants dict (filled after the decorator ran) whose original function reports `module`:
    the stats trampoline records `orig.__module__ + name`, and those keys must match the mutant names."""

    def __init__(self, mutants: dict, module: str) -> None:
        super().__init__()
        self._mutants, self._module = mutants, module

    def __getitem__(self, key):
        func = self._mutants[key]
        if key == "_mutmut_orig" and getattr(func, "__module__", self._module) != self._module:
            func.__module__ = self._module
        return func

    def get(self, key, default=None):
        return self._mutants.get(key, default)


def wrap_in_trampoline(mutants_dict, is_classmethod: bool = False):
    wrap = _original_wrap(mutants_dict, is_classmethod)

    def decorator(func):
        module = mutmut_module_name(func.__code__.co_filename)
        if module is None or module == func.__module__:
            return wrap(func)
        real_module = func.__module__
        func.__module__ = module  # the trampoline compares the active mutant's module with this
        wrapper = _original_wrap(_RenamedMutants(mutants_dict, module), is_classmethod)(func)
        wrapper.__module__ = real_module  # functools.wraps copied the name above; callers keep the real one
        return wrapper

    return decorator


trampoline.wrap_in_trampoline = wrap_in_trampoline

# While mutmut collects stats (which tests reach which function) the active "mutant" is "stats", and subprocesses the
# tests start (tests/test_03's scripts) would inherit it through the environment: their trampolines then call mutmut's
# config(), which needs pyproject.toml in the current directory and fails elsewhere (a copied folder in tmp_path).
# A subprocess cannot report stats anyway, so it runs the original code; this process keeps "stats" in mutmut's
# process-local copy, which the trampoline falls back to when the variable is unset. Mutant names still reach
# subprocesses, so a mutant of common/ is also switched on in a script the tests run.
if os.environ.get("MUTANT_UNDER_TEST") == "stats" and trampoline._mutant_under_test == "stats":
    del os.environ["MUTANT_UNDER_TEST"]


def pytest_sessionfinish(session) -> None:
    """Delete this session's tmp_path directories (a hook: conftest.py imports it under mutmut only).

    mutmut ends each mutant's pytest with os._exit, which skips the atexit cleanup that keeps only pytest's last 3
    basetemp directories, and the suite writes up to 2-3 GB of datasets and checkpoints per run: left alone, a run over
    a few hundred mutants fills the disk. A mutant stopped for time still leaves its directory (tests/README.md runs
    mutmut with its own TMPDIR for that)."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    basetemp = getattr(factory, "_basetemp", None)
    if basetemp is not None and getattr(factory, "_given_basetemp", None) is None:
        shutil.rmtree(basetemp, ignore_errors=True)
