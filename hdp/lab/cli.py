"""`hdp lab list | up NAME | down NAME|TOKEN | down --all`: labs from the command line."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any, TextIO

from hdp.errors import UsageError

if TYPE_CHECKING:
    from hdp.lab.lab import Lab


DOWN_EPILOG = """\
examples:
  sudo hdp lab down 3fa2b1          the lab of that token, whoever brought it up
  sudo hdp lab down nat             the nat labs this user brought up in this session
  sudo hdp lab down nat --all       every nat lab
  sudo hdp lab down --all           every lab, also those of crashed runs (others' too!)
"""


def add_lab_parser(commands: Any) -> argparse.ArgumentParser:
    """Add `hdp lab` to the `hdp` subcommands (`commands` from add_subparsers)."""
    lab: argparse.ArgumentParser = commands.add_parser(
        "lab", help="bring network labs (routers, NAT, firewalls in namespaces) up and down",
        description="Real middleboxes in Linux network namespaces (as root): the topologies "
                    "pytest-hdp ships, those in the folders of HDP_LABS, or a .yaml path; "
                    "addresses from 198.18.0.0/15 and fd68:6470::/32.")
    actions = lab.add_subparsers(dest="lab_command", required=True, parser_class=type(lab))
    actions.add_parser("list", help="the topologies, then the labs that are up")
    up = actions.add_parser("up", help="bring a topology up and leave it up",
                            description="Bring a topology up, print its namespaces and "
                                        "addresses, and keep it until hdp lab down.")
    up.add_argument("name", metavar="NAME", help="a topology name or a .yaml file")
    up.add_argument("--loss-by", choices=("auto", "netem", "nftables"), default="auto",
                    help="how links with loss: drop packets: netem where the kernel has "
                    "sch_netem, else nftables rules (auto, the default), or either one")
    down = actions.add_parser(
        "down", help="take labs down",
        description="Remove a lab by token; by topology name, the labs of that topology "
                    "this user brought up in this session (kept with hdp lab up, or left by "
                    "a run that died); with --all, every lab of the topology, or with no "
                    "name every lab namespace, whoever left it.",
        epilog=DOWN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    down.add_argument("name", nargs="?", metavar="NAME|TOKEN", help="a topology name or token")
    down.add_argument("--all", action="store_true",
                      help="with NAME: every lab of that topology, whoever brought it up; "
                      "alone: every lab (hdp-<token>-*), also those of crashed runs")
    python = actions.add_parser(
        "python", help="run Python inside a lab host (an xdist worker's vantage point)",
        description="Run this Python inside HOST's namespace of a running lab: the lab the "
                    "pytest controller brought up ($HDP_LAB_TOKEN), or the only one up. "
                    "For pytest-xdist: --tx 'popen//python=hdp lab python HOST'.")
    python.add_argument("host", metavar="[LAB/|TOKEN/]HOST", help="a host of the lab")
    python.add_argument("args", nargs=argparse.REMAINDER, help="arguments for Python")
    return lab


def command_lab(args: Any, stdout: TextIO) -> int:
    from hdp.lab.lab import start_lab, stop_all, stop_lab  # not needed to build the parser

    if args.lab_command == "list":
        _list(stdout)
    elif args.lab_command == "up":
        lab = start_lab(args.name, keep=True, loss_by=args.loss_by)
        describe(lab, stdout)
    elif args.lab_command == "python":
        from hdp.lab.vantage import exec_python

        exec_python(args.host, args.args)
    elif args.lab_command == "down":
        if not args.all and not args.name:
            raise UsageError("give a lab NAME or TOKEN, or --all")
        removed = stop_all() if args.all and not args.name else \
            stop_lab(args.name, everyone=args.all)
        print(f"removed {len(removed)} namespace{'s' if len(removed) != 1 else ''}"
              f"{': ' + ' '.join(removed) if removed else ''}", file=stdout)
    else:
        raise UsageError(f"unknown lab command {args.lab_command!r}: give list, up or down")
    return 0


def _list(stdout: TextIO) -> None:
    from hdp.lab.errors import LabError
    from hdp.lab.state import running_labs
    from hdp.lab.topology import load_topology, topology_names

    print("topologies:", file=stdout)
    for name in topology_names():
        try:
            description = load_topology(name).description
        except LabError as exc:
            description = f"(broken: {exc})"
        print(f"  {name:<16} {description}", file=stdout)
    labs = running_labs()
    print("running labs:" if labs else "running labs: none", file=stdout)
    for lab in labs:
        owner = "kept" if lab.kept else f"pid {lab.owner}" + ("" if lab.alive else " (gone)")
        age = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(lab.created))
        state = "up" if lab.alive else "stale: hdp lab down --all removes it"
        who = "this session" if lab.brought_up_here else lab.who
        print(f"  {lab.token}  {lab.topology:<16} {owner:<16} since {age}  {state}  "
              f"(brought up by {who})", file=stdout)


def describe(lab: Lab, stdout: TextIO) -> None:
    """The token, every namespace and every host's addresses."""
    topology = lab.topology
    print(f"lab {topology.name} is up: token {lab.token}; remove it with "
          f"`hdp lab down {lab.token}`", file=stdout)
    for host, spec in topology.hosts.items():
        print(f"  {host} ({spec.role}): namespace {lab.namespace(host)}, "
              f"agent {lab.agent(host)}", file=stdout)
        for interface, link, addresses in lab.interfaces(host):
            spec_link = topology.links[link - 1]
            peers = ", ".join(end for end in spec_link.ends if end != host)
            shaped = "".join(f", {key} {value}" for key, value in (
                ("mtu", spec_link.mtu), ("delay", spec_link.delay), ("loss", spec_link.loss))
                if value is not None)
            print(f"    {interface} {' '.join(addresses)} (link {link} to {peers}{shaped})",
                  file=stdout)
    extra = [name for name in lab.namespaces
             if name not in {lab.namespace(h) for h in topology.hosts}]
    if extra:
        print(f"  switches: {' '.join(extra)}", file=stdout)
    for note in lab.notes:
        print(f"  note: {note}", file=stdout)
