"""The charts: real PNG and SVG files from real matplotlib, and the one-line errors."""

from __future__ import annotations

import importlib.util
import random
import struct
import sys
import xml.etree.ElementTree as ET

import pytest

from hdp.errors import HdpError
from hdp.stats import ProbeRecord, Reception, case_stats, wilson_interval
from hdp.stats.compare import compare
from hdp.stats.plot import INSTALL_HINT, PlotError, plot_cases, plot_stats

T0 = 1_700_000_000_000_000_000
needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                      reason=f"the charts need matplotlib: {INSTALL_HINT}")


def cases():
    rng = random.Random(6)

    def one(base_ns: int, loss: float):
        return case_stats([ProbeRecord(seq, T0, receptions=() if rng.random() < loss else (
            Reception(T0 + base_ns + int(rng.expovariate(1 / 8_000))),))
            for seq in range(2_000)], 0)

    return {"HDP": one(60_000, 0.05), "UDP": one(40_000, 0.05), "TCP": one(55_000, 0.0)}


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@needs_matplotlib
@pytest.mark.parametrize("log_x", [False, True])
def test_png_of_latency_and_loss(tmp_path, log_x):
    drawn = cases()
    hdp, udp = drawn["HDP"].latency, drawn["UDP"].latency
    assert hdp is not None and udp is not None
    comparison = compare(hdp.samples_us, udp.samples_us, labels=("HDP", "UDP"))
    path = plot_cases(tmp_path / "stats.png", drawn, comparisons=[comparison], log_x=log_x)
    width, height = png_size(path.read_bytes())
    assert width >= 1200 and height >= 800  # room for three panels' labels
    from matplotlib.image import imread

    pixels = imread(path)
    assert pixels.std() > 0.05  # something was drawn, not a blank page


@needs_matplotlib
def test_svg_by_its_suffix(tmp_path):
    path = plot_cases(tmp_path / "stats.SVG", cases())
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"


@needs_matplotlib
def test_latency_only_and_loss_only(tmp_path):
    latency = plot_stats(tmp_path / "latency.png", {"HDP": [1.0, 2.0, 2.0, 3.0]})
    loss = plot_stats(tmp_path / "loss.png", {}, {"HDP": wilson_interval(3, 100)})
    assert png_size(latency.read_bytes()) == png_size(loss.read_bytes())


@needs_matplotlib
def test_one_way_and_round_trip_do_not_share_a_chart(tmp_path):
    from hdp.stats import Measure

    rtt = case_stats([ProbeRecord(0, T0, receptions=(Reception(T0 + 9_000),))], 0,
                     measure=Measure.RTT)
    with pytest.raises(PlotError, match="own file"):
        plot_cases(tmp_path / "x.png", {"one-way": cases()["HDP"], "rtt": rtt})


@pytest.mark.parametrize(("name", "data", "message"), [
    ("stats.jpg", {"HDP": [1.0]}, "ending in .png or .svg"),
    ("stats.png", {"HDP": []}, "no latency samples and no loss"),
])
def test_what_cannot_be_drawn_is_a_one_line_error(tmp_path, name, data, message):
    with pytest.raises(PlotError, match=message) as caught:
        plot_stats(tmp_path / name, data)
    assert isinstance(caught.value, HdpError) and "\n" not in str(caught.value)


@needs_matplotlib
def test_an_unwritable_file_is_a_one_line_error(tmp_path):
    with pytest.raises(PlotError, match="cannot write chart"):
        plot_stats(tmp_path / "missing-dir" / "stats.png", {"HDP": [1.0, 2.0]})


def test_without_matplotlib_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    # A None entry in sys.modules makes the import fail as if the package were absent.
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(PlotError, match=r"pip install 'pytest-hdp\[plot\]'"):
        plot_stats(tmp_path / "stats.png", {"HDP": [1.0, 2.0]})
    assert not (tmp_path / "stats.png").exists()
