"""The profiles a run is held to: per path, the delivery profile and the chapter profile.

`--hdp-profile auto` chooses, per path, the profile that applies to this platform from
the folders of hdp.resources (the user's beside the rootdir first, then the shipped);
an explicit file is used on every path, and where its `applies` does not match this run
the run says so, in its header and in every xfail reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from hdp import profile as profiles
from hdp.case import Case
from hdp.errors import HdpError
from hdp.host import platform_info
from hdp.profile.model import CheckRule
from hdp.resources import profile_folders

CHAPTER = "udp"  # the chapter profiles' folder


class ProfileChoiceError(HdpError):
    """A profile file that does not load, or two that apply equally: the user's to fix."""


class Profiles:
    def __init__(self, rootpath: Path, choice: str) -> None:
        self.rootpath = rootpath
        self.choice = choice  # "auto", "none" or a file
        self.platform = platform_info()
        self._chosen: dict[tuple[str, str], profiles.Profile | None] = {}
        self.explicit: profiles.Profile | None = None
        if choice not in ("auto", "none"):
            try:
                self.explicit = profiles.load_profile(choice)
            except HdpError as exc:
                raise ProfileChoiceError(f"--hdp-profile: {exc}") from None

    def for_path(self, path: str) -> profiles.Profile | None:
        """The delivery profile that holds cases on `path` (loopback, network, a lab...)."""
        if self.choice == "none":
            return None
        if self.explicit is not None:
            return self.explicit
        return self._select("", path)

    def chapter_for(self, path: str) -> profiles.Profile | None:
        """The chapter profile (profiles/udp/) of this platform and `path`."""
        return None if self.choice == "none" else self._select(CHAPTER, path)

    def _select(self, folder: str, path: str) -> profiles.Profile | None:
        """Of the folders of hdp.resources.profile_folders (the user's first), the first
        that has a profile for this platform and `path`; looked up once."""
        if (folder, path) not in self._chosen:
            chosen = None
            what = "chapter profiles" if folder else "--hdp-profile auto"
            for directory in profile_folders(self.rootpath, folder):
                try:
                    chosen = profiles.select_profile(directory, self.platform, path)
                except HdpError as exc:
                    raise ProfileChoiceError(f"{what}: {exc}") from None
                if chosen is not None:
                    break
            self._chosen[(folder, path)] = chosen
        return self._chosen[(folder, path)]

    def validate(self, paths: Iterable[str]) -> None:
        """Load every profile the paths will need now: a bad file is one usage error
        before the first probe, not a failure in the middle of a run."""
        for path in paths:
            self.for_path(path)
            self.chapter_for(path)

    def expectation(self, case: Case) -> profiles.Expectation:
        return profiles.expect(self.for_path(case.path), case)

    def check_rule(self, name: str, family: int, path: str) -> CheckRule | None:
        profile = self.chapter_for(path)
        if profile is None:
            return None
        return next((rule for rule in profile.checks if rule.matches(name, family, path)),
                    None)

    def caveat(self, path: str) -> str | None:
        """Why an explicit profile may not hold on `path`: its `applies` is another
        platform's or path's. None when it applies (and for auto, which only chooses
        profiles that do)."""
        if self.explicit is None or profiles.applies_to(self.explicit, self.platform, path):
            return None
        applies = ", ".join(f"{key} {value}" for key, value in self.explicit.applies.items())
        return (f"{Path(self.explicit.path).name} applies to {applies}, not to this run "
                f"({self.platform['system']} {self.platform['release']}, path {path})")

    def in_use(self, paths: Iterable[str]) -> list[profiles.Profile]:
        chosen = [self.for_path(path) for path in paths]
        return list({p.path: p for p in chosen if p is not None}.values())
