"""How the plugin is built, where that is what users feel: no import circle, state in
StashKeys, a start-up that loads none of hdp's heavy parts, a suite imported as a package."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
# What a pytest run without hdp tests must not load: engine, profiles, lab, YAML.
HEAVY = ("hdp.engine", "hdp.profile", "hdp.lab.lab", "hdp.target", "hdp.report", "yaml",
         "pytest_hdp.world")


def test_the_plugins_import_graph_has_no_circle():
    """plugin, session, chapter, probes and reporting imported each other in a circle,
    hidden by imports inside functions; grimp sees those too."""
    graph = grimp.build_graph("pytest_hdp", include_external_packages=False)
    modules = sorted(graph.modules)
    assert len(modules) > 5
    circles = [(a, b) for a, b in itertools.combinations(modules, 2)
               if graph.chain_exists(a, b) and graph.chain_exists(b, a)]
    assert circles == []


def test_loading_the_plugin_loads_nothing_heavy():
    code = ("import sys, pytest, pytest_hdp.plugin; "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


def test_the_plugin_keeps_its_state_in_stash_keys(pytester):
    """Lab state rode on config._hdp_lab, beside the StashKeys, with type: ignores."""
    pytester.makepyfile(test_mine="def test_nothing(): pass\n")
    seen: list[str] = []

    class Spy:
        def pytest_unconfigure(self, config: pytest.Config) -> None:
            seen.extend(name for name in vars(config) if "hdp" in name.lower())

    pytester.inline_run("-p", "no:randomly", "--hdp-lab", "none", plugins=[Spy()])
    assert seen == []
    sources = "\n".join(p.read_text() for p in (ROOT / "pytest_hdp").glob("*.py"))
    assert "config._hdp" not in sources


def test_the_suite_imports_its_checks_as_a_package():
    """The suite imported chapter_support from conformance/ through sys.path."""
    for module in (ROOT / "conformance").glob("*.py"):
        text = module.read_text()
        assert "sys.path" not in text and "chapter_support" not in text, module.name
    assert "import pytest" not in "\n".join(
        p.read_text() for p in (ROOT / "hdp" / "checks").glob("*.py"))


def test_one_parametriser_one_makereport_one_collector(pytester):
    """Delivery cases and chapter checks had two of each."""
    pytester.makepyfile(test_mine="def test_nothing(): pass\n")
    counts: dict[str, int] = {}

    class Spy:
        def pytest_unconfigure(self, config: pytest.Config) -> None:
            for hook in ("pytest_generate_tests", "pytest_runtest_makereport",
                         "pytest_runtest_logreport", "pytest_collection_finish"):
                impls = getattr(config.pluginmanager.hook, hook).get_hookimpls()
                counts[hook] = sum(1 for impl in impls
                                   if type(impl.plugin).__module__.startswith("pytest_hdp")
                                   or getattr(impl.plugin, "__name__", "").startswith(
                                       "pytest_hdp"))

    pytester.inline_run("-p", "no:randomly", "--hdp-lab", "none", plugins=[Spy()])
    assert counts == dict.fromkeys(counts, 1) and len(counts) == 4
