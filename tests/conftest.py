"""Shared test configuration: import path for tests/helpers and the fixture data location."""

from __future__ import annotations

import os
import sys
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

# Golden data made by the real notary / docker tools (a copy of ../shared/fixtures, so a fresh
# clone of the repository has everything CI needs).
FIXTURES = Path(os.environ.get("TRUSTBOX_FIXTURES", TESTS_DIR / "fixtures"))
