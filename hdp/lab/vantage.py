"""Vantage points: a Python, and so an xdist worker, started inside a host of a running lab.

`hdp lab python HOST ARGS...` runs `ip netns exec <HOST's namespace> python ARGS...`, which is
what execnet's `--tx popen//python=...` needs: execnet splits that value like a shell and
appends `-u -c <bootstrap>`. The lab is the one the pytest controller brought up for the
session (it exports HDP_LAB_TOKEN before xdist starts its workers), or the only lab that
is running. The worker finds out which host it is in from the namespace it is in.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from hdp.agent.install import InstallError, interpreter, survey
from hdp.lab import netns
from hdp.lab.errors import LabError
from hdp.lab.state import running_labs

LAB_TOKEN_ENV = "HDP_LAB_TOKEN"  # set by a pytest controller that brought a lab up
_SWITCH = re.compile(r"lan[0-9]+")  # a link's switch namespace, not a host


def resolve_host(spec: str, environ: Mapping[str, str]) -> tuple[str, str, str]:
    """`HOST`, `LAB/HOST` or `TOKEN/HOST` -> (token, host, namespace); LabError naming the
    input and the fix when no running lab has that host."""
    prefix, _, host = spec.rpartition("/")
    if not host:
        raise LabError(f"{spec!r} names no host: give HOST, LAB/HOST or TOKEN/HOST")
    labs = [lab for lab in running_labs() if lab.alive]
    if prefix and netns.LAB_NAMESPACE.fullmatch(f"hdp-{prefix}-x"):
        token = prefix
    elif environ.get(LAB_TOKEN_ENV):
        token = environ[LAB_TOKEN_ENV]
        if prefix and not any(lab.token == token and lab.topology == prefix for lab in labs):
            raise LabError(f"{spec!r}: the session's lab ({LAB_TOKEN_ENV}={token}) is not a "
                           f"{prefix} lab: give that lab's name to --hdp-lab, or the token")
    else:
        chosen = [lab for lab in labs if not prefix or lab.topology == prefix]
        if len(chosen) != 1:
            which = f"{prefix} lab" if prefix else "lab"
            if not chosen:
                raise LabError(f"{spec!r}: no {which} is running: run pytest with --hdp-lab "
                               "NAME (its workers find the lab), or `hdp lab up NAME` first")
            tokens = ", ".join(lab.token for lab in chosen)
            raise LabError(f"{spec!r}: several {which}s are running ({tokens}): give "
                           "TOKEN/HOST")
        token = chosen[0].token
    present = [name for name in netns.lab_namespaces(token)
               if not _SWITCH.fullmatch(name.split("-", 2)[2])]
    namespace = f"hdp-{token}-{host}"
    if namespace not in present:
        if not present:
            raise LabError(f"{spec!r}: no lab {token} is running: bring it up with pytest "
                           "--hdp-lab NAME or `hdp lab up NAME`")
        hosts = sorted(name.split("-", 2)[2] for name in present)
        raise LabError(f"{spec!r}: lab {token} has no host {host!r}: give one of "
                       f"{', '.join(hosts)}")
    return token, host, namespace


def python_command(namespace: str, args: list[str]) -> list[str]:
    """This Python, isolated (-I: no PYTHONPATH, no working directory on sys.path), inside
    `namespace`: it imports the installed hdp and pytest_hdp, and nothing planted."""
    return ["ip", "netns", "exec", namespace, interpreter(), "-I", *args]


def exec_python(spec: str, args: list[str]) -> None:
    """Replace this process with Python inside the lab host `spec`; returns only on error."""
    _, _, namespace = resolve_host(spec, os.environ)
    try:
        survey()  # a bare checkout: say so here, not in an xdist worker that never starts
    except InstallError as exc:
        raise LabError(str(exc)) from None
    command = python_command(namespace, args)
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        raise LabError(f"cannot run ip ({exc.strerror}): apt-get install -y iproute2") from None
