"""Link delay and loss through netem, or, where the kernel has no sch_netem, a lab that
comes up anyway, loses packets by nftables instead, and says what it could not apply."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hdp.lab import Lab, load_topology, start_lab
from tests.lab.conftest import requires_lab, udp_exchange

pytestmark = requires_lab

SLOW = """\
description: routed, with a slow and lossless router-server link
hosts: {client: {role: client}, router: {role: router}, server: {role: server}}
links:
  - {ends: [client, router]}
  - {ends: [router, server], delay: 5ms, loss: 0%}
"""


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    path = Path(tmp_path_factory.mktemp("labs")) / "slow.yaml"
    path.write_text(SLOW, encoding="utf-8")
    lab = start_lab(load_topology(str(path)))
    yield lab
    lab.down()


def _without_netem(lab: Lab) -> bool:
    return any("no sch_netem" in note for note in lab.notes)


def test_netem_shapes_each_end_of_the_link(slow: Lab) -> None:
    if _without_netem(slow):
        pytest.skip(slow.notes[0])
    assert slow.notes == ["link 2 (router-server): delay 5ms loss 0% by netem on each "
                          "end's way out"]
    for host, device in (("router", "eth1"), ("server", "eth0")):
        shown = subprocess.run(["tc", "-n", slow.namespace(host), "qdisc", "show", "dev",
                                device], capture_output=True, text=True, check=True).stdout
        assert "netem" in shown and "delay 5ms" in shown


def test_without_netem_the_lab_still_comes_up_and_says_why(slow: Lab) -> None:
    if not _without_netem(slow):
        pytest.skip("this kernel has sch_netem: the missing-netem path cannot be seen here")
    delay, loss = slow.notes
    assert delay.startswith("link 2 (router-server): delay 5ms not applied: this kernel has "
                            "no sch_netem (modprobe sch_netem")
    assert loss == "link 2 (router-server): loss 0% by nftables (no sch_netem): nothing to drop"
    assert udp_exchange(slow, "client", "server", 4)["ttl"] == 63
