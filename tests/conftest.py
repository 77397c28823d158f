"""Shared test configuration. ``tests`` is a package: test modules import shared pieces fully
qualified (``tests.helpers.net``, ``tests.testdata``), with the repository root on the path."""

from __future__ import annotations

from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent
