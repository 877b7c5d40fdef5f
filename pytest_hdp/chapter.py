"""The UDP/fragmentation chapter as tests: `hdp_path` (both ends of a path) and `hdp_check`.

A test asks for `hdp_path` and is run once per target and address family of the session
(the loopback, each lab server seen from its client, an ssh host); it drives the two
ends' agents through hdp.endpoint. It names the chapter statement it checks with
`@pytest.mark.hdp_check("NAME")` and reports what it observed with
`hdp_check.observe(answer)`: the chapter's answer passes, the answer a profile in
conformance/profiles/udp/ expects instead xfails with the profile's reason (strict), and
anything else fails naming both.
"""

from __future__ import annotations

import itertools
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHECK_KEY = pytest.StashKey[dict[str, Any]]()


class ChapterQuirk(Exception):
    """The platform answered as its profile says, not as the chapter does: xfail."""


@dataclass
class PathUnderTest:
    """Both ends of one path, for one address family."""

    target: str  # the case target name: 127.0.0.1, routed/server, ...
    path: str  # loopback | network | a lab topology name
    family: int
    sender: Any  # hdp.endpoint.Endpoint
    receiver: Any  # hdp.endpoint.Endpoint (the same object on a loopback path)
    dst: str  # the receiver's address as the sender reaches it
    links: tuple[int, ...] = ()  # link MTUs from sender to receiver, where known
    private: bool = False  # both ends run in namespaces of our own (settings may change)
    translated: bool = False  # a router on the path rewrites the source (NAT)
    _src: str | None = None

    @property
    def id(self) -> str:
        return f"{self.target}-ipv{self.family}"

    @property
    def loopback(self) -> bool:
        return self.sender is self.receiver

    def src(self) -> str:
        """The sender's source address toward the receiver (asked once per path)."""
        if self._src is None:
            self._src = str(self.sender.source_for(self.dst, self.family))
        return self._src

    def flow(self, protocol: int, sport: int | None, dport: int | None, *,
             identifications: Iterable[int] = ()) -> Any:
        """The test's own exchange, from the sender's address and port to the receiver's
        (hdp.flow.Flow), for a capture at either end. `identifications` are the IP IDs of
        packets the test built itself.

        Behind a NAT the source is left open: what source arrives is what such a test is
        about (and a NAT may leave a protocol it does not know untranslated), and even a
        capture at the sender may show the router's rewrite, since the copy it reads
        shares memory with the packet the router translates in place. The receiver's
        address and the port of the test's own socket still pin the flow."""
        from ipaddress import ip_address

        from hdp.flow import Flow

        dst, ids = ip_address(self.dst), frozenset(identifications)
        if self.translated:
            return Flow(protocol, None, dst, None, dport, ids)
        return Flow(protocol, ip_address(self.src()), dst, sport, dport, ids)

    @property
    def narrowest(self) -> int | None:
        return min(self.links) if self.links else None

    def first_link(self) -> int:
        """The MTU of the sender's link toward the receiver: the lab's, or its kernel's
        route MTU where the links are not known (before any path MTU is learned)."""
        if self.links:
            return self.links[0]
        opened = self.sender.open_udp(self.family, connect=(self.dst, 9))
        try:
            mtu = self.sender.path_mtu(opened.handle)
        finally:
            self.sender.close(opened.handle)
        if mtu is None:
            pytest.skip(f"{self.id}: the sender cannot tell its path MTU toward {self.dst}")
        return int(mtu)


@dataclass
class Check:
    """One chapter statement on one path: what is expected, and what was observed."""

    name: str
    section: str
    claim: str
    target: str
    path: str
    family: int
    chapter: tuple[str, ...] | None
    profile: Any  # hdp.profile.CheckRule, or None
    observed: str | None = None
    detail: str = ""
    computed: tuple[str, ...] | None = None

    @property
    def expected(self) -> tuple[str, ...] | None:
        if self.profile is not None:
            return (self.profile.expect,)
        return self.computed or self.chapter

    def expect(self, *answers: str) -> None:
        """The chapter's answer for this path, computed by the test from the chapter's rule."""
        self.computed = answers

    def observe(self, answer: str, detail: str = "") -> None:
        """Pass on the expected answer; xfail on a profile's; fail on anything else."""
        self.observed, self.detail = answer, detail
        expected = self.expected
        chapter = self.computed or self.chapter
        if expected is None:
            raise AssertionError(f"{self.name}: no expectation for this path")
        if answer in expected:
            if self.profile is not None:
                raise ChapterQuirk(self.profile.why)
            return
        if self.profile is not None and chapter is not None and answer in chapter:
            return  # the quirk is gone: strict xfail makes this XPASS fail the run
        said = "the profile's rule" if self.profile is not None else \
            f"chapter {self.section}"
        raise AssertionError(
            f"{self.name} on {self.target} IPv{self.family}: {said} expects "
            f"{' or '.join(expected)}, observed {answer}" + (f" ({detail})" if detail else ""))

    def entry(self, verdict: str) -> dict[str, Any]:
        return {"check": self.name, "section": self.section, "claim": self.claim,
                "target": self.target, "path": self.path, "family": self.family,
                "expected": list(self.expected or ()), "chapter": list(self.computed or
                                                                        self.chapter or ()),
                "observed": self.observed, "detail": self.detail, "verdict": verdict,
                "why": None if self.profile is None else self.profile.why}


