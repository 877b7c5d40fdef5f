"""`hdp lab` through command_lab, with the argparse parser the CLI mounts."""

from __future__ import annotations

import argparse
import io
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from hdp.errors import UsageError
from hdp.lab import LabError, running_labs, stop_lab
from hdp.lab.cli import add_lab_parser, command_lab
from tests.lab.conftest import lab_namespaces, requires_lab
from tests.lab.test_topology import BUILT_IN


def hdp_lab(*argv: str) -> str:
    parser = argparse.ArgumentParser(prog="hdp")
    add_lab_parser(parser.add_subparsers(dest="command", required=True))
    out = io.StringIO()
    assert command_lab(parser.parse_args(["lab", *argv]), out) == 0
    return out.getvalue()


def test_list_shows_every_topology_with_its_description() -> None:
    text = hdp_lab("list")
    assert text.startswith("topologies:\n")
    for name in BUILT_IN:
        assert re.search(rf"^  {re.escape(name)} +\S", text, re.M), name
    assert "running labs" in text


def test_down_needs_a_name_or_all() -> None:
    with pytest.raises(UsageError, match="give a lab NAME or TOKEN, or --all"):
        hdp_lab("down")


def test_the_parser_refuses_an_unknown_action() -> None:
    with pytest.raises(SystemExit):
        hdp_lab("sideways")


@requires_lab
def test_up_keeps_the_lab_until_down_by_token() -> None:
    text = hdp_lab("up", "routed")
    token = re.search(r"token ([0-9a-f]{6})", text)
    assert token, text
    try:
        for address in ("198.18.1.1/24", "fd68:6470:0:1::1/64", "198.18.2.2/24",
                        f"namespace hdp-{token[1]}-router", f"netns:hdp-{token[1]}-client"):
            assert address in text
        recorded = [s for s in running_labs() if s.token == token[1]]
        assert recorded and recorded[0].kept and recorded[0].owner == 0
        listed = hdp_lab("list")
        assert re.search(rf"{token[1]}  routed +kept", listed), listed
        assert hdp_lab("down", token[1]) == (
            f"removed 3 namespaces: hdp-{token[1]}-client hdp-{token[1]}-router "
            f"hdp-{token[1]}-server\n")
    finally:
        if any(s.token == token[1] for s in running_labs()):
            stop_lab(token[1])
    assert not [n for n in lab_namespaces() if token[1] in n]


@requires_lab
def test_up_says_how_each_lossy_link_loses_packets() -> None:
    text = hdp_lab("up", "lossy", "--loss-by", "nftables")
    token = re.search(r"token ([0-9a-f]{6})", text)
    assert token, text
    try:
        assert "eth1 198.18.2.1/24 fd68:6470:0:2::1/64 (link 2 to server, loss 5%)" in text
        assert ("note: link 2 (router-server): loss 5% by nftables (as asked): each end drops "
                "what arrives from the link when numgen random mod 100 < 5") in text
    finally:
        stop_lab(token[1])


def test_up_refuses_an_unknown_way_to_lose_packets(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        hdp_lab("up", "lossy", "--loss-by", "magic")
    assert "invalid choice: 'magic'" in capsys.readouterr().err


@requires_lab
def test_down_by_name_removes_the_kept_labs_of_that_topology() -> None:
    text = hdp_lab("up", "nat")
    token = re.search(r"token ([0-9a-f]{6})", text)
    assert token and f"switches: hdp-{token[1]}-lan1" in text
    assert hdp_lab("down", "nat").startswith("removed 5 namespaces: ")
    # Nothing kept is left; a nat lab another test process owns (xdist) is not ours to stop.
    with pytest.raises(LabError, match=r"no running lab 'nat'|belongs to a running process"):
        hdp_lab("down", "nat")


@requires_lab
def test_down_all(sole_lab_user: None) -> None:
    hdp_lab("up", "direct")
    assert hdp_lab("down", "--all").startswith("removed 2 namespaces: ")
    assert hdp_lab("down", "--all") == "removed 0 namespaces\n"


@requires_lab
def test_up_of_an_unknown_lab_is_one_line() -> None:
    with pytest.raises(LabError, match="unknown lab 'nope'"):
        hdp_lab("up", "nope")


@requires_lab
def test_down_by_name_leaves_labs_of_other_sessions_unless_all(tmp_path: Path) -> None:
    """A lab kept from another login session (another engineer's shell) is not this
    session's to remove by name; --all with the name removes it."""
    name = f"solo-{secrets.token_hex(3)}"  # a topology no other test or person uses
    path = tmp_path / f"{name}.yaml"
    path.write_text("hosts: {a: {}, b: {}}\nlinks: [{ends: [a, b]}]\n")
    code = ("import sys; from hdp.lab import start_lab; "
            "print(start_lab(sys.argv[1], keep=True).token)")
    child = subprocess.run(["setsid", sys.executable, "-c", code, str(path)],
                           capture_output=True, text=True, timeout=60, check=False)
    token = child.stdout.strip()
    assert child.returncode == 0 and len(token) == 6, child.stderr
    try:
        (record,) = [s for s in running_labs() if s.token == token]
        assert record.kept and not record.brought_up_here and record.session is not None
        assert f"(brought up by {record.who})" in hdp_lab("list")
        with pytest.raises(LabError, match=rf"lab {name}: none of its labs is this session's "
                                           rf"to remove \({token} was brought up by uid "):
            hdp_lab("down", name)
        assert set(record.namespaces) <= lab_namespaces()
        assert hdp_lab("down", name, "--all").startswith("removed 2 namespaces: ")
        assert not set(record.namespaces) & lab_namespaces()
    finally:
        if any(s.token == token for s in running_labs()):
            stop_lab(token)
