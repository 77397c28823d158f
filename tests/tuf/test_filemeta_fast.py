"""The fast path for target entries decides exactly as the general parser."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustbox.errors import FormatError
from trustbox.tuf.keys import b64decode
from trustbox.tuf.metadata import FileMeta, canonical_b64decode

_B64_CHARS = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \né", max_size=16)


def _strict_ok(text: str) -> bool:
    try:
        b64decode(text)
    except FormatError:
        return False
    return True


@settings(max_examples=2000, deadline=None)
@given(st.one_of(_B64_CHARS, st.binary(max_size=70).map(lambda b: base64.b64encode(b).decode()),
                 st.binary(min_size=1, max_size=70).map(lambda b: base64.b64encode(b).decode()[:-1] + "B=")))
def test_canonical_base64_fast_decoder_equals_strict_decoder(text):
    fast = canonical_b64decode(text)
    assert (fast is not None) == _strict_ok(text)
    if fast is not None:
        assert fast == b64decode(text)


_ENTRY = st.fixed_dictionaries(
    {"length": st.one_of(st.integers(-3, 2**40), st.booleans(), st.floats(allow_nan=False), st.text(max_size=3)),
     "hashes": st.one_of(st.dictionaries(st.sampled_from(["sha256", "sha512", "md5"]),
                                         st.one_of(_B64_CHARS, st.binary(max_size=64).map(
                                             lambda b: base64.b64encode(b).decode()), st.integers()), max_size=3),
                         st.lists(st.text(max_size=2), max_size=2))},
    optional={"custom": st.none() | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)},
)


@settings(max_examples=1000, deadline=None)
@given(_ENTRY)
def test_plain_dict_fast_path_equals_from_dict(entry):
    quick = FileMeta.from_plain_dict(entry)
    try:
        full = FileMeta.from_dict(entry, "t")
    except FormatError:
        assert quick is None
        return
    if quick is not None:
        assert quick == full


def test_fast_path_taken_for_plain_entries():
    fm = FileMeta.from_bytes(b"payload")
    quick = FileMeta.from_plain_dict(fm.to_dict())
    assert quick == fm
    assert FileMeta.from_plain_dict({"length": 1, "hashes": {"sha256": "AB=="}}) is None  # non-canonical


@pytest.mark.parametrize("entry", [{"length": True, "hashes": {}}, {"length": 1.0, "hashes": {}},
                                   {"length": -1, "hashes": {}}, {"length": 1, "hashes": []}])
def test_fast_path_declines_odd_entries(entry):
    assert FileMeta.from_plain_dict(entry) is None
