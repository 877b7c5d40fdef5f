"""`hdp --help` and a bad command line load only the parser, not the machinery behind it.

Start-up time itself is measured in benchmarks/startup.py; this holds the import
structure that makes it fast, through the real command line, and checks that building
`hdp agent`'s parser only when it runs changes nothing a user sees.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hdp.cli import build_parser
from tests.cli.helpers import ROOT, hdp_env

# Modules a running command needs and `hdp --help` must not import.
HEAVY = ("hdp.rawsock", "hdp.verdict", "hdp.arrival", "hdp.wire.hdp", "hdp.agent.install",
         "hdp.engine", "hdp.sweep", "hdp.measure", "hdp.stats_report", "dataclasses",
         "socket")


def _imported_by(*args: str) -> set[str]:
    script = ("import sys\nfrom hdp.cli import main\ntry:\n    main(sys.argv[1:])\n"
              "except SystemExit:\n    pass\n"
              "sys.stderr.write('\\n' + __import__('json').dumps(sorted(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, env=hdp_env(),
                          capture_output=True, text=True, timeout=60, check=False)
    return set(json.loads(done.stderr.splitlines()[-1]))


@pytest.mark.parametrize("argv", [["--help"], ["sweep", "--help"], ["listen", "--help"],
                                  ["stats", "--help"], ["stats", "127.0.0.1", "--count", "0"],
                                  ["sweep"], ["nonsense"]], ids=" ".join)
def test_help_and_usage_errors_load_only_the_parser(argv):
    loaded = _imported_by(*argv)
    assert not loaded & set(HEAVY), f"hdp {' '.join(argv)} imported {loaded & set(HEAVY)}"


def test_agent_help_still_lists_its_commands():
    loaded = _imported_by("agent", "--help")
    assert "hdp.agent.cli" in loaded


def test_command_list_is_the_same_whichever_command_runs():
    full = build_parser().format_help()
    for command in ("", "listen", "send", "sweep", "report", "lab", "stats"):
        assert build_parser(command).format_help() == full, command
