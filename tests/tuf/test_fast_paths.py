"""Fast paths against their twins: same values, same refusals, same depth bound.

``loads_document`` (C-speed parse of documents as notary writes them, with the canonical bytes of
``signed``) shadows ``loads`` + ``encode_canonical``; ``encode_canonical_parsed`` shadows
``encode_canonical``; ``check_depth`` shadows ``json_depth``. Every pair is compared here on the
same inputs, deep nesting included.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trustbox.errors import CanonicalJSONError, FormatError
from trustbox.tuf.canonical import (
    MAX_DEPTH,
    check_depth,
    encode_canonical,
    encode_canonical_parsed,
    html_escape,
    json_depth,
    loads,
    loads_document,
)
from trustbox.tuf.keys import PrivateKey
from trustbox.tuf.metadata import FileMeta, Metadata, Targets

DIFF = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def nest(depth: int, inner: Any = 1, kind: str = "object") -> Any:
    """``inner`` inside ``depth`` objects (or arrays)."""
    for _ in range(depth):
        inner = {"x": inner} if kind == "object" else [inner]
    return inner


def doc(signed_text: bytes, sigs: bytes = b'[{"keyid":"ab","method":"ecdsa","sig":"AAAA"}]') -> bytes:
    """A signed document around exactly these ``signed`` bytes."""
    return b'{"signed":' + signed_text + b',"signatures":' + sigs + b"}"


def slow(data: bytes) -> tuple[Any, bytes | None]:
    """The twin of ``loads_document``: strict parse, then the reference encoder on ``signed``."""
    value = loads(data)
    try:
        return value, encode_canonical(value["signed"])
    except (CanonicalJSONError, TypeError, KeyError):
        return value, None


def assert_twins_agree(data: bytes) -> None:
    """Both paths refuse (FormatError), or give the same value; proven canonical bytes are the
    reference encoder's."""
    try:
        expected, canonical = slow(data)
    except FormatError:
        with pytest.raises(FormatError):
            loads_document(data)
        return
    value, proven = loads_document(data)
    assert value == expected
    if proven is not None:
        assert proven == canonical


# -- fixed samples ----------------------------------------------------------------------------

SAMPLES = [
    b'{"b":1,"a":[true,false,null],"c":{"z":"x","y":"\\u00e9"}}',
    b'{"n":1.0,"m":2e3,"s":"plain"}',
    b'{"s":"quote\\" and backslash\\\\ and <&> and \\u2028"}',
    b'{"s":"new\\nline\\ttab\\u0001ctl"}',
    b'{"s":"back\\\\nslash-n"}',
    b'{"\\ud83d\\ude00":1,"\\uffff":2,"\\ue000":3,"a":4}',
    b'{"deep":[[[[[{"k":[1,2,{"x":"y"}]}]]]]]}',
    b'{"big":12345678901234567890}',
]


@pytest.mark.parametrize("data", SAMPLES)
def test_fast_encoder_equals_reference_on_samples(data: bytes) -> None:
    assert encode_canonical_parsed(loads(data)) == encode_canonical(loads(data))


DOC_SAMPLES = [
    (b'{"_type":"Targets","expires":"2030-01-01T00:00:00.5Z","targets":{"a":{"hashes":{"sha256":"AAAA"},"length":1}},'
     b'"version":2}', True),  # canonical ASCII: the fast path proves it
    (b'{"a":{"b":[1,-2,true,false,null,{}],"c":[]},"z":"x,\\"signatures\\":"}', False),  # escapes: strict path
    (b'{"a":1,"a":2}', False),  # duplicate key: the strict path refuses it
    (b'{"b":1,"a":2}', False),  # not sorted: not canonical
    (b'{"a":1.0}', False),  # float: canonical JSON writes 1, not 1.0
    (b'{"a":2e3}', False),
    (b'{"a":12345678901234567890123}', False),  # beyond 64 bits
    (b'{"a": 1}', False),  # whitespace
    (b'{"\\u00e9":1}', False),
    ('{"é":1}'.encode(), False),
    (b'{"a":"<&>"}', True),
    (b'{"a":"x"},"signatures":[],"b":{"c":1}', False),  # a second signatures key hidden in the text
    (b'{"a":"[[[[","b":"]]]]"}', True),  # brackets in strings do not count as nesting
]


