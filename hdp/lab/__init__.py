"""The network lab: real routers, NATs and firewalls in Linux network namespaces.

A topology (conformance/labs/NAME.yaml) becomes namespaces joined by veth links, with the
addresses of the plan in addresses.py, computed routes and real nftables rulesets, so path
tests run offline on one machine. See README.md beside this file.

The names below load on first use, so that `hdp --help` does not pay for YAML and the rest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from hdp.lab.errors import LabError

if TYPE_CHECKING:
    from hdp.lab.lab import Lab, reap_stale, start_lab, stop_all, stop_lab
    from hdp.lab.state import LabState, running_labs
    from hdp.lab.topology import HostSpec, LinkSpec, Topology, load_topology, topology_names

_HOME = {"Lab": "lab", "reap_stale": "lab", "start_lab": "lab", "stop_all": "lab",
         "stop_lab": "lab", "LabState": "state", "running_labs": "state",
         "HostSpec": "topology", "LinkSpec": "topology", "Topology": "topology",
         "load_topology": "topology", "topology_names": "topology"}

__all__ = ["HostSpec", "Lab", "LabError", "LabState", "LinkSpec", "Topology", "load_topology",
           "reap_stale", "running_labs", "start_lab", "stop_all", "stop_lab", "topology_names"]


def __getattr__(name: str) -> object:
    if name not in _HOME:
        raise AttributeError(f"module 'hdp.lab' has no attribute {name!r}")
    return getattr(importlib.import_module(f"hdp.lab.{_HOME[name]}"), name)
