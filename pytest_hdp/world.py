"""Everything one pytest process needs to probe: the lab, the targets, the profiles, the
agents, and the results they gave. The session (pytest_hdp.session) makes it when the
first hdp test is collected, so a run without one never loads any of it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest

from hdp import rawsock
from hdp import target as targets
from hdp.address import LOOPBACK, resolve
from hdp.agent.install import agent_command
from hdp.agent.launch import AgentError, AgentSpec, split_ssh
from hdp.case import Case, Observation
from hdp.checks.chapter import BY_NAME
from hdp.checks.path import PathSettings, PathUnderTest
from hdp.checks.support import NotCarried
from hdp.endpoint import Unavailable
from hdp.errors import HdpError
from hdp.lab.errors import LabError
from hdp.lab.lab import Lab
from hdp.target import Target
from pytest_hdp import labs, reporting
from pytest_hdp.expectations import Profiles
from pytest_hdp.marker import HdpMark
from pytest_hdp.outcome import MachineryError, NotHere
from pytest_hdp.paths import Ends
from pytest_hdp.prober import Evidence, NoLocalAgent, Probed, Prober, Request, judged
from pytest_hdp.results import HdpCheck, HdpResult
from pytest_hdp.settings import Settings
from pytest_hdp.shared import SharedResults

if TYPE_CHECKING:
    from pytest_hdp.probes import Hands, Host
    from pytest_hdp.streams import StreamProber

T = TypeVar("T")
VANTAGE_ENV = "HDP_VANTAGE"  # names this process's vantage point, e.g. on an ssh worker
PRIVILEGE_FIX = ("to fix: run pytest as root (sudo -E pytest ...), grant CAP_NET_RAW, allow "
                 "'sudo -n' for the agent (the rule `hdp agent sudoers --user NAME` prints), "
                 "or on Linux enable unprivileged user namespaces (loopback targets only)")
# What our own machinery raises when it fails: such a test is an ERROR, not a result.
MACHINERY_ERRORS: tuple[type[BaseException], ...] = (MachineryError, AgentError, LabError)


class HdpWorld:
    """The probing state of one pytest process (the controller, or one xdist worker)."""

    def __init__(self, settings: Settings, rootpath: Path,
                 shared_lab: Mapping[str, str] | None,
                 on_down: Callable[[Callable[[], None]], None],
                 shared_results: str | None = None) -> None:
        """`shared_lab`: the controller's lab, for an xdist worker; `on_down` registers
        what must run when the session ends (taking a lab down); `shared_results`: the
        directory where xdist workers probe once for all (pytest_hdp.shared)."""
        self.settings = settings
        self.on_down = on_down
        self.lab: Lab | None = None
        self.lab_owned = False
        self.lab_note: str | None = None
        self.vantage = os.environ.get(VANTAGE_ENV) or None
        self._plan_lab(shared_lab)
        self.targets = self._plan_targets()
        self.profiles = Profiles(rootpath, settings.profile)
        self.prober = Prober(self.local_sender_spec, capture=settings.pcap != "none")
        self._streams: StreamProber | None = None  # cases with count=, made on first need
        self.results: dict[Request, Probed] = {}
        self.wanted: list[Request] = []
        self._prefetch: threading.Thread | None = None
        self._prefetch_error: Exception | None = None
        self.no_privilege: str | None = None
        self.ends = Ends()
        self._hands: Hands | None = None  # hand-written probes, made on first need
        # A vantage point of its own sees from where it is: it probes for itself.
        self.shared = SharedResults(shared_results) \
            if shared_results is not None and self.vantage is None else None

    # -- planning ---------------------------------------------------------------------

    def _plan_lab(self, shared: Mapping[str, str] | None) -> None:
        choice = self.settings.lab
        if shared is not None:
            self.lab = labs.attach(shared)
            self.vantage = labs.vantage_of(self.lab) or self.vantage
        elif choice == "auto":
            why = labs.why_no_auto_lab()
            if why is None:
                self.lab, self.lab_owned = labs.plan(labs.AUTO_LAB), True
            else:
                self.lab_note = f"default target: loopback ({why})"
        elif choice is not None:
            self.lab, self.lab_owned = labs.plan(choice), True

    def _plan_targets(self) -> list[Target]:
        settings = self.settings
        planned = []
        if self.lab is None or settings.targets_given:
            planned = [targets.plan_target(text, settings.families)
                       for text in targets.expand(settings.targets, settings.families)]
        if self.lab is not None:
            planned += labs.targets(self.lab, settings.families, self.vantage)
        return planned

    def targets_for(self, mark: HdpMark) -> list[Target]:
        return [t for t in self.targets
                if (mark.targets is None or t.name in mark.targets)
                and (mark.paths is None or t.path in mark.paths)]

    def cases_for(self, mark: HdpMark) -> list[Case]:
        """The session's cases as the test's marker chooses them: its protocols, families
        and payloads (within the session's, where those were given), its probe knobs."""
        settings = self.settings
        protocols = _choose(settings.protocols, mark.protocols, "hdp_protocols" in settings.given)
        families = _choose(settings.families, mark.families, "hdp_family" in settings.given)
        payloads = _choose(settings.payloads, mark.payloads, "hdp_payload" in settings.given)
        data = None if mark.data is None else mark.data.hex()
        size = len(mark.data) if mark.data is not None else mark.size or 64
        return [Case(target.name, family, protocol, payload, size=size, path=target.path,
                     df=mark.df, tos=mark.tos or 0, ttl=mark.ttl, data=data,
                     count=mark.count, rate=mark.rate)
                for target in self.targets_for(mark)
                for family in target.families if family in families
                for payload in payloads
                for protocol in protocols]

    def none_for(self, mark: HdpMark, what: str) -> str:
        """Why a test's marker leaves it no `what` (case or path) in this session, and how
        to give it one: the skip reason of its lone placeholder."""
        have = ", ".join(f"{t.name} ({t.path})" for t in self.targets) or "no target"
        narrowed = [f"{name}={list(value)}" for name, value in
                    (("targets", mark.targets), ("paths", mark.paths)) if value is not None]
        by = f" with @pytest.mark.hdp({', '.join(narrowed)})" if narrowed else ""
        return (f"no hdp {what} here{by}: this session probes {have}; give a target it "
                "wants with --hdp-target or --hdp-lab (e.g. --hdp-lab none for loopback)")

    def paths_for(self, mark: HdpMark, families: Iterable[int]) -> list[tuple[Target, int]]:
        wanted = set(families)
        return [(target, family) for target in self.targets_for(mark)
                for family in target.families if family in wanted]

    def request(self, case: Case, mark: HdpMark) -> Request:
        listener = mark.listener if mark.listener is not None else self.settings.listener
        return Request(case, None if listener == "auto" else listener,
                       mark.timeout or self.settings.timeout)

    def validate_profiles(self) -> None:
        """Every profile the targets will need, loaded now (HdpError: a usage error)."""
        self.profiles.validate({target.path for target in self.targets})

    # -- the lab ------------------------------------------------------------------------

    def lab_up(self) -> None:
        """Bring the session's lab up if this process owns it; LabError if it cannot."""
        if self.lab is not None and self.lab_owned:
            labs.bring_up(self.lab, self.on_down)

    def reachable(self) -> dict[str, Target]:
        """The targets by name, their lab ends made agent specs (the lab comes up)."""
        self.lab_up()
        return {t.name: labs.real(t, self.lab) for t in self.targets}

    # -- probing --------------------------------------------------------------------------

    @property
    def statements(self) -> list[str]:
        """The chapter's statements a test of `hdp_path` may name."""
        return list(BY_NAME)

    def want(self, tests: Iterable[tuple[object, HdpMark]]) -> None:
        """The cases collected tests are parametrised with (and their markers): the first
        batch probes them all."""
        # Not pytest's empty-parameter placeholder, and no stream of many probes: each of
        # those leaves when its own test runs (pytest_hdp.streams).
        self.wanted += [self.request(case, mark) for case, mark in tests
                        if isinstance(case, Case) and case.count is None]

    def probed(self, request: Request, *, again: bool = False) -> Probed:
        """The request's result: from the batch of every case this process collected,
        probed the first time one is asked for; `again` probes it anew (a rerun).
        NotHere when no raw sockets can be had; MachineryError when our own
        machinery fails."""
        self._join_prefetch()
        if self.no_privilege is not None:
            raise NotHere(self.no_privilege)
        if again or request not in self.results:
            pending = [request] if again else \
                [r for r in dict.fromkeys([*self.wanted, request]) if r not in self.results]
            with self._machinery():
                if request.case.count is not None:  # a stream leaves when its test runs
                    self.results[request] = self.streams.probe(request, self.reachable())
                elif self.shared is not None and not again:
                    self._fetch(self.shared, pending)
                else:
                    self._probe(pending)
        return self.results[request]

    def prefetch(self) -> None:
        """Under xdist, fetch the batch (pytest_hdp.shared) from the end of collection
        on, in a thread, rather than when the first test asks: the worker then only
        waits for the controller to hand out tests, and the first worker's probing
        overlaps that. The first test to ask joins it (probed)."""
        if self.shared is None or not self.wanted or self._prefetch is not None or \
                self.no_privilege is not None:
            return
        shared, pending = self.shared, list(dict.fromkeys(self.wanted))

        def fetch() -> None:
            try:
                self._fetch(shared, pending)
            except Exception as exc:  # raised again in the test that joins (probed)
                self._prefetch_error = exc

        self._prefetch = threading.Thread(target=fetch, name="hdp-prefetch", daemon=True)
        self._prefetch.start()

    def _join_prefetch(self) -> None:
        thread, self._prefetch = self._prefetch, None
        if thread is None:
            return
        thread.join()
        error, self._prefetch_error = self._prefetch_error, None
        if error is not None:
            with self._machinery():
                raise error

    def _fetch(self, shared: SharedResults, pending: list[Request]) -> None:
        shared.fetch(pending, self._probe, self._found,
                     lambda: [(r, p.observation, p.evidence) for r, p in self.results.items()])

    @contextlib.contextmanager
    def _machinery(self) -> Iterator[None]:
        """Our own failures as the test sees them: a lab that did not come up is an
        ERROR (MachineryError); no raw sockets to be had skips (NotHere), then and
        for every test after."""
        try:
            yield
        except LabError as exc:
            raise MachineryError(f"the lab did not come up: {exc}") from None
        except (AgentError, NoLocalAgent) as exc:
            self.no_privilege = f"{exc}; {PRIVILEGE_FIX}"
            raise NotHere(self.no_privilege) from None

    def _probe(self, requests: list[Request]) -> None:
        self.results.update(self.prober.probe(requests, self.reachable()))

    def _found(self, request: Request, observation: Observation,
               evidence: Evidence | None) -> None:
        """A result another xdist worker probed, judged as this one would have."""
        self.results[request] = judged(request, observation, evidence, self.reachable())

    def result(self, request: Request, test: str, *, again: bool = False) -> HdpResult:
        """The test's result (NotHere, MachineryError: see probed)."""
        probed = self.probed(request, again=again)
        case = request.case
        return HdpResult(case, probed.observation, probed.verdict,
                         self.profiles.expectation(case), request.timeout, self.vantage,
                         self.profiles.caveat(case.path), probed.evidence,
                         self.settings.pcap_dir if self.settings.pcap != "none" else None, test)

    def local_sender_spec(self, paths: Iterable[str]) -> AgentSpec:
        """Where local probes come from, per --hdp-privilege; AgentError when nothing works."""
        mode = self.settings.privilege
        if mode == "direct":
            return AgentSpec("inprocess")
        if mode in ("sudo", "userns"):
            return AgentSpec(mode)
        try:
            rawsock.check_privilege(4)
            return AgentSpec("inprocess")
        except HdpError:
            pass
        if _works(["sudo", "-n", "-l", "--", *agent_command()]):
            # Allowed to start the agent (a narrow rule, `hdp agent sudoers`, or ALL).
            return AgentSpec("sudo")
        loopback_only = set(paths) <= {"loopback"}
        if sys.platform.startswith("linux") and loopback_only \
                and _works(["unshare", "--user", "--map-root-user", "--net", "true"]):
            return AgentSpec("userns")
        raise AgentError("no way to open raw sockets: not root, no CAP_NET_RAW, sudo -n "
                         "refused" + ("" if loopback_only else
                                      ", and user namespaces reach only loopback"))

    # -- chapter paths and checks -------------------------------------------------------

    def path_of(self, param: object) -> PathUnderTest:
        """The path of an `hdp_path` parameter, as parametrize() made it."""
        if not (isinstance(param, tuple) and len(param) == 2 and isinstance(param[0], Target)
                and isinstance(param[1], int)):
            raise TypeError(f"hdp_path is parametrised by the plugin, not with {param!r}")
        return self.path_under_test(param[0], param[1])

    def path_under_test(self, target: Target, family: int) -> PathUnderTest:
        """Both ends of `target`'s path; NotHere, NoReceiver (paths) or LabError."""
        if self.no_privilege is not None:
            raise NotHere(self.no_privilege)
        self.lab_up()
        try:
            return self.ends.path(labs.real(target, self.lab), family, self.local_sender_spec,
                                  self.lab, self.vantage)
        except AgentError as exc:
            raise NotHere(f"{exc}; {PRIVILEGE_FIX}") from None

    def check(self, name: str, path: PathUnderTest) -> HdpCheck:
        return HdpCheck.of(BY_NAME[name], path.target, path.path, path.family,
                           self.profiles.check_rule(name, path.family, path.path))

    def skips(self, exc: BaseException) -> bool:
        """Whether `exc`, raised by a test, means it cannot run here (an OS without the
        capability: hdp.endpoint.Unavailable) rather than that it failed."""
        return isinstance(exc, Unavailable)

    def carried_nothing(self, exc: BaseException) -> bool:
        """Whether `exc`, raised by a test, says the path carried not even a valid datagram
        of the protocol under test (hdp.checks.support.NotCarried)."""
        return isinstance(exc, NotCarried)

    def machinery_failed(self, exc: BaseException) -> bool:
        """Whether `exc`, raised by a test, is our own machinery failing: an ERROR."""
        return isinstance(exc, MACHINERY_ERRORS) and not isinstance(exc, Unavailable)

    # -- hand-written probes --------------------------------------------------------------

    def hands_here(self) -> Hands:
        """The session's hand-written probes; NotHere without raw sockets."""
        if self.no_privilege is not None:
            raise NotHere(self.no_privilege)
        try:
            self.local_sender_spec({"loopback"})
        except AgentError as exc:
            self.no_privilege = f"{exc}; {PRIVILEGE_FIX}"
            raise NotHere(self.no_privilege) from None
        if self._hands is None:
            from pytest_hdp.probes import Hands

            self._hands = Hands(self.host)
        return self._hands

    def host(self, name: str | None, role: str) -> Host:
        """A host by the name a test gives (see the README's "Writing path tests"):
        None, the session's first target's sending or receiving end; `local`; a lab
        host (`server`, `routed/server`); `netns://NAME`; `ssh://[user@]host`."""
        from pytest_hdp.probes import Host  # with the hands that ask for it

        if name is None:
            return self._first_target_end(role)
        if name == "local":
            return Host("local", self.local_sender_spec({"loopback"}), dict(LOOPBACK))
        found = labs.LabHost.find(self.lab, name)
        if found is not None:
            self.lab_up()
            topology = found.lab.topology
            toward = topology.clients[0] if found.host != topology.clients[0] else \
                topology.servers[0]
            families = (4, 6) if topology.ipv6 else (4,)
            return Host(f"{topology.name}/{found.host}", AgentSpec.parse(
                found.lab.agent(found.host)), {f: found.lab.address(found.host, f, toward=toward)
                                                for f in families})
        if name.startswith("netns://"):
            return Host(name, AgentSpec.parse(name), dict(LOOPBACK))
        if name.startswith("ssh://"):
            where = split_ssh(name[len("ssh://"):])[0].rpartition("@")[2]
            addresses = {f: a for f in (4, 6) if (a := resolve(where, f)[0]) is not None}
            return Host(name, AgentSpec.parse(name), addresses)
        raise ValueError(f"host {name!r}: give 'local', a lab host such as 'server' or "
                         "'routed/server', netns://NAME or ssh://[user@]host")

    def _first_target_end(self, role: str) -> Host:
        if not self.targets:
            raise ValueError("the session has no targets: give host=")
        target = self.reachable()[self.targets[0].name]
        end = target.sender if role == "sender" else target.listener
        if end == "same":
            end = target.sender
        if end is None:
            raise ValueError(f"{target.name} has no agent to listen with: give host= or "
                             "an ssh:// target")
        spec = self.local_sender_spec({target.path}) if end == "local" else AgentSpec.parse(end)
        addresses = dict(target.addresses) or {
            f: a for f in target.families if (a := resolve(target.name, f)[0]) is not None}
        from pytest_hdp.probes import Host

        return Host(f"{target.name} ({role})", spec, addresses)

    def path_settings(self, path: PathUnderTest) -> PathSettings:
        return PathSettings(path)

    # -- the end -------------------------------------------------------------------------

    def shared_lab(self) -> dict[str, str] | None:
        """The lab a worker attaches to: this process's, once it is up."""
        if self.lab is None or not self.lab.is_up or not self.lab_owned:
            return None
        return labs.share(self.lab)

    def case_entry(self, result: HdpResult, label: str) -> dict[str, object]:
        return reporting.case_entry_of(result, label)

    def write_outputs(self, cases: Iterable[dict[str, object]],
                      checks: Iterable[dict[str, object]], written: list[str],
                      warnings: list[str]) -> None:
        notes = reporting.RunNotes(written, warnings)
        reporting.write_outputs(reporting.build(cases, checks), self.settings,
                                os.environ.get("GITHUB_STEP_SUMMARY"), notes)

    def summary(self, cases: Iterable[dict[str, object]], checks: Iterable[dict[str, object]],
                agents: Iterable[str], drops: Mapping[str, int], written: list[str],
                warnings: list[str], terminal: pytest.TerminalReporter) -> None:
        reporting.terminal_summary(reporting.build(cases, checks), self.facts(agents, drops),
                                   reporting.RunNotes(written, warnings), terminal)

    def facts(self, agents: Iterable[str], drops: Mapping[str, int]) -> reporting.RunFacts:
        lab = None
        if self.lab is not None and (self.lab.is_up or not self.lab_owned):
            lab = (f"{self.lab.topology.name} ({self.lab.topology.description}), token "
                   f"{self.lab.token}")
        in_use = self.profiles.in_use(t.path for t in self.targets)
        in_use = self.profiles.in_use(t.path for t in self.targets)
        return reporting.RunFacts([p.path for p in in_use], lab, self.lab_note,
                                  [*self.agents_used, *agents],
                                  {**self.prober.drops, **drops})

    def header(self) -> list[str]:
        """What the run's header says of hdp: targets, lab, profile (and its caveats)."""
        lines = ["hdp targets: " + ", ".join(t.name for t in self.targets)]
        if self.lab is not None:
            lines.append(f"hdp lab: {self.lab.topology.name} (comes up with the first probe)"
                         if self.lab_owned else f"hdp lab: {self.lab.topology.name}, "
                                                f"token {self.lab.token}")
        if self.lab_note:
            lines.append(f"hdp {self.lab_note}")
        if self.profiles.explicit is not None:
            lines.append(f"hdp profile: {self.profiles.explicit.path}")
            for path in dict.fromkeys(t.path for t in self.targets):
                caveat = self.profiles.caveat(path)
                if caveat:
                    lines.append(f"hdp profile warning: {caveat}; its xfails may not hold")
        return lines

    @property
    def streams(self) -> StreamProber:
        """The prober of many-probe cases (and hdp.measure), loaded when one is asked."""
        if self._streams is None:
            from pytest_hdp.streams import StreamProber

            self._streams = StreamProber(self.local_sender_spec)
        return self._streams

    @property
    def agents_used(self) -> list[str]:
        """Every agent spec that probed, one-probe batches and streams alike."""
        streams = [] if self._streams is None else self._streams.used
        return list(dict.fromkeys([*self.prober.used, *streams]))

    def close(self) -> None:
        if self._prefetch is not None:  # no test asked for its results: let it finish
            self._prefetch.join()
            self._prefetch = None
        self.prober.close()
        if self._streams is not None:
            self._streams.close()
        if self._hands is not None:
            self._hands.close()
        self.ends.close()


def _choose(session: tuple[T, ...], marked: tuple[T, ...] | None, given: bool) -> list[T]:
    """The marker's values; within the session's where the user gave those explicitly."""
    if marked is None:
        return list(session)
    return [value for value in marked if not given or value in session]


def _works(command: list[str]) -> bool:
    if shutil.which(command[0]) is None:
        return False
    try:
        return subprocess.run(command, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
