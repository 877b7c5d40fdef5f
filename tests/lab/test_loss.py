"""Link loss by a rate, measured: 10,000 numbered UDP datagrams between namespaces of the
lab, counted at the receiver, against the 99.9% Wilson interval of the rate.

A correct lab fails one of these measurements about once in a thousand runs (that is
what a 99.9% interval means); each measurement is its own test, so the few there are fail
apart. The datagrams are paced (RATE a second, about 0.2 s for 10,000) and the receiver
checks that its own socket dropped none, so what is missing was lost on the link.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import pytest

from hdp.lab import Lab, LabError, load_topology, start_lab
from hdp.lab.loss import parse_loss
from tests.lab.conftest import requires_lab, udp_count

PROBES = 10_000
RATE = 50_000  # datagrams a second
Z_999 = 3.2905267314919255  # the standard normal quantile of 1 - 0.001 / 2


def wilson(lost: int, total: int, z: float = Z_999) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion lost / total."""
    p, n = lost / total, total
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_the_wilson_interval_matches_published_values() -> None:
    # Newcombe, "Two-sided confidence intervals for the single proportion" (Statistics in
    # Medicine 17, 1998), table I, method 3 at 95%.
    z95 = 1.959964
    assert wilson(81, 263, z95) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert wilson(15, 148, z95) == pytest.approx((0.0624, 0.1605), abs=1e-4)
    assert wilson(0, 20, z95) == pytest.approx((0.0, 0.1611), abs=1e-4)


def _lossy(tmp_path_factory: pytest.TempPathFactory, loss: str, loss_by: str) -> Lab:
    """The shipped lossy lab, its router-server link at `loss`, lost by `loss_by`."""
    text = Path(load_topology("lossy").source).read_text(encoding="utf-8")
    path = tmp_path_factory.mktemp("labs") / "lossy.yaml"
    path.write_text(text.replace("loss: 5%", f"loss: {loss}"), encoding="utf-8")
    try:
        return start_lab(str(path), loss_by=loss_by)
    except LabError as exc:
        if "sch_netem" not in str(exc):
            raise
        pytest.skip(f"netem cannot be measured here: {exc}")


@pytest.fixture(scope="module", params=["nftables", "netem"])
def lossy(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = _lossy(tmp_path_factory, "5%", request.param)
    yield lab
    lab.down()


@requires_lab
@pytest.mark.parametrize("family", [4, 6])
def test_five_percent_loss_is_five_percent_within_its_interval(lossy: Lab,
                                                               family: int) -> None:
    before = lossy.loss_drops("server").get("eth0", 0)
    got = udp_count(lossy, "client", "server", family, PROBES, RATE)
    lost = got["sent"] - got["received"]
    low, high = wilson(lost, got["sent"])
    assert got["sent"] == PROBES and got["duplicates"] == 0
    assert low <= 0.05 <= high, (f"{lost} of {got['sent']} lost: 99.9% interval "
                                 f"[{low:.4f}, {high:.4f}] leaves out 5%")
    if lossy.loss_by == "nftables":
        # Every datagram the receiver missed was dropped by the server end's loss rule.
        assert lossy.loss_drops("server")["eth0"] - before >= lost


@requires_lab
@pytest.mark.parametrize("family", [4, 6])
def test_the_lossless_link_of_the_same_lab_loses_nothing(lossy: Lab, family: int) -> None:
    """The control: the same measurement from the client to the router, over the link
    without loss, receives every datagram."""
    got = udp_count(lossy, "client", "router", family, PROBES, RATE)
    assert got == {"sent": PROBES, "received": PROBES, "duplicates": 0}


@requires_lab
@pytest.mark.parametrize("family", [4, 6])
def test_zero_percent_loses_nothing(tmp_path_factory: pytest.TempPathFactory,
                                    family: int) -> None:
    lab = _lossy(tmp_path_factory, "0%", "nftables")
    try:
        assert lab.notes == ["link 2 (router-server): loss 0% by nftables (as asked): "
                             "nothing to drop"]
        got = udp_count(lab, "client", "server", family, PROBES, RATE)
        assert got == {"sent": PROBES, "received": PROBES, "duplicates": 0}
        assert lab.loss_drops("server") == {}
    finally:
        lab.down()


@requires_lab
def test_the_rule_and_its_note_say_how_the_loss_is_applied(lossy: Lab) -> None:
    note = lossy.notes[0]
    assert note.startswith("link 2 (router-server): ")
    if lossy.loss_by == "netem":
        assert note.endswith("loss 5% by netem on each end's way out")
        return
    assert "loss 5% by nftables" in note and "numgen random mod 100 < 5" in note
    assert set(lossy.loss_drops("router")) == {"eth1"}
    assert set(lossy.loss_drops("server")) == {"eth0"}
    assert lossy.loss_drops("client") == {}


@pytest.mark.parametrize(("text", "dropped", "modulus"), [
    ("5%", 5, 100), ("0.5%", 5, 1000), ("0.05%", 5, 10000), ("12.3456%", 123456, 1000000),
    ("0%", 0, 100), ("99.9999%", 999999, 1000000), ("5.0%", 50, 1000)])
def test_a_rate_is_exact_to_the_rule_s_granularity(text: str, dropped: int,
                                                    modulus: int) -> None:
    rate = parse_loss(text)
    assert (rate.dropped, rate.modulus) == (dropped, modulus)
    assert rate.ratio == Fraction(text[:-1]) / 100
    assert rate.expression == f"numgen random mod {modulus} < {dropped}"
