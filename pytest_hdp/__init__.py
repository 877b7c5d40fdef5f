"""The pytest plugin of pytest-hdp; a thin layer over the `hdp` library.

The names tests use load on first use (`from pytest_hdp import ProbeTimeout`): importing
this package alone imports nothing else, pytest included (hdp.resources reads the
shipped conformance folder through it).
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_hdp.outcome import CheckFailed, MachineryError, QuirkGone
    from pytest_hdp.probes import Arrival, Listener, ProbeTimeout, Sent
    from pytest_hdp.results import HdpCheck, HdpResult

_HOME = {"Arrival": "probes", "Listener": "probes", "ProbeTimeout": "probes", "Sent": "probes",
         "CheckFailed": "outcome", "MachineryError": "outcome", "QuirkGone": "outcome",
         "HdpCheck": "results", "HdpResult": "results"}


def _leave_unrewritten(*packages: str) -> None:
    """Take `packages` off pytest's list of modules whose asserts it rewrites.

    pytest rewrites every top-level package of a plugin's distribution, so each hdp
    module a test run loads was parsed and compiled again in every process (about 0.4 s
    a process) wherever pytest cannot keep its rewritten bytecode: a read-only install,
    PYTHONDONTWRITEBYTECODE. Neither package asserts anything a test reads. Runs before
    pytest loads either (this package's own import comes first); if pytest's internals
    move, the modules are merely rewritten again."""
    for finder in sys.meta_path:
        marked = getattr(finder, "_must_rewrite", None)  # pytest's AssertionRewritingHook
        if isinstance(marked, set):
            marked.difference_update(packages)


_leave_unrewritten("hdp", "pytest_hdp")

__all__ = ["Arrival", "CheckFailed", "HdpCheck", "HdpResult", "Listener", "MachineryError",
           "ProbeTimeout", "QuirkGone", "Sent"]


def __getattr__(name: str) -> object:
    if name not in _HOME:
        raise AttributeError(f"module 'pytest_hdp' has no attribute {name!r}")
    return getattr(importlib.import_module(f"pytest_hdp.{_HOME[name]}"), name)
