"""The cyclic garbage collector held off while a batch is built and read.

A batch allocates a few objects a case (events, states, observations, report entries)
that form no reference cycles and live until the batch is done; the collector's full
passes over them grow with the batch, and took 11% of a 16,384-case sweep. Reference
counting frees everything as usual meanwhile; what cycles there are wait for the next
collection after the batch.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """No cyclic collection inside the block (nested blocks: the outermost decides)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
