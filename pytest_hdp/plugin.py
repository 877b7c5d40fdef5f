"""pytest-hdp: `pytest --hdp-target=HOST` turns what networks do to IP packets into tests.

Read top to bottom: options, configure, parametrisation, fixtures, reporting. Loading the
plugin imports only its settings: the probing machinery loads when a test asks for it,
so pytest runs that use no hdp fixture pay nothing for it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_hdp import settings

if TYPE_CHECKING:
    from pytest_hdp.probes import AgentProbes
    from pytest_hdp.session import HdpResult, HdpSession

SETTINGS_KEY = pytest.StashKey[settings.Settings]()
SESSION_KEY = pytest.StashKey["HdpSession"]()
RESULT_KEY = pytest.StashKey["HdpResult"]()


# -- options and configuration ---------------------------------------------------------

def pytest_addoption(parser: pytest.Parser) -> None:
    settings.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "hdp(protocols=SPEC, families=[4, 6], payloads=[...], targets=[...]): "
        "narrow the hdp cases a test is parametrised with")
    resolved = settings.resolve(config)
    config.stash[SETTINGS_KEY] = resolved
    if resolved.profile not in ("auto", "none"):
        settings.check_profile(resolved.profile)  # a bad file is a usage error, up front
    if resolved.lab and resolved.lab != "auto":  # 'auto' comes up lazily, with hdp cases
        _configure_lab(config, resolved.lab)
    if not hasattr(config, "workerinput"):  # only the controller collects and reports
        config.pluginmanager.register(Collector(config), "hdp-collector")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(config), "hdp-xdist")
    config.addinivalue_line(
        "markers", "hdp_check(NAME, families=[4, 6]): the chapter statement a test of "
        "hdp_path checks (hdp/chapter.py)")
    from pytest_hdp.chapter import ChapterPlugin

    config.pluginmanager.register(ChapterPlugin(config), "hdp-chapter")


def _configure_lab(config: pytest.Config, name: str) -> None:
    """The controller brings the lab up once (and always down); xdist workers attach to it."""
    from hdp.lab import Lab, LabError, load_topology, start_lab

    workerinput = getattr(config, "workerinput", None)
    try:
        if workerinput is not None and "hdp_lab" in workerinput:
            shared = workerinput["hdp_lab"]
            config._hdp_lab = Lab.attach(load_topology(shared["topology"]),  # type: ignore[attr-defined]
                                         shared["token"])
            return
        lab = start_lab(name)
    except LabError as exc:
        raise pytest.UsageError(f"--hdp-lab {name}: {exc}") from None
    config._hdp_lab = lab  # type: ignore[attr-defined]
    config.add_cleanup(lab.down)
    _export_lab_token(config, lab.token)


def _export_lab_token(config: pytest.Config, token: str) -> None:
    """Tell `hdp lab python HOST`, which execnet starts for `--tx popen//python=...`
    workers, which lab is the session's; the variable goes when the lab does."""
    from hdp.lab.vantage import LAB_TOKEN_ENV

    before = os.environ.get(LAB_TOKEN_ENV)
    os.environ[LAB_TOKEN_ENV] = token

    def restore() -> None:
        if before is None:
            os.environ.pop(LAB_TOKEN_ENV, None)
        else:
            os.environ[LAB_TOKEN_ENV] = before

    config.add_cleanup(restore)


def auto_lab(config: pytest.Config) -> Any:
    """The routed lab where this machine can build one, for this process and taken down
    with it; otherwise None, and the summary says why the run fell back to loopback.
    Only a process that collected hdp cases asks (each xdist worker its own lab)."""
    import sys

    from hdp.lab import LabError, start_lab

    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        config._hdp_lab_note = ("default target: loopback (a lab needs root on Linux; "  # type: ignore[attr-defined]
                                "run as root, or give --hdp-lab/--hdp-target)")
        return None
    try:
        lab = start_lab(settings.AUTO_LAB)
    except LabError as exc:
        config._hdp_lab_note = f"default target: loopback (no lab: {exc})"  # type: ignore[attr-defined]
        return None
    config._hdp_lab = lab  # type: ignore[attr-defined]
    config.add_cleanup(lab.down)
    return lab


def hdp_session_of(config: pytest.Config) -> HdpSession:
    """The session's probing state, created the first time a test needs it."""
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        from pytest_hdp.session import HdpSession

        session = HdpSession(config, config.stash[SETTINGS_KEY])
        config.stash[SESSION_KEY] = session
    return session


def _existing_session(config: pytest.Config) -> HdpSession | None:
    return config.stash.get(SESSION_KEY, None)


# -- parametrisation ---------------------------------------------------------------------

