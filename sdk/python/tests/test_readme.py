"""The README's quick start, run as written against the server under test."""

from __future__ import annotations

import contextlib
import io
import re
import unittest
from pathlib import Path

from _support import needs_server

README = Path(__file__).resolve().parent.parent / "README.md"


def quick_start() -> str:
    """The first ```python block of the README."""
    m = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert m, f"no python block in {README}"
    return m.group(1)


@needs_server
class Readme(unittest.TestCase):
    def test_the_quick_start_runs(self) -> None:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(quick_start(), str(README), "exec"), {"__name__": "readme"})
        printed = out.getvalue()
        self.assertRegex(printed, r"room \S+ rm_")
        self.assertRegex(printed, r"bob connects to wss?://")
        self.assertRegex(printed, r"\d+ room\.started")
        self.assertIn("404 room_not_found", printed)


if __name__ == "__main__":
    unittest.main()
