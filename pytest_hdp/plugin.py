"""pytest-hdp: `pytest --hdp-target=HOST` turns what networks do to IP packets into tests.

Read top to bottom: options, configure, collection, each test, the end, pytest-xdist,
fixtures. Each hook hands its work to the session object (pytest_hdp.session), one per
process, made at configure and kept under a StashKey; this module imports only light
ones, so that loading the plugin costs a pytest run without hdp tests next to nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Protocol

import pytest

from pytest_hdp.marker import CHECK_MARKER, marker_help
from pytest_hdp.session import HdpSession
from pytest_hdp.settings import add_options, resolve_settings

if TYPE_CHECKING:
    from hdp.case import Case, Delivery, Observation
    from hdp.checks.path import PathSettings, PathUnderTest
    from hdp.verdict import Verdict
    from pytest_hdp.probes import Hands, Listener
    from pytest_hdp.results import HdpCheck, HdpResult

SESSION = pytest.StashKey[HdpSession]()


def session_of(config: pytest.Config) -> HdpSession:
    return config.stash[SESSION]


# -- options ----------------------------------------------------------------------------

def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


# -- configure ----------------------------------------------------------------------------

def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", marker_help())
    config.addinivalue_line("markers", f"{CHECK_MARKER}(NAME, families=[4, 6]): the chapter "
                                       "statement a test of hdp_path checks "
                                       "(hdp/checks/chapter.py)")
    session = HdpSession(config, resolve_settings(config))
    config.stash[SESSION] = session
    session.configure()
    config.pluginmanager.register(ReportHooks(session), "hdp-reports")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(session), "hdp-xdist")


def pytest_report_header(config: pytest.Config) -> list[str]:
    return session_of(config).header()


# -- collection ---------------------------------------------------------------------------

def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    session_of(metafunc.config).parametrize(metafunc)


def pytest_collection_finish(session: pytest.Session) -> None:
    option = session.config.option
    # Tests will run: not only listed or planned, and no collection error stops the run.
    will_run = not (getattr(option, "collectonly", False) or getattr(option, "setupplan", False)
                    or getattr(option, "setuponly", False)) and not session.testsfailed
    session_of(session.config).collected(session.items, will_run=will_run)


# -- each test ----------------------------------------------------------------------------

@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    try:
        return (yield)
    except Exception as exc:
        # A capability the OS lacks skips; a path that carried nothing of the protocol
        # makes the test's check inconclusive.
        session_of(item.config).settle(item, exc)
        raise


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    session_of(item.config).annotate(item, call, report)
    return report


def pytest_report_teststatus(report: pytest.TestReport,
                             config: pytest.Config) -> tuple[str, str, str] | None:
    return session_of(config).teststatus(report)


class ReportHooks:
    """Hooks that pytest calls without the config: each test's report, from this process
    or from an xdist worker."""

    def __init__(self, session: HdpSession) -> None:
        self.session = session

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.session.record(report)


# -- the end -------------------------------------------------------------------------------

@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    session_of(session.config).finish()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    session_of(config).summary(terminalreporter)


# -- pytest-xdist ---------------------------------------------------------------------------

class Gateway(Protocol):
    id: str


class WorkerNode(Protocol):
    """What these hooks use of xdist's WorkerController (xdist ships no types)."""

    workerinput: dict[str, object]
    gateway: Gateway


class XdistHooks:
    """Registered only where pytest-xdist is loaded: the lab goes to the workers, their
    figures come back."""

    def __init__(self, session: HdpSession) -> None:
        self.session = session

    def pytest_xdist_setupnodes(self) -> None:
        self.session.setup_nodes()

    def pytest_configure_node(self, node: WorkerNode) -> None:
        node.workerinput.update(self.session.workerinput())

    def pytest_testnodedown(self, node: WorkerNode) -> None:
        output = getattr(node, "workeroutput", {})
        data = output.get("hdp") if isinstance(output, dict) else None
        if isinstance(data, dict):
            self.session.worker_done(str(node.gateway.id), data)


