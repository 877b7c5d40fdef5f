"""`hdp listen`: raw listeners that print every packet as the write-up's server did, as a
table, or as NDJSON, filtered by source and run id; until a count, a timeout or Ctrl-C."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, TextIO, Union

from hdp.arguments import count_value, family_value, protocol_numbers, seconds_value
from hdp.errors import HdpError, PrivilegeError
from hdp.selection import fold_ranges

# The `hdp` parser imports this module for add_arguments: what only a running listener
# needs (raw sockets, the codecs, rendering) is imported by the functions that use it.
if TYPE_CHECKING:
    import ipaddress

    from hdp import rawsock
    from hdp.arrival import Arrival

DEFAULT_HDP_PROTOCOL = 255  # the number the original experiment used
# A wait without a deadline is cut into slices: selectors take seconds as a float that
# the kernel call turns into an integer of milliseconds, which infinity is not.
_SLICE = 3600.0

Network = Union["ipaddress.IPv4Network", "ipaddress.IPv6Network"]


def source_network(text: str) -> Network:
    """`--from`: an address or a network (`10.0.0.0/8`); a zone (`%eth0`) is ignored."""
    import ipaddress

    try:
        return ipaddress.ip_network(text.strip("[]").partition("%")[0], strict=False)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid source {text!r}: give an IPv4/IPv6 address or network, e.g. 127.0.0.1 "
            "or 198.18.0.0/15") from None


def run_id(text: str) -> int:
    """`--run`: a run id as hdp prints it, 8 hex digits (`Probe Tag: run 1a2b3c4d`)."""
    digits = text.lower().removeprefix("0x")
    if not 1 <= len(digits) <= 8 or any(c not in "0123456789abcdef" for c in digits):
        raise argparse.ArgumentTypeError(
            f"invalid run id {text!r}: give the 8 hex digits hdp prints, e.g. 1a2b3c4d")
    return int(digits, 16)


def add_arguments(listen: argparse.ArgumentParser) -> None:
    listen.add_argument("--protocol", "-p", dest="protocols", type=protocol_numbers,
                        action="extend", metavar="SPEC",
                        help="protocol numbers to listen on, e.g. 253 or 0-255; repeatable "
                        f"(default {DEFAULT_HDP_PROTOCOL})")
    listen.add_argument("--family", "-f", type=family_value, default=4, metavar="4|6",
                        help="address family (default 4)")
    listen.add_argument("--format", choices=("dump", "table", "json"), default="dump",
                        help="'dump' prints each header field; 'table' one Markdown row a "
                        "packet; 'json' one JSON object a line (NDJSON)")
    listen.add_argument("--decode", choices=("auto", "hdp", "udp"), default="auto",
                        help="how to read an untagged payload: 'auto' (default) reads "
                        "protocols 17/136 as UDP/UDP-Lite when the bytes are a consistent "
                        "datagram, else as HDP, like the original server; 'hdp' or 'udp' always")
    listen.add_argument("--from", dest="sources", type=source_network, action="append",
                        metavar="ADDR", help="show only packets from this address or network; "
                        "repeatable")
    listen.add_argument("--run", dest="runs", type=run_id, action="append", metavar="ID",
                        help="show only probes of this run id (8 hex digits); repeatable")
    listen.add_argument("--count", "-c", type=count_value, metavar="K",
                        help="stop after K packets shown (default: run until Ctrl-C)")
    listen.add_argument("--timeout", "-t", type=seconds_value, metavar="SECONDS",
                        help="stop after this many seconds (default: run until Ctrl-C)")


class Tally:
    """What the listener saw, for the closing lines: shown, filtered out, and per protocol
    what it received and what the kernel dropped (exactly, read from each socket as it
    closes: received + dropped is every packet that reached it)."""

    def __init__(self) -> None:
        self.shown = 0
        self.hidden = 0
        self.received: Counter[int] = Counter()
        self.drops: dict[int, int] = {}

    def close(self, listeners: Sequence[rawsock.RawSocket]) -> None:
        """Count what is still queued as received, read each socket's drops, close it."""
        for raw in listeners:
            self.received[raw.protocol] += _unread(raw)
            dropped = raw.drops()
            if dropped:
                self.drops[raw.protocol] = dropped
            raw.close()


_UNREAD_LIMIT = 1 << 20  # packets counted at the end at most: a flood cannot hold it


