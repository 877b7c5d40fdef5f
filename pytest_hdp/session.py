"""The session object: one a pytest process, made at configure and kept in the config's
stash. Each of the plugin's hooks hands its work to one method here, in the order pytest
calls them: configure, header, parametrise, collected, per-test results and reports,
finish, summary; and for pytest-xdist, the lab handed to the workers and their data back.

Loading pytest-hdp costs a pytest run little: this module imports only light ones. The
probing machinery (hdp's engine, profiles, lab; pytest_hdp.world) loads when the first
hdp test is collected, or when an option names a lab or a profile to check up front.
"""

from __future__ import annotations

import contextlib
import importlib
import shutil
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hdp.errors import HdpError
from pytest_hdp import outcome
from pytest_hdp.marker import CHECK_MARKER, MARKER, CheckMark, HdpMark
from pytest_hdp.outcome import NotHere
from pytest_hdp.settings import HdpUsageError, Settings

if TYPE_CHECKING:
    from hdp.case import Case
    from hdp.checks.path import PathSettings, PathUnderTest
    from pytest_hdp.probes import Hands
    from pytest_hdp.results import HdpCheck, HdpResult
    from pytest_hdp.world import HdpWorld

Entry = dict[str, object]  # a case or check of the report, as plain JSON
HDP_FIXTURES = ("hdp_case", "hdp_path")  # the fixtures that parametrise a test


@dataclass
class TestState:
    """What one test got from the plugin, for its report."""

    result: HdpResult | None = None
    check: HdpCheck | None = None
    attempts: int = 0  # a rerun (pytest-rerunfailures) probes again


TEST = pytest.StashKey[TestState]()