def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "hdp_case" not in metafunc.fixturenames:
        return
    from pytest_hdp import reporting
    from pytest_hdp.session import QuirkObserved

    session = hdp_session_of(metafunc.config)
    cases = session.cases_for(metafunc.definition.get_closest_marker("hdp"))
    params = []
    for case in cases:
        expectation = session.expectation(case)
        marks = []
        if expectation.outcome != "delivered":
            # Only the expected quirk itself (QuirkObserved) counts as xfail: any other
            # failure fails, and a quirk that is gone XPASSes, which strict turns red.
            marks.append(pytest.mark.xfail(strict=True, raises=QuirkObserved,
                                           reason=reporting.xfail_reason(expectation)))
        params.append(pytest.param(case, id=case.id, marks=marks))
    metafunc.parametrize("hdp_case", params)


def pytest_collection_finish(session: pytest.Session) -> None:
    hdp = _existing_session(session.config)
    if hdp is None:
        return
    from hdp.case import Case

    hdp.wanted = []
    for item in session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        case = params.get("hdp_case")
        if isinstance(case, Case):  # not pytest's placeholder of an empty parameter set
            hdp.wanted.append(case)


# -- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def hdp_session(request: pytest.FixtureRequest) -> HdpSession:
    """The session's probing state: targets, profile, settings."""
    return hdp_session_of(request.config)


@pytest.fixture
def hdp_result(request: pytest.FixtureRequest, hdp_case: Any) -> HdpResult:
    """The case's observation, verdict and expectation; `.check()` asserts the expectation."""
    result = hdp_session_of(request.config).result(hdp_case)
    request.node.stash[RESULT_KEY] = result
    return result


@pytest.fixture
def hdp_observation(hdp_result: HdpResult) -> Any:
    return hdp_result.observation


@pytest.fixture
def hdp_verdict(hdp_result: HdpResult) -> Any:
    return hdp_result.verdict


@pytest.fixture(scope="session")
def hdp_agent(request: pytest.FixtureRequest) -> Iterator[AgentProbes]:
    """A privileged agent of this session, for tests that send and listen themselves."""
    from pytest_hdp.probes import AgentProbes

    session = hdp_session_of(request.config)
    probes = AgentProbes.start(session)
    yield probes
    probes.close()


@pytest.fixture
def hdp_listener(hdp_agent: AgentProbes) -> Callable[..., Any]:
    """`hdp_listener(protocols, family=4)` opens listeners; `.wait(case)` gives an arrival."""
    return hdp_agent.listener


@pytest.fixture
def hdp_sender(hdp_agent: AgentProbes) -> Any:
    """`hdp_sender.send(dst, protocol, family=4, payload="hdp", case=0)` sends one probe."""
    return hdp_agent.sender


# -- per-test data to the controller, and the reports --------------------------------------

@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    result = item.stash.get(RESULT_KEY, None)
    # A test that skipped itself says nothing about its case (it needed another case's
    # delivery, say); the case's own tests give its verdict.
    skipped = report.when == "call" and report.skipped and not hasattr(report, "wasxfail")
    if result is not None and not skipped and (report.when == "call" or
                                               (report.when == "setup" and not report.passed)):
        from pytest_hdp import reporting

        # Plain JSON types: this rides to the xdist controller on the report itself.
        report.hdp_case = reporting.entry(result, report)
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    hdp = _existing_session(session.config)
    if hdp is None:
        return
    from pytest_hdp import reporting

    hdp.close()
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["hdp"] = {"drops": hdp.drops, "seconds": hdp.seconds,
                               "agents": hdp.agent_specs}
        return
    reporting.write_outputs(hdp, os.environ.get("GITHUB_STEP_SUMMARY"))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int,
                            config: pytest.Config) -> None:
    hdp = _existing_session(config)
    if hasattr(config, "workerinput") or hdp is None:
        return
    from pytest_hdp import reporting

    reporting.terminal_summary(hdp, terminalreporter)


class Collector:
    """The controller's ear: every test report, from this process or an xdist worker."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        entry = getattr(report, "hdp_case", None)
        if isinstance(entry, dict):
            hdp_session_of(self.config).entries.append(entry)


class XdistHooks:
    """Registered only when pytest-xdist is loaded."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_configure_node(self, node: Any) -> None:
        lab = getattr(self.config, "_hdp_lab", None)
        if lab is not None:  # workers probe the controller's lab, not labs of their own
            node.workerinput["hdp_lab"] = {"token": lab.token,
                                           "topology": lab.topology.source}

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        data = getattr(node, "workeroutput", {}).get("hdp", {})
        if not data:
            return
        hdp = hdp_session_of(self.config)
        for key, count in data.get("drops", {}).items():
            hdp.drops[f"{node.gateway.id} {key}"] = count
        hdp.seconds = max(hdp.seconds, data.get("seconds", 0.0))
        hdp.agent_specs += [a for a in data.get("agents", []) if a not in hdp.agent_specs]
