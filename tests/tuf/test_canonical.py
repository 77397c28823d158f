"""Canonical JSON exactly as notary signs it."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustbox.errors import CanonicalJSONError, FormatError
from trustbox.tuf.canonical import encode_canonical, encode_wire, html_escape, loads
from trustbox.tuf.metadata import Metadata

from .fixture_data import metadata_files


def test_sorted_keys_no_whitespace() -> None:
    assert encode_canonical({"b": 1, "a": [True, False, None], "c": {}}) == b'{"a":[true,false,null],"b":1,"c":{}}'


def test_only_quote_and_backslash_escaped() -> None:
    s = 'x<&>"\\é\u2028\n\t\x01'
    assert encode_canonical(s) == ('"x<&>\\"\\\\é\u2028\n\t\x01"').encode()


def test_keys_sorted_by_utf8_bytes() -> None:
    # U+00E9 (c3 a9) sorts after "z" (7a); U+FF5E after U+00E9; uppercase before lowercase
    assert encode_canonical({"é": 1, "z": 2, "Z": 3, "～": 4}) == '{"Z":3,"z":2,"é":1,"～":4}'.encode()


def test_integral_floats_become_integers_and_others_fail() -> None:
    assert encode_canonical([1.0, -3.0, 42]) == b"[1,-3,42]"
    with pytest.raises(CanonicalJSONError):
        encode_canonical(1.5)
    with pytest.raises(CanonicalJSONError):
        encode_canonical(float("nan"))
    with pytest.raises(CanonicalJSONError):
        encode_canonical({1: 2})


def test_wire_form_html_escapes() -> None:
    assert encode_wire({"a": "x<y>&\u2028\u2029é"}) == '{"a":"x\\u003cy\\u003e\\u0026\\u2028\\u2029é"}'.encode()


def test_weird_target_name_fixture_wire_and_signed_forms() -> None:
    """The fixture target named weird<&>"\\é<U+2028>/name: wire bytes escaped, signed bytes raw."""
    from tests.testdata import FIXTURES

    data = (FIXTURES / "notary-demo/server/_trust/tuf/6.targets.json").read_bytes()
    assert b"weird\\u003c\\u0026\\u003e\\\"\\\\\xc3\xa9\\u2028/name" in data
    md = Metadata.parse(data)
    assert 'weird<&>"\\é\u2028/name' in md.signed.targets
    assert 'weird<&>\\"\\\\é\u2028/name'.encode() in md.signed_bytes()


@pytest.mark.parametrize("path", metadata_files(), ids=lambda p: "/".join(p.parts[-4:]))
def test_fixture_signed_part_is_canonical_on_the_wire(path) -> None:
    """Re-serialising `signed` gives exactly the bytes on the wire (after Go's HTML escaping)."""
    data = path.read_bytes()
    value = json.loads(data)
    start = data.index(b'{"signed":') + len(b'{"signed":')
    end = data.rindex(b',"signatures":')
    assert data[start:end] == html_escape(encode_canonical(value["signed"]))


def test_loads_rejects_bad_input() -> None:
    for bad in (b"{", b'{"a":NaN}', b'{"a":1,"a":2}', b"\xff", b"[" * 200 + b"]" * 200):
        with pytest.raises(FormatError):
            loads(bad)


json_scalars = st.none() | st.booleans() | st.integers(min_value=-(2**53), max_value=2**53) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_canonical_round_trip(value) -> None:
    """Canonical bytes decode (with control characters escaped) back to the same value."""
    wire = encode_wire(value)
    assert json.loads(wire) == value
    # canonical encoding is a function of the value
    assert encode_canonical(json.loads(wire)) == encode_canonical(value)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=6), st.integers(), max_size=8))
def test_canonical_matches_sorted_compact_json_for_ascii_free_of_escapes(d) -> None:
    """Where json.dumps and Go agree (no escapes needed), canonical = sorted compact dumps."""
    if any(not k.isalnum() or not k.isascii() for k in d):
        return
    expected = json.dumps(d, sort_keys=True, separators=(",", ":")).encode()
    assert encode_canonical(d) == expected


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_string_escaping_property(s) -> None:
    enc = encode_canonical(s)
    assert enc.startswith(b'"') and enc.endswith(b'"')
    inner = enc[1:-1]
    # unescaping only \" and \\ (left to right) restores the UTF-8 of s
    assert re.sub(rb'\\(["\\])', rb"\1", inner) == s.encode("utf-8")


json_values_with_floats = st.recursive(
    json_scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(json_values_with_floats)
def test_fast_encoder_equals_canonical_encoder(value) -> None:
    """encode_canonical_parsed (C encoder when provably identical) never differs from the reference."""
    from trustbox.tuf.canonical import encode_canonical_parsed

    try:
        expected = encode_canonical(value)
    except CanonicalJSONError:
        with pytest.raises(CanonicalJSONError):
            encode_canonical_parsed(value)
        return
    assert encode_canonical_parsed(value) == expected


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_json_depth_matches_structure(value) -> None:
    from trustbox.tuf.canonical import json_depth

    def depth(v) -> int:
        if isinstance(v, dict):
            return 1 + max((depth(x) for x in v.values()), default=0)
        if isinstance(v, list):
            return 1 + max((depth(x) for x in v), default=0)
        return 0

    assert json_depth(json.dumps(value).encode()) == depth(value)


def test_depth_is_checked_before_parsing() -> None:
    # a megabyte of brackets is refused by the pre-scan, not by the recursive parser
    with pytest.raises(FormatError, match="deeper than"):
        loads(b"[" * 500_000 + b"]" * 500_000)
    assert loads(b'{"a":"' + b"[" * 100 + b'"}') == {"a": "[" * 100}
