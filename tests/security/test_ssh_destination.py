"""An ssh destination is never an ssh option, wherever it comes from."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hdp.agent.launch import AgentSpec, ssh_command
from hdp.errors import UsageError
from hdp.target import plan_target

HOSTILE = ["-oProxyCommand=touch {marker}", "root@-oProxyCommand=touch {marker}",
           "-F{marker}", "host name"]


@pytest.mark.parametrize("where", HOSTILE)
def test_agent_specs_and_targets_refuse_an_option_as_destination(where, tmp_path):
    where = where.format(marker=tmp_path / "ran")
    for attempt in (lambda: AgentSpec.parse(f"ssh://{where}"), lambda: ssh_command(where),
                    lambda: plan_target(f"ssh://{where}", [4])):
        with pytest.raises(UsageError, match="is not \\[user@\\]host\\[:port\\]"):
            attempt()


def test_hdp_target_and_ini_go_through_the_same_check(pytester):
    marker = pytester.path / "ran"  # where the proxy command would leave its mark
    pytester.makepyfile(test_delivery="def test_delivery(hdp_result):\n    hdp_result.check()\n")
    hostile = "ssh://-oProxyCommand=touch ran"
    pytester.makeini(f"[pytest]\nhdp_target = {hostile}\n")
    from_ini = pytester.runpytest_subprocess("-p", "no:randomly")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HDP_TARGET", hostile)
        pytester.makeini("[pytest]\n")
        from_env = pytester.runpytest_subprocess("-p", "no:randomly")
    for result, origin in ((from_ini, "ini hdp_target"), (from_env, "HDP_TARGET")):
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"ERROR: {origin}: ssh destination '-oProxyCommand=*' "
                                     "is not [[]user@[]]host[[]:port[]]*"])
    assert not marker.exists()


def test_hdp_sweep_refuses_it_in_one_line(tmp_path):
    marker = tmp_path / "ran"
    for args in (["sweep", f"ssh://-oProxyCommand=touch {marker}"],
                 ["sweep", "127.0.0.1", "--agent", f"ssh://-oProxyCommand=touch {marker}"]):
        done = subprocess.run([str(Path(sys.executable).with_name("hdp")), *args],
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode != 0 and done.stderr.count("\n") == 1, done.stderr
        assert "a leading '-' would be an ssh option" in done.stderr
    assert not marker.exists()


def test_the_remote_command_is_one_quoted_word(monkeypatch):
    monkeypatch.setenv("HDP_REMOTE_PYTHON", "'/opt/my tools/bin/python3'")
    command = ssh_command("user@host")
    assert command[-3:] == ["--", "user@host", "'/opt/my tools/bin/python3' -I -m hdp.agent"]
