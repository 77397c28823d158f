"""A real S3 store for tests and benches: Ceph radosgw on a one-monitor, one-OSD cluster on loopback.

Debian 12's Ceph 16.2 (pacific) radosgw has no standalone backend, so it runs on the smallest real
RADOS cluster: ``ceph-mon``, ``ceph-osd`` (object store in memory or in a sparse file, no device)
and ``radosgw``, all on 127.0.0.1 with authentication off, in one scratch folder
(``docs/registry.md``, *S3 stores*). Facts about this Ceph version: ``../shared/spec/ceph-s3.md``.

Plain Python (no pytest), so ``bench/`` can start a cluster too:

* :func:`missing_tools` names the Ceph programs that are not installed (tests skip then);
* :func:`start_cluster` starts one in a folder and returns a :class:`CephCluster` (stop it with
  :meth:`CephCluster.stop`); :func:`attach_or_start` reuses one already running in that folder
  (its ``state.json``) and starts one otherwise;
* ``python3 -m tests.helpers.ceph up DIR`` / ``down DIR`` keep one running between test runs
  (``TRUSTBOX_CEPH_DIR=DIR`` makes the tests use it).

Every process is started in its own session with its output in ``DIR/log``; nothing is left
holding a pipe.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REGION = "us-east-1"
ACCESS_KEY = "TRUSTBOXTESTACCESS01"
SECRET_KEY = "trustbox-test-secret-key-0000000000000000"
USER = "trustbox"

#: the programs a cluster needs (Debian packages ceph-mon, ceph-osd, radosgw; ceph-common for the rest)
TOOLS = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph")
#: the Debian packages that hold them (``.ci/run`` installs these)
PACKAGES = ("ceph-mon", "ceph-osd", "radosgw")


class CephStartError(RuntimeError):
    """The cluster did not come up; the message holds the step and the tail of its log."""


def missing_tools() -> list[str]:
    """The Ceph programs of :data:`TOOLS` not found on ``PATH`` (empty when all are there)."""
    return [t for t in TOOLS if shutil.which(t) is None]


def _free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports on 127.0.0.1 that were free a moment ago."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _free_range(width: int) -> int:
    """The first port of ``width`` consecutive ports that are free on 127.0.0.1 (raises
    CephStartError when no such range is found)."""
    for _ in range(200):
        base = _free_ports(1)[0]
        if base + width >= 65535:
            continue
        socks = []
        try:
            for p in range(base, base + width):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise CephStartError(f"no {width} consecutive free ports on 127.0.0.1")


@dataclass(frozen=True)
class S3Account:
    """Where and how to reach the radosgw S3 endpoint."""

    endpoint: str
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION

    def env(self) -> dict[str, str]:
        """The AWS environment variables for a process that talks to this endpoint."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": self.region}

    def client(self) -> Any:
        """A boto3 S3 client (SigV4, path-style addressing) for this endpoint."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=self.region, aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"}),
        )

    def new_bucket(self, prefix: str = "t") -> str:
        """Create a fresh, empty bucket and return its name."""
        name = f"{prefix}-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name


@dataclass
class CephCluster:
    """A running cluster: its folder, configuration, process ids and S3 account."""

    root: Path
    s3: S3Account
    pids: dict[str, int]
    start_seconds: float = 0.0
    owned: bool = True
    steps: dict[str, float] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        """The cluster's ``ceph.conf``."""
        return self.root / "ceph.conf"

    def alive(self) -> bool:
        """Whether every daemon still runs and radosgw answers."""
        for pid in self.pids.values():
            if not _pid_alive(pid):
                return False
        try:
            return httpx.get(self.s3.endpoint, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, remove: bool = True) -> None:
        """Stop the daemons this cluster started (radosgw, OSD, monitor, by their pids) and,
        with ``remove``, delete its folder."""
        for name in ("radosgw", "osd", "mon"):
            pid = self.pids.get(name)
            if pid is not None:
                _terminate(pid)
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)

    def account(self, access_key: str, secret_key: str) -> S3Account:
        """An S3 account with these keys: a user ``key-<hash of the access key>`` is created
        (``radosgw-admin user create``) unless it exists already. Raises CephStartError when
        radosgw-admin fails."""
        uid = "key-" + hashlib.sha256(access_key.encode()).hexdigest()[:16]
        conf = ["radosgw-admin", "-c", str(self.conf), "-n", "client.admin"]
        info = subprocess.run([*conf, "user", "info", f"--uid={uid}"], capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)
        if info.returncode != 0:
            made = subprocess.run([*conf, "user", "create", f"--uid={uid}", f"--display-name={uid}",
                                   f"--access-key={access_key}", f"--secret-key={secret_key}"],
                                  capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
            if made.returncode != 0:
                raise CephStartError(f"radosgw-admin user create exited {made.returncode}: {made.stderr[-2000:]}")
        return S3Account(self.s3.endpoint, access_key, secret_key)

    def save(self) -> None:
        """Write ``state.json`` so a later run can attach (:func:`attach_or_start`)."""
        state = {"endpoint": self.s3.endpoint, "pids": self.pids, "start_seconds": self.start_seconds}
        (self.root / "state.json").write_text(json.dumps(state))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _terminate(pid: int, timeout: float = 10) -> None:
    """SIGTERM one daemon by pid, SIGKILL it if it is still there after ``timeout`` seconds."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)  # our child: reap it
            if done:
                return
        except ChildProcessError:
            if not _pid_alive(pid):
                return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _conf_text(root: Path, fsid: str, mon_port: int, osd_ports: int, s3_port: int, objectstore: str) -> str:
    store = (
        "osd objectstore = memstore\nmemstore device bytes = 4294967296\n"
        if objectstore == "memstore" else
        "osd objectstore = bluestore\nbluestore block create = true\nbluestore block size = 8589934592\n"
        "bluestore fsck on mount = false\nbluestore fsck on mkfs = false\n"
    )
    return f"""[global]
fsid = {fsid}
mon host = [v2:127.0.0.1:{mon_port}]
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms bind port min = {osd_ports}
ms bind port max = {osd_ports + 9}
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc secure
keyring = {root}/keyring
run dir = {root}/run
admin socket = {root}/run/$name.$pid.asok
log file = {root}/log/$name.log
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon data avail crit = 1
mon warn on pool no redundancy = false
# one node: no reason to batch map changes for a second (each pool radosgw creates is one)
paxos propose interval = 0.01
paxos min wait = 0.001
mon tick interval = 1
objecter tick interval = 0.5
[mon]
mon data = {root}/mon/$id
[osd]
osd data = {root}/osd/$id
{store}[client]
# without tcp_nodelay every GET waits ~40 ms (Nagle + delayed ACK between header and body)
rgw frontends = beast endpoint=127.0.0.1:{s3_port} tcp_nodelay=1
rgw gc obj min wait = 60
"""


class _Starter:
    """The start-up steps, each timed, each failure reported with the log that explains it."""

    def __init__(self, root: Path, tied: bool) -> None:
        self.root = root
        self.tied = tied
        self.conf = root / "ceph.conf"
        self.steps: dict[str, float] = {}
        self.t0 = time.monotonic()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def mark(self, step: str) -> None:
        self.steps[step] = round(time.monotonic() - self.t0, 2)

    def run(self, *argv: str, timeout: float = 60) -> str:
        """Run a tool to completion; its stdout, or CephStartError with its output."""
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise CephStartError(f"{' '.join(argv)}: no answer in {timeout:g} s") from None
        if p.returncode != 0:
            raise CephStartError(f"{' '.join(argv)} exited {p.returncode}: {p.stderr.strip()[-2000:]}")
        return p.stdout

    def daemon(self, name: str, *argv: str) -> None:
        """Start a daemon in the foreground (``-f``), in its own session, output to a file; with
        ``tied`` it is killed when the process that started it dies (a test run killed
        before its teardown leaves no cluster behind)."""
        with open(self.root / "log" / f"{name}.out", "wb") as out:
            self.procs[name] = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=_die_with_parent if self.tied else None,
            )

    def wait(self, what: str, check: Any, log: str, timeout: float = 60, interval: float = 0.1) -> None:
        """Poll ``check()`` until true; CephStartError with the tail of ``log`` on a dead
        daemon or after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise CephStartError(f"{name} exited {proc.returncode} while waiting for {what}{self.tail(name)}")
            if check():
                return
            time.sleep(interval)
        raise CephStartError(f"{what}: not ready after {timeout:g} s{self.tail(log)}")

    def tail(self, name: str, limit: int = 3000) -> str:
        text = ""
        for f in (self.root / "log" / f"{name}.out", *sorted((self.root / "log").glob(f"*{name}*.log"))):
            try:
                text += f"\n--- {f.name}\n" + f.read_text(errors="replace")[-limit:]
            except OSError:
                pass
        return text

    def ceph(self, *args: str, timeout: float = 20) -> str:
        return self.run("ceph", "-c", str(self.conf), "--connect-timeout", "5", *args, timeout=timeout)


def _die_with_parent() -> None:
    """In the child before exec: ask Linux for SIGKILL when the parent exits (PR_SET_PDEATHSIG;
    radosgw does not end on SIGTERM once its monitor is gone)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def start_cluster(root: Path, objectstore: str = "memstore", timeout: float = 90, *,
                  tied: bool = True) -> CephCluster:
    """Start monitor, OSD and radosgw in the empty (or new) folder ``root``, create the S3 user
    and wait until radosgw answers. ``objectstore`` is ``memstore`` (fast, RAM) or ``bluestore``
    (a sparse file in ``root``); with ``tied`` the daemons stop when this process dies. Raises
    CephStartError (naming the step, with its log) when a step fails; then nothing is left
    running."""
    root = Path(root).resolve()
    for attempt in (1, 2):  # once more on a failure: a port picked free may be taken meanwhile
        for sub in ("mon", "osd", "run", "log"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "keyring").touch()
        st = _Starter(root, tied)
        try:
            return _start(st, root, objectstore, timeout)
        except CephStartError:
            for proc in reversed(list(st.procs.values())):
                _terminate(proc.pid)
            if attempt == 2:
                raise
            for child in root.iterdir():
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        except BaseException:
            for proc in reversed(list(st.procs.values())):
                _terminate(proc.pid)
            raise
    raise AssertionError("unreachable")


def _start(st: _Starter, root: Path, objectstore: str, timeout: float) -> CephCluster:
    fsid = str(uuid.uuid4())
    mon_port, s3_port = _free_ports(2)
    osd_ports = _free_range(10)
    st.conf.write_text(_conf_text(root, fsid, mon_port, osd_ports, s3_port, objectstore))
    conf = str(st.conf)
    monmap = str(root / "monmap")
    st.run("monmaptool", "--create", "--fsid", fsid, "--addv", "a", f"[v2:127.0.0.1:{mon_port}]", monmap)
    st.run("ceph-mon", "-c", conf, "--mkfs", "-i", "a", "--monmap", monmap)
    st.mark("mon_mkfs")
    st.daemon("mon", "ceph-mon", "-c", conf, "-i", "a", "-f")
    osd_uuid = str(uuid.uuid4())
    osd_id = st.ceph("osd", "new", osd_uuid, timeout=timeout).strip()  # waits for the monitor
    st.mark("mon_up")
    (root / "osd" / osd_id).mkdir(exist_ok=True)
    st.run("ceph-osd", "-c", conf, "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid, timeout=timeout)
    st.mark("osd_mkfs")
    st.daemon("osd", "ceph-osd", "-c", conf, "-i", osd_id, "-f")
    # radosgw waits for the OSD itself: start it now, it creates its pools once the OSD is up
    st.daemon("radosgw", "radosgw", "-c", conf, "-n", "client.rgw", "-f")
    endpoint = f"http://127.0.0.1:{s3_port}"

    def answers() -> bool:
        try:
            return httpx.get(endpoint, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    st.wait("radosgw", answers, "radosgw", timeout=timeout)
    st.mark("radosgw_up")
    st.run("radosgw-admin", "-c", conf, "-n", "client.admin", "user", "create", f"--uid={USER}",
           f"--display-name={USER}", f"--access-key={ACCESS_KEY}", f"--secret-key={SECRET_KEY}", timeout=timeout)
    st.mark("user")
    cluster = CephCluster(root, S3Account(endpoint), {n: p.pid for n, p in st.procs.items()},
                          start_seconds=round(time.monotonic() - st.t0, 2), steps=st.steps)
    cluster.save()
    return cluster


def attach(root: Path) -> CephCluster | None:
    """The cluster already running in ``root`` (from its ``state.json``), or None when there is
    none or it does not answer. An attached cluster is not stopped by the session that attached."""
    try:
        state = json.loads((Path(root) / "state.json").read_text())
        cluster = CephCluster(Path(root).resolve(), S3Account(state["endpoint"]),
                              {k: int(v) for k, v in state["pids"].items()},
                              start_seconds=float(state.get("start_seconds", 0)), owned=False)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return cluster if cluster.alive() else None


def attach_or_start(root: Path, objectstore: str = "memstore") -> CephCluster:
    """Attach to the cluster running in ``root`` or start one there (a dead one's folder is
    emptied first). Raises CephStartError when it cannot start."""
    found = attach(root)
    if found is not None:
        return found
    _clear(root)
    cluster = start_cluster(root, objectstore, tied=False)
    cluster.owned = False  # kept for the next run
    return cluster


def _clear(root: Path) -> None:
    """Stop the daemons recorded in ``root`` and remove it, but only a folder this module made
    (one holding ``ceph.conf``) or an empty one; raises CephStartError for anything else."""
    root = Path(root)
    if root.exists() and any(root.iterdir()) and not (root / "ceph.conf").exists():
        raise CephStartError(f"{root} is not empty and holds no ceph.conf: not a test cluster's folder")
    for pid in attach_state_pids(root):
        if _pid_alive(pid):
            _terminate(pid)
    shutil.rmtree(root, ignore_errors=True)


def attach_state_pids(root: Path) -> list[int]:
    """The daemon pids recorded in ``root/state.json`` (empty when there is none)."""
    try:
        return [int(v) for v in json.loads((Path(root) / "state.json").read_text())["pids"].values()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []


def main(argv: list[str]) -> int:
    """``up DIR [memstore|bluestore]``: start (or find) a cluster in DIR and print its endpoint
    and timings; ``down DIR``: stop it and remove DIR."""
    if len(argv) < 2 or argv[0] not in ("up", "down"):
        print("usage: python3 -m tests.helpers.ceph up DIR [memstore|bluestore] | down DIR", file=sys.stderr)
        return 2
    root = Path(argv[1])
    if argv[0] == "down":
        try:
            _clear(root)
        except CephStartError as exc:
            print(exc, file=sys.stderr)
            return 1
        return 0
    if missing_tools():
        print(f"missing: {' '.join(missing_tools())} (apt-get install {' '.join(PACKAGES)})", file=sys.stderr)
        return 1
    t0 = time.monotonic()
    try:
        cluster = attach_or_start(root, argv[2] if len(argv) > 2 else "memstore")
    except CephStartError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(json.dumps({"endpoint": cluster.s3.endpoint, "access_key": cluster.s3.access_key,
                      "secret_key": cluster.s3.secret_key, "seconds": round(time.monotonic() - t0, 2),
                      "steps": cluster.steps}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
