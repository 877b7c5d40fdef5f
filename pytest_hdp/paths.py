"""Both ends of a target's path for the chapter tests (`hdp_path`), driven through agents
that stay open for the session, one per end."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hdp.agent import messages
from hdp.agent.launch import AgentClient, AgentSpec
from hdp.checks.path import PathUnderTest, link_mtus
from hdp.endpoint import AgentRefusal, Endpoint
from hdp.lab.lab import Lab
from hdp.target import Target
from pytest_hdp.outcome import NotHere


class NoReceiver(NotHere):
    """The target has no agent at its receiving end: the chapter's tests cannot run."""


class SkippingEndpoint(Endpoint):
    """An endpoint whose requests that need a root caller skip the test, saying so: an
    agent started through sudo by another user refuses them (README "Security model")."""

    def call(self, request: messages.Request, *,
             answer_within: float = 15.0) -> dict[str, object]:
        try:
            return super().call(request, answer_within=answer_within)
        except AgentRefusal as exc:
            pytest.skip(f"{exc}; to fix: run pytest as root for this test")


class Ends:
    """The endpoints the chapter tests drive, one per agent spec, kept open."""

    def __init__(self) -> None:
        self.endpoints: dict[str, Endpoint] = {}

    def endpoint(self, spec: AgentSpec, name: str) -> Endpoint:
        key = str(spec)
        if key not in self.endpoints:
            self.endpoints[key] = SkippingEndpoint(AgentClient.start(spec), name)
        return self.endpoints[key]

    def path(self, target: Target, family: int, local: Callable[[set[str]], AgentSpec],
             lab: Lab | None, vantage: str | None) -> PathUnderTest:
        """Both ends of `target` (its lab ends already agent specs) for `family`;
        AgentError when an agent cannot start, NoReceiver without a receiving agent."""
        sender_spec = local({target.path}) if target.sender == "local" else \
            AgentSpec.parse(target.sender)
        sender = self.endpoint(sender_spec, "sender")
        if target.listener == "same":
            receiver = sender
        elif target.listener is None:
            raise NoReceiver(f"{target.name}: the chapter's tests need an agent at the "
                             "receiving end; give --hdp-target=ssh://HOST or --hdp-lab NAME")
        else:
            receiver = self.endpoint(AgentSpec.parse(target.listener), target.name)
        dst = target.addresses.get(family) or target.name
        links: tuple[int, ...] = ()
        private = translated = False
        if lab is not None and target.path == lab.topology.name:
            client = lab.topology.clients[0] if vantage is None else vantage.split("/", 1)[1]
            server = target.name.split("/", 1)[1]
            links = link_mtus(lab.topology, lab.path(client, server))
            private = True
            translated = lab.translated_source(client, server, family) is not None
        return PathUnderTest(target.name, target.path, family, sender, receiver, dst, links,
                             private, translated)

    def close(self) -> None:
        for endpoint in self.endpoints.values():
            endpoint.agent.close()
        self.endpoints.clear()
