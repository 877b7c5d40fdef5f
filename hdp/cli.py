"""The `hdp` command line: `hdp listen` and `hdp send`, as in the HDP experiment."""

from __future__ import annotations

import argparse
import ipaddress
import os
import random
import socket
import sys
import time
from collections.abc import Sequence
from typing import NoReturn, TextIO

from hdp import __version__, rawsock
from hdp.arrival import Arrival, decode_arrival
from hdp.errors import HdpError, PrivilegeError, UsageError
from hdp.probe import PayloadKind, Probe, encode_probe
from hdp.render import (
    listener_dump,
    listener_table_header,
    listener_table_row,
    sender_row,
    sender_table_header,
)
from hdp.selection import fold_ranges, parse_protocols
from hdp.wire.hdp import ProbeTag

DEFAULT_HDP_PROTOCOL = 255  # the number the original experiment used
MAX_COUNT = 1_000_000


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad value in one line instead of usage + error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def protocol_numbers(text: str) -> list[int]:
    """A protocol SPEC: 253, 0-255, 1,6,17 or -1-300 (write --protocol=-1-300)."""
    try:
        return parse_protocols(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str, what: str, limit: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid {what} {text!r}: give a number") from None
    if not 0 < value <= limit:
        raise argparse.ArgumentTypeError(
            f"{what} {text} is out of range: give 0 < {what} <= {limit:g}")
    return value


def count_value(text: str) -> int:
    value = _positive(text, "count", MAX_COUNT)
    if value != int(value):
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: give a whole number")
    return int(value)


def seconds_value(text: str) -> float:
    return _positive(text, "timeout", 24 * 3600)


def family_value(text: str) -> int:
    if text.lower() in ("4", "ipv4", "inet"):
        return 4
    if text.lower() in ("6", "ipv6", "inet6"):
        return 6
    raise argparse.ArgumentTypeError(f"invalid family {text!r}: give 4 or 6")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hdp", description=__doc__)
    parser.add_argument("--version", action="version", version=f"hdp {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    listen = commands.add_parser(
        "listen", help="print every packet of the given protocols that reaches this host",
        description="Open raw listeners and print each packet's IP header and HDP header & data.")
    listen.add_argument("--protocol", "-p", dest="protocols", type=protocol_numbers,
                        action="extend", metavar="SPEC",
                        help="protocol numbers to listen on, e.g. 253 or 0-255; repeatable "
                        f"(default {DEFAULT_HDP_PROTOCOL})")
    listen.add_argument("--family", "-f", type=family_value, default=4, metavar="4|6",
                        help="address family (default 4)")
    listen.add_argument("--format", choices=("dump", "table"), default="dump",
                        help="'dump' prints each header field; 'table' one row a packet")
    listen.add_argument("--count", "-c", type=count_value, metavar="K",
                        help="stop after K packets (default: run until Ctrl-C)")
    listen.add_argument("--timeout", "-t", type=seconds_value, metavar="SECONDS",
                        help="stop after this many seconds")

    send = commands.add_parser(
        "send", help="send the payload on standard input to TARGET over raw IP",
        description="Send standard input as an HDP (or UDP) payload to TARGET, one row a probe.")
    send.add_argument("target", metavar="TARGET", help="host name or IPv4/IPv6 address")
    send.add_argument("--protocol", "-p", dest="protocols", type=protocol_numbers,
                      action="extend", metavar="SPEC",
                      help="protocol numbers, e.g. 253, 1,6,17 or --protocol=-1-256; repeatable "
                      "(default 255, or 17 with --udp)")
    send.add_argument("--family", "-f", type=family_value, metavar="4|6",
                      help="address family (default: from TARGET, else 4)")
    send.add_argument("--udp", action="store_true",
                      help="put a UDP header (with its checksum) before the payload, not HDP's")
    send.add_argument("--count", "-c", type=count_value, default=1, metavar="K",
                      help="probes per protocol (default 1)")
    send.add_argument("--plain", action="store_true",
                      help="send the payload exactly as given, without pytest-hdp's probe tag")

    sweep = commands.add_parser(
        "sweep", help="probe every protocol number to TARGET and report one outcome per case",
        description="Probe TARGET with every protocol number of SPEC, all in flight together, "
                    "and report the outcome of each case (Markdown or hdp-report/1 JSON).")
    sweep.add_argument("targets", nargs="+", metavar="TARGET",
                       help="host name or IPv4/IPv6 address (loopback needs no remote agent)")
    sweep.add_argument("--protocols", "-p", type=protocol_numbers, default=list(range(256)),
                       metavar="SPEC", help="e.g. 0-255 (default), 1,6,17,253-255 or "
                       "--protocols=-1-300")
    sweep.add_argument("--family", "-f", type=family_list, default=[4, 6], metavar="4,6",
                       help="address families (default 4,6)")
    sweep.add_argument("--payload", choices=("hdp", "udp", "raw"), default="hdp",
                       help="what follows the IP header (default hdp)")
    sweep.add_argument("--size", type=size_value, default=64, metavar="BYTES",
                       help="data bytes a probe carries after its headers (default 64)")
    sweep.add_argument("--format", choices=("md", "json"),
                       help="report format (default md, or json for an --out *.json)")
    sweep.add_argument("--out", "-o", metavar="FILE", help="write the report here, not stdout")
    sweep.add_argument("--timeout", "-t", type=seconds_value, default=1.0, metavar="SECONDS",
                       help="wait this long after the last probe for late evidence (default 1)")
    sweep.add_argument("--agent", default="auto", metavar="AGENT",
                       help="where the sender runs: auto (this process if it may open raw "
                       "sockets, else sudo -n), inprocess, child, sudo, netns:NAME, ssh://HOST")
    sweep.add_argument("--listener", default="auto", metavar="AGENT",
                       help="who listens on the target: auto (the sender's agent for loopback, "
                       "none otherwise: verdicts from ICMP), same, none, or an AGENT as above")
    sweep.add_argument("--no-icmp", action="store_true",
                       help="do not listen for ICMP errors about the probes")

    report = commands.add_parser(
        "report", help="render a saved JSON report as Markdown, or merge several into a matrix",
        description="Render an hdp-report/1 JSON file (from hdp sweep --format json), or "
                    "'hdp report merge A.json B.json ...' for the cross-OS matrix of differences.")
    report.add_argument("files", nargs="+", metavar="FILE.json",
                        help="one report to render, or: merge A.json B.json ...")
    report.add_argument("--format", choices=("md", "json"), help="output format (default md)")
    report.add_argument("--out", "-o", metavar="FILE", help="write here, not stdout")

    from hdp.lab.cli import add_lab_parser  # argparse only; hdp.lab loads lazily

    add_lab_parser(commands)
    return parser


def family_list(text: str) -> list[int]:
    return list(dict.fromkeys(family_value(part) for part in text.split(",") if part.strip()))


def size_value(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: give a number of bytes") from None
    if not 0 <= value <= 65000:
        raise argparse.ArgumentTypeError(f"size {value} is out of range: give 0..65000 bytes")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "listen":
            return run_listen(args, sys.stdout)
        if args.command == "lab":
            from hdp.lab.cli import command_lab

            return command_lab(args, sys.stdout)
        if args.command == "report" and args.files and args.files[0] == "merge":
            from hdp import merge

            args.files = args.files[1:]
            return merge.command_merge(args, sys.stdout)
        if args.command in ("sweep", "report"):
            from hdp import sweep

            command = sweep.command_sweep if args.command == "sweep" else sweep.command_report
            return command(args, sys.stdout)
        return run_send(args, sys.stdin.buffer if sys.stdin is not None else None, sys.stdout)
    except HdpError as exc:
        print(f"hdp {args.command}: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    except KeyboardInterrupt:
        print(f"hdp {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`); say nothing more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def resolve(target: str, family: int | None) -> tuple[str, int]:
    """The address and family to send to; names resolve in `family`, or IPv4 then IPv6."""
    address, _, zone = target.strip("[]").partition("%")
    try:
        literal = ipaddress.ip_address(address)
    except ValueError:
        literal = None
    if literal is not None:
        if family is not None and family != literal.version:
            raise UsageError(
                f"{target} is an IPv{literal.version} address but --family is {family}")
        if zone and literal.version == 4:
            raise UsageError(f"{target}: an IPv4 address takes no %zone: give {address}")
        if zone and not zone.isdigit():
            try:
                socket.if_nametoindex(zone)
            except OSError:
                raise UsageError(f"{target}: there is no interface {zone!r}") from None
        return target.strip("[]"), literal.version
    families = [family] if family else [4, 6]
    last_error = ""
    for fam in families:
        af = socket.AF_INET if fam == 4 else socket.AF_INET6
        try:
            info = socket.getaddrinfo(target, None, af, socket.SOCK_RAW)
        except (socket.gaierror, UnicodeError) as exc:
            last_error = str(exc.args[-1]) if exc.args else str(exc)
            continue
        return str(info[0][4][0]), fam
    raise HdpError(f"cannot resolve host {target!r} ({last_error}): "
                   "give a host name that resolves, or an IPv4/IPv6 address")


def run_send(args: argparse.Namespace, stdin: object, out: TextIO) -> int:
    if stdin is None:
        raise UsageError("standard input is closed: pipe a payload in, "
                         "e.g. echo hello | sudo hdp send 127.0.0.1")
    if sys.stdin.isatty():
        raise UsageError("the payload comes from standard input: pipe it in, "
                         "e.g. fortune | cowsay | sudo hdp send 127.0.0.1")
    data = stdin.read()  # type: ignore[attr-defined]
    if not data:
        raise UsageError("standard input was empty: pipe a payload in, "
                         "e.g. echo hello | sudo hdp send 127.0.0.1")
    dst, family = resolve(args.target, args.family)
    kind = PayloadKind.UDP if args.udp else PayloadKind.HDP
    protocols = list(dict.fromkeys(args.protocols or [17 if args.udp else DEFAULT_HDP_PROTOCOL]))
    src = _source_for(dst, family) if kind is PayloadKind.UDP else dst
    rawsock.check_privilege(family)
    run_id = random.getrandbits(32)
    failures = 0
    out.write(sender_table_header() + "\n")
    for case, protocol in enumerate(protocols):
        sender = rawsock.open_sender(family, protocol)
        for probe_no in range(args.count):
            tag = None if args.plain else ProbeTag(run_id, case, probe_no % (1 << 16))
            payload = encode_probe(Probe(kind, data, tag), src, dst)
            if isinstance(sender, rawsock.OsRefusal):
                if rawsock.is_privilege_refusal(sender):
                    raise PrivilegeError(str(sender))
                result = rawsock.SendResult(False, 0, time.time_ns(), sender)
            else:
                result = sender.send(payload, dst)
            failures += not result.ok
            out.write(sender_row(protocol, result) + "\n")
            out.flush()
        if not isinstance(sender, rawsock.OsRefusal):
            sender.close()
    return 1 if failures else 0


def _source_for(dst: str, family: int) -> str:
    try:
        return rawsock.source_address_for(dst, family)
    except OSError as exc:
        raise HdpError(f"no route to {dst} for the UDP checksum's source address "
                       f"({os.strerror(exc.errno or 0)}): check the target and routes") from None


def run_listen(args: argparse.Namespace, out: TextIO) -> int:
    protocols = list(dict.fromkeys(args.protocols or [DEFAULT_HDP_PROTOCOL]))
    family = args.family
    listeners: list[rawsock.RawSocket] = []
    try:
        for protocol in protocols:
            opened = rawsock.open_listener(family, protocol)
            if isinstance(opened, rawsock.OsRefusal):
                if rawsock.is_privilege_refusal(opened):
                    raise PrivilegeError(str(opened))
                print(f"hdp listen: cannot listen on protocol {protocol} (IPv{family}): {opened}",
                      file=sys.stderr)
                continue
            listeners.append(opened)
        if not listeners:
            raise HdpError(f"no listener could be opened for protocols {protocols}")
        names = fold_ranges([raw.protocol for raw in listeners])
        # One write, so an interrupt cannot split the readiness line from its newline.
        sys.stderr.write(f"Listening on protocol {names} (IPv{family})\n")
        sys.stderr.flush()
        if args.format == "table":
            out.write(listener_table_header() + "\n")
            out.flush()
        deadline = time.monotonic() + (args.timeout if args.timeout else float("inf"))
        seen = 0
        drops: dict[int, int] = {}
        try:
            for received in rawsock.receive_until(listeners, deadline, stop=args.count):
                arrival: Arrival = decode_arrival(received)
                seen += 1
                if received.drops:
                    drops[received.socket_protocol] = received.drops
                out.write((listener_table_row(arrival) if args.format == "table"
                           else listener_dump(arrival)) + "\n")
                out.flush()
        finally:
            for protocol, dropped in sorted(drops.items()):
                print(f"hdp listen: the kernel dropped {dropped} packets of protocol {protocol} "
                      "(receive queue full)", file=sys.stderr)
        if args.count and seen < args.count:
            print(f"hdp listen: timed out after {seen} of {args.count} packets", file=sys.stderr)
            return 1
        return 0
    finally:
        for raw in listeners:
            raw.close()
