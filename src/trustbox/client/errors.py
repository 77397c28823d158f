"""Client-side errors with notary's meanings (what docker's ``trust.NotaryError`` switches on)."""

from __future__ import annotations

from pathlib import Path

from trustbox.errors import (
    ConfigError,
    FormatError,
    KeyStoreError,
    LengthError,
    NetworkError,
    NotFoundError,
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


class ReferenceError_(ConfigError):
    """An image reference that does not parse."""


class Cancelled(TrustboxError):
    """The user declined a confirmation prompt."""
