"""htpasswd files with bcrypt entries (``htpasswd -B``), as registry:2 reads them.

Checks take the same time whether or not the user exists: an unknown user is checked against a
dummy hash made at load with the cost the file's entries use most (``htpasswd -B`` writes cost 5,
``trustbox auth htpasswd add`` cost 10). The file is re-read when it changes on disk, and entries
can be added or replaced with an atomic rewrite.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import bcrypt

# re-exported (``as``) for auth/dockerconfig.py and cli/auth_cmd.py, which import it from here
from trustbox.atomicfile import atomic_write as atomic_write
from trustbox.errors import ConfigError, FormatError

# $2y$ (Apache), $2a$ and $2b$, a two-digit cost 04..31, 22 characters of salt, 31 of hash.
_BCRYPT_RE = re.compile(r"^\$2[aby]\$(?:0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")
DEFAULT_COST = 10
_RESERVED_USERS = ("*", "+")


def _normalise(hashed: str) -> bytes:
    """``$2y$`` (Apache) and ``$2a$`` are the same algorithm as ``$2b$`` for our purposes."""
    return ("$2b$" + hashed[4:]).encode("ascii")


def bcrypt_cost(hashed: str | bytes) -> int:
    """The cost (log2 of the rounds) of a bcrypt hash ``$2?$NN$...``; ValueError if there is none."""
    text = hashed.decode("ascii") if isinstance(hashed, bytes) else hashed
    return int(text[4:6])


def typical_cost(hashes: Iterable[str]) -> int:
    """The cost most of ``hashes`` use (the higher one on a tie); DEFAULT_COST when there are none.

    An unknown user checked at this cost takes as long as a wrong password for most known users.
    """
    counts = Counter(bcrypt_cost(h) for h in hashes)
    if not counts:
        return DEFAULT_COST
    return max(counts, key=lambda cost: (counts[cost], cost))


def dummy_hash(cost: int) -> bytes:
    """A ``$2b$`` hash of a random secret at ``cost``: what unknown users are checked against."""
    return bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=cost, prefix=b"2b"))


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
    """Users and hashes of an htpasswd file; only well-formed bcrypt entries are accepted.

    Raises ConfigError naming the line of anything else (a malformed hash would be refused
    without bcrypt's work: faster, which would tell that the user exists).
    """
    users: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user:
            raise ConfigError(f"{source}:{n}: not a user:hash entry")
        if not _BCRYPT_RE.match(hashed):
            raise ConfigError(
                f"{source}:{n}: only well-formed bcrypt entries are supported", hint="create them with htpasswd -B"
            )
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
        self._dummy = b""
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
            users = parse(text, str(self.path))
            cost = typical_cost(users.values())
            if not self._dummy or bcrypt_cost(self._dummy) != cost:
                self._dummy = dummy_hash(cost)
            self._users = users
            self._stamp = stamp
            self._ok = set()

    def users(self) -> list[str]:
        """The user names in the file (re-read if it changed)."""
        self._reload_if_changed()
        return sorted(self._users)

    @property
    def dummy_cost(self) -> int:
        """The bcrypt cost unknown users are checked at (the file's typical cost)."""
        return bcrypt_cost(self._dummy)

    def _memo(self, user: str, hashed: str | None, raw: bytes) -> bytes:
        return hmac.new(self._cache_key, f"{user}\x00{hashed}\x00".encode() + raw, hashlib.sha256).digest()

    def remembered(self, user: str, password: str) -> bool:
        """Whether ``password`` for ``user`` passed :meth:`check` since the file last changed.

        Cheap (one ``stat``, no bcrypt, no reload: False when the file changed, :meth:`check`
        then reloads it), so callers may ask it on the event loop. Raises ConfigError if the file
        can no longer be found.
        """
        if self._stat() != self._stamp:
            return False
        hashed = self._users.get(user)
        raw = password.encode("utf-8", "surrogatepass")
        return hashed is not None and self._memo(user, hashed, raw) in self._ok

    def check(self, user: str, password: str) -> bool:
        """Whether ``password`` is right for ``user``; takes as long for unknown users.

        Successful checks are remembered (as a keyed hash, never the password) until the file
        changes, so repeated requests do not pay bcrypt's cost each time. Raises ConfigError if
        the file changed and can no longer be read.
        """
        self._reload_if_changed()
        raw = password.encode("utf-8", "surrogatepass")
        hashed = self._users.get(user)
        memo = self._memo(user, hashed, raw)
        if hashed is not None and memo in self._ok:
            return True
        candidate = _normalise(hashed) if hashed is not None else self._dummy
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
