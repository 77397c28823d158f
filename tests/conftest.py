"""Shared test configuration: makes tests/ importable (helpers, testdata) for every test folder."""

from __future__ import annotations

import sys
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from testdata import FIXTURES  # noqa: E402,F401  (re-exported for older imports)
