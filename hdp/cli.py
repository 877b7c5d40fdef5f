"""The `hdp` command line: `hdp listen` and `hdp send`, as in the HDP experiment."""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, TextIO

# Only what building the parser needs: `hdp --help` and a bad command line stay at the
# interpreter's own start-up cost. Each command imports its machinery when it runs.
from hdp import __version__
from hdp import listen as listen_command
from hdp.arguments import (
    count_value,
    family_list,
    family_value,
    outcome_list,
    protocol_numbers,
    seconds_value,
    size_value,
)
from hdp.errors import HdpError, PrivilegeError, UsageError
from hdp.listen import DEFAULT_HDP_PROTOCOL

MAX_PAYLOAD = 65535  # no IP datagram carries more; stdin beyond it is refused, not read
REPORT_FORMATS = ("table", "md", "json")

LISTEN_EPILOG = """\
examples:
  sudo hdp listen                             protocol 255, IPv4, until Ctrl-C
  sudo hdp listen -p 253 -p 254 --family 6 --format table
  sudo hdp listen -p 17 --decode hdp          the original client's HDP on protocol 17
  sudo hdp listen -p 253 --format json --from 198.18.0.0/15 --run 1a2b3c4d --count 10

--format json prints one object a packet (NDJSON); its fields are listed in README.md.
"Byte Sum (Server)" counts as the original server did: the bytes the raw socket read,
the IPv4 header included (an IPv6 raw socket hands over no header).

exit status:
  0    stopped by --count, --timeout or Ctrl-C (without --count/--timeout)
  1    fewer than --count packets before --timeout, or no listener could be opened
  2    bad command line
  130  Ctrl-C before --count or --timeout was reached
"""

SEND_EPILOG = """\
examples:
  fortune | cowsay | sudo hdp send 127.0.0.1
  echo hello | sudo hdp send ::1 --protocol=-1-256     every number, one row each
  echo hello | sudo hdp send 127.0.0.1 --udp           a real UDP datagram (protocol 17)
  printf 'raw' | sudo hdp send 127.0.0.1 --plain       byte for byte what the original sent

Standard input is read up to 65535 bytes (one IP datagram).

exit status:
  0    every probe was sent
  1    a send failed (its row says why), or the target does not resolve
  2    bad command line or standard input
"""

SWEEP_EPILOG = """\
examples:
  sudo hdp sweep 127.0.0.1 ::1                          0-255 over IPv4 and IPv6
  sudo hdp sweep 127.0.0.1 --protocols=-1-300 --family 4 --out report.json
  sudo hdp sweep 198.51.100.7 --listener none           verdicts from ICMP, like nmap -sO
  sudo hdp sweep 127.0.0.1 -p 253 --fail-on lost,prohibited --format md > report.md

The report is an aligned table on a terminal, Markdown when piped (or --format md), and
hdp-report/1 JSON with --format json or --out FILE.json.

exit status:
  0    every case has an outcome (see the report)
  1    the sweep could not run, or the report could not be written, or our own
       machinery failed (an agent died or never started): the report is written all
       the same, its affected cases `error` and meta.incomplete true
  2    bad command line
  3    --fail-on: a case had one of the named outcomes
  130  interrupted (Ctrl-C); the report holds what was learned so far
"""

REPORT_EPILOG = """\
examples:
  hdp report sweep.json                     as a table on a terminal, Markdown when piped
  hdp report sweep.json --format md --out sweep.md
  hdp report merge linux.json macos.json    the cross-OS matrix of where they differ

exit status:
  0    rendered
  1    a file could not be read or is not an hdp-report/1 file
  2    bad command line
"""


