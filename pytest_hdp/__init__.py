"""The pytest plugin of pytest-hdp; a thin layer over the `hdp` library.

The names tests use load on first use (`from pytest_hdp import ProbeTimeout`): importing
this package alone imports nothing else, pytest included (hdp.resources reads the
shipped conformance folder through it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_hdp.outcome import CheckFailed, MachineryError, QuirkGone
    from pytest_hdp.probes import Arrival, Listener, ProbeTimeout, Sent
    from pytest_hdp.results import HdpCheck, HdpResult

_HOME = {"Arrival": "probes", "Listener": "probes", "ProbeTimeout": "probes", "Sent": "probes",
         "CheckFailed": "outcome", "MachineryError": "outcome", "QuirkGone": "outcome",
         "HdpCheck": "results", "HdpResult": "results"}

__all__ = ["Arrival", "CheckFailed", "HdpCheck", "HdpResult", "Listener", "MachineryError",
           "ProbeTimeout", "QuirkGone", "Sent"]


def __getattr__(name: str) -> object:
    if name not in _HOME:
        raise AttributeError(f"module 'pytest_hdp' has no attribute {name!r}")
    return getattr(importlib.import_module(f"pytest_hdp.{_HOME[name]}"), name)
