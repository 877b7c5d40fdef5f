"""Facts about the host this process runs on, as reports and agents name them."""

from __future__ import annotations

import platform

from hdp.osnet import current


def platform_info() -> dict[str, str]:
    """The running platform: system in lower case, as the `platform` module says."""
    return {"system": current().system, "release": platform.release(),
            "machine": platform.machine(), "python": platform.python_version()}
