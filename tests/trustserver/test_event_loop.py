"""Which event loop the servers run on (TRUSTBOX_EVENT_LOOP)."""

from __future__ import annotations

import pytest

from trustbox.errors import ConfigError
from trustbox.serving import event_loop_factory

uvloop = pytest.importorskip("uvloop")


def test_default_is_uvloop_when_installed(monkeypatch):
    monkeypatch.delenv("TRUSTBOX_EVENT_LOOP", raising=False)
    assert event_loop_factory() is uvloop.new_event_loop
    monkeypatch.setenv("TRUSTBOX_EVENT_LOOP", "uvloop")
    assert event_loop_factory() is uvloop.new_event_loop


def test_asyncio_on_request(monkeypatch):
    monkeypatch.setenv("TRUSTBOX_EVENT_LOOP", "asyncio")
    assert event_loop_factory() is None


def test_unknown_loop_is_a_config_error(monkeypatch):
    monkeypatch.setenv("TRUSTBOX_EVENT_LOOP", "tokio")
    with pytest.raises(ConfigError, match="TRUSTBOX_EVENT_LOOP"):
        event_loop_factory()
