"""One error hierarchy for all of trustbox.

Every error carries a message a user can act on and an optional hint. The CLI prints
``Error: <message>`` (plus the hint) and exits non-zero; the servers map errors onto the
upstream JSON error bodies.
"""

from __future__ import annotations


class TrustboxError(Exception):
    """Base class of every error trustbox raises on purpose."""

    exit_code = 1
    #: the message is the complete line the command line prints (worded as docker prints it),
    #: not prefixed with ``Error:``
    complete_line = False

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


# --- core / TUF -------------------------------------------------------------------------


class FormatError(TrustboxError):
    """Bytes that do not parse as the expected document or key."""


class CanonicalJSONError(FormatError):
    """A value that cannot be encoded as canonical JSON (floats, non-string keys...)."""


class UnsupportedKeyError(FormatError):
    """A key type or signature method trustbox does not know."""


class VerificationError(TrustboxError):
    """Metadata failed a security check (signature, threshold, hash, expiry, version)."""


class SignatureError(VerificationError):
    """A signature is malformed or does not verify."""


class ThresholdError(VerificationError):
    """Too few valid signatures for a role."""


class ExpiredError(VerificationError):
    """Metadata whose expiry lies before the verification time."""


class RollbackError(VerificationError):
    """A version lower than one already trusted."""


class HashMismatchError(VerificationError):
    """Bytes whose hash or length differ from what the referencing metadata says."""


class LengthError(VerificationError):
    """More bytes than the referencing metadata allows (endless-data attack)."""


class RootError(VerificationError):
    """A root that is not acceptable (wrong GUN, bad certificate, rotation not signed...)."""


class RoleError(TrustboxError):
    """An invalid role name or a role that is not delegated."""


# --- keys at rest -----------------------------------------------------------------------


class KeyStoreError(TrustboxError):
    """A private key file that cannot be read, written or found."""


class PassphraseError(KeyStoreError):
    """A wrong or missing passphrase."""


# --- network / servers ------------------------------------------------------------------


class NetworkError(TrustboxError):
    """A server could not be reached or answered unexpectedly."""


class NotFoundError(TrustboxError):
    """Something that does not exist on the server."""


class ConfigError(TrustboxError):
    """Bad configuration or command-line options."""
