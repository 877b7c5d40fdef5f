"""`hdp agent sudoers`: the exact rule for this install, or one line saying why not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hdp.agent.cli import sudoers_rule
from hdp.agent.install import agent_command, interpreter

HDP = str(Path(sys.executable).with_name("hdp"))


def _hdp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HDP, "agent", *args], capture_output=True, text=True, timeout=60,
                          check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="checks the install for another user: run as "
                    "root (an install you own is, rightly, refused)")
def test_the_rule_is_this_install_s_agent_command_and_nothing_else():
    done = _hdp("sudoers", "--user", "nobody")
    assert done.returncode == 0, done.stderr
    assert done.stdout == sudoers_rule("nobody") + "\n"
    assert done.stdout == f"nobody ALL=(root) NOPASSWD: {interpreter()} -I -m hdp.agent\n"
    assert agent_command() == [interpreter(), "-I", "-m", "hdp.agent"]


@pytest.mark.parametrize(("user", "says"), [
    ("root", "root starts agents without sudo"),
    ("no-such-user-hdp", "no user 'no-such-user-hdp'"),
])
def test_users_it_cannot_write_a_rule_for_get_one_line(user, says):
    done = _hdp("sudoers", "--user", user)
    assert done.returncode != 0 and done.stdout == ""
    assert says in done.stderr and done.stderr.count("\n") == 1, done.stderr
