"""The agent's message protocol: newline-delimited JSON objects over a byte stream.

The controller writes requests, one JSON object a line, each with an ``op`` and an
``id``; the agent writes events, one JSON object a line, each with an ``event``.
Everything is plain JSON types, so an agent can run anywhere a byte stream reaches
(a thread, a child process, ``sudo -n``, ``ip netns exec``, ``ssh``).

Start-up
    The agent's first line is ``{"event": "ready", "version": 1, "pid": ..,
    "platform": {..}, "raw": true|false, "raw_error": null|"EPERM ..."}``.

Requests and their answers
    ``{"op": "listen", "id": N, "family": 4|6, "protocols": [..], "runs": [..]}``
        opens raw listeners (kept until ``close``); answers ``{"event": "listening",
        "id": N, "family": .., "opened": [..], "refused": {"0": "EPROTONOSUPPORT"}}``.
        From then on every packet carrying the probe tag of a run in ``runs`` is
        reported as an ``arrival`` event (fields: see ``arrival_event``).
    ``{"op": "icmp", "id": N, "family": 4|6, "runs": [..]}``
        opens an ICMP/ICMPv6 listener; errors quoting one of our probes come back as
        ``icmp`` events. Answers ``{"event": "icmp-listening", "id": N, ..}``.
    ``{"op": "send", "id": N, "run": R, "probes": [probe, ..]}``
        sends every probe at once (see ``Probe`` fields in hdp.agent.server) and
        answers one ``sent`` event a probe, then ``{"event": "send-done", "id": N}``.
    ``{"op": "stats", "id": N}``
        answers ``{"event": "stats", "id": N, "drops": {"4/253": 0, ..},
        "arrivals": .., "foreign": ..}`` (``drops``: kernel receive-queue drops).
    ``{"op": "drain", "id": N}``
        a barrier: reports every packet already queued on a listener, then answers
        ``{"event": "drained", "id": N}``. A host queues a packet for its raw
        listeners before it answers it with ICMP, so a drain asked for after that ICMP
        came back cannot miss the arrival.
    ``{"op": "close", "id": N}``
        closes every listener; answers ``{"event": "closed", "id": N, "drops": {..}}``.
    ``{"op": "shutdown"}``
        answers ``{"event": "bye"}`` and exits.

A request the agent cannot carry out answers ``{"event": "error", "id": N,
"message": ".."}``; the agent keeps running.
"""

from __future__ import annotations

import json
from typing import Any

VERSION = 1
MAX_LINE = 16 << 20  # a send request for thousands of probes stays well below this


class ProtocolError(ValueError):
    """A line that is not one JSON object."""


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"expected a JSON object, got {type(message).__name__}")
    return message


class LineBuffer:
    """Splits a byte stream into lines; keeps the incomplete tail for the next feed."""

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        data = self._tail + chunk
        *lines, self._tail = data.split(b"\n")
        if len(self._tail) > MAX_LINE:
            raise ProtocolError(f"a line longer than {MAX_LINE} bytes")
        return [line for line in lines if line.strip()]
