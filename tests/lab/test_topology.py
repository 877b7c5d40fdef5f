"""Topologies, the address plan and routing, without building anything (no root needed)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hdp
from hdp.lab import Lab, LabError, addresses, load_topology, topology_names
from hdp.lab.routing import Route, routes, shortest_path
from hdp.lab.topology import Topology, TopologyProblem, parse_topology

SHIPPED = Path(hdp.__file__).resolve().parents[1] / "conformance" / "labs"
BUILT_IN = sorted(path.stem for path in SHIPPED.glob("*.yaml"))


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_the_built_ins_are_there_and_load() -> None:
    assert {"direct", "routed", "nat", "firewall-drop", "firewall-reject", "first-packet",
            "lossy", "mtu-1280", "mtu-576"} <= set(BUILT_IN)
    assert set(BUILT_IN) <= set(topology_names())
    for name in BUILT_IN:
        topology = load_topology(name)
        assert topology.name == name and topology.description
        assert topology.clients and topology.servers


def test_roles_and_links_of_the_nat_topology() -> None:
    nat = load_topology("nat")
    assert nat.clients == ("client1", "client2") and nat.routers == ("router",)
    assert nat.links[0].ends == ("router", "client1", "client2")
    assert nat.interface("router", 2) == "eth1" and nat.position("client2", 1) == 3
    assert nat.ipv6 and "masquerade" in nat.nftables["router"]
    assert not load_topology("mtu-576").ipv6
    assert load_topology("mtu-1280").links[1].mtu == 1280


def test_address_plan() -> None:
    assert addresses.subnet(1, 4) == "198.18.1.0/24"
    assert addresses.subnet(12, 6) == "fd68:6470:0:12::/64"
    assert addresses.host_address(2, 3, 4) == "198.18.2.3"
    assert addresses.host_address(2, 3, 6) == "fd68:6470:0:2::3"
    assert addresses.interface_address(255, 254, 4) == "198.18.255.254/24"
    assert addresses.in_plan("198.19.255.1") and addresses.in_plan("fd68:6470:0:1::1")
    assert not addresses.in_plan("192.168.1.1") and not addresses.in_plan("fd00::1")
    with pytest.raises(ValueError):
        addresses.host_address(256, 1, 4)


CHAIN = """\
lab: chain
description: two routers in a row, and a LAN with a second router
hosts:
  a: {role: client}
  r1: {role: router}
  r2: {role: router}
  b: {role: server}
  c: {}
links:
  - {ends: [a, r1]}
  - {ends: [r1, r2]}
  - {ends: [r2, b, c]}
"""


@pytest.fixture
def chain(tmp_path: Path) -> Topology:
    return load_topology(write(tmp_path, "chain", CHAIN))


def test_shortest_paths_go_through_routers_only(chain: Topology) -> None:
    assert shortest_path(chain, "a", "b") == ["a", "r1", "r2", "b"]
    assert shortest_path(chain, "b", "c") == ["b", "c"]
    assert chain.hosts["c"].role == "host"
    with pytest.raises(LabError, match="no host 'x'"):
        shortest_path(chain, "a", "x")


def test_routes_are_computed_for_every_other_subnet(chain: Topology) -> None:
    assert routes(chain, "a") == [Route("a", 2, "r1", 1), Route("a", 3, "r1", 1)]
    assert routes(chain, "r1") == [Route("r1", 3, "r2", 2)]
    assert routes(chain, "c") == [Route("c", 1, "r2", 3), Route("c", 2, "r2", 3)]


def test_a_subnet_no_router_reaches_gets_no_route(tmp_path: Path) -> None:
    isolated = load_topology(write(tmp_path, "iso", """\