class PathSettings:
    """Kernel settings of a path's ends for one test (see hdp.lab.hold): `steady` and
    `read` hold a namespace shared, `alone` and `change` hold it alone; `side` is
    "receiver" or "sender". What a test changed is written back, and the holds let go,
    when it ends."""

    def __init__(self, path: PathUnderTest) -> None:
        from hdp.lab.hold import SettingsHold

        self.path = path
        self.hold = SettingsHold()

    def _end(self, side: str) -> Any:
        if side not in ("receiver", "sender"):
            raise ValueError(f"side must be 'receiver' or 'sender', not {side!r}")
        return self.path.receiver if side == "receiver" else self.path.sender

    def steady(self, side: str = "receiver") -> None:
        self.hold.steady(self._end(side))

    def read(self, name: str, side: str = "receiver") -> dict[str, Any]:
        return self.hold.read(self._end(side), name)

    def alone(self, side: str = "receiver") -> None:
        self.hold.alone(self._end(side))

    def change(self, name: str, value: str | int, side: str = "receiver", *,
               restore: str | int | None = None) -> dict[str, Any]:
        return self.hold.change(self._end(side), name, value, restore=restore)


@dataclass
class Ends:
    """The agents a session started for chapter tests, one pair per target, kept open."""

    endpoints: dict[str, Any] = field(default_factory=dict)

    def endpoint(self, spec: Any, name: str) -> Any:
        from hdp.agent.launch import AgentClient

        key = str(spec)
        if key not in self.endpoints:
            self.endpoints[key] = _endpoint_class()(AgentClient.start(spec), name)
        return self.endpoints[key]

    def close(self) -> None:
        for endpoint in self.endpoints.values():
            endpoint.agent.close()
        self.endpoints.clear()


def _endpoint_class() -> type:
    """Endpoint whose requests that need a root caller skip the test, saying so."""
    from hdp.endpoint import AgentRefusal, Endpoint

    class SkippingEndpoint(Endpoint):
        def call(self, request: Any, *, answer_within: float = 15.0) -> dict[str, Any]:
            try:
                return super().call(request, answer_within=answer_within)
            except AgentRefusal as exc:
                pytest.skip(f"{exc}; to fix: run pytest as root for this test")

    return SkippingEndpoint


