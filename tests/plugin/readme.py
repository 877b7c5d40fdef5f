"""The README's "Writing path tests" examples, as the test modules they are."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Writing path tests"


def examples(readme: Path = README) -> dict[str, str]:
    """Each ```python block of the section as a test module: {file name: source}."""
    text = readme.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    blocks = re.findall(r"```python\n(.*?)```", text[start:end if end >= 0 else None],
                        re.DOTALL)
    return {f"test_readme_{n}.py": block for n, block in enumerate(blocks, 1)}