def _unread(raw: rawsock.RawSocket) -> int:
    """Packets still queued on `raw`, read and counted without decoding."""
    import socket

    count = 0
    while count < _UNREAD_LIMIT:
        try:
            raw.sock.recv(1, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return count
        except OSError:
            return count
        count += 1
    return count


def wanted(arrival: Arrival, sources: Sequence[Network] | None,
           runs: Sequence[int] | None) -> bool:
    """Whether a packet passes `--from` and `--run`."""
    if runs and (arrival.tag is None or arrival.tag.run_id not in runs):
        return False
    if not sources:
        return True
    import ipaddress

    try:
        address = ipaddress.ip_address(arrival.src.partition("%")[0])
    except ValueError:
        return False
    return any(address in network for network in sources)


def run_listen(args: argparse.Namespace, out: TextIO) -> int:
    import time

    from hdp.arrival import decode_arrival
    from hdp.render import listener_table_header

    protocols = list(dict.fromkeys(args.protocols or [DEFAULT_HDP_PROTOCOL]))
    family = args.family
    listeners = open_listeners(protocols, family)
    tally = Tally()
    # Ctrl-C is how a listener without --count or --timeout ends: not an interruption.
    open_ended = not args.count and not args.timeout
    try:
        names = fold_ranges([raw.protocol for raw in listeners])
        # One write, so an interrupt cannot split the readiness line from its newline.
        sys.stderr.write(f"Listening on protocol {names} (IPv{family})\n")
        sys.stderr.flush()
        if args.format == "table":
            out.write(listener_table_header() + "\n")
            out.flush()
        deadline = time.monotonic() + args.timeout if args.timeout else None
        show = _formatter(args.format)
        try:
            for received in _receive(listeners, deadline):
                tally.received[received.socket_protocol] += 1
                arrival = decode_arrival(received, decode=args.decode)
                if not wanted(arrival, args.sources, args.runs):
                    tally.hidden += 1
                    continue
                tally.shown += 1
                out.write(show(arrival) + "\n")
                out.flush()
                if args.count and tally.shown >= args.count:
                    break
        except KeyboardInterrupt:
            if not open_ended:
                raise
            _closing_lines(tally, args, listeners)
            print(f"hdp listen: stopped after {_packets(tally.shown)}", file=sys.stderr)
            return 0
        _closing_lines(tally, args, listeners)
        if args.count and tally.shown < args.count:
            print(f"hdp listen: timed out after {tally.shown} of {args.count} packets",
                  file=sys.stderr)
            return 1
        return 0
    except KeyboardInterrupt:
        _closing_lines(tally, args, listeners)
        raise
    finally:
        for raw in listeners:
            raw.close()  # a second close does nothing


def open_listeners(protocols: list[int], family: int) -> list[rawsock.RawSocket]:
    """A listener a protocol; refusals folded by errno into one line each, or into the
    error when nothing opened (`-p 263-65535` is one line, not 65,273)."""
    from hdp import rawsock

    listeners: list[rawsock.RawSocket] = []
    refused: dict[str, list[int]] = {}
    try:
        for protocol in protocols:
            opened = rawsock.open_listener(family, protocol)
            if isinstance(opened, rawsock.OsRefusal):
                if rawsock.is_privilege_refusal(opened):
                    raise PrivilegeError(str(opened))
                refused.setdefault(str(opened), []).append(protocol)
                continue
            listeners.append(opened)
    except BaseException:
        for raw in listeners:
            raw.close()
        raise
    reasons = [f"protocol{'s' if len(numbers) > 1 else ''} {fold_ranges(numbers)} "
               f"(IPv{family}): {reason}" for reason, numbers in refused.items()]
    if not listeners:
        raise HdpError(f"cannot listen on {'; '.join(reasons)}: give protocol numbers this "
                       "OS opens raw sockets for, e.g. --protocol 253")
    for reason in reasons:
        print(f"hdp listen: cannot listen on {reason}", file=sys.stderr)
    return listeners


def _receive(listeners: Sequence[rawsock.RawSocket],
             deadline: float | None) -> Iterator[rawsock.Received]:
    """Packets until `deadline` (monotonic), or for ever when it is None."""
    import time

    from hdp import rawsock

    while True:
        now = time.monotonic()
        end = now + _SLICE if deadline is None else min(deadline, now + _SLICE)
        yield from rawsock.receive_until(listeners, end)
        if deadline is not None and time.monotonic() >= deadline:
            return


def _formatter(fmt: str) -> Callable[[Arrival], str]:
    """How each packet is printed: one JSON object, one table row, or the field dump."""
    import json

    from hdp.render import listener_dump, listener_json, listener_table_row

    if fmt == "json":
        return lambda arrival: json.dumps(listener_json(arrival), allow_nan=False)
    if fmt == "table":
        return listener_table_row
    return listener_dump


def _packets(count: int) -> str:
    return f"{count} packet{'' if count == 1 else 's'}"


def _closing_lines(tally: Tally, args: argparse.Namespace,
                   listeners: Sequence[rawsock.RawSocket]) -> None:
    """What the output alone does not say: kernel drops, and packets the filters hid."""
    tally.close(listeners)
    for protocol, dropped in sorted(tally.drops.items()):
        received = tally.received[protocol]
        print(f"hdp listen: protocol {protocol}: {received} received + {dropped} dropped by "
              f"the kernel (receive queue full) = {received + dropped} packets",
              file=sys.stderr)
    if tally.hidden:
        filters = " and ".join(name for name, on in (("--from", args.sources),
                                                      ("--run", args.runs)) if on)
        print(f"hdp listen: {_packets(tally.hidden)} on these protocols not shown "
              f"({filters})", file=sys.stderr)
