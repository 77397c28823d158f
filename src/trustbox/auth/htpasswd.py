"""htpasswd files with bcrypt entries (``htpasswd -B``), as registry:2 reads them.

Checks take the same time whether or not the user exists (an unknown user is checked against a
dummy hash), the file is re-read when it changes on disk, and entries can be added or replaced
with an atomic rewrite.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import bcrypt

from trustbox.errors import ConfigError, FormatError

_BCRYPT_PREFIXES = ("$2y$", "$2a$", "$2b$")
DEFAULT_COST = 10
_RESERVED_USERS = ("*", "+")


def _normalise(hashed: str) -> bytes:
    """``$2y$`` (Apache) and ``$2a$`` are the same algorithm as ``$2b$`` for our purposes."""
    return ("$2b$" + hashed[4:]).encode("ascii")


def validate_user(user: str) -> None:
    """Raise FormatError unless ``user`` can be stored in an htpasswd file."""
    if not user or ":" in user or any(c.isspace() or ord(c) < 0x20 for c in user):
        raise FormatError(f"invalid user name {user!r}: must be non-empty, without ':' or spaces")
    if user in _RESERVED_USERS:
        raise FormatError(f"user name {user!r} is reserved for access rules")


def hash_password(password: str, cost: int = DEFAULT_COST) -> str:
    """A bcrypt hash with Apache's ``$2y$`` prefix, as ``htpasswd -B`` writes it."""
    if "\x00" in password:
        raise FormatError("passwords cannot contain NUL characters")
    raw = password.encode("utf-8")
    if len(raw) > 72:
        raise FormatError("bcrypt passwords are limited to 72 bytes")
    hashed = bcrypt.hashpw(raw, bcrypt.gensalt(rounds=cost)).decode("ascii")
    return "$2y$" + hashed[4:]


def make_entry(user: str, password: str, cost: int = DEFAULT_COST) -> str:
    """One ``user:$2y$...`` line (without newline)."""
    validate_user(user)
    return f"{user}:{hash_password(password, cost)}"


def parse(text: str, source: str = "htpasswd") -> dict[str, str]:
    """Users and hashes of an htpasswd file; only bcrypt entries are accepted."""
    users: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user:
            raise ConfigError(f"{source}:{n}: not a user:hash entry")
        if not hashed.startswith(_BCRYPT_PREFIXES) or len(hashed) != 60:
            raise ConfigError(f"{source}:{n}: only bcrypt entries are supported", hint="create them with htpasswd -B")
        users[user] = hashed
    return users


@dataclass(frozen=True)
class _Stamp:
    mtime_ns: int
    size: int
    ino: int


class HtpasswdFile:
    """A bcrypt htpasswd file, re-read whenever its size, mtime or inode changes."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._users: dict[str, str] = {}
        self._stamp: _Stamp | None = None
        self._cache_key = secrets.token_bytes(32)
        self._ok: set[bytes] = set()
        self._dummy: bytes | None = None
        self._reload_if_changed()

    def _stat(self) -> _Stamp:
        try:
            st = self.path.stat()
        except OSError as exc:
            raise ConfigError(f"cannot read htpasswd file {self.path}: {exc.strerror}") from None
        return _Stamp(st.st_mtime_ns, st.st_size, st.st_ino)

    def _reload_if_changed(self) -> None:
        stamp = self._stat()
        with self._lock:
            if stamp == self._stamp:
                return
            try:
                text = self.path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"cannot read htpasswd file {self.path}: {exc}") from None
            self._users = parse(text, str(self.path))
            self._stamp = stamp
            self._ok = set()

    def users(self) -> list[str]:
        """The user names in the file (re-read if it changed)."""
        self._reload_if_changed()
        return sorted(self._users)

    def _dummy_hash(self) -> bytes:
        if self._dummy is None:
            self._dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=DEFAULT_COST))
        return self._dummy

    def check(self, user: str, password: str) -> bool:
        """Whether ``password`` is right for ``user``; takes as long for unknown users.

        Successful checks are remembered (as a keyed hash, never the password) until the file
        changes, so repeated requests do not pay bcrypt's cost each time.
        """
        self._reload_if_changed()
        raw = password.encode("utf-8", "surrogatepass")
        hashed = self._users.get(user)
        memo = hmac.new(self._cache_key, f"{user}\x00{hashed}\x00".encode() + raw, hashlib.sha256).digest()
        if hashed is not None and memo in self._ok:
            return True
        candidate = _normalise(hashed) if hashed is not None else self._dummy_hash()
        try:
            good = bcrypt.checkpw(raw, candidate) if len(raw) <= 72 else False
        except ValueError:
            good = False
        good = good and hashed is not None
        if good:
            with self._lock:
                if len(self._ok) > 4096:
                    self._ok.clear()
                self._ok.add(memo)
        return good


def add_user(path: Path | str, user: str, password: str, cost: int = DEFAULT_COST) -> bool:
    """Add or replace ``user`` in the htpasswd file (created 0600 if missing); True if replaced."""
    path = Path(path)
    entry = make_entry(user, password, cost)
    lines: list[str] = []
    replaced = False
    mode = 0o600
    if path.exists():
        try:
            text = path.read_text(encoding="utf-8")
            mode = path.stat().st_mode & 0o777
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read htpasswd file {path}: {exc}") from None
        parse(text, str(path))
        for line in text.splitlines():
            if line.strip().partition(":")[0] == user and not line.strip().startswith("#"):
                if not replaced:
                    lines.append(entry)
                replaced = True
            else:
                lines.append(line)
    if not replaced:
        lines.append(entry)
    atomic_write(path, ("\n".join(lines) + "\n").encode("utf-8"), mode)
    return replaced


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to a temporary file next to ``path``, fsync, chmod and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
