"""Protocol numbers the OS refuses come back as table rows with the errno name, not crashes.

Found on this machine (Linux 6.x, as root): socket(AF_INET, SOCK_RAW, P) refuses 0 with
EPROTONOSUPPORT and -1 / 300 with EINVAL, and accepts 256 (it sends 256 - 256 = 0 on the
wire). The DESIGN page says macOS answers differently, so these assertions are Linux's.
"""

from __future__ import annotations

import sys

import pytest

from tests.cli.helpers import run_hdp, sender_rows
from tests.conftest import requires_raw

PAYLOAD = b"which numbers does the OS take?\n"


@requires_raw
@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="asserts Linux's answers; macOS refuses 256 with EINVAL and "
                    "50/51 with EOPNOTSUPP (DESIGN.md)")
@pytest.mark.parametrize(("protocol", "succeeded", "reason", "status"), [
    pytest.param("0", "no", "EPROTONOSUPPORT", 1, id="0-EPROTONOSUPPORT"),
    pytest.param("-1", "no", "EINVAL", 1, id="minus1-EINVAL"),
    pytest.param("300", "no", "EINVAL", 1, id="300-EINVAL"),
    pytest.param("256", "yes", "-", 0, id="256-accepted"),
])
def test_os_refusal_is_a_row(protocol, succeeded, reason, status):
    sent = run_hdp("send", "127.0.0.1", "--protocol", protocol, stdin=PAYLOAD)
    assert "Traceback" not in sent.stderr, sent.describe()
    assert sent.stderr == "", sent.describe()
    assert sent.returncode == status, sent.describe()
    rows = sender_rows(sent)
    assert len(rows) == 1, sent.describe()
    number, ok, time_us, byte_sum, why = rows[0]
    assert (number, ok) == (protocol, succeeded), sent.describe()
    assert int(time_us) > 0, sent.describe()
    if succeeded == "yes":
        assert (int(byte_sum), why) == (12 + 20 + len(PAYLOAD), "-"), sent.describe()
    else:
        assert byte_sum == "-", sent.describe()
        assert why.split(" ", 1)[0] == reason, sent.describe()
        assert why.startswith(f"{reason} (") and why.endswith(")"), sent.describe()
