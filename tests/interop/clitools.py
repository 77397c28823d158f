"""Run the real ``notary`` / ``docker`` clients and compare what they print across servers."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .servers import DOCKER, NOTARY, ServerHandle

# Passphrases used by every notary client in the suite.
NOTARY_PASSPHRASES = {
    "NOTARY_ROOT_PASSPHRASE": "interop-root-pass",
    "NOTARY_TARGETS_PASSPHRASE": "interop-targets-pass",
    "NOTARY_SNAPSHOT_PASSPHRASE": "interop-snapshot-pass",
    "NOTARY_DELEGATION_PASSPHRASE": "interop-delegation-pass",
}
DCT_ROOT_PASS = "interop-docker-root-pass"
DCT_REPO_PASS = "interop-docker-repo-pass"

CMD_TIMEOUT = 90  # per client command; the benchmark raises it


@dataclass
class Result:
    label: str
    argv: list[str]
    rc: int
    out: str
    err: str

    def describe(self) -> str:
        return (
            f"[{self.label}] $ {shlex.join(self.argv)}\n  rc={self.rc}\n"
            f"  stdout: {self.out!r}\n  stderr: {self.err!r}"
        )


def _base_env(home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
    }


def run(
    label: str,
    argv: list[str],
    env: dict[str, str],
    stdin: str | bytes | None = None,
    cwd: Path | None = None,
) -> Result:
    data = stdin.encode() if isinstance(stdin, str) else stdin
    proc = subprocess.run(
        argv,
        input=data if data is not None else b"",
        capture_output=True,
        env=env,
        cwd=cwd,
        timeout=CMD_TIMEOUT,
    )
    return Result(label, argv, proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))


class NotaryClient:
    """``notary -d TRUSTDIR -s URL --tlscacert CA`` with the suite's passphrases."""

    def __init__(self, trust_dir: Path, server: ServerHandle, extra_env: dict[str, str] | None = None):
        self.trust_dir = trust_dir
        self.server = server
        self.env = _base_env(trust_dir.parent)
        self.env.update(NOTARY_PASSPHRASES)
        if extra_env:
            self.env.update(extra_env)

    def argv(self, *args: str) -> list[str]:
        return [NOTARY, "-d", str(self.trust_dir), "-s", self.server.url, "--tlscacert", str(self.server.ca_path), *args]

    def run(self, label: str, *args: str, stdin: str | bytes | None = None) -> Result:
        return run(label, self.argv(*args), self.env, stdin=stdin)

    def ok(self, label: str, *args: str, stdin: str | bytes | None = None) -> Result:
        res = self.run(label, *args, stdin=stdin)
        assert res.rc == 0, f"notary command failed against {self.server.name}:\n{res.describe()}"
        return res


class DockerClient:
    """The docker CLI (client only) with DOCKER_CONFIG, the trust server and the CA installed."""

    def __init__(self, config_dir: Path, server: ServerHandle, host: str = "127.0.0.1"):
        self.config_dir = config_dir
        self.server = server
        hostport = f"{host}:{server.port}"
        tls_dir = config_dir / "tls" / hostport
        tls_dir.mkdir(parents=True, exist_ok=True)
        (tls_dir / "ca.crt").write_bytes(Path(server.ca_path).read_bytes())
        self.env = _base_env(config_dir.parent)
        self.env.update(
            {
                "DOCKER_CONFIG": str(config_dir),
                "DOCKER_CONTENT_TRUST_SERVER": f"https://{hostport}",
                "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE": DCT_ROOT_PASS,
                "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE": DCT_REPO_PASS,
                # no daemon here: point at a socket that does not exist so nothing waits for one
                "DOCKER_HOST": f"unix://{config_dir}/no-daemon.sock",
                "DOCKER_CLI_HINTS": "false",
            }
        )

    def run(self, label: str, *args: str, stdin: str | None = None, extra_env: dict[str, str] | None = None) -> Result:
        env = dict(self.env)
        if extra_env:
            env.update(extra_env)
        return run(label, [DOCKER, *args], env, stdin=stdin, cwd=self.config_dir.parent)

    def notary(self) -> NotaryClient:
        """A notary client working on docker's trust dir (as in the fixtures' addhash step)."""
        return NotaryClient(
            self.config_dir / "trust",
            self.server,
            extra_env={
                "NOTARY_ROOT_PASSPHRASE": DCT_ROOT_PASS,
                "NOTARY_TARGETS_PASSPHRASE": DCT_REPO_PASS,
                "NOTARY_SNAPSHOT_PASSPHRASE": DCT_REPO_PASS,
                "NOTARY_DELEGATION_PASSPHRASE": DCT_REPO_PASS,
            },
        )


# --------------------------------------------------------------------------------------------
# notary output parsing


LIST_LINE = re.compile(r"^(?P<name>\S+)\s+(?P<digest>[0-9a-f]{64})\s+(?P<size>\d+)\s+(?P<role>\S+)\s*$")


def parse_list(out: str) -> dict[str, tuple[str, int, str]]:
    """``notary list`` table -> {name: (sha256 hex, size, role)}."""
    rows: dict[str, tuple[str, int, str]] = {}
    for line in out.splitlines():
        m = LIST_LINE.match(line)
        if m:
            rows[m["name"]] = (m["digest"], int(m["size"]), m["role"])
    return rows


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pem_public_key_id(pem_path: Path) -> str:
    """Notary key ID of a ``-----BEGIN PUBLIC KEY-----`` file (ecdsa, DER SPKI)."""
    lines = Path(pem_path).read_text().splitlines()
    b64 = "".join(ln for ln in lines if ln and not ln.startswith("-----") and ":" not in ln)
    public = base64.b64encode(base64.b64decode(b64)).decode()
    canon = '{"keytype":"ecdsa","keyval":{"private":null,"public":"' + public + '"}}'
    return hashlib.sha256(canon.encode()).hexdigest()


