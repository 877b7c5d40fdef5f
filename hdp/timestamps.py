"""Kernel timestamps of packets: when one left, when one arrived, and whose clock they are on.

A latency taken from the process's own clock (`time.time_ns()` before the send call, after
the receive call) includes the system calls, the scheduler and the interpreter; the
kernel's software stamps do not. Linux gives both ends:

- arrival: SO_TIMESTAMPNS (SO_TIMESTAMP where only that exists, as on macOS) attaches the
  time the packet reached the stack to each read;
- departure: SO_TIMESTAMPING's software transmit stamp, taken as the driver takes the
  packet (net/core/skbuff.c:skb_tstamp_tx, from skb_tx_timestamp in loopback's and veth's
  xmit), comes back on the socket's error queue with the key of the send it belongs to:
  SOF_TIMESTAMPING_OPT_ID numbers a datagram socket's sends and a TCP socket's bytes
  (the key of a send is the offset of its last byte), and since Linux 6.13 a send may
  name its own key (SCM_TS_OPT_ID), which no failed send can put out of step.

macOS stamps only what arrives (xnu has no SO_TIMESTAMPING): a send time there is the
process's clock, labelled `user` wherever it is used (hdp.stats never mixes the kinds).
Every stamp is integer nanoseconds of CLOCK_REALTIME. Which options exist is hdp.osnet's.
"""

from __future__ import annotations

import errno
import socket
import struct
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hdp.osnet import current, unavailable

# include/uapi/linux/net_tstamp.h
TX_SOFTWARE = 1 << 1  # stamp a packet as the driver takes it
SOFTWARE = 1 << 4  # report software stamps
OPT_ID = 1 << 7  # key each stamp by its send
OPT_TSONLY = 1 << 11  # the stamp alone, not a copy of the packet, on the error queue
# include/uapi/linux/errqueue.h
ORIGIN_TIMESTAMPING = 4
TSTAMP_SND = 0  # ee_info of a stamp taken by the driver
_EXTENDED_ERR = struct.Struct("@IBBBBII")  # struct sock_extended_err
_TIMESPEC = struct.Struct("@qq")
_ANCILLARY = 512
MAX_COLLECT = 1 << 16  # stamps one collect() reads at most: a flood cannot hold it


def enable_receive_stamps(sock: socket.socket) -> bool:
    """Ask for the kernel's arrival stamp on every read; False where the OS has none."""
    table = current()
    option = table.timestamp_ns or table.timestamp
    if option is None:
        return False
    try:
        sock.setsockopt(option.level, option.name, 1)
    except OSError:
        return False
    return True


def receive_stamp(ancillary: Iterable[tuple[int, int, bytes]]) -> int | None:
    """The kernel's arrival stamp among a read's control messages, in ns; None if none."""
    table = current()
    stamp_ns = table.timestamp_ns.name if table.timestamp_ns is not None else None
    for level, kind, value in ancillary:
        if level != table.sol_socket:
            continue
        if kind == stamp_ns and len(value) >= 16:
            sec, nsec = _TIMESPEC.unpack_from(value)
            return int(sec * 1_000_000_000 + nsec)
        if kind == table.scm_timestamp and len(value) >= 12:
            # struct timeval: a long, then microseconds (a long on Linux, an int on macOS).
            sec, usec = struct.unpack_from("@qi", value)
            return int(sec * 1_000_000_000 + usec * 1000)
    return None


def boot_id() -> str | None:
    """This kernel's boot id: two ends that report the same one read one realtime clock
    (hdp.stats.clock); None where the OS does not tell it."""
    source = current().boot_id
    if source == "proc":
        try:
            text = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii")
        except OSError:
            return None
        return text.strip() or None
    if source == "sysctl":
        from hdp import counters

        value = counters.sysctlbyname("kern.bootsessionuuid", 64)
        text = value.split(b"\0")[0].decode("ascii", "replace") if value else ""
        return text or None
    return None