# -- fixtures -------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def hdp_session(request: pytest.FixtureRequest) -> HdpSession:
    """The session's probing: `.result(case)` probes any Case (see hdp.case) with the
    session's choices; `.settings` are the resolved --hdp-* options."""
    return session_of(request.config)


@pytest.fixture
def hdp_case(request: pytest.FixtureRequest) -> Case:
    """The case (target x family x protocol x payload, and the marker's probe knobs) a
    test is parametrised with: one test per case of the session, narrowed by
    @pytest.mark.hdp(...)."""
    raise pytest.UsageError(f"{request.node.nodeid}: hdp_case is parametrised by the "
                            "plugin; it has no value outside that")


@pytest.fixture
def hdp_result(request: pytest.FixtureRequest, hdp_case: Case) -> HdpResult:
    """The probed case: `.observation`, `.verdict`, `.arrival`, the profile's
    `.expectation`; `.check()` holds it to the profile, `.expect("lost")` to the test's
    own expectation. A failure says expected against observed in one line."""
    __tracebackhide__ = True  # our own failure (an ERROR) is one line, not our frames
    return session_of(request.config).result(hdp_case, request.node)


@pytest.fixture
def hdp_observation(hdp_result: HdpResult) -> Observation:
    """What was seen of the case: what was sent, what arrived (`.deliveries`), the ICMP
    errors, the OS's refusals (errno names)."""
    return hdp_result.observation


@pytest.fixture
def hdp_verdict(hdp_result: HdpResult) -> Verdict:
    """The case's verdict: `.outcome` (delivered, altered, unreachable, lost, ...),
    `.errno`, `.changes`, `.hops`, `.icmp`."""
    return hdp_result.verdict


@pytest.fixture
def hdp_arrival(hdp_result: HdpResult) -> Delivery | None:
    """The case's first packet as the listener received it (source, TTL, DSCP, ECN,
    length, kernel time, intact), or None when nothing arrived."""
    return hdp_result.arrival


@pytest.fixture
def hdp_path(request: pytest.FixtureRequest) -> PathUnderTest:
    """Both ends of a target's path (sender and receiver endpoints, the receiver's
    address, the links' MTUs), once per target and family of the session."""
    return session_of(request.config).path(getattr(request, "param", None))


@pytest.fixture
def hdp_check(request: pytest.FixtureRequest, hdp_path: PathUnderTest) -> HdpCheck:
    """The chapter statement the test's @pytest.mark.hdp_check("NAME") names, on this
    path: `.observe(answer)` passes on the chapter's answer, xfails on the platform
    profile's, fails naming both otherwise."""
    return session_of(request.config).check(request.node, hdp_path)


@pytest.fixture
def hdp_sysctl(request: pytest.FixtureRequest,
               hdp_path: PathUnderTest) -> Iterator[PathSettings]:
    """The path's kernel settings, held for this test: `.steady()`, `.read(NAME)`,
    `.alone()`, `.change(NAME, VALUE)`; a change is written back when the test ends,
    however it ends."""
    settings = session_of(request.config).sysctl(hdp_path)
    try:
        yield settings
    finally:
        settings.release()


@pytest.fixture
def hdp_sender(request: pytest.FixtureRequest) -> Hands:
    """`hdp_sender.send(dst, protocol, dscp=, ttl=, df=, size=, data=, payload=,
    host=...)` sends one tagged probe from `host` (default: the session's first target's
    sender) and returns what the kernel said (a `Sent`)."""
    return session_of(request.config).hands()


@pytest.fixture
def hdp_listener(request: pytest.FixtureRequest) -> Callable[..., Listener]:
    """`hdp_listener(protocols, family=4, host=...)` opens raw listeners on `host`
    (default: the session's first target's receiving end); `.wait(sent)` returns the
    `Arrival` or raises ProbeTimeout, `.address` is where to send."""
    return session_of(request.config).hands().listener
