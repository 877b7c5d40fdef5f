"""Byte-exact test vectors shared by the wire tests (not a test module)."""

from __future__ import annotations

_COW = r"""
 ________________________________________
/ Hello from the Hilarious Datagram      \
| Protocol! If you can read this, your   |
\ network let protocol 255 through.      /
 ----------------------------------------
        \   ^__^
         \  (oo)\_______
            (__)\       )\/\
                ||----w |
                ||     ||
"""

#: The original client's payload: cowsay text, 473 bytes of it in the write-up's dump.
COWSAY: bytes = (_COW.lstrip("\n") * 2).encode("ascii")[:473]
assert len(COWSAY) == 473

#: The write-up's HDP timestamp (ns since the epoch) and ports.
WRITEUP_TIMESTAMP = 1739640243546134000
WRITEUP_PORT = 420

#: The IPv4 header exactly as a macOS raw socket handed it over for the write-up's 505-byte
#: loopback packet: Total Length e5 01 (485 = 505 - 20, little-endian host order, shown as
#: 58625 when read big-endian), Identification 36455, Flags/Offset 0, TTL 64, protocol 255,
#: checksum 0, 127.0.0.1 -> 127.0.0.1.
WRITEUP_IPV4_HEADER: bytes = bytes.fromhex(
    "4500" "e501" "8e67" "0000" "40ff" "0000" "7f000001" "7f000001"
)

#: The 12-byte HDP header: ports 420/420 and the timestamp, big-endian.
WRITEUP_HDP_HEADER: bytes = (
    b"\x01\xa4\x01\xa4" + WRITEUP_TIMESTAMP.to_bytes(8, "big")
)

#: The whole 505-byte packet the listener read.
WRITEUP_PACKET: bytes = WRITEUP_IPV4_HEADER + WRITEUP_HDP_HEADER + COWSAY
assert len(WRITEUP_PACKET) == 505
