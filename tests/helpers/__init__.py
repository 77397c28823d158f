"""Shared test helpers (certificates, upstream servers). Importable as ``helpers``."""
