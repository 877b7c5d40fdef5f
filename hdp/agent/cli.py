"""`hdp agent sudoers [--user NAME]`: the one sudoers rule an unprivileged user needs."""

from __future__ import annotations

import argparse
import os
import pwd
import re
from typing import Any, TextIO

from hdp.agent import install
from hdp.errors import UsageError

# Characters sudoers reads as syntax inside a command line; a backslash makes them literal.
_SUDOERS_SPECIAL = re.compile(r"([\\,:=])")


def add_agent_parser(commands: Any) -> argparse.ArgumentParser:
    """Add `hdp agent` to the `hdp` subcommands (`commands` from add_subparsers)."""
    agent: argparse.ArgumentParser = commands.add_parser(
        "agent", help="the privileged agent: how to let a user start it through sudo",
        description="The agent owns raw sockets for an unprivileged pytest or hdp; see "
                    "README 'Security model'.")
    actions = agent.add_subparsers(dest="agent_command", required=True,
                                   parser_class=type(agent))
    sudoers = actions.add_parser(
        "sudoers", help="print the sudoers rule that lets USER start this install's agent",
        description="Print the exact sudoers rule (this interpreter, these arguments, no "
                    "wildcards) that lets USER start the agent with sudo -n, after checking "
                    "that USER cannot change the code it runs as root. Install it with: "
                    "hdp agent sudoers --user USER | sudo tee /etc/sudoers.d/hdp-agent")
    sudoers.add_argument("--user", metavar="NAME",
                         help="the user to allow (default: $SUDO_USER, else you)")
    return agent


def command_agent(args: Any, stdout: TextIO) -> int:
    if args.agent_command == "sudoers":
        name = args.user or os.environ.get("SUDO_USER") or pwd.getpwuid(os.getuid()).pw_name
        stdout.write(sudoers_rule(name) + "\n")
    return 0


def sudoers_rule(user: str) -> str:
    """`USER ALL=(root) NOPASSWD: <agent command>`; InstallError when USER could change
    what it runs, UsageError when sudoers cannot name this interpreter exactly."""
    uid, gids = install.user_ids(user)
    name = pwd.getpwuid(uid).pw_name
    if uid == 0:
        raise UsageError("root starts agents without sudo: give --user NAME of the user "
                         "who runs pytest or hdp unprivileged")
    install.check_root_install(uid, gids, f"user {name}")
    command = install.agent_command()
    if any(c.isspace() for c in command[0]):
        raise UsageError(f"the interpreter path {command[0]!r} has white space, which a "
                         "sudoers rule cannot match exactly: install into a path without it")
    if not re.fullmatch(r"[a-z_][a-z0-9_.-]*\$?", name):
        raise UsageError(f"user name {name!r} needs quoting in sudoers: give a plain name")
    words = " ".join(_SUDOERS_SPECIAL.sub(r"\\\1", word) for word in command)
    return f"{name} ALL=(root) NOPASSWD: {words}"
