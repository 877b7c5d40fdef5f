"""Ctrl-C on `hdp listen`: exit status 130, one line saying so, no traceback."""

from __future__ import annotations

from tests.cli.helpers import READY_LINE
from tests.conftest import requires_raw


@requires_raw
def test_ctrl_c_stops_the_listener_cleanly(listen):
    listener = listen(144, count=5)  # protocol 144: used by no other test
    listener.interrupt()
    heard = listener.finish()
    assert heard.returncode == 130, heard.describe()
    assert "Traceback" not in heard.stderr, heard.describe()
    lines = heard.stderr_lines
    assert [line for line in lines if "interrupted" in line] == ["hdp listen: interrupted"], \
        heard.describe()
    others = [line for line in lines if not READY_LINE.fullmatch(line)]
    assert others == ["hdp listen: interrupted"], \
        "nothing but the readiness line and 'interrupted'" + heard.describe()
    assert heard.stdout == "", heard.describe()
