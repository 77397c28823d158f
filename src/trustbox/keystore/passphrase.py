"""Passphrase retrievers: docker's and notary's environment variables, a terminal prompt,
chains and fixed mappings.

A retriever is called as ``retriever(keyid, alias, creating, attempt)`` where ``alias`` is the
key's role (``root``, ``targets``, ``targets/releases``, a docker signer name...), ``creating``
is True when a passphrase for a *new* key file is wanted, and ``attempt`` counts from 0 (it
grows when the previous answer did not decrypt the key). It returns the passphrase, or raises

* :class:`PassphraseUnavailable` when it has nothing to offer (a chain then asks the next one),
* :class:`~trustbox.errors.PassphraseError` to give up (e.g. a fixed passphrase proved wrong).
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable, Mapping
from typing import TextIO

from trustbox.errors import PassphraseError

PassphraseRetriever = Callable[[str, str, bool, int], str]

ROOT = "root"
TARGETS = "targets"
SNAPSHOT = "snapshot"
TIMESTAMP = "timestamp"
BASE_ROLES = (ROOT, TARGETS, SNAPSHOT, TIMESTAMP)

DOCKER_ROOT_ENV = "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE"
DOCKER_REPOSITORY_ENV = "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE"
NOTARY_ENV = {
    ROOT: "NOTARY_ROOT_PASSPHRASE",
    TARGETS: "NOTARY_TARGETS_PASSPHRASE",
    SNAPSHOT: "NOTARY_SNAPSHOT_PASSPHRASE",
}
NOTARY_DELEGATION_ENV = "NOTARY_DELEGATION_PASSPHRASE"

#: How notary's and docker's prompts name key aliases ("repository key" for docker).
DOCKER_ALIAS_NAMES = {ROOT: "root", SNAPSHOT: "repository", TARGETS: "repository", "default": "repository"}

SHORT_ID_LEN = 7
MIN_NEW_PASSPHRASE_LEN = 8
DEFAULT_MAX_ATTEMPTS = 4

ROOT_KEY_WARNING = (
    "You are about to create a new root signing key passphrase. This passphrase\n"
    "will be used to protect the most sensitive key in your signing system. Please\n"
    "choose a long, complex passphrase and be careful to keep the password and the\n"
    "key file itself secure and backed up. It is highly recommended that you use a\n"
    "password manager to generate the passphrase and keep it safe. There will be no\n"
    "way to recover this key. You can find the key in your config directory."
)


class PassphraseUnavailable(PassphraseError):
    """A retriever has no passphrase for this key (try the next retriever)."""


def short_id(keyid: str) -> str:
    """The 7-character key ID shown in prompts (``ID (prefix)`` for ``prefix/ID`` names)."""
    prefix, sep, ident = keyid.rpartition("/")
    if not sep:
        return keyid[:SHORT_ID_LEN] if len(keyid) > SHORT_ID_LEN else ""
    if len(ident) < SHORT_ID_LEN:
        return ""
    return f"{ident[:SHORT_ID_LEN]} ({prefix})"


def _from_env(var: str, value: str, attempt: int) -> str:
    if attempt > 0:
        raise PassphraseError(f"the passphrase in ${var} does not decrypt the key")
    return value


def docker_env_retriever(environ: Mapping[str, str] | None = None) -> PassphraseRetriever:
    """Docker's variables: ``DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE`` for root keys,
    ``DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE`` for every other role (never for root)."""

    env = os.environ if environ is None else environ

    def retrieve(keyid: str, alias: str, creating: bool, attempt: int) -> str:
        var = DOCKER_ROOT_ENV if alias == ROOT else DOCKER_REPOSITORY_ENV
        value = env.get(var, "")
        if not value:
            raise PassphraseUnavailable(f"${var} is not set")
        return _from_env(var, value, attempt)

    return retrieve


def notary_env_retriever(environ: Mapping[str, str] | None = None) -> PassphraseRetriever:
    """Notary's variables: ``NOTARY_{ROOT,TARGETS,SNAPSHOT}_PASSPHRASE`` by role, and
    ``NOTARY_DELEGATION_PASSPHRASE`` for any role that is not a base role."""

    env = os.environ if environ is None else environ

    def retrieve(keyid: str, alias: str, creating: bool, attempt: int) -> str:
        candidates = []
        if alias in NOTARY_ENV:
            candidates.append(NOTARY_ENV[alias])
        if alias not in BASE_ROLES:
            candidates.append(NOTARY_DELEGATION_ENV)
        for var in candidates:
            value = env.get(var, "")
            if value:
                return _from_env(var, value, attempt)
        raise PassphraseUnavailable(f"no NOTARY_*_PASSPHRASE variable for role {alias!r}")

    return retrieve


def fixed_retriever(passphrases: Mapping[str, str], default: str | None = None) -> PassphraseRetriever:
    """A fixed mapping (key ID or role -> passphrase) for library users and tests.

    Key IDs are looked up first, then the alias (role), then ``default``. A second attempt gives
    up, because the same answer would fail again.
    """

    def retrieve(keyid: str, alias: str, creating: bool, attempt: int) -> str:
        value = passphrases.get(keyid, passphrases.get(alias, default))
        if value is None:
            raise PassphraseUnavailable(f"no passphrase configured for {alias} key {keyid}")
        if attempt > 0:
            raise PassphraseError(
                f"the configured passphrase for {alias} key {short_id(keyid) or keyid} is wrong"
            )
        return value

    return retrieve


def constant_retriever(passphrase: str) -> PassphraseRetriever:
    """Always the same passphrase (gives up on a second attempt)."""
    return fixed_retriever({}, default=passphrase)


def chain_retriever(*retrievers: PassphraseRetriever) -> PassphraseRetriever:
    """Ask each retriever in turn; the first that does not raise PassphraseUnavailable answers."""

    def retrieve(keyid: str, alias: str, creating: bool, attempt: int) -> str:
        reasons = []
        for r in retrievers:
            try:
                return r(keyid, alias, creating, attempt)
            except PassphraseUnavailable as exc:
                reasons.append(exc.message)
        raise PassphraseUnavailable(
            f"no passphrase available for {alias} key {short_id(keyid) or keyid}"
            + (f" ({'; '.join(reasons)})" if reasons else "")
        )

    return retrieve


class PromptRetriever:
    """Asks on the terminal like notary/docker, caching the answer per alias for the process.

    ``Enter passphrase for new root key with ID abc1234: `` then ``Repeat passphrase for new
    root key with ID abc1234: `` when creating; ``Enter passphrase for root key with ID abc1234: ``
    when reading. ``alias_names`` maps roles to display names (docker: targets -> repository).
    """

    def __init__(
        self,
        alias_names: Mapping[str, str] | None = None,
        *,
        getpass_func: Callable[[str], str] | None = None,
        out: TextIO | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        require_tty: bool = True,
    ) -> None:
        self.alias_names = dict(alias_names or {})
        self._getpass = getpass_func
        self._out = out
        self.max_attempts = max_attempts
        self.require_tty = require_tty and getpass_func is None
        self.cache: dict[str, str] = {}

    @property
    def out(self) -> TextIO:
        """Where prompts and messages go (stderr by default, like getpass)."""
        return self._out if self._out is not None else sys.stderr

    def _ask(self, prompt: str) -> str:
        if self._getpass is not None:
            self.out.write(prompt)
            self.out.flush()
            return self._getpass("")
        return getpass.getpass(prompt, stream=self._out)

    def __call__(self, keyid: str, alias: str, creating: bool, attempt: int) -> str:
        if self.require_tty and not sys.stdin.isatty():
            raise PassphraseUnavailable(
                "Please either use environment variables or STDIN with a terminal to provide key passphrases"
            )
        if attempt == 0:
            if alias == ROOT and creating:
                print(ROOT_KEY_WARNING, file=self.out)
            if alias in self.cache:
                return self.cache[alias]
        elif not creating:
            if attempt >= self.max_attempts:
                raise PassphraseError("Too many attempts")
            print("Passphrase incorrect. Please retry.", file=self.out)
        display = self.alias_names.get(alias, alias)
        sid = short_id(keyid)
        with_id = f" with ID {sid}" if sid else ""
        if not creating:
            value = self._ask(f"Enter passphrase for {display} key{with_id}: ").strip()
            self.cache[alias] = value
            return value
        for _ in range(self.max_attempts):
            value = self._ask(f"Enter passphrase for new {display} key{with_id}: ").strip()
            if len(value) < MIN_NEW_PASSPHRASE_LEN:
                print(
                    "Passphrase is too short. Please use a password manager to generate and store "
                    "a good random passphrase.",
                    file=self.out,
                )
                continue
            again = self._ask(f"Repeat passphrase for new {display} key{with_id}: ").strip()
            if again != value:
                print("Passphrases do not match. Please retry.", file=self.out)
                continue
            self.cache[alias] = value
            return value
        raise PassphraseError("Too many attempts")


def docker_retriever(
    environ: Mapping[str, str] | None = None, prompt: PromptRetriever | None = None
) -> PassphraseRetriever:
    """What the docker CLI does: its env variables, then a prompt naming "repository" keys."""
    return chain_retriever(docker_env_retriever(environ), prompt or PromptRetriever(DOCKER_ALIAS_NAMES))


def notary_retriever(
    environ: Mapping[str, str] | None = None, prompt: PromptRetriever | None = None
) -> PassphraseRetriever:
    """What the notary CLI does: its env variables, then a prompt."""
    return chain_retriever(notary_env_retriever(environ), prompt or PromptRetriever())
