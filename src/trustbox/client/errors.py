"""Client-side errors with notary's meanings (what docker's ``trust.NotaryError`` switches on)."""

from __future__ import annotations

from pathlib import Path

from trustbox.errors import (
    ConfigError,
    ExpiredError,
    FormatError,
    HashMismatchError,
    KeyStoreError,
    LengthError,
    NetworkError,
    NotFoundError,
    PassphraseError,
    RollbackError,
    RootError,
    ThresholdError,
    TrustboxError,
)


class RepositoryNotExistError(NotFoundError):
    """The server has no root for the GUN (notary ``ErrRepositoryNotExist``)."""

    def __init__(self, host: str, gun: str) -> None:
        super().__init__(f"{host} does not have trust data for {gun}")
        self.host = host
        self.gun = gun


class RemoteTrustDataMissingError(NotFoundError):
    """The server has no trust data for a GUN the local cache holds (a new, wiped or restored trust
    server), and the cached repository could not be published to it again: nothing was published.
    Not a :class:`RepositoryNotExistError`, so no caller starts a new repository over the cache."""

    def __init__(self, host: str, gun: str, cache_dir: Path, reason: str) -> None:
        super().__init__(
            f"{host} does not have trust data for {gun} but the local cache does ({reason}); "
            f"restore the trust server's data, or remove the cache {cache_dir} to start a new repository"
        )
        self.host = host
        self.gun = gun
        self.cache_dir = cache_dir


class UnconfirmedStateError(NetworkError):
    """Nothing to publish, but the server did not serve its current timestamp, so it cannot be
    confirmed to hold the versions the change was made against (nothing is reported as published)."""


class MetaNotFoundError(NotFoundError):
    """A metadata document other than the first root is missing (notary ``ErrMetaNotFound``)."""

    def __init__(self, resource: str) -> None:
        super().__init__(f"{resource} trust data unavailable.  Has a notary repository been initialized?")
        self.resource = resource


class NoSuchTargetError(NotFoundError):
    """No trusted target of that name in the roles asked for (notary ``ErrNoSuchTarget``)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"No valid trust data for {name}")
        self.name = name


class ServerRejectedError(NetworkError):
    """The trust server answered 400 to an update (``trust server rejected operation``)."""


class UnauthorizedError(NetworkError):
    """401 from the trust server."""

    def __init__(self) -> None:
        super().__init__("you are not authorized to perform this operation: server returned 401.")


class BadResponseError(LengthError):
    """A response larger than the limit the referencing metadata allows."""

    def __init__(self, detail: str = "") -> None:
        super().__init__("trust server returned a bad response." + (f" ({detail})" if detail else ""))


class NotNotaryServerError(FormatError):
    """The server returned something that is not JSON (docker's ``*json.SyntaxError`` case)."""


class NoSigningKeysError(KeyStoreError):
    """No private key to sign a role (notary ``signed.ErrNoKeys``)."""


class InsufficientSignaturesError(KeyStoreError):
    """Fewer signatures than the role's threshold could be produced (``ErrInsufficientSignatures``)."""


class TrustServerURLError(ConfigError):
    """DOCKER_CONTENT_TRUST_SERVER is not an https URL."""

    def __init__(self, value: str) -> None:
        super().__init__(f"valid https URL required for trust server, got {value}")


class Cancelled(TrustboxError):
    """The user declined a confirmation prompt."""


class TrustError(TrustboxError):
    """A content-trust failure worded as docker prints it: ``message`` is the complete line.

    ``kind`` says what failed: ``untrusted`` (the trust data), ``network`` (the trust server could
    not be used) or ``config`` (the local configuration); image commands choose exit codes by it.
    """

    complete_line = True

    def __init__(self, message: str, kind: str = "untrusted") -> None:
        super().__init__(message)
        self.kind = kind


def _notary_text(gun: str, exc: TrustboxError) -> str:
    """docker's ``trust.NotaryError`` text for ``exc`` (its cases, then notary's own messages)."""
    msg = exc.message
    mismatch = f"Warning: potential malicious behavior - trust data mismatch for remote repository {gun}: {msg}"
    if isinstance(exc, NotNotaryServerError) or (isinstance(exc, FormatError) and msg.startswith("invalid JSON")):
        return (
            f"Error: no trust data available for remote repository {gun}. Try running notary server "
            "and setting DOCKER_CONTENT_TRUST_SERVER to its HTTPS address?"
        )
    cases: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...] = (
        (ExpiredError, f"Error: remote repository {gun} out-of-date: {msg}"),
        (RepositoryNotExistError, f"Error: remote trust data does not exist for {gun}: {msg}"),
        (MetaNotFoundError, f"Error: trust data missing for remote repository {gun} or remote repository not found: {msg}"),
        ((ServerRejectedError, UnauthorizedError), msg),
        (NetworkError, f"Error: error contacting notary server: {msg}"),
        (RollbackError, f"Warning: potential malicious behavior - trust data version is lower than expected for remote repository {gun}: {msg}"),
        (ThresholdError, f"Warning: potential malicious behavior - trust data has insufficient signatures for remote repository {gun}: {msg}"),
        ((RootError, HashMismatchError), mismatch),
        (InsufficientSignaturesError, f"Error: could not produce valid signature for {gun}.  If Yubikey was used, was touch input provided?: {msg}"),
        ((NoSigningKeysError, PassphraseError), f"Error: could not find signing keys for remote repository {gun}, or could not decrypt signing key: {msg}"),
    )
    for types, text in cases:
        if isinstance(exc, types):
            return text
    return msg


def notary_error(gun: str, exc: TrustboxError) -> TrustError:
    """The one translation of a trust-client error into docker's ``trust.NotaryError`` wording
    (used by the ``trust`` verbs and by push/pull/verify); a TrustError is returned as it is."""
    if isinstance(exc, TrustError):
        return exc
    kind = "network" if isinstance(exc, NetworkError) else "config" if isinstance(exc, ConfigError) else "untrusted"
    err = TrustError(_notary_text(gun, exc), kind)
    err.__cause__ = exc
    return err
