"""One test session's probing: cases, expectations, agents, and the batch they share."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hdp import profile as profiles
from hdp import target as targets
from hdp.agent.install import agent_command
from hdp.agent.launch import AgentClient, AgentError, AgentSpec
from hdp.case import Case, Observation
from hdp.errors import HdpError, UsageError
from hdp.host import platform_info
from hdp.resources import profile_folders
from hdp.selection import parse_protocols
from hdp.target import Target
from hdp.verdict import Verdict, judge
from pytest_hdp.settings import Settings

VANTAGE_ENV = "HDP_VANTAGE"  # names this process's vantage point, e.g. on an ssh worker


class QuirkObserved(Exception):
    """The known quirk the profile expects was observed: the case xfails with its reason."""


def plan_target(text: str, families: Sequence[int]) -> Target:
    """One --hdp-target; a host that does not resolve is a usage error."""
    try:
        return targets.plan_target(text, families)
    except UsageError as exc:
        raise pytest.UsageError(f"--hdp-target: {exc}") from None


def expand_targets(texts: Sequence[str], families: Sequence[int]) -> list[str]:
    """--hdp-target values with @IFACE / @local replaced by their addresses."""
    try:
        return targets.expand(texts, families)
    except UsageError as exc:
        raise pytest.UsageError(f"--hdp-target: {exc}") from None


@dataclass
class HdpResult:
    """What a test sees of its case: the observation, the verdict and the expectation."""

    case: Case
    observation: Observation
    verdict: Verdict
    expectation: profiles.Expectation
    vantage: str | None = None  # where this process probes from, when it is a vantage point

    @property
    def expected_outcome(self) -> str:
        return self.expectation.outcome

    def check(self) -> None:
        """Pass if delivered as expected; xfail on the expected quirk; fail otherwise."""
        if profiles.satisfied(self.expectation, self.verdict):
            if self.expectation.outcome != "delivered":
                raise QuirkObserved(self.expectation.why or "known quirk")
            return
        if self.verdict.outcome.value == "delivered":
            return  # the quirk is gone: strict xfail turns this pass into a failing XPASS
        raise AssertionError(
            f"{self.case.id}: {profiles.describe_mismatch(self.expectation, self.verdict)}"
            + (f" ({self.observation.note})" if self.observation.note else ""))


class HdpSession:
    """The probing state of one pytest process (the controller, or one xdist worker)."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.lab: Any = None  # an hdp.lab.Lab when --hdp-lab brought one up or we attach to it
        self.vantage: str | None = None  # see _plan_targets
        self.targets = self._plan_targets()
        self._auto_profiles: dict[tuple[str, str], profiles.Profile | None] = {}
        self.profile = self._load_profile()
        self.wanted: list[Case] = []
        self.results: dict[Case, tuple[Observation, Verdict]] = {}
        self.skip_reason: str | None = None
        self.agents: list[AgentClient] = []
        self.drops: dict[str, int] = {}
        self.seconds = 0.0
        self.entries: list[dict[str, Any]] = []  # the controller's collected report cases
        self.written: list[str] = []
        self.agent_specs: list[str] = []  # how this process got its raw sockets
        self.warnings: list[str] = []

    # -- planning -------------------------------------------------------------------

    def _plan_targets(self) -> list[Target]:
        """The targets, and the vantage point: a process inside one of the lab's hosts
        (an xdist worker started by `hdp lab python HOST`) probes the lab's servers from
        that host; otherwise $HDP_VANTAGE, if set, names where this process stands."""
        settings = self.settings
        lab = lab_of(self.config)
        if lab is None and settings.lab == "auto":
            from pytest_hdp.plugin import auto_lab

            lab = auto_lab(self.config)
        targets = [] if lab is not None and not settings.targets_given else \
            [plan_target(t, settings.families) for t in expand_targets(settings.targets,
                                                                      settings.families)]
        self.vantage = os.environ.get(VANTAGE_ENV) or None
        if lab is not None:
            self.lab = lab
            host = lab.host_of_this_process()
            if host is not None:
                self.vantage = f"{lab.topology.name}/{host}"
            targets += lab_targets(lab, settings.families, vantage=host)
        return targets


    def _load_profile(self) -> profiles.Profile | None:
        """An explicit profile file, or None for 'auto' (chosen per path) and 'none'."""
        choice = self.settings.profile
        if choice in ("auto", "none"):
            if choice == "auto":
                for target in self.targets:  # bad files fail now, not in the middle of a run
                    self.profile_for(target.path)
            return None
        try:
            return profiles.load_profile(choice)
        except HdpError as exc:
            raise pytest.UsageError(f"--hdp-profile: {exc}") from None

    def profile_for(self, path: str) -> profiles.Profile | None:
        """The profile that applies to cases on `path` (loopback, network, netns...)."""
        if self.settings.profile == "none":
            return None
        if self.settings.profile != "auto":
            return self.profile
        return self.select_profile("", path, "--hdp-profile auto")

    def select_profile(self, folder: str, path: str, what: str) -> profiles.Profile | None:
        """The profile for this platform and `path` in profiles/FOLDER, once: of the folders
        of hdp.resources.profile_folders (the user's first), the first that has one."""
        if (folder, path) not in self._auto_profiles:
            chosen = None
            for directory in profile_folders(Path(str(self.config.rootpath)), folder):
                try:
                    chosen = profiles.select_profile(directory, platform_info(), path)
                except HdpError as exc:
                    raise pytest.UsageError(f"{what}: {exc}") from None
                if chosen is not None:
                    break
            self._auto_profiles[(folder, path)] = chosen
        return self._auto_profiles[(folder, path)]

    def all_cases(self) -> list[Case]:
        cases = []
        for target in self.targets:
            for family in target.families:
                for payload in self.settings.payloads:
                    cases += [Case(target.name, family, p, payload, path=target.path)
                              for p in self.settings.protocols]
        return cases

    def cases_for(self, marker: pytest.Mark | None) -> list[Case]:
        """All cases, narrowed by a `@pytest.mark.hdp(...)` marker's keywords."""
        cases = self.all_cases()
        if marker is None:
            return cases
        narrow = dict(marker.kwargs)
        if "protocols" in narrow:
            value = narrow["protocols"]
            wanted = set(parse_protocols(value) if isinstance(value, str) else value)
            cases = [c for c in cases if c.protocol in wanted]
        for key, attribute in (("families", "family"), ("payloads", "payload"),
                               ("targets", "target"), ("paths", "path")):
            if key in narrow:
                allowed = set(narrow[key]) if not isinstance(narrow[key], (str, int)) \
                    else {narrow[key]}
                cases = [c for c in cases if getattr(c, attribute) in allowed]
        return cases

    def expectation(self, case: Case) -> profiles.Expectation:
        return profiles.expect(self.profile_for(case.path), case)

    def profiles_in_use(self) -> list[profiles.Profile]:
        chosen = [self.profile_for(t.path) for t in self.targets]
        return list({p.path: p for p in chosen if p is not None}.values())

    # -- probing --------------------------------------------------------------------

    def result(self, case: Case) -> HdpResult:
        if case not in self.results:
            if case not in self.wanted:  # asked for outside the parametrised cases
                self.wanted.append(case)
            self._run_batch()
        if self.skip_reason is not None:
            pytest.skip(self.skip_reason)
        observation, verdict = self.results[case]
        return HdpResult(case, observation, verdict, self.expectation(case), self.vantage)

    def _run_batch(self) -> None:
        """Probe every case this process collected, in one pipelined batch per sender."""
        pending = [c for c in dict.fromkeys(self.wanted) if c not in self.results]
        if not pending or self.skip_reason is not None:
            return
        try:
            batches = targets.probe(pending, {t.name: t for t in self.targets}, self._start,
                                    self.local_sender_spec, timeout=self.settings.timeout)
        except AgentError as exc:
            self.skip_reason = f"{exc}; {privilege_fix()}"
            return
        planned = {t.name: t for t in self.targets}
        for result in batches:
            self.seconds += result.seconds
            self.drops.update(result.drops)
            for observation in result.observations:
                case = observation.case
                nat_source = planned[case.target].nat_source.get(case.family)
                self.results[case] = (observation, judge(observation, nat_source=nat_source))

    def _start(self, spec: AgentSpec) -> AgentClient:
        agent = AgentClient.start(spec)
        self.agents.append(agent)
        self.agent_specs.append(str(spec))
        return agent

    def local_sender_spec(self, paths: Iterable[str]) -> AgentSpec:
        """Where local probes come from, per --hdp-privilege; AgentError when nothing works."""
        mode = self.settings.privilege
        if mode == "direct":
            return AgentSpec("inprocess")
        if mode == "sudo":
            return AgentSpec("sudo")
        if mode == "userns":
            return AgentSpec("userns")
        from hdp import rawsock

        try:
            rawsock.check_privilege(4)
            return AgentSpec("inprocess")
        except HdpError:
            pass
        if _works(["sudo", "-n", "-l", "--", *agent_command()]):
            # Allowed to start the agent (a narrow rule, `hdp agent sudoers`, or ALL).
            return AgentSpec("sudo")
        if sys.platform.startswith("linux") and set(paths) <= {"loopback"} \
                and _works(["unshare", "--user", "--map-root-user", "--net", "true"]):
            return AgentSpec("userns")
        raise AgentError("no way to open raw sockets: not root, no CAP_NET_RAW, sudo -n "
                         "refused" + ("" if set(paths) <= {"loopback"} else
                                      ", and user namespaces reach only loopback"))

    def close(self) -> None:
        for agent in self.agents:
            agent.close()
        self.agents.clear()


