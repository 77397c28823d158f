"""The one translation of trust-client errors into docker's ``trust.NotaryError`` wording, used by
the ``trust`` verbs and by push/pull/verify alike. Where the two former translators disagreed,
docker's text is pinned here."""

from __future__ import annotations

import pytest

from trustbox.client.errors import (
    InsufficientSignaturesError,
    NotNotaryServerError,
    ServerRejectedError,
    TrustError,
    UnauthorizedError,
    notary_error,
)
from trustbox.client.images import transfer
from trustbox.client.trust import verbs
from trustbox.errors import (
    FormatError,
    KeyStoreError,
    NetworkError,
    SignatureError,
    ThresholdError,
    TrustboxError,
)

GUN = "127.0.0.1:5000/team/app"
NO_TRUST_DATA = (
    f"Error: no trust data available for remote repository {GUN}. Try running notary server and setting "
    "DOCKER_CONTENT_TRUST_SERVER to its HTTPS address?"
)


def test_both_command_families_use_the_same_translator() -> None:
    assert verbs.notary_error is notary_error and transfer.notary_error is notary_error


@pytest.mark.parametrize(
    ("exc", "text", "kind"),
    [
        # invalid JSON from the server: docker's *json.SyntaxError case, whichever error carries it
        (FormatError("invalid JSON: Expecting value"), NO_TRUST_DATA, "untrusted"),
        (NotNotaryServerError("not JSON"), NO_TRUST_DATA, "untrusted"),
        # signing could not reach the threshold: signed.ErrInsufficientSignatures, not "could not find keys"
        (InsufficientSignaturesError("need 2, have 1"),
         f"Error: could not produce valid signature for {GUN}.  If Yubikey was used, was touch input provided?: need 2, have 1",
         "untrusted"),
        (ThresholdError("valid signatures did not meet threshold"),
         f"Warning: potential malicious behavior - trust data has insufficient signatures for remote repository {GUN}: "
         "valid signatures did not meet threshold", "untrusted"),
        # notary's ErrUnauthorized / server rejections are not network errors in docker's switch: printed as they are
        (ServerRejectedError("trust server rejected operation"), "trust server rejected operation", "network"),
        (UnauthorizedError(), "you are not authorized to perform this operation: server returned 401.", "network"),
        (NetworkError("dial tcp: refused"), "Error: error contacting notary server: dial tcp: refused", "network"),
        # not in docker's switch: the error itself, no prefix added
        (SignatureError("bad signature"), "bad signature", "untrusted"),
        (KeyStoreError("key store locked"), "key store locked", "untrusted"),
        (TrustboxError("something else"), "something else", "untrusted"),
    ],
)
def test_docker_wording(exc: TrustboxError, text: str, kind: str) -> None:
    err = notary_error(GUN, exc)
    assert isinstance(err, TrustError) and err.message == text and err.kind == kind
    assert err.__cause__ is exc


def test_a_translated_error_is_not_translated_again() -> None:
    once = notary_error(GUN, NetworkError("x"))
    assert notary_error(GUN, once) is once
