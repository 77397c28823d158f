"""htpasswd (bcrypt) basic authentication."""

from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path

from trustbox.errors import ConfigError
from trustbox.registry.errors import Unauthorized

REALM = "trustbox-registry"


class Htpasswd:
    """Users and bcrypt hashes from an htpasswd file; successful checks are cached."""

    def __init__(self, path: Path) -> None:
        self.users: dict[str, bytes] = {}
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as exc:
            raise ConfigError(f"cannot read htpasswd file {path}: {exc.strerror}") from None
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if not sep or not hashed.startswith(("$2y$", "$2a$", "$2b$")):
                raise ConfigError(f"{path}:{n}: only bcrypt entries are supported", hint="htpasswd -B")
            self.users[user] = hashed.encode()
        self._ok: dict[bytes, str] = {}

    def challenge(self) -> Unauthorized:
        """The 401 error with its WWW-Authenticate header."""
        return Unauthorized(headers={"WWW-Authenticate": f'Basic realm="{REALM}"'})

    def check(self, header: str | None) -> str:
        """Return the user named by a valid ``Authorization: Basic`` header, else raise Unauthorized."""
        import bcrypt

        if not header or not header[:6].lower() == "basic ":
            raise self.challenge()
        token = header[6:].strip()
        key = hashlib.sha256(token.encode()).digest()
        cached = self._ok.get(key)
        if cached is not None:
            return cached
        try:
            user, sep, password = base64.b64decode(token, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise self.challenge() from None
        hashed = self.users.get(user)
        if not sep or hashed is None:
            raise self.challenge()
        candidate = hashed.replace(b"$2y$", b"$2b$", 1)
        try:
            good = bcrypt.checkpw(password.encode(), candidate)
        except ValueError:
            good = False
        if not good:
            raise self.challenge()
        if len(self._ok) > 1024:
            self._ok.clear()
        self._ok[key] = user
        return user
