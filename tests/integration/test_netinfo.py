"""Local interfaces and addresses (netifaces), and the @IFACE / @local targets built on them.

The interfaces are this host's real ones; `ip -json address` (iproute2) is the oracle.
Nothing here sends a packet except the sweeps of @lo, which reach only 127.0.0.1 and ::1.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import sys

import pytest

from hdp import netinfo, osnet
from hdp.errors import UsageError
from hdp.target import LOCAL, expand
from tests.cli.helpers import hdp_command, hdp_env
from tests.conftest import RAW_FIX, RAW_V4, RAW_V6

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="compares with iproute2 and Linux's 127/8 rule")


def _iproute_addresses() -> set[tuple[str, int, str]]:
    """(interface, family, address) of every inet/inet6 address, as iproute2 lists them."""
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2's ip (apt-get install iproute2) as the oracle")
    listed = json.loads(subprocess.run(["ip", "-json", "address"], capture_output=True,
                                       check=True, text=True).stdout)
    found = set()
    for link in listed:
        for info in link.get("addr_info", []):
            family = {"inet": 4, "inet6": 6}.get(info.get("family"))
            if family is None:
                continue
            address = info["local"]
            if family == 6 and ipaddress.ip_address(address).is_link_local:
                address += f"%{link['ifname']}"
            found.add((link["ifname"], family, address))
    return found


@linux_only
def test_local_addresses_are_those_iproute2_lists():
    ours = {(a.interface, a.family, a.address) for a in netinfo.local_addresses()}
    assert ours == _iproute_addresses()


@linux_only
def test_loopback_prefix_is_local_on_linux_only():
    assert netinfo.is_local("127.0.0.1") and netinfo.is_local("::1")
    assert netinfo.is_local("127.0.0.2")  # Linux: lo owns 127/8 (fib_add_ifaddr)
    assert not netinfo.is_local("198.51.100.7")  # TEST-NET-2: nobody's address here
    assert netinfo.other_loopback(4, "127.0.0.1") == "127.0.0.2"
    assert netinfo.other_loopback(6, "::1") is None  # ::1/128: no second one
    previous = osnet.use(osnet.DARWIN)
    try:  # the same interfaces under macOS's rule: only assigned addresses are local
        assert not netinfo.is_local("127.0.0.2")
        assert netinfo.other_loopback(4, "127.0.0.1") is None
    finally:
        osnet.use(previous)


def test_every_listed_address_is_local():
    for local in netinfo.local_addresses():
        assert netinfo.is_local(local.address), local


def test_at_interface_expands_to_its_addresses_of_the_asked_families():
    loopback = next(a.interface for a in netinfo.local_addresses() if a.loopback)
    v4 = [a.address for a in netinfo.local_addresses(loopback) if a.family == 4]
    both = [a.address for a in netinfo.local_addresses(loopback)]
    assert expand([f"@{loopback}"], [4]) == v4
    with_literal = expand([f"@{loopback}", "127.0.0.1"], [4, 6])
    assert with_literal == list(dict.fromkeys([*both, "127.0.0.1"]))  # each target once
    assert set(expand([LOCAL], [4, 6])) == {a.address for a in netinfo.local_addresses()}


@pytest.mark.parametrize(("target", "needle"), [
    ("@no-such-if0", "this host has no interface 'no-such-if0'; give one of @"),
])
def test_unknown_interface_is_a_usage_error_listing_the_real_ones(target, needle):
    with pytest.raises(UsageError, match=needle) as caught:
        expand([target], [4, 6])
    assert all(f"@{name}" in str(caught.value) for name in netinfo.interfaces())


def _loopback_name() -> str:
    return next(a.interface for a in netinfo.local_addresses() if a.loopback)


@pytest.mark.skipif(not (RAW_V4 and RAW_V6), reason=RAW_FIX)
def test_hdp_sweep_of_the_loopback_interface_probes_both_of_its_addresses():
    """`hdp sweep @lo`: one case per address of lo (127.0.0.1 and ::1), both delivered."""
    done = subprocess.run([*hdp_command("sweep", f"@{_loopback_name()}", "--protocols", "253",
                                        "--format", "json")],
                          capture_output=True, text=True, env=hdp_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    cases = {(c["target"], c["family"]): c["outcome"] for c in json.loads(done.stdout)["cases"]}
    assert cases == {("127.0.0.1", 4): "delivered", ("::1", 6): "delivered"}


@pytest.mark.skipif(not RAW_V4, reason=RAW_FIX)
def test_pytest_plugin_expands_an_interface_target(pytester: pytest.Pytester):
    pytester.makepyfile(test_delivery="def test_delivery(hdp_result):\n"
                                      "    hdp_result.check()\n")
    result = pytester.runpytest_subprocess(
        # `--hdp-target=@IFACE` in one word: pytest reads a lone "@NAME" as an args file.
        "-p", "no:randomly", "-p", "no:cacheprovider", f"--hdp-target=@{_loopback_name()}",
        "--hdp-protocols", "253", "--hdp-payload", "hdp", "--hdp-family", "4",
        "--collect-only", "-q")
    assert "test_delivery.py::test_delivery[127.0.0.1-ipv4-p253]" in result.stdout.lines
    bad = pytester.runpytest_subprocess("-p", "no:randomly", "--hdp-target=@no-such-if0")
    bad.stderr.fnmatch_lines(["*--hdp-target: @no-such-if0: this host has no interface*"])