@pytest.mark.parametrize(("signed_text", "fast"), DOC_SAMPLES)
def test_loads_document_same_result_as_loads(signed_text: bytes, fast: bool) -> None:
    data = doc(signed_text)
    assert_twins_agree(data)
    try:
        loads(data)
    except FormatError:
        return
    assert (loads_document(data)[1] is not None) == fast


def test_loads_document_refuses_what_loads_refuses() -> None:
    for bad in (doc(b'{"a":1,"a":2}'), doc(b'{"a":NaN}'), doc(b'{"a":1}') + b"x", b"\xff", b"[1,",
                b'{"signed":{"a":1},"signatures":[],"signatures":[]}', b'{"signed":{"a":1},"signatures":[1,]}'):
        with pytest.raises(FormatError):
            loads(bad)
        with pytest.raises(FormatError):
            loads_document(bad)


def test_metadata_parse_signs_over_the_reference_encoding() -> None:
    """Metadata.parse (fast path) computes the bytes the reference encoder gives, for odd names too."""
    from datetime import timedelta

    from trustbox.tuf.timefmt import utcnow

    key = PrivateKey.generate("ed25519")
    md: Metadata[Targets] = Metadata(Targets(version=3, expires=utcnow() + timedelta(days=1),
                                             targets={"weird<&>\"\\é\u2028/name": FileMeta.from_bytes(b"x"),
                                                      "plain": FileMeta.from_bytes(b"y")}))
    md.sign(key)
    for data in (md.to_bytes(), doc(encode_canonical(md.signed_value), b"[]")):
        parsed = Metadata.parse(data, "targets", Targets)
        assert parsed.signed_bytes() == encode_canonical(loads(data)["signed"])
    parsed = Metadata.parse(md.to_bytes(), "targets", Targets)
    key.public_key().verify(parsed.signatures[0].method, parsed.signatures[0].sig, parsed.signed_bytes())


# -- the depth bound: both entry points, exactly at the limit -------------------------------------


@pytest.mark.parametrize("kind", ["object", "array"])
def test_depth_bound_is_the_same_for_both_parsers(kind: str) -> None:
    """A document nests 2 levels itself (document, signed) plus the value; MAX_DEPTH in total is
    accepted by both parsers, one more refused by both with the same error class and message."""
    for total, accepted in ((MAX_DEPTH, True), (MAX_DEPTH + 1, False), (80, False)):
        data = doc(json.dumps({"custom": nest(total - 2, kind=kind)}, separators=(",", ":"), sort_keys=True).encode())
        assert json_depth(data) == total
        if accepted:
            assert loads_document(data)[0] == loads(data)
            continue
        errors = []
        for parse in (loads, loads_document, Metadata.parse):
            with pytest.raises(FormatError) as info:
                parse(data)
            errors.append((type(info.value), str(info.value)))
        assert errors == [(FormatError, f"JSON nesting deeper than {MAX_DEPTH} levels")] * 3


def test_depth_bound_is_the_same_for_both_encoders() -> None:
    for kind in ("object", "array"):
        assert encode_canonical_parsed(nest(MAX_DEPTH, kind=kind)) == encode_canonical(nest(MAX_DEPTH, kind=kind))
        assert encode_canonical(nest(MAX_DEPTH - 1, [], kind)) == encode_canonical_parsed(nest(MAX_DEPTH - 1, [], kind))
        for encode in (encode_canonical, encode_canonical_parsed):
            with pytest.raises(CanonicalJSONError, match="deeper than"):
                encode(nest(MAX_DEPTH + 1, kind=kind))
            with pytest.raises(CanonicalJSONError, match="deeper than"):
                encode(nest(MAX_DEPTH, [], kind))  # an empty innermost array counts as a level too


def test_hostile_nesting_is_refused_before_parsing() -> None:
    for data in (b"[" * 500_000 + b"]" * 500_000, b'{"signed":' + b"[" * 200_000):
        with pytest.raises(FormatError, match="deeper than"):
            loads_document(data)