class TransmitStamps:
    """One socket's kernel transmit stamps, each under the key its send was given.

    A datagram socket's send takes a key (`send`): the caller's own where the kernel takes
    it with the send (SCM_TS_OPT_ID), else the kernel's count of sends, which a refused
    send may or may not have advanced: from then on no stamp the socket reports is
    trusted (`in_step` False), and its sends keep their user stamps. A TCP socket's key
    is the offset of a send's last byte since stamping began (`send_stream`).
    """

    def __init__(self, sock: socket.socket, *, stream: bool = False,
                 explicit_keys: bool = True) -> None:
        self.sock = sock
        self.stream = stream
        self.why: str | None = None  # why this socket has no kernel stamps
        self.in_step = True
        self.sent_bytes = 0  # TCP: bytes taken by the kernel since stamping began
        self._count = 0  # the kernel's own key of the next datagram send
        table = current()
        self.explicit = (explicit_keys and not stream and table.ts_opt_id is not None)
        if table.timestamping is None:
            self.why = unavailable("timestamping")
            return
        flags = TX_SOFTWARE | SOFTWARE | OPT_ID | OPT_TSONLY
        try:
            sock.setsockopt(table.timestamping.level, table.timestamping.name, flags)
        except OSError as exc:
            self.why = f"SO_TIMESTAMPING refused: {errno.errorcode.get(exc.errno or 0, exc)}"

    @property
    def enabled(self) -> bool:
        return self.why is None

    def send(self, data: bytes, address: Any | None, key: int
             ) -> tuple[int, int | None, str | None]:
        """Send one datagram: (the user stamp just before the call, the key its kernel
        stamp will come under, or None when none will be trusted; the errno name when the
        OS refused it). The key is `key` where the kernel takes it with the send."""
        table = current()
        started = time.time_ns()
        try:
            if self.enabled and self.explicit and table.ts_opt_id is not None:
                ancillary = [(table.sol_socket, table.ts_opt_id,
                              struct.pack("@I", key & 0xFFFFFFFF))]
                try:
                    if address is None:  # a connected socket
                        self.sock.sendmsg([data], ancillary)
                    else:
                        self.sock.sendmsg([data], ancillary, 0, address)
                    return started, key & 0xFFFFFFFF, None
                except OSError as exc:
                    if exc.errno != errno.EINVAL:
                        raise
                    # A kernel before 6.13 does not know the message: count sends instead.
                    self.explicit = False
                    started = time.time_ns()
            if address is None:
                self.sock.send(data)
            else:
                self.sock.sendto(data, address)
        except OSError as exc:
            if not self.explicit:
                self.in_step = False  # the kernel may or may not have counted it
            return started, None, errno.errorcode.get(exc.errno or 0, "EIO")
        if not self.enabled or not self.in_step:
            return started, None, None
        key = self._count
        self._count += 1
        return started, key & 0xFFFFFFFF, None

    def send_stream(self, data: bytes) -> tuple[int, int, str | None]:
        """Send on a TCP socket as much of `data` as it takes now; (user ns, bytes taken,
        errno or None). The stamp of a send comes under `sent_bytes - 1` after it."""
        started = time.time_ns()
        try:
            taken = self.sock.send(data)
        except BlockingIOError:
            return started, 0, None
        except OSError as exc:
            return started, 0, errno.errorcode.get(exc.errno or 0, "EIO")
        self.sent_bytes += taken
        return started, taken, None

    def collect(self) -> list[tuple[int, int]]:
        """The stamps waiting on the error queue: (key, ns), in the order they came."""
        if not self.enabled:
            return []
        table = current()
        levels = {(o.level, o.name) for o in (table.ip_recverr, table.ipv6_recverr) if o}
        stamping = table.timestamping.name if table.timestamping is not None else None
        found: list[tuple[int, int]] = []
        for _ in range(MAX_COLLECT):
            try:
                _, ancillary, _, _ = self.sock.recvmsg(
                    0, _ANCILLARY, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break  # an error queued for the socket, not a stamp: nothing more to read
            stamp = key = None
            for level, kind, value in ancillary:
                if level == table.sol_socket and kind == stamping and len(value) >= 16:
                    sec, nsec = _TIMESPEC.unpack_from(value)  # ts[0]: the software stamp
                    stamp = sec * 1_000_000_000 + nsec
                elif (level, kind) in levels and len(value) >= _EXTENDED_ERR.size:
                    _, origin, _, _, _, info, data = _EXTENDED_ERR.unpack_from(value)
                    if origin == ORIGIN_TIMESTAMPING and info == TSTAMP_SND:
                        key = data
            if stamp and key is not None and (self.explicit or self.stream or self.in_step):
                found.append((key, stamp))
        return found
