"""Fixtures for the `hdp` command-line tests: a listener that is always cleaned up."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.cli.helpers import LISTEN_TIMEOUT, Listener, hdp_command

StartListener = Callable[..., Listener]


@pytest.fixture
def listen() -> Iterator[StartListener]:
    """Start `hdp listen -p PROTOCOL --count K --timeout 10 ...` and wait until it is ready."""
    started: list[Listener] = []

    def start(protocol: int, *, count: int, family: int = 4, fmt: str | None = None,
              timeout: int = LISTEN_TIMEOUT) -> Listener:
        args: list[object] = ["listen", "--protocol", protocol, "--family", family,
                              "--count", count, "--timeout", timeout]
        if fmt is not None:
            args += ["--format", fmt]
        listener = Listener(hdp_command(*args))
        started.append(listener)
        listener.wait_ready()
        return listener

    try:
        yield start
    finally:
        for listener in started:
            listener.stop()
