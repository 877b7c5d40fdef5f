"""Run `hdp` or pytest under the xnu model: python -m tests.darwin.run hdp|pytest ARGS...

The model is installed before anything of hdp runs, for the whole process, which then
exits; it is never installed in a test process that goes on to run other tests.
"""

from __future__ import annotations

import sys

from tests.darwin import xnu


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("hdp", "pytest"):
        print("usage: python -m tests.darwin.run hdp|pytest ARGS...", file=sys.stderr)
        return 2
    xnu.install()
    if argv[0] == "hdp":
        from hdp.cli import main as hdp_main

        return hdp_main(argv[1:])
    import pytest

    return int(pytest.main(argv[1:]))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