def lab_of(config: pytest.Config) -> Any:
    """The session's lab: brought up by the controller, attached to by xdist workers."""
    return getattr(config, "_hdp_lab", None)


def lab_targets(lab: Any, families: Sequence[int], vantage: str | None = None) -> list[Target]:
    """Each server of the lab, probed from its first client through an agent inside its
    namespace, or from `vantage`, the lab host this process itself runs in. A server
    behind a NAT expects the NAT's address as the source of what arrives."""
    topology = lab.topology
    client = topology.clients[0] if vantage is None else vantage
    usable = tuple(f for f in families if f == 4 or topology.ipv6)
    targets = []
    for server in topology.servers:
        addresses = {f: lab.address(server, f, toward=client) for f in usable}
        nat_source = {f: source for f in usable
                      if (source := lab.translated_source(client, server, f)) is not None}
        targets.append(Target(f"{topology.name}/{server}", usable, topology.name,
                              lab.agent(client) if vantage is None else "local",
                              lab.agent(server), addresses, nat_source))
    return targets


def _works(command: list[str]) -> bool:
    if shutil.which(command[0]) is None:
        return False
    try:
        return subprocess.run(command, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def privilege_fix() -> str:
    return ("to fix: run pytest as root (sudo -E pytest ...), grant CAP_NET_RAW, allow "
            "'sudo -n' for the agent (the rule `hdp agent sudoers --user NAME` prints), or "
            "on Linux enable unprivileged user namespaces (loopback targets only)")