hosts: {a: {role: client}, b: {role: server}, c: {role: server}}
links: [{ends: [a, b]}, {ends: [b, c]}]
"""))
    assert routes(isolated, "a") == []  # b does not forward
    with pytest.raises(LabError, match="no path from a to c"):
        shortest_path(isolated, "a", "c")


@pytest.mark.parametrize(("text", "problem"), [
    ("hosts: {a: {}}\nlinks: [{ends: [a, b]}]\n", "link 1: unknown host 'b'"),
    ("hosts: {a: {}, b: {}}\nlinks: [{ends: [a, b], mtu: 9}]\n", "link 1: bad mtu 9"),
    ("hosts: {a: {}, b: {}}\nlinks: [{ends: [a, b], mtu: '1280'}]\n", "bad mtu '1280'"),
    ("hosts: {a: {}, b: {}}\nlinks: [{ends: [a, b], mtu: 576}]\n",
     "below IPv6's minimum of 1280: raise it or set ipv6: false"),
    ("hosts: {a: {}, b: {}}\nlinks: [{ends: [a, b], delay: fast}]\n", "link 1: bad delay"),
    ("hosts: {a: {}, b: {}}\nlinks: [{ends: [a, b], loss: 101%}]\n", "bad loss"),
    ("hosts: {a: {}, b: {}}\nlinks: [{ends: [a, b], loss: 100%}]\n",
     "bad loss '100%': give 0% up to, not including, 100%"),
    ("hosts: {a: {}, b: {}}\nlinks: [{ends: [a, b], loss: 0.00001%}]\n",
     "bad loss '0.00001%': give at most 4 decimal places"),
    ("hosts: {a: {}, b: {}}\nlinks: [{ends: [a, b], loss: 5}]\n",
     "bad loss 5: give a percentage, e.g. 0%, 5%, 0.5%"),
    ("hosts: {a: {}, b: {}}\nlinks: [{ends: [a, b], loss: -1%}]\n", "bad loss '-1%'"),
    ("hosts: {a: {}, b: {}}\nlinks: [{ends: [a, a]}]\n", "2 to 254 different hosts"),
    ("hosts: {a: {}, b: {}, c: {}}\nlinks: [{ends: [a, b]}]\n", "host c is on no link"),
    ("hosts: {a: {role: boss}, b: {}}\nlinks: [{ends: [a, b]}]\n", "role 'boss'"),
    ("hosts: {A: {}, b: {}}\nlinks: [{ends: [A, b]}]\n", "host name 'A'"),
    ("hosts: {lan1: {}, b: {}}\nlinks: [{ends: [lan1, b]}]\n", "reserved"),
    ("hosts: {a: {}, b: {}}\nlinks: [{ends: [a, b]}]\nnftables: {x: ''}\n",
     "nftables: unknown host 'x'"),
    ("hosts: {a: {}, b: {}}\nlinks: [{ends: [a, b]}]\nipv6: maybe\n", "ipv6: 'maybe'"),
    ("hosts: {a: {}, b: {}}\nlinks: [{ends: [a, b]}]\nrouters: []\n", "unknown key 'routers'"),
    ("lab: other\nhosts: {a: {}, b: {}}\nlinks: [{ends: [a, b]}]\n", "differs from the file"),
    ("hosts: {a: {}, b: {}}\nlinks: [{ends: [a, b]}\n", "not valid YAML"),
    ("- just\n- a list\n", "a topology is a mapping"),
    ("hosts: {a: {}, b: {}}\nlinks: [{ends: [[a], b]}]\n", "ends lists ['a'] (a list)"),
    ("hosts: {a: {}, b: {}}\nlinks: [{ends: [{a: 1}, b]}]\n", "ends lists {'a': 1}"),
    ("hosts: {a: {}, b: {}}\nlinks: [{ends: [a, b]}]\ndescription: [x]\n",
     "description is a list"),
])
def test_a_bad_topology_is_one_line_naming_file_and_problem(tmp_path: Path, text: str,
                                                            problem: str) -> None:
    path = write(tmp_path, "bad", text)
    with pytest.raises(LabError) as raised:
        load_topology(path)
    message = str(raised.value)
    assert re.match(rf"{re.escape(str(path))}(:[0-9]+)?: ", message) and problem in message
    assert "\n" not in message


def test_unknown_names_list_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(LabError, match=r"unknown lab 'nope': give one of .*routed"):
        load_topology("nope")
    with pytest.raises(LabError, match="no topology file"):
        load_topology(str(tmp_path / "missing.yaml"))


def test_a_name_never_comes_from_the_working_directory(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A root `hdp lab up routed` must not build the routed.yaml of whatever directory it
    was started in; only a path, or a folder named in HDP_LABS, brings a user's topology."""
    monkeypatch.delenv("HDP_LABS", raising=False)
    (tmp_path / "conformance" / "labs").mkdir(parents=True)
    write(tmp_path / "conformance" / "labs", "routed", CHAIN.replace("chain", "routed"))
    write(tmp_path / "conformance" / "labs", "mine", CHAIN.replace("chain", "mine"))
    monkeypatch.chdir(tmp_path)
    assert load_topology("routed").hosts.keys() == {"client", "router", "server"}
    assert "mine" not in topology_names()
    with pytest.raises(LabError, match="unknown lab 'mine'"):
        load_topology("mine")
    assert load_topology("conformance/labs/mine.yaml").name == "mine"  # a path is explicit


