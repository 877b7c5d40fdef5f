"""Every protocol number x family x target x payload: delivered intact, or a known quirk.

A case passes when the probe reaches the listener unchanged; it xfails (strictly) when
the platform's profile expects exactly what was observed; it fails otherwise, with the
expected and observed outcomes in the message.
"""

from __future__ import annotations


def test_delivery(hdp_result):
    hdp_result.check()