def test_malformed_brackets_are_json_errors_not_depth_errors() -> None:
    for bad in (b"]", b"}}}{{{", b"[" * 10, b"[" * 70 + b"}" * 70):
        with pytest.raises(FormatError) as info:
            loads_document(bad)
        assert ("deeper than" in str(info.value)) == (bad.count(b"[") > MAX_DEPTH)


# -- differential properties -----------------------------------------------------------------------

_tricky_text = st.lists(st.sampled_from([*'ab[]{}"\\/\n\u00e9\u2028<&', "\\u0022", '\\"', "\\\\"]), max_size=8).map("".join)
_leaf = (st.none() | st.booleans() | st.integers(min_value=-(2**66), max_value=2**66)
         | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8) | _tricky_text)
_json = st.recursive(_leaf, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=6) | _tricky_text, inner, max_size=4), max_leaves=15)
_deep = st.builds(nest, st.integers(min_value=MAX_DEPTH - 6, max_value=MAX_DEPTH + 4), _json,
                  st.sampled_from(["object", "array"]))


def _text(signed: Any, style: str) -> bytes | None:
    try:
        if style == "canonical":
            return encode_canonical(signed)
        if style == "go":
            return html_escape(encode_canonical(signed))
    except CanonicalJSONError:
        return None
    if style == "dumps":
        return json.dumps(signed, sort_keys=True, separators=(",", ":")).encode()
    return json.dumps(signed, indent=1, ensure_ascii=False).encode("utf-8", "surrogatepass")


@DIFF
@given(signed=st.dictionaries(st.text(max_size=6), _json | _deep, max_size=5),
       style=st.sampled_from(["canonical", "go", "dumps", "pretty"]))
def test_fast_and_slow_parsers_agree_on_random_documents(signed: dict[str, Any], style: str) -> None:
    """Whatever the signed value and however it is written, the fast path gives the strict path's
    value (or refuses with it), and canonical bytes only when they equal the reference encoder's."""
    text = _text(signed, style)
    if text is not None:
        assert_twins_agree(doc(text))


@DIFF
@given(signed=st.dictionaries(st.text(max_size=6), _json, max_size=4), data=st.data())
def test_fast_and_slow_parsers_agree_on_mutated_text(signed: dict[str, Any], data: st.DataObject) -> None:
    """One byte of a canonical document replaced, deleted or inserted."""
    raw = bytearray(doc(json.dumps(signed, sort_keys=True, separators=(",", ":")).encode()))
    pos = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    byte = data.draw(st.sampled_from(list(b'[]{}",:\\0a ')))
    op = data.draw(st.sampled_from(["replace", "delete", "insert"]))
    if op == "replace":
        raw[pos] = byte
    elif op == "delete":
        del raw[pos]
    else:
        raw.insert(pos, byte)
    assert_twins_agree(bytes(raw))


@DIFF
@given(value=_json | _deep)
def test_depth_check_agrees_with_the_exact_depth(value: Any) -> None:
    """check_depth (peeling) refuses exactly what json_depth (counting) finds too deep, whatever
    brackets, quotes and backslashes the strings hold."""
    def depth(v: Any) -> int:
        if isinstance(v, dict):
            return 1 + max((depth(x) for x in v.values()), default=0)
        if isinstance(v, list):
            return 1 + max((depth(x) for x in v), default=0)
        return 0

    text = json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    assert json_depth(text) == depth(value)
    if depth(value) > MAX_DEPTH:
        with pytest.raises(FormatError, match="deeper than"):
            check_depth(text)
    else:
        check_depth(text)


@DIFF
@given(value=_json | _deep)
def test_fast_encoder_equals_reference_encoder(value: Any) -> None:
    """encode_canonical_parsed never differs from encode_canonical, deep values included."""
    try:
        expected = encode_canonical(value)
    except CanonicalJSONError:
        with pytest.raises(CanonicalJSONError):
            encode_canonical_parsed(value)
        return
    assert encode_canonical_parsed(value) == expected