def _columns() -> int:
    """shutil.get_terminal_size().columns, as argparse asks it for every help formatter
    it makes (one an argument): importing shutil loads its archive modules (bz2, lzma),
    5 ms of every command's start."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 80
    return columns


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad value in one line instead of usage + error."""

    def __init__(self, *args: Any, formatter_class: Any = argparse.HelpFormatter,
                 **kwargs: Any) -> None:
        def formatter(prog: str) -> argparse.HelpFormatter:
            # The width argparse gives itself when none is given (its terminal less 2).
            made: argparse.HelpFormatter = formatter_class(prog, width=_columns() - 2)
            return made

        super().__init__(*args, **{**kwargs, "formatter_class": formatter})

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# `hdp agent` as the command list shows it where its parser is not built (see build_parser).
AGENT_HELP = "the privileged agent: how to let a user start it through sudo"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `hdp` parser; given the `command` about to run, `hdp agent`'s own arguments
    are built only for that command (hdp.agent.cli imports the install checks, which
    `hdp --help` and every other command need not pay for at start-up)."""
    parser = _Parser(prog="hdp", description=__doc__)
    parser.add_argument("--version", action="version", version=f"hdp {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    listen = commands.add_parser(
        "listen", help="print every packet of the given protocols that reaches this host",
        description="Open raw listeners and print each packet's IP header and HDP header & "
                    "data, one table row, or one JSON object a packet.",
        epilog=LISTEN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    listen_command.add_arguments(listen)

    send = commands.add_parser(
        "send", help="send the payload on standard input to TARGET over raw IP",
        description="Send standard input as an HDP (or UDP) payload to TARGET, one row a probe.",
        epilog=SEND_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
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
                    "and report the outcome of each case (an aligned table on a terminal, "
                    "Markdown, or hdp-report/1 JSON).",
        epilog=SWEEP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    sweep.add_argument("--format", choices=REPORT_FORMATS,
                       help="report format: table (the default on a terminal), md (the "
                       "default when piped or for --out FILE), json (the default for --out "
                       "*.json)")
    sweep.add_argument("--out", "-o", metavar="FILE", help="write the report here, not stdout "
                       "(checked before anything is sent)")
    sweep.add_argument("--fail-on", type=outcome_list, metavar="OUTCOMES", default=(),
                       help="exit with status 3 when any case has one of these outcomes, "
                       "e.g. lost,prohibited (the report is written all the same)")
    sweep.add_argument("--timeout", "-t", type=seconds_value, default=1.0, metavar="SECONDS",
                       help="wait this long after the last probe for late evidence (default 1)")
    sweep.add_argument("--agent", default="auto", metavar="AGENT",
                       help="where the sender runs: auto (this process if it may open raw "
                       "sockets, else sudo -n), inprocess, child, sudo, netns:NAME, ssh://HOST")
    sweep.add_argument("--listener", default="auto", metavar="AGENT",
                       help="who listens on the target: auto (the sender's agent for loopback, "
                       "none otherwise: verdicts from ICMP), same, none, or an AGENT as above")
    sweep.add_argument("--patient", action="store_true",
                       help="ICMP-only targets: ask again until every case has an answer or "
                       "is shown silent, at the pace the target's ICMP rate limit allows "
                       "(minutes on a Linux peer, like nmap -sO); without it a target gets "
                       "at most 60 s and the rest is no-answer")
    sweep.add_argument("--no-icmp", action="store_true",
                       help="do not listen for ICMP errors about the probes")

    report = commands.add_parser(
        "report", help="render a saved JSON report as Markdown, or merge several into a matrix",
        description="Render an hdp-report/1 JSON file (from hdp sweep --format json), or "
                    "'hdp report merge A.json B.json ...' for the cross-OS matrix of differences.",
        epilog=REPORT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    report.add_argument("files", nargs="+", metavar="FILE.json",
                        help="one report to render, or: merge A.json B.json ...")
    report.add_argument("--format", choices=REPORT_FORMATS,
                        help="output format: table (the default on a terminal), md (when "
                        "piped), json; merge takes md or json")
    report.add_argument("--out", "-o", metavar="FILE", help="write here, not stdout")

    from hdp.lab.cli import add_lab_parser  # argparse only; hdp.lab loads lazily
    from hdp.stats_command import add_stats_parser  # likewise hdp.measure

    add_lab_parser(commands)
    add_stats_parser(commands)
    if command in (None, "agent"):
        from hdp.agent.cli import add_agent_parser

        add_agent_parser(commands)
    else:
        commands.add_parser("agent", help=AGENT_HELP)
    return parser


def _command_word(argv: Sequence[str]) -> str:
    """The subcommand a command line names: its first word that is not an option (the
    top-level options, --help and --version, take no value)."""
    return next((word for word in argv if not word.startswith("-")), "")


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    args = build_parser(_command_word(words)).parse_args(words)
    try:
        if args.command == "listen":
            return listen_command.run_listen(args, sys.stdout)
        if args.command == "lab":
            from hdp.lab.cli import command_lab

            return command_lab(args, sys.stdout)
        if args.command == "agent":
            from hdp.agent.cli import command_agent

            return command_agent(args, sys.stdout)
        if args.command == "stats":
            from hdp.stats_command import command_stats

            return command_stats(args, sys.stdout)
        if args.command == "report" and args.files and args.files[0] == "merge":
            from hdp import merge

            args.files = args.files[1:]
            return merge.command_merge(args, sys.stdout)
        if args.command in ("sweep", "report"):
            from hdp.gcpause import collection_paused

            # A bounded run that makes objects and keeps them to the end (its modules'
            # functions and classes, then cases, events and a report): the collector's
            # passes over them find nothing to free (3-7 ms of a 4,096-case sweep).
            with collection_paused():
                from hdp import sweep

                command = (sweep.command_sweep if args.command == "sweep"
                           else sweep.command_report)
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


def entry() -> NoReturn:
    """`hdp` as a program (`python -m hdp`, the `hdp` script): main, then exit.

    The interpreter's finalization makes a last cyclic collection over every object still
    alive, a sweep's cases, events and report among them (10-14 ms of a 4,096-case
    sweep). Frozen, they are left out of that pass: reference counting still frees them,
    and what cycles are left go with the process (every file and socket is closed by
    then). Only here: main called in another program freezes nothing."""
    code = main()
    gc.freeze()
    raise SystemExit(code)


def resolve(target: str, family: int | None) -> tuple[str, int]:
    """The address and family to send to; names resolve in `family`, or IPv4 then IPv6."""
    import ipaddress
    import socket

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
    import random
    import time

    from hdp import inputs, rawsock
    from hdp.probe import PayloadKind, Probe, encode_probe
    from hdp.render import sender_row, sender_table_header
    from hdp.wire.hdp import ProbeTag

    if stdin is None:
        raise UsageError("standard input is closed: pipe a payload in, "
                         "e.g. echo hello | sudo hdp send 127.0.0.1")
    if sys.stdin.isatty():
        raise UsageError("the payload comes from standard input: pipe it in, "
                         "e.g. fortune | cowsay | sudo hdp send 127.0.0.1")
    try:
        data = inputs.read_stream(stdin, MAX_PAYLOAD)  # type: ignore[arg-type]
    except inputs.TooLarge:
        raise UsageError(f"standard input holds more than {MAX_PAYLOAD} bytes, more than one "
                         "IP datagram can carry: send less, e.g. head -c 1400 FILE | "
                         "sudo hdp send 127.0.0.1") from None
    except OSError as exc:
        raise UsageError(f"cannot read standard input ({exc.strerror or exc}): pipe a payload "
                         "in, e.g. echo hello | sudo hdp send 127.0.0.1") from None
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
    from hdp import rawsock

    try:
        return rawsock.source_address_for(dst, family)
    except OSError as exc:
        raise HdpError(f"no route to {dst} for the UDP checksum's source address "
                       f"({os.strerror(exc.errno or 0)}): check the target and routes") from None