class ChapterPlugin:
    """Parametrisation, fixtures and report entries of the chapter tests."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.ends = Ends()
        self.entries: list[dict[str, Any]] = []
        from hdp import profile as profiles
        from hdp.errors import HdpError

        for folder in self.folders():  # a bad file is a usage error up front, not mid-run
            for path in sorted(folder.glob("*.y*ml")):
                if path.suffix in (".yaml", ".yml") and not path.stem.endswith(".obtained"):
                    try:
                        profiles.load_profile(path)
                    except HdpError as exc:
                        raise pytest.UsageError(f"chapter profiles: {exc}") from None

    def folders(self) -> list[Path]:
        """The chapter profiles' folders: the user's beside the rootdir, then the shipped."""
        from hdp.resources import profile_folders

        return profile_folders(Path(str(self.config.rootpath)), "udp")

    def session(self) -> Any:
        from pytest_hdp.plugin import hdp_session_of

        return hdp_session_of(self.config)

    # -- expectations ---------------------------------------------------------------

    def profile_for(self, path: str) -> Any:
        """The chapter profile (conformance/profiles/udp/) of this platform and path."""
        session = self.session()
        if session.settings.profile == "none":
            return None
        return session.select_profile("udp", path, "chapter profiles")

    def rule_for(self, name: str, family: int, path: str) -> Any:
        profile = self.profile_for(path)
        if profile is None:
            return None
        return next((rule for rule in profile.checks if rule.matches(name, family, path)),
                    None)

    # -- parametrisation ------------------------------------------------------------

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "hdp_path" not in metafunc.fixturenames:
            return
        from hdp.chapter import BY_NAME

        marker = metafunc.definition.get_closest_marker("hdp_check")
        name = marker.args[0] if marker and marker.args else None
        if name is not None and name not in BY_NAME:
            raise pytest.UsageError(f"{metafunc.definition.nodeid}: hdp_check names no "
                                    f"chapter statement {name!r} (see hdp/chapter.py)")
        families = set(marker.kwargs.get("families", (4, 6))) if marker else {4, 6}
        params = []
        for target in self.session().targets:
            for family in target.families:
                if family not in families:
                    continue
                marks = []
                rule = None if name is None else self.rule_for(name, family, target.path)
                if rule is not None:
                    marks.append(pytest.mark.xfail(strict=True, raises=ChapterQuirk,
                                                   reason=f"{rule.why} ({name}: "
                                                          f"{rule.expect})"))
                params.append(pytest.param((target, family), marks=marks,
                                           id=f"{target.name}-ipv{family}"))
        metafunc.parametrize("hdp_path", params, indirect=True)

    # -- fixtures -------------------------------------------------------------------

    @pytest.fixture
    def hdp_path(self, request: pytest.FixtureRequest) -> PathUnderTest:
        """Both ends of the path this test runs on (see PathUnderTest)."""
        target, family = request.param
        return self._ends_of(target, family)

    @pytest.fixture
    def hdp_check(self, request: pytest.FixtureRequest,
                  hdp_path: PathUnderTest) -> Iterator[Check]:
        """The chapter statement named by the test's hdp_check marker, on this path."""
        from hdp.chapter import BY_NAME

        marker = request.node.get_closest_marker("hdp_check")
        if marker is None or not marker.args:
            raise pytest.UsageError(f"{request.node.nodeid}: hdp_check needs "
                                    "@pytest.mark.hdp_check(\"NAME\")")
        statement = BY_NAME[marker.args[0]]
        check = Check(statement.name, statement.section, statement.claim, hdp_path.target,
                      hdp_path.path, hdp_path.family, statement.expected(hdp_path.family),
                      self.rule_for(statement.name, hdp_path.family, hdp_path.path))
        request.node.stash[CHECK_KEY] = {"check": check}
        yield check

    @pytest.fixture
    def hdp_sysctl(self, hdp_path: PathUnderTest) -> Iterator[PathSettings]:
        """The path's kernel settings, held for this test (see PathSettings); a change
        is written back when the test ends, also when it failed or was interrupted."""
        settings = PathSettings(hdp_path)
        try:
            yield settings
        finally:
            settings.hold.release()

    def _ends_of(self, target: Any, family: int) -> PathUnderTest:
        from hdp.agent.launch import AgentError, AgentSpec
        from pytest_hdp.session import privilege_fix

        session = self.session()
        try:
            if target.sender == "local":
                sender_spec = session.local_sender_spec({target.path})
            else:
                sender_spec = AgentSpec.parse(target.sender)
            sender = self.ends.endpoint(sender_spec, "sender")
            if target.listener == "same":
                receiver = sender
            elif target.listener is None:
                pytest.skip(f"{target.name}: the chapter's tests need an agent at the "
                            "receiving end; give --hdp-target=ssh://HOST or --hdp-lab NAME")
            else:
                receiver = self.ends.endpoint(AgentSpec.parse(target.listener), target.name)
        except AgentError as exc:
            pytest.skip(f"{exc}; {privilege_fix()}")
        dst = target.addresses.get(family) or target.name
        links: tuple[int, ...] = ()
        lab = session.lab
        private = translated = False
        if lab is not None and target.path == lab.topology.name:
            client, server = lab.topology.clients[0], target.name.split("/", 1)[1]
            links = tuple(_link_mtu(lab.topology, a, b)
                          for a, b in itertools.pairwise(lab.path(client, server)))
            private = True
            translated = lab.translated_source(client, server, family) is not None
        return PathUnderTest(target.name, target.path, family, sender, receiver, dst,
                             links, private, translated)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        """A capability an end's OS lacks (hdp.endpoint.Unavailable) skips the test."""
        if "hdp_path" not in getattr(item, "fixturenames", ()):
            return (yield)
        from hdp.endpoint import Unavailable

        try:
            return (yield)
        except Unavailable as exc:
            pytest.skip(str(exc))

    # -- report entries ---------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item,
                                  call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        report = yield
        held = item.stash.get(CHECK_KEY, None)
        if held is not None and report.when == "call":
            check: Check = held["check"]
            if check.observed is not None:
                verdict = "xfail" if report.skipped else "pass" if report.passed else "fail"
                report.hdp_check = check.entry(verdict)
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        entry = getattr(report, "hdp_check", None)
        if isinstance(entry, dict) and not hasattr(self.config, "workerinput"):
            self.entries.append(entry)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self) -> None:
        # After pytest's own teardown of what an interrupt left set up: an `hdp_sysctl`
        # finalizer still needs its agent to write a setting back.
        self.ends.close()


def _link_mtu(topology: Any, a: str, b: str) -> int:
    for link in topology.links:
        if a in link.ends and b in link.ends:
            return int(link.mtu or 1500)
    return 1500