def add_path_header(key_pem: Path, key_id: str, dest: Path) -> Path:
    """Encrypted notary key + ``path: <keyid>`` header, so ``notary key import`` accepts it."""
    text = key_pem.read_text()
    first, rest = text.split("\n", 1)
    dest.write_text(f"{first}\npath: {key_id}\n{rest}")
    os.chmod(dest, 0o600)
    return dest


def write_ec_private_key(path: Path) -> Path:
    """Unencrypted PKCS#8 P-256 key (like ``openssl genpkey``), mode 0600."""
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    os.chmod(path, 0o600)
    pub = path.with_suffix(".pub")
    pub.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return pub


# --------------------------------------------------------------------------------------------
# Transcripts and normalisation


HEX64 = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
HEX12 = re.compile(r"\b[0-9a-f]{12}\b")
HOSTPORT = re.compile(r"\b(127\.0\.0\.1|localhost):\d{2,5}\b")
LOGTIME = re.compile(r'time="[^"]*"')
# notary checks the hashes of a target in Go map order, so which one it reports varies run to run
CHECKSUM_MISMATCH = re.compile(r"sha(256|512) checksum for (.*?) did not match: expected [0-9a-f]+")


@dataclass
class Transcript:
    """The ordered results of a scenario, comparable across servers after normalisation."""

    server: str
    tmp_roots: list[str] = field(default_factory=list)
    keep_hex: set[str] = field(default_factory=set)
    steps: list[Result] = field(default_factory=list)

    def add(self, res: Result) -> Result:
        self.steps.append(res)
        return res

    def normalised(self) -> list[tuple[str, int, str, str]]:
        ids: dict[str, str] = {}
        shorts: dict[str, str] = {}

        def norm(text: str) -> str:
            for root in sorted(self.tmp_roots, key=len, reverse=True):
                text = text.replace(root, "<TMP>")
            text = HOSTPORT.sub("<HOST:PORT>", text)
            text = LOGTIME.sub('time="<TIME>"', text)
            text = CHECKSUM_MISMATCH.sub(r"sha<N> checksum for \2 did not match: expected <HASH>", text)

            def long(m: re.Match[str]) -> str:
                h = m.group(0)
                if h in self.keep_hex:
                    return h
                if h not in ids:
                    ids[h] = f"ID{len(ids) + 1}"
                return ids[h]

            text = HEX64.sub(long, text)

            def short(m: re.Match[str]) -> str:
                h = m.group(0)
                for full, label in ids.items():
                    if full.startswith(h):
                        return f"{label}[:12]"
                if h not in shorts:
                    shorts[h] = f"SHORT{len(shorts) + 1}"
                return shorts[h]

            return HEX12.sub(short, text)

        return [(r.label, r.rc, norm(r.out), norm(r.err)) for r in self.steps]


def assert_same_transcript(reference: Transcript, actual: Transcript) -> None:
    """Every step: same exit status, same normalised stdout and stderr as upstream."""
    ref = reference.normalised()
    got = actual.normalised()
    ref_labels = [s[0] for s in ref]
    got_labels = [s[0] for s in got]
    assert got_labels[: len(ref_labels)] == ref_labels[: len(got_labels)], (
        f"scenario steps differ: upstream {ref_labels} vs {actual.server} {got_labels}"
    )
    diffs = []
    for (label, rc0, out0, err0), (_, rc1, out1, err1), raw in zip(ref, got, actual.steps, strict=False):
        if (rc0, out0, err0) != (rc1, out1, err1):
            diffs.append(
                f"step [{label}] `{shlex.join(raw.argv[:1] + raw.argv[-6:])}`\n"
                f"  upstream notary-server: rc={rc0}\n    stdout={out0!r}\n    stderr={err0!r}\n"
                f"  {actual.server}: rc={rc1}\n    stdout={out1!r}\n    stderr={err1!r}"
            )
    assert not diffs, (
        f"{actual.server} makes the clients print something different from upstream notary-server "
        f"({len(diffs)} of {len(ref)} steps differ):\n" + "\n".join(diffs)
    )
    assert len(got) == len(ref), f"upstream ran {len(ref)} steps, {actual.server} {len(got)}"


def check_against_upstream(trust_server, upstream_server, pool, workdir: Path, key: str, runner) -> None:
    """Run ``runner(server, dir)`` (returns an object with ``transcript`` and ``problems``) on
    ``trust_server``; its own checks must pass, and unless it is upstream itself, its transcript must
    equal the one of the same scenario run on upstream in this session (computed once)."""
    result = runner(trust_server, workdir / "run")
    if trust_server.name == "upstream":
        pool.references.setdefault(key, result)
    assert not result.problems, f"{trust_server.name}: {len(result.problems)} problem(s):\n" + "\n\n".join(
        result.problems
    )
    if trust_server.name == "upstream":
        return
    ref = pool.reference(key, lambda: runner(upstream_server, pool.root / f"ref-{key}"))
    assert not ref.problems, f"the reference run on upstream notary-server failed, cannot compare: {ref.problems}"
    assert_same_transcript(ref.transcript, result.transcript)