def test_hdp_labs_names_a_folder_of_ones_own(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    theirs.mkdir()
    write(ours, "routed", CHAIN.replace("chain", "routed"))
    write(theirs, "mine", CHAIN.replace("chain", "mine"))
    monkeypatch.setenv("HDP_LABS", f"{ours}{os.pathsep}{theirs}")
    assert load_topology("routed").hosts.keys() == {"a", "r1", "r2", "b", "c"}  # ours first
    assert load_topology("mine").name == "mine"
    assert load_topology("nat").name == "nat"  # the shipped ones still follow
    assert {"mine", "routed", "nat"} <= set(topology_names())


@pytest.mark.skipif(shutil.which("ip") is None, reason="needs ip: apt-get install -y iproute2")
def test_a_lab_knows_its_addresses_before_it_is_up() -> None:
    routed = Lab(load_topology("routed"))
    assert not routed.is_up and re.fullmatch(r"[0-9a-f]{6}", routed.token)
    assert routed.address("server", 6, toward="client") == "fd68:6470:0:2::2"
    assert routed.address("client", 4, toward="client") == "198.18.1.1"
    assert routed.hops("client", "client") == 0
    assert routed.interfaces("router")[1] == ("eth1", 2, ["198.18.2.1/24", "fd68:6470:0:2::1/64"])
    with pytest.raises(LabError, match="has no host 'nobody'"):
        routed.address("nobody", 4)
    with pytest.raises(LabError, match="give 4 or 6"):
        routed.address("client", 5)
    with pytest.raises(LabError, match="lab mtu-576 has no IPv6"):
        Lab(load_topology("mtu-576")).address("client", 6)


@pytest.mark.parametrize(("text", "problem", "line"), [
    pytest.param("hosts:\n  a: {role: client}\n  b: {}\n  a: {role: router}\n"
                 "links:\n  - ends: [a, b]\n", "'a' appears twice in one mapping (first at line 2)",
                 4, id="duplicate-host"),
    pytest.param("hosts: {a: {}, b: {}}\nlinks:\n  - ends: [a, b]\n  - ends: [b, a]\n"
                 "    loss: 100%\n", "link 2: bad loss '100%': give 0% up to", 5, id="loss-100"),
    pytest.param("hosts:\n  client: {role: client}\n  router: {}\nlinks:\n"
                 "  - ends: [client, router]\n  - ends: [[client], router]\n",
                 "link 2: ends lists ['client'] (a list): give host names", 6, id="nested-ends"),
    pytest.param("hosts: {a: {}, b: {}}\nlinks: [{ends: [a, b]}]\nnftables:\n  a: |\n"
                 "    table ip filter {\n    }\n    include \"/etc/shadow\"\n",
                 "nftables: a's ruleset line 3 has 'include': a lab ruleset may not read files",
                 7, id="include"),
    pytest.param("hosts: {a: {}, b: {}}\nlinks: [{ends: [a, b]}]\n"
                 "nftables: {a: 'flush ruleset; include \"/etc/nftables/*.nft\"'}\n",
                 "line 1 has 'include'", 3, id="include-after-semicolon"),
    pytest.param("hosts: {a: {}, b: {}}\nlinks: [{ends: [a, b]}]\nnftables:\n  a: |\n"
                 "    INCLUDE \"x\"\n", "line 1 has 'INCLUDE'", 5, id="include-upper-case"),
    pytest.param("hosts: {a: {}, b: {}}\nlinks: [{ends: [a, b]}]\nhosts2: " + "[" * 40
                 + "]" * 40 + "\n", "nested more than 32 levels deep", 3, id="deep"),
])
def test_a_topology_defect_names_its_line(tmp_path: Path, text: str, problem: str,
                                          line: int) -> None:
    path = write(tmp_path, "bad", text)
    with pytest.raises(LabError) as raised:
        load_topology(path)
    assert str(raised.value).startswith(f"{path}:{line}: "), raised.value
    assert problem in str(raised.value)


def test_include_in_a_comment_or_a_string_is_text(tmp_path: Path) -> None:
    path = write(tmp_path, "fine", "hosts: {a: {role: router}, b: {}}\n"
                 "links: [{ends: [a, b]}]\nnftables:\n  a: |\n"
                 "    # include nothing: rules are inline\n"
                 "    table inet f { chain c { comment \"include\" } }\n")
    assert "include" in load_topology(path).nftables["a"]


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.sampled_from(["hosts", "links", "ends", "role", "a",
                                                       "b", "mtu", "nftables", "lab", "ipv6"]),
                                      inner, max_size=4), max_leaves=20))
def test_any_data_is_a_topology_or_one_problem(data: object) -> None:
    try:
        parse_topology(data, Path("fuzz.yaml"))
    except TopologyProblem as problem:
        assert "\n" not in str(problem)