class HdpSession:
    """The probing and reporting of one pytest process (the controller, or a worker)."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.worker = hasattr(config, "workerinput")
        self._world: HdpWorld | None = None
        # "worker node-id" -> the test's case or check, as its last attempt saw it
        self.case_entries: dict[str, Entry] = {}
        self.check_entries: dict[str, Entry] = {}
        self.remote_agents: list[str] = []  # from xdist workers
        self.remote_drops: dict[str, int] = {}
        self.written: list[str] = []
        self.warnings: list[str] = []
        self._results: str | None = None  # the xdist workers' results directory
        self._preloading = False

    # -- configure ----------------------------------------------------------------------

    def configure(self) -> None:
        """What options name is checked now: a bad topology, profile or target is one
        usage error before anything is collected (planning builds nothing)."""
        settings = self.settings
        if settings.explicit_profile or (settings.lab not in (None, "auto")):
            self.world()

    def world(self) -> HdpWorld:
        """The probing machinery, made on first need (HdpUsageError for a bad choice)."""
        if self._world is None:
            # Imported here, once: a pytest run without hdp tests never loads hdp's engine,
            # profiles and lab (about 80 ms more; see the README's plugin section).
            from pytest_hdp.world import HdpWorld

            workerinput = getattr(self.config, "workerinput", {})
            try:
                self._world = HdpWorld(self.settings, Path(str(self.config.rootpath)),
                                       workerinput.get("hdp_lab"), self.config.add_cleanup,
                                       workerinput.get("hdp_results"))
                if self.worker:  # a worker's usage error can only be a collection error
                    self._world.validate_profiles()
            except HdpError as exc:
                raise HdpUsageError(str(exc)) from None
        return self._world

    def header(self) -> list[str]:
        settings = self.settings
        if not (settings.targets_given or settings.explicit_profile or
                settings.lab not in (None, "auto")):
            return []
        return self.world().header()

    # -- collection ---------------------------------------------------------------------

    def parametrize(self, metafunc: pytest.Metafunc) -> None:
        names = metafunc.fixturenames
        if not any(name in names for name in HDP_FIXTURES):
            return
        where = metafunc.definition.nodeid
        mark = HdpMark.parse(metafunc.definition.get_closest_marker(MARKER), where)
        world = self.world()
        if "hdp_case" in names:
            metafunc.parametrize("hdp_case", [pytest.param(case, id=case.id)
                                              for case in world.cases_for(mark)]
                                 or [_nothing(world.none_for(mark, "case"))])
        if "hdp_path" in names:
            check = CheckMark.parse(metafunc.definition.get_closest_marker(CHECK_MARKER),
                                    where, world.statements)
            metafunc.parametrize("hdp_path", [
                pytest.param((target, family), id=f"{target.name}-ipv{family}")
                for target, family in world.paths_for(mark, check.families)]
                or [_nothing(world.none_for(mark, "path"))], indirect=True)

    def collected(self, items: Iterable[pytest.Item], *, will_run: bool = True) -> None:
        """Every case this process will run goes into its first batch; every profile it
        needs is loaded now, so that a bad file is one usage error before any probe. An
        xdist worker starts fetching the batch now when tests `will_run` (never for
        --collect-only, --setup-plan or a collection error: no probe leaves then)."""
        if self._world is None:
            return
        if not self.worker:
            try:
                self._world.validate_profiles()
            except HdpError as exc:
                raise pytest.UsageError(str(exc)) from None
        wanted = []
        for item in items:
            callspec = getattr(item, "callspec", None)
            case = None if callspec is None else callspec.params.get("hdp_case")
            if case is not None:
                mark = HdpMark.parse(item.get_closest_marker(MARKER), item.nodeid)
                wanted.append((case, mark))
        self._world.want(wanted)
        if self.worker and will_run:
            self._world.prefetch()

    # -- fixtures -------------------------------------------------------------------------

    def result(self, case: Case, test: pytest.Item | None = None) -> HdpResult:
        """The result of `case` for `test` (the session's choices without one); a test
        run again probes again."""
        __tracebackhide__ = True
        world = self.world()
        mark = HdpMark() if test is None else \
            HdpMark.parse(test.get_closest_marker(MARKER), test.nodeid)
        state = TestState() if test is None else test.stash.setdefault(TEST, TestState())
        state.attempts += 1
        try:
            result = world.result(world.request(case, mark),
                                  "" if test is None else test.nodeid,
                                  again=state.attempts > 1)
        except NotHere as exc:
            pytest.skip(str(exc))
        state.result = result
        if result.outcome == outcome.ERROR:  # an ERROR at setup, whatever the test asserts
            note = result.observation.note or "no note"
            raise outcome.MachineryError(f"{case.id}: our own machinery failed ({note})")
        return result

    def path(self, param: object) -> PathUnderTest:
        """The path of an `hdp_path` parameter (a target and a family)."""
        try:
            return self.world().path_of(param)
        except NotHere as exc:
            pytest.skip(str(exc))

    def check(self, test: pytest.Item, path: PathUnderTest) -> HdpCheck:
        world = self.world()
        mark = CheckMark.parse(test.get_closest_marker(CHECK_MARKER), test.nodeid,
                               world.statements)
        if mark.name is None:
            raise HdpUsageError(f'{test.nodeid}: hdp_check needs @pytest.mark.hdp_check("NAME")')
        check = world.check(mark.name, path)
        test.stash.setdefault(TEST, TestState()).check = check
        return check

    def hands(self) -> Hands:
        try:
            return self.world().hands_here()
        except NotHere as exc:
            pytest.skip(str(exc))

    def sysctl(self, path: PathUnderTest) -> PathSettings:
        return self.world().path_settings(path)

    # -- each test's report -------------------------------------------------------------

    def annotate(self, item: pytest.Item, call: pytest.CallInfo[None],
                 report: pytest.TestReport) -> None:
        """Put the test's case or check on its report (plain JSON, so that it rides to
        the xdist controller), flag our own failures as errors, attach the evidence."""
        state = item.stash.get(TEST, None)
        if state is None or self._world is None:
            return
        world = self._world
        # Plain attributes of the report: xdist carries them to the controller.
        if call.excinfo is not None and report.when == "call" and \
                world.machinery_failed(call.excinfo.value):
            setattr(report, "hdp_error", True)  # noqa: B010
        result, check = state.result, state.check
        if result is not None and (report.when == "call" or
                                   (report.when == "setup" and not report.passed)):
            if self.settings.pcap == "all" or (report.failed and self.settings.pcap != "none"):
                result.write_pcaps()
            judged = result.judgement is not None and not result.judgement.passed
            if report.failed and not judged:  # a failure of the test's own assertions
                report.sections.append(("hdp", result.evidence_line()))
            label = outcome.label(result.judgement, report)
            if label is not None:
                setattr(report, "hdp_case", world.case_entry(result, label))  # noqa: B010
        if check is not None and check.observed is not None and report.when == "call":
            label = outcome.label(check.judgement, report)
            if label is not None:
                setattr(report, "hdp_check", check.entry(label))  # noqa: B010

    def teststatus(self, report: pytest.TestReport) -> tuple[str, str, str] | None:
        """Our own machinery's failure is an ERROR in pytest's summary, not a failure."""
        if report.failed and getattr(report, "hdp_error", False):
            return "error", "E", "ERROR"
        return None

    def settle(self, test: pytest.Item, exc: BaseException) -> None:
        """A test that raised `exc` but did not fail: it skips where it cannot run here,
        and its check is inconclusive where the path carried nothing of its protocol
        (observed `no-answer`, decided by the one rule). Returns for a real failure."""
        __tracebackhide__ = True
        if self._world is None:
            return
        if self._world.skips(exc):
            pytest.skip(str(exc))
        if self._world.carried_nothing(exc):
            check = test.stash.get(TEST, TestState()).check
            if check is None:
                pytest.skip(f"inconclusive: {exc}")
            check.observe("no-answer", str(exc))

    def record(self, report: pytest.TestReport) -> None:
        """The controller keeps each test's case and check; a test run again (a rerun,
        a retried worker) counts with its last attempt."""
        case, check = getattr(report, "hdp_case", None), getattr(report, "hdp_check", None)
        # `--dist each` runs a test on every worker: each run is a case of its own.
        worker = str(getattr(getattr(getattr(report, "node", None), "gateway", None), "id", ""))
        if isinstance(case, dict):
            self.case_entries[f"{worker} {report.nodeid}"] = case
        if isinstance(check, dict):
            self.check_entries[f"{worker} {report.nodeid}"] = check
        if (case or check) and self._world is None and not self._preloading:
            self._preloading = True
            _preload("pytest_hdp.world")

    # -- the end ------------------------------------------------------------------------

    def finish(self) -> None:
        """Close the agents (after pytest's own teardown: an `hdp_sysctl` finalizer still
        needs its agent); a worker hands its figures to the controller, which writes."""
        world = self._world
        if world is not None:
            world.close()
        workeroutput = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:
            if world is not None:
                workeroutput["hdp"] = {"drops": dict(world.prober.drops),
                                       "agents": world.agents_used}
            return
        if self.case_entries or self.check_entries:
            self.world().write_outputs(self.case_entries.values(), self.check_entries.values(),
                                       self.written, self.warnings)

    def summary(self, terminal: pytest.TerminalReporter) -> None:
        if self.worker or not self.case_entries:
            return
        self.world().summary(self.case_entries.values(), self.check_entries.values(),
                             self.remote_agents, self.remote_drops, self.written,
                             self.warnings, terminal)

    # -- pytest-xdist -------------------------------------------------------------------

    def setup_nodes(self) -> None:
        """A lab named by --hdp-lab comes up before the workers start: they may run
        inside its hosts (`hdp lab python HOST`)."""
        if self.settings.lab not in (None, "auto"):
            self.world().lab_up()

    def workerinput(self) -> dict[str, object]:
        """What a worker needs of this process: the lab to attach to, and where the
        workers probe once for all (pytest_hdp.shared) unless each runs every test."""
        shared = None if self._world is None else self._world.shared_lab()
        given: dict[str, object] = {} if shared is None else {"hdp_lab": shared}
        if getattr(self.config.option, "dist", None) != "each":
            if self._results is None:
                # A directory of the run's own (removed at the end). Not through
                # pytest_hdp.shared: that loads the prober and the engine, which the
                # controller never needs, before its workers may start.
                self._results = tempfile.mkdtemp(prefix="hdp-xdist-")
                self.config.add_cleanup(lambda: shutil.rmtree(str(self._results), True))
            given["hdp_results"] = self._results
        return given

    def worker_done(self, gateway: str, data: dict[str, object]) -> None:
        drops, agents = data.get("drops"), data.get("agents")
        if isinstance(drops, dict):
            self.remote_drops.update({f"{gateway} {key}": int(count)
                                      for key, count in drops.items()})
        if isinstance(agents, list):
            self.remote_agents += [str(a) for a in agents if str(a) not in self.remote_agents]


def _preload(module: str) -> None:
    """Import `module` in a thread of its own. The xdist controller needs the reporting
    machinery only once every test has run, and loading it then (about 0.1 s) was the
    last thing between the workers' end and pytest's; while the tests run the controller
    mostly waits for their reports, so it loads it meanwhile. Python's import locks
    make the main thread wait for a module the thread is still loading; should the
    thread fail, the main thread imports it again and meets the error itself."""

    def load() -> None:
        with contextlib.suppress(Exception):
            importlib.import_module(module)

    threading.Thread(target=load, name="hdp-preload", daemon=True).start()


def _nothing(reason: str) -> object:
    """The lone parameter of a test the session has nothing for: it skips with `reason`
    (pytest's own "got empty parameter set" says neither why nor how to fix it)."""
    return pytest.param(None, id="none", marks=pytest.mark.skip(reason=reason))
