"""`hdp stats`: many probes of HDP, UDP and TCP to a target, their loss and latency.

Only the parser lives here, so that `hdp --help` stays light; the measurement and its
report are hdp.stats_report's, imported when the command runs.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from hdp.arguments import family_list, seconds_value, size_value

KINDS = ("hdp", "udp", "tcp")
MAX_COUNT = 1 << 16  # probes a kind: the probe tag numbers them in 16 bits
MAX_RATE = 100_000.0
MAX_FLOOD_COUNT = 10_000_000  # --flood: probes a target (hdp.agent.messages' bound)
MAX_FLOOD_SIZE = 1400  # --flood: data bytes a probe (likewise)

EPILOG = """\
examples:
  sudo hdp stats 127.0.0.1 ::1 --count 10000 --rate 5000 --plot latency.png
  sudo hdp stats 127.0.0.1 --kinds hdp,udp --size 512 --reflect --format json --out s.json
  sudo hdp stats 127.0.0.1 --flood --count 1000000     # as fast as it goes, counted only
  sudo hdp lab up routed        # then, with the token it prints:
  sudo hdp stats 198.18.2.2 --agent netns:hdp-TOKEN-client --listener netns:hdp-TOKEN-server

Each kind is a case of its own: HDP over raw IP (protocol 253 unless --protocol), UDP
through the kernel's UDP stack (a datagram socket), TCP over one established TCP_NODELAY
connection; all carry the same tag and data, at the same rate, interleaved. Latency is
one-way, from the kernel's transmit stamp to the kernel's receive stamp where the OS has
them (else the send time, labelled user); --reflect adds round trips, which need no clock
sync. The report says how the clocks were related, and each difference with its 95%
bootstrap interval ("no difference" when it holds zero).

--flood sends COUNT HDP probes (up to 10,000,000) unpaced and only counts them at the
listener (a bit a probe): sent, delivered, lost, dropped by the kernel (exact), duplicated,
corrupted, sent/s and matched/s. It stamps nothing, so it measures no latency.

exit status:
  0    measured (see the report)
  1    an agent could not start or died, or the report or chart could not be written
  2    bad command line
  130  interrupted (Ctrl-C)
"""


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: give a whole number"
                                         ) from None
    if not 1 <= value <= MAX_FLOOD_COUNT:
        raise argparse.ArgumentTypeError(f"count {value} is out of range: give 1..{MAX_COUNT} "
                                         f"probes a kind ({MAX_FLOOD_COUNT:,} with --flood)")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid rate {text!r}: give probes a second"
                                         ) from None
    if not 1 <= value <= MAX_RATE:
        raise argparse.ArgumentTypeError(f"rate {text} is out of range: give 1..{MAX_RATE:g} "
                                         "probes a second a kind")
    return value


def _kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"invalid kinds {text!r}: give some of "
                                         f"{','.join(KINDS)}")
    return kinds


def _protocol(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 255:
        raise argparse.ArgumentTypeError(f"invalid protocol {text!r}: give 0..255 (HDP's "
                                         "experiments used 253, 254 and 255)")
    return int(text)


def _timeout(text: str) -> float:
    value = seconds_value(text)
    if value > 10:
        raise argparse.ArgumentTypeError(f"timeout {text} is out of range: give at most 10 s")
    return value


def add_stats_parser(commands: Any) -> None:
    stats = commands.add_parser(
        "stats", help="many probes of HDP, UDP and TCP to TARGET: loss, reordering, latency",
        description="Send COUNT probes of each kind to each TARGET, paced and interleaved, "
                    "and report per kind what arrived (lost, dropped by the kernel, "
                    "duplicated, reordered, corrupted) and the one-way latency from kernel "
                    "timestamps, with the differences between kinds and their intervals.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    stats.add_argument("targets", nargs="+", metavar="TARGET",
                       help="an address, a host name, ssh://HOST or netns://NAME")
    stats.add_argument("--count", "-c", type=_count, default=1000, metavar="N",
                       help=f"probes of each kind (default 1000, at most {MAX_COUNT}; "
                       f"{MAX_FLOOD_COUNT:,} with --flood)")
    stats.add_argument("--rate", "-r", type=_rate, metavar="PPS",
                       help="probes a second of each kind (default 1000)")
    stats.add_argument("--kinds", "-k", type=_kinds, metavar="KINDS",
                       help="hdp, udp, tcp or a list (default hdp,udp,tcp)")
    stats.add_argument("--flood", action="store_true",
                       help="HDP only, unpaced, counted only (no latency): how many probes "
                       "a second are sent and matched, every one accounted for")
    stats.add_argument("--protocol", "-p", type=_protocol, default=253, metavar="N",
                       help="the IP protocol number HDP probes carry (default 253)")
    stats.add_argument("--family", "-f", type=family_list, default=[4, 6], metavar="4,6",
                       help="address families (default 4,6: each the target has)")
    stats.add_argument("--size", type=size_value, default=64, metavar="BYTES",
                       help="data bytes after each probe's tag (default 64)")
    stats.add_argument("--reflect", action="store_true",
                       help="have the listener send each probe back: round trips too")
    stats.add_argument("--clock", choices=("auto", "estimate"), default="auto",
                       help="auto: one clock when both ends are one kernel, else an offset "
                       "estimated from echoes; estimate: estimate it always")
    stats.add_argument("--timeout", "-t", type=_timeout, default=1.0, metavar="SECONDS",
                       help="wait this long after the last probe for late ones (default 1)")
    stats.add_argument("--agent", default="auto", metavar="AGENT",
                       help="where the sender runs, as for hdp sweep (default auto)")
    stats.add_argument("--listener", default="auto", metavar="AGENT",
                       help="who listens at the target: auto (this host's agent for "
                       "loopback, the ssh host's, the namespace's), or an AGENT")
    stats.add_argument("--plot", metavar="FILE",
                       help="draw the latency distributions and the loss to FILE.png or "
                       "FILE.svg (needs matplotlib: pip install 'pytest-hdp[plot]')")
    stats.add_argument("--log-x", action="store_true",
                       help="the chart's latency axis on a log scale")
    stats.add_argument("--format", choices=("md", "json"),
                       help="md (the default) or hdp-stats/1 json (the default for --out "
                       "*.json)")
    stats.add_argument("--out", "-o", metavar="FILE", help="write the report here, not stdout")


def command_stats(args: argparse.Namespace, stdout: TextIO) -> int:
    from hdp.errors import UsageError

    if args.flood:
        given = [option for option, used in (
            ("--rate", args.rate is not None), ("--reflect", args.reflect),
            ("--plot", args.plot is not None), ("--clock", args.clock != "auto"),
            ("--kinds", args.kinds not in (None, ("hdp",)))) if used]
        if given:
            raise UsageError(f"{', '.join(given)}: --flood sends HDP probes unpaced and "
                             "measures no latency: leave them out, or leave out --flood")
        if args.size > MAX_FLOOD_SIZE:
            raise UsageError(f"--size {args.size} is out of range for --flood: give 0.."
                             f"{MAX_FLOOD_SIZE} data bytes (a flood is about packets)")
        from hdp.flood_report import run_flood_command

        return run_flood_command(args, stdout)
    if args.count > MAX_COUNT:
        raise UsageError(f"--count {args.count} is out of range: give 1..{MAX_COUNT} probes "
                         "a kind (the probe tag numbers them in 16 bits), or use --flood")
    args.rate = 1000.0 if args.rate is None else args.rate
    args.kinds = KINDS if args.kinds is None else args.kinds
    from hdp.stats_report import run_stats_command

    return run_stats_command(args, stdout)
