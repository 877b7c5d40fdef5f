"""Quirk profiles: which profile applies, and what it expects of a case."""

from __future__ import annotations

from pathlib import Path

from hdp.case import Case
from hdp.profile.model import (
    _RELEASE_NUMBERS,
    DELIVERED,
    Expectation,
    Profile,
    ProfileError,
    _one_line,
    _platform_text,
    _release_clauses,
    _with_details,
)
from hdp.profile.parse import load_profile
from hdp.verdict import Verdict

# --- choosing a profile ----------------------------------------------------------------

def applies_to(profile: Profile, platform: dict[str, str], path: str | None = None) -> bool:
    """Whether `profile` is meant for this platform and path; an unknown path or release
    (None, or no "release" in `platform`) does not rule a profile out."""
    applies = profile.applies
    if str(platform.get("system", "")).lower() != applies["system"]:
        return False
    if "path" in applies and path is not None and path != applies["path"]:
        return False
    if "release" in applies and platform.get("release") is not None:
        return _release_matches(applies["release"], str(platform["release"]))
    return True


def select_profile(directory: str | Path, platform: dict[str, str],
                   path: str | None = None) -> Profile | None:
    """The profile in `directory` that applies; a path, then a release range, makes it win."""
    folder = Path(directory)
    if not folder.is_dir():
        raise ProfileError(str(folder), "is not a directory of profiles")
    # `*.obtained.yaml` is what a run recorded beside a profile, for diffing: not a profile.
    files = sorted(file for file in folder.iterdir()
                   if file.suffix in (".yaml", ".yml") and file.is_file()
                   and not file.stem.endswith(".obtained"))
    fitting = [profile for profile in map(load_profile, files)
               if applies_to(profile, platform, path)]
    if not fitting:
        return None
    best = max(map(_specificity, fitting))
    winners = [profile for profile in fitting if _specificity(profile) == best]
    if len(winners) > 1:
        names = " and ".join(Path(profile.path).name for profile in winners)
        raise ProfileError(str(folder), f"{names} apply equally to {_platform_text(platform)}"
                                        f"{'' if path is None else f' ({path})'}: narrow one "
                                        "with applies path or release, or name one profile")
    return winners[0]


def _specificity(profile: Profile) -> tuple[bool, bool]:
    return ("path" in profile.applies, "release" in profile.applies)


def _release_matches(spec: str, release: str) -> bool:
    """Each clause compares the release cut to the clause's length: 6.18.44 is `==6.18`."""
    found = _RELEASE_NUMBERS.match(release)
    clauses = _release_clauses(spec)
    if found is None or clauses is None:
        return False
    numbers = tuple(map(int, found.group(1).split(".")))
    for op, version in clauses:
        have = (numbers + (0,) * len(version))[:len(version)]
        if not {">=": have >= version, "<=": have <= version, ">": have > version,
                "<": have < version, "==": have == version, "!=": have != version}[op]:
            return False
    return True


# --- expectations ----------------------------------------------------------------------

def expect(profile: Profile | None, case: Case) -> Expectation:
    """What the first matching rule expects of `case`; delivered when none matches."""
    if profile is None:
        return DELIVERED
    for rule in profile.rules:
        if rule.matches(case):
            return Expectation(rule.expect, errno=rule.errno, changes=rule.changes,
                               wire_protocol=rule.wire_protocol, why=rule.why,
                               rule=f"{Path(profile.path).name} rule {rule.index}")
    return DELIVERED


def satisfied(expectation: Expectation, verdict: Verdict) -> bool:
    """Exactly the expected outcome, with the errno, changes and wire protocol it names."""
    return (verdict.outcome.value == expectation.outcome
            and expectation.errno in (None, verdict.errno)
            and (expectation.changes is None or set(expectation.changes) == set(verdict.changes))
            and expectation.wire_protocol in (None, verdict.wire_protocol))


def describe_mismatch(expectation: Expectation, verdict: Verdict) -> str:
    """`expected send-error (EOPNOTSUPP) by linux.yaml rule 3, observed delivered`."""
    return _one_line(f"expected {describe_expected(expectation)}, "
                     f"observed {describe_observed(expectation, verdict)}")


def describe_expected(expectation: Expectation) -> str:
    """`send-error (EOPNOTSUPP) by linux.yaml rule 3`: the outcome and what it names."""
    details: list[str] = [] if expectation.errno is None else [expectation.errno]
    details += list(expectation.changes or ())
    if expectation.wire_protocol is not None:
        details.append(f"wire protocol {expectation.wire_protocol}")
    expected = _with_details(expectation.outcome, details)
    if expectation.rule:
        expected += f" by {expectation.rule}"
    return expected


def describe_observed(expectation: Expectation, verdict: Verdict) -> str:
    """The verdict with the details `expectation` names: `socket-error (EINVAL)`."""
    same_outcome = verdict.outcome.value == expectation.outcome
    seen: list[str] = []
    if verdict.errno or (expectation.errno and same_outcome):
        seen.append(verdict.errno or "no errno")
    seen += list(verdict.changes)
    if expectation.wire_protocol is not None:
        seen.append(f"wire protocol {verdict.wire_protocol}")
    return _with_details(verdict.outcome.value, seen)
