"""Bounded reads of what users hand in: a file or a stream is read only up to a cap.

`hdp report /dev/zero`, a YAML file of gigabytes or an endless pipe must end in one line
saying the input is too large, not in a process that grows until the OOM killer ends it.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from hdp.errors import HdpError

KIB = 1 << 10
MIB = 1 << 20


class TooLarge(HdpError):
    """An input larger than its cap; `limit` is the cap in bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"is larger than {size_text(limit)}")


def size_text(limit: int) -> str:
    """`64 MiB`, `64 KiB`, `100 bytes`: a cap as a reader says it."""
    for unit, name in ((MIB, "MiB"), (KIB, "KiB")):
        if limit >= unit and limit % unit == 0:
            return f"{limit // unit} {name}"
    return f"{limit} bytes"


def read_stream(stream: BinaryIO, limit: int) -> bytes:
    """Everything `stream` holds, or TooLarge once it holds more than `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = stream.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise TooLarge(limit)
    return b"".join(chunks)


def read_file(path: str | Path, limit: int) -> bytes:
    """The bytes of `path`, or TooLarge; OSError as `open` raises it (the caller says why)."""
    with open(path, "rb") as stream:
        return read_stream(stream, limit)


def read_text(path: str | Path, limit: int) -> str:
    """`read_file`, decoded as UTF-8 (UnicodeDecodeError as `bytes.decode` raises it)."""
    return read_file(path, limit).decode("utf-8")
