"""A test the session has no case or path for skips saying why and how to give it one."""

from __future__ import annotations

SUITE = """
import pytest

@pytest.mark.hdp(paths=["nat"])
def test_case(hdp_case):
    pass

@pytest.mark.hdp(targets=["nat/server"])
@pytest.mark.hdp_check("bind-same-address-twice")
def test_path(hdp_path, hdp_check):
    pass
"""


def test_a_marker_that_leaves_nothing_skips_with_the_fix(pytester):
    pytester.makepyfile(test_nothing=SUITE)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "--hdp-lab", "none",
                                           "--hdp-target", "127.0.0.1", "-rs")
    result.assert_outcomes(skipped=2)
    out = result.stdout.str()
    assert ("no hdp case here with @pytest.mark.hdp(paths=['nat']): this session probes "
            "127.0.0.1 (loopback); give a target it wants with --hdp-target or --hdp-lab"
            ) in out
    assert "no hdp path here with @pytest.mark.hdp(targets=['nat/server'])" in out
    assert "empty parameter set" not in out
