"""Where the golden fixture data lives (a copy of ../shared/fixtures inside the repository)."""

from __future__ import annotations

import os
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent
FIXTURES = Path(os.environ.get("TRUSTBOX_FIXTURES", TESTS_DIR / "fixtures"))
