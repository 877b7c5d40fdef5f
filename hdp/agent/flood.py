"""Floods in the agent: probes sent unpaced and counted into a bitmap at the other end (the
requests are hdp.agent.messages' FloodOpen, FloodSend, FloodCount and FloodClose).

A stream (hdp.agent.stream) keeps a record and a kernel stamp a packet, which costs tens
of microseconds of Python each; a flood keeps neither, so that one agent can send, and
another match, at packet rate. The sender fills one template per slot in place (the tag's
run, the probe's number in the case field, the CRC: hdp.wire.fastprobe's layout) and hands
BATCH of them to sendmmsg; the listener reads BATCH a call with recvmmsg, checks magic,
version, run and CRC where the tag sits, and sets the probe's bit; a second intact copy is
a duplicate, a copy of the run whose CRC fails is corrupt (its number cannot be trusted, so
it marks nothing). Where the OS lacks those calls (hdp.mmsg) it is one sendto and one
recvmsg a packet, the same counts. Nothing is timed per packet: latency is not measured.

The listening end's raw socket gets a large receive queue (SO_RCVBUFFORCE as root) so a
bounded burst is not dropped where it need not be; what the kernel drops anyway is read
exactly (SO_MEMINFO) and answered beside the counts. Every answer is one event.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import re
import select
import socket
import struct
import time
import zlib
from collections.abc import Callable
from ipaddress import ip_address
from typing import Any

from hdp import mmsg, rawsock
from hdp.agent import messages
from hdp.agent.powers import Caller, Emit, Ops, OwnFlows, Refused, Register, Unregister
from hdp.probe import probe_data
from hdp.timestamps import boot_id
from hdp.wire.hdp import HEADER_LENGTH, ORIGINAL_PORT, TAG_LENGTH, TAG_MAGIC, TAG_VERSION, Carrier

RECEIVE_BUFFER = 64 << 20  # bytes: about 80,000 queued probes of 64 data bytes on Linux
READS_A_TURN = 64  # recvmmsg calls (or packets, unbatched) one readiness serves at most
WAIT_STEP = 0.005  # seconds a flood-count blocks at a time while it checks for completion
SLOT = 2048  # bytes a received packet may take: the largest flood probe and its headers
_TAG = struct.Struct("!4sBBHIII")  # magic, version, carrier, probe, run, case, CRC
_HEAD = struct.Struct("!HHQ")  # HDP ports and timestamp
_STAMP = struct.Struct("!Q")
_CRC = struct.Struct("!I")


class Listener:
    """The listening end of one flood: its raw socket and its bitmap of probes heard."""

    def __init__(self, request: messages.FloodOpen, raw: rawsock.RawSocket) -> None:
        self.run = request.run
        self.count = request.count
        self.raw = raw
        self.ipv4 = request.family == 4
        self.seen = bytearray((request.count + 7) // 8)
        self.delivered = self.duplicated = self.corrupted = self.foreign = 0
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.batch = mmsg.BatchReceiver(raw.sock, SLOT) if mmsg.available() else None

    def read(self) -> int:
        """Read what the socket holds (up to READS_A_TURN calls); packets read."""
        if self.batch is None:
            sock = self.raw.sock
            for done in range(READS_A_TURN):
                try:
                    data, _, _, _ = sock.recvmsg(SLOT)
                except (BlockingIOError, InterruptedError):
                    return done
                self._match(bytearray(data), 1, 0, len(data))
            return READS_A_TURN
        total = 0
        receive, length, view = self.batch.receive, self.batch.length, self.batch.view
        for _ in range(READS_A_TURN):
            got = receive()
            if not got:
                break
            self._match(view, got, SLOT, 0, length)
            total += got
        return total

    def _match(self, view: Any, got: int, stride: int, only: int = -1,
               length: Callable[[int], int] | None = None) -> None:
        """Match `got` packets at `view[i * stride:]` (packet i's length from `length`,
        else `only`). One loop, locals only: this is the per-packet cost of a flood.
        The CRC field is zeroed in the buffer itself, so that one pass covers the tag
        and the data, as the sender computed it."""
        unpack, crc32, zero = _TAG.unpack_from, zlib.crc32, _CRC.pack_into
        seen, run, count, ipv4 = self.seen, self.run, self.count, self.ipv4
        delivered = duplicated = corrupted = foreign = 0
        for i in range(got):
            base = i * stride
            end = base + (length(i) if length is not None else only)
            tag = base + HEADER_LENGTH + (((view[base] & 0x0F) << 2) if ipv4 else 0)
            if end - tag < TAG_LENGTH:
                foreign += 1
                continue
            magic, version, _, _, tag_run, case, crc = unpack(view, tag)
            if magic != TAG_MAGIC or version != TAG_VERSION or tag_run != run:
                foreign += 1
                continue
            zero(view, tag + 16, 0)
            if case >= count or crc32(view[tag:end]) != crc:
                corrupted += 1
                continue
            byte, bit = case >> 3, 1 << (case & 7)
            if seen[byte] & bit:
                duplicated += 1
                continue
            seen[byte] |= bit
            delivered += 1
        if delivered:
            now = time.monotonic_ns()
            if self.first_ns is None:
                self.first_ns = now
            self.last_ns = now
        self.delivered += delivered
        self.duplicated += duplicated
        self.corrupted += corrupted
        self.foreign += foreign

    def missing(self, below: int) -> tuple[list[list[int]], int]:
        """Up to MAX_MISSING [first, last] ranges of probes below `below` never heard, and
        how many such ranges there are (whole bytes of one kind are skipped at C speed)."""
        ranges: list[list[int]] = []
        total = 0
        seen, start, number = self.seen, None, 0
        while number < below:
            if number & 7 == 0:  # a byte boundary: skip to the next byte that differs
                found = (_NOT_ALL_HEARD if start is None else _NOT_NONE_HEARD).search(
                    seen, number >> 3)
                number = min(below, found.start() << 3 if found else below)
                if number >= below:
                    break
            if seen[number >> 3] & (1 << (number & 7)):
                if start is not None:
                    total += 1
                    if len(ranges) < messages.MAX_MISSING:
                        ranges.append([start, number - 1])
                    start = None
            elif start is None:
                start = number
            number += 1
        if start is not None:
            total += 1
            if len(ranges) < messages.MAX_MISSING:
                ranges.append([start, below - 1])
        return ranges, total

    def close(self) -> None:
        self.raw.close()


_NOT_ALL_HEARD = re.compile(rb"[^\xff]")
_NOT_NONE_HEARD = re.compile(rb"[^\x00]")


class Sender:
    """The sending end of one flood: a raw socket toward dst and its probe slots."""

    def __init__(self, request: messages.FloodOpen, raw: rawsock.RawSocket) -> None:
        assert request.dst is not None
        self.run = request.run
        self.count = request.count
        self.raw = raw
        self.address = rawsock.sockaddr(request.family, request.dst)
        self.data = probe_data(request.size)
        self.length = HEADER_LENGTH + TAG_LENGTH + request.size
        self.batch = mmsg.BatchSender(raw.sock, request.family, self.address, self.length) \
            if mmsg.available() else None
        slots = mmsg.BATCH if self.batch is not None else 1
        self.view = self.batch.view if self.batch is not None else \
            memoryview(bytearray(self.length))
        for i in range(slots):
            at = i * self.length
            _HEAD.pack_into(self.view, at, ORIGINAL_PORT, ORIGINAL_PORT, 0)
            self.view[at + HEADER_LENGTH + TAG_LENGTH:at + self.length] = self.data

    def _fill(self, low: int, high: int, stamp: int) -> None:
        """Probes `low`..`high - 1` into slots 0.. (locals only: the per-probe cost)."""
        view, size, run, hdp = self.view, self.length, self.run, Carrier.HDP
        pack_stamp, pack_tag, pack_crc, crc32 = _STAMP.pack_into, _TAG.pack_into, \
            _CRC.pack_into, zlib.crc32
        at = 0
        for case in range(low, high):
            pack_stamp(view, at + 4, stamp)
            tag = at + HEADER_LENGTH
            pack_tag(view, tag, TAG_MAGIC, TAG_VERSION, hdp, 0, run, case, 0)
            pack_crc(view, tag + 16, crc32(view[tag:at + size]))
            at += size

    def send(self, first: int, count: int, deadline: float,
             between: Callable[[], object] | None) -> tuple[int, int, str | None]:
        """(sent, refused, the last refusal's errno name); stops at `deadline`
        (monotonic). `between` runs after every batch (this agent's own listeners)."""
        sent = refused = 0
        why: str | None = None
        end = first + count
        batch = self.batch
        step = mmsg.BATCH if batch is not None else 16
        for low in range(first, end, step):
            high = min(low + step, end)
            stamp = time.time_ns()
            if batch is not None:
                self._fill(low, high, stamp)
                done, total = 0, high - low
                while done < total:
                    taken, number = batch.send(total, done)
                    done += taken
                    sent += taken
                    if done < total:  # the kernel refused the probe in slot `done`
                        refused += 1
                        why = errno.errorcode.get(number, "EIO")
                        done += 1
            else:
                for case in range(low, high):
                    self._fill(case, case + 1, stamp)
                    try:
                        self.raw.sock.sendto(self.view, self.address)
                        sent += 1
                    except OSError as exc:
                        refused += 1
                        why = errno.errorcode.get(exc.errno or 0, "EIO")
            if between is not None:
                between()
            if time.monotonic() >= deadline:
                break
        return sent, refused, why

    def close(self) -> None:
        self.raw.close()


class FloodOps(Ops):
    """The floods of one agent; a listener's socket is served by the agent's own loop."""

    def __init__(self, emit: Emit, register: Register, unregister: Unregister,
                 caller: Caller | None = None, own: OwnFlows | None = None) -> None:
        super().__init__(emit, register, unregister, caller, own)
        self.floods: dict[int, Listener | Sender] = {}
        self._handles = itertools.count(1)

    def handlers(self) -> dict[str, Callable[[Any, Any], None]]:
        return {"flood-open": self._open, "flood-send": self._send,
                "flood-count": self._count, "flood-close": self._close}

    def _answer(self, ident: int | None, request: messages.Request, **fields: Any) -> None:
        self.emit({"event": request.ANSWER, "id": ident, **fields})

    def _open(self, ident: int | None, request: messages.FloodOpen) -> None:
        if len(self.floods) >= messages.MAX_FLOODS:
            raise Refused(f"{messages.MAX_FLOODS} floods are open: close one first")
        if request.role == "send" and request.dst is None:
            raise Refused("dst: a sending end needs the listener's address")
        listen = request.role == "listen"
        if not listen and not self.caller.root:
            _require_local(self.caller, request)
        raw = rawsock.RawSocket.open(request.family, request.protocol, listen=listen)
        if isinstance(raw, rawsock.OsRefusal):
            self._answer(ident, request, handle=None, ok=False, stage="socket",
                         errno=raw.errno_name, batched=False, receive_buffer=None,
                         boot_id=boot_id())
            return
        granted = None
        if listen:
            _no_stamps(raw.sock)
            granted = rawsock.grow_receive_buffer(raw.sock, RECEIVE_BUFFER)
            raw.sock.setblocking(False)
        try:
            flood: Listener | Sender = Listener(request, raw) if listen else \
                Sender(request, raw)
        except OSError as exc:  # a dst the OS cannot address
            raw.close()
            raise Refused(f"dst {request.dst}: {exc.strerror or exc}") from None
        handle = next(self._handles)
        self.floods[handle] = flood
        self.own.runs.add(request.run)
        if isinstance(flood, Listener):
            self.register(raw.sock, flood.read)
        self._answer(ident, request, handle=handle, ok=True, stage=None, errno=None,
                     batched=flood.batch is not None, receive_buffer=granted,
                     boot_id=boot_id())

    def _flood(self, handle: int, kind: type[Listener] | type[Sender]) -> Any:
        flood = self.floods.get(handle)
        if flood is None:
            raise Refused(f"no flood {handle}: open one with flood-open")
        if not isinstance(flood, kind):
            role = "a listening end: it sends nothing" if isinstance(flood, Listener) else \
                "a sending end: it counts nothing"
            raise Refused(f"flood {handle} is {role}")
        return flood

    def _send(self, ident: int | None, request: messages.FloodSend) -> None:
        sender: Sender = self._flood(request.handle, Sender)
        if request.first + request.count > sender.count:
            raise Refused(f"probes {request.first}..{request.first + request.count - 1}: "
                          f"the flood has {sender.count}")
        listeners = [f for f in self.floods.values() if isinstance(f, Listener)]

        def serve() -> None:  # one agent at both ends: its listeners read between batches
            for listener in listeners:
                listener.read()

        began = time.monotonic_ns()
        sent, refused, why = sender.send(request.first, request.count,
                                         time.monotonic() + request.seconds,
                                         serve if listeners else None)
        self._answer(ident, request, handle=request.handle, sent=sent, refused=refused,
                     errno=why, began_ns=began, ended_ns=time.monotonic_ns())

    def _count(self, ident: int | None, request: messages.FloodCount) -> None:
        listener: Listener = self._flood(request.handle, Listener)
        deadline = time.monotonic() + request.wait
        poller = select.poll()
        poller.register(listener.raw.sock.fileno(), select.POLLIN)
        while True:
            while listener.read():
                pass
            if listener.delivered >= request.expect or \
                    (remaining := deadline - time.monotonic()) <= 0:
                break
            poller.poll(max(1, int(min(remaining, WAIT_STEP) * 1000)))
        below = min(request.below or listener.count, listener.count)
        missing, ranges = listener.missing(below)
        self._answer(ident, request, handle=request.handle, delivered=listener.delivered,
                     duplicated=listener.duplicated, corrupted=listener.corrupted,
                     foreign=listener.foreign, drops=listener.raw.drops(),
                     first_ns=listener.first_ns, last_ns=listener.last_ns, below=below,
                     missing=missing, missing_ranges=ranges,
                     complete=listener.delivered >= request.expect)

    def _close(self, ident: int | None, request: messages.FloodClose) -> None:
        flood = self.floods.get(request.handle)
        if flood is None:
            raise Refused(f"no flood {request.handle}: open one with flood-open")
        self._drop(request.handle)
        self._answer(ident, request, handle=request.handle)

    def _drop(self, handle: int) -> None:
        flood = self.floods.pop(handle)
        if isinstance(flood, Listener):
            self.unregister(flood.raw.sock)
        flood.close()

    def close(self) -> None:
        for handle in list(self.floods):
            self._drop(handle)


def _require_local(caller: Caller, request: messages.FloodOpen) -> None:
    """A caller that is not root floods this host only (loopback, or an address of its
    own, which the kernel then sends from): what `hdp stats --flood` on this host needs,
    never a packet-rate stream of raw packets at another host."""
    assert request.dst is not None
    try:
        own = ip_address(rawsock.source_address_for(request.dst, request.family).split(
            "%")[0]) == ip_address(request.dst.split("%")[0])
    except (OSError, ValueError):
        own = False
    if not own:
        caller.require_root(f"flooding {request.dst}, not an address of this host")


def _no_stamps(sock: socket.socket) -> None:
    """A flood times nothing a packet: the listener asks the kernel for no stamps."""
    from hdp.osnet import current

    table = current()
    for option in (table.timestamp_ns, table.timestamp):
        if option is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(option.level, option.name, 0)
