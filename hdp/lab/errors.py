"""The lab's one error type."""

from __future__ import annotations

from hdp.errors import HdpError


class LabError(HdpError):
    """A topology that does not load, or a lab that cannot be built or removed; one line."""
