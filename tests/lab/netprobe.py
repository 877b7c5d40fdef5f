"""A tiny probe run inside a lab namespace (`ip netns exec NS python netprobe.py ...`).

    listen ADDR PORT TIMEOUT      one UDP datagram: prints "ready", then JSON src/ttl/size
    send ADDR PORT SIZE [nodf]    UDP datagrams of SIZE bytes (3, 50 ms apart)
    raw ADDR PROTO TIMEOUT [sum]  one raw packet of PROTO; prints JSON of the ICMP error
                                  that comes back; `sum` makes its payload checksum valid
    count ADDR PORT TAG TIMEOUT   numbered UDP datagrams of TAG until TAG's end mark:
                                  prints "ready", then JSON of how many distinct numbers
                                  arrived and the receive-queue drops the kernel counted
    burst ADDR PORT TAG N PPS     N numbered datagrams of TAG paced at PPS a second, then
                                  FENCES end marks FENCE_GAP apart (a lossy link may take
                                  some; one is enough)

Standard library only, so it runs with any python inside any namespace; it sends only to
the address it is given, which the tests take from the lab's address plan.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
import sys
import time

IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)
IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
IP_MTU_DISCOVER, IP_PMTUDISC_DONT = 10, 0
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
END = 0xFFFFFFFF  # the number of an end mark
FENCES, FENCE_GAP = 20, 0.002
PACE = 64  # datagrams sent back to back between two looks at the clock


def family_of(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def listen(address: str, port: int, timeout: float) -> dict[str, object]:
    family = family_of(address)
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        if family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
        sock.bind((address, port))
        sock.settimeout(timeout)
        print("ready", flush=True)
        try:
            data, ancillary, _, source = sock.recvmsg(65535, 256)
        except TimeoutError:
            return {"error": "timeout"}
    ttl = None
    for _level, kind, value in ancillary:
        if kind in (IP_RECVTTL, socket.IP_TTL, IPV6_RECVHOPLIMIT, socket.IPV6_HOPLIMIT):
            ttl = int.from_bytes(value[:4], sys.byteorder)
    return {"src": source[0], "ttl": ttl, "size": len(data)}


def send(address: str, port: int, size: int, df: bool) -> dict[str, object]:
    family = family_of(address)
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        if not df and family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT)
        for _ in range(3):
            sock.sendto(b"h" * size, (address, port))
            time.sleep(0.05)
    return {"sent": size}


def count(address: str, port: int, tag: int, timeout: float) -> dict[str, object]:
    """Numbered datagrams of `tag` until its end mark (or `timeout` s without one); the
    count of distinct numbers, duplicates, and the kernel's receive-queue drops."""
    family = family_of(address)
    seen: set[int] = set()
    duplicates = drops = 0
    ended = False
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
        sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
        sock.bind((address, port))
        sock.settimeout(timeout)
        print("ready", flush=True)
        while True:
            try:
                data, ancillary, _, _ = sock.recvmsg(64, 64)
            except (TimeoutError, BlockingIOError):
                break
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL:
                    drops = int.from_bytes(value[:4], sys.byteorder)
            if len(data) < 8 or int.from_bytes(data[:4], "big") != tag:
                continue  # not this run's
            number = int.from_bytes(data[4:8], "big")
            if number == END:
                if not ended:  # what is still queued behind the mark is counted too
                    ended = True
                    sock.setblocking(False)
            elif number in seen:
                duplicates += 1
            else:
                seen.add(number)
    return {"received": len(seen), "duplicates": duplicates, "kernel_drops": drops,
            "ended": ended}


def burst(address: str, port: int, tag: int, total: int, rate: float) -> dict[str, object]:
    """`total` numbered datagrams of `tag`, paced at `rate` a second, then end marks."""
    family = family_of(address)
    errors = 0
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        start = time.monotonic()
        for number in range(total):
            if number % PACE == 0:
                ahead = start + number / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            try:
                sock.sendto(struct.pack("!II", tag, number) + b"\0" * 24, (address, port))
            except OSError:
                errors += 1
        for _ in range(FENCES):
            time.sleep(FENCE_GAP)
            sock.sendto(struct.pack("!II", tag, END), (address, port))
        seconds = time.monotonic() - start
    return {"sent": total - errors, "errors": errors, "seconds": round(seconds, 3)}


def checksum(data: bytes) -> int:
    data += b"\0" * (len(data) % 2)
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def checksummed(payload: bytes, source: str, address: str, protocol: int) -> bytes:
    """`payload` plus two bytes that make its Internet checksum valid, the way Linux's
    netfilter reject verifies an unknown protocol: IPv4 over the payload alone, IPv6 with
    the pseudo-header."""
    pseudo = b""
    if family_of(address) == socket.AF_INET6:
        pseudo = (ipaddress.ip_address(source).packed + ipaddress.ip_address(address).packed
                  + struct.pack("!I3xB", len(payload) + 2, protocol))
    fix = ~checksum(pseudo + payload + b"\0\0") & 0xFFFF
    return payload + struct.pack("!H", fix)


def raw(address: str, protocol: int, timeout: float, valid_sum: bool) -> dict[str, object]:
    family = family_of(address)
    v6 = family == socket.AF_INET6
    icmp = socket.socket(family, socket.SOCK_RAW,
                         socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
    sender = socket.socket(family, socket.SOCK_RAW, protocol)
    sender.connect((address, 0))
    payload = b"hdp lab probe, no checksum"
    if valid_sum:
        payload = checksummed(payload, sender.getsockname()[0], address, protocol)
    sender.send(payload)
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        icmp.settimeout(left)
        try:
            data, source = icmp.recvfrom(65535)
        except TimeoutError:
            break
        start = 0 if v6 else (data[0] & 0x0F) * 4
        kind, code = data[start], data[start + 1]
        if (v6 and kind in (1, 2, 3, 4)) or (not v6 and kind in (3, 11, 12)):
            return {"icmp": [kind, code], "from": source[0]}
    return {"icmp": None}


def main(argv: list[str]) -> None:
    command, address, *rest = argv
    if command == "listen":
        result = listen(address, int(rest[0]), float(rest[1]))
    elif command == "count":
        result = count(address, int(rest[0]), int(rest[1]), float(rest[2]))
    elif command == "burst":
        result = burst(address, int(rest[0]), int(rest[1]), int(rest[2]), float(rest[3]))
    elif command == "send":
        result = send(address, int(rest[0]), int(rest[1]), df="nodf" not in rest)
    else:
        result = raw(address, int(rest[0]), float(rest[1]), "sum" in rest)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
