"""The client reads registry credentials exactly as docker stored them, credential helpers included."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from trustbox.client.dockerenv import load_credentials, registry_credentials
from trustbox.oci.reference import parse_reference


def _helper(bin_dir: Path, name: str, user: str, secret: str) -> None:
    script = bin_dir / f"docker-credential-{name}"
    script.write_text(
        "#!/bin/sh\n"
        'read server\n'
        f'if [ "$1" = get ] && [ "$server" = "registry.example.test:5000" ]; then\n'
        f'  echo \'{{"ServerURL":"registry.example.test:5000","Username":"{user}","Secret":"{secret}"}}\'\n'
        "else echo 'credentials not found in native keychain'; exit 1; fi\n"
    )
    script.chmod(0o755)


def test_cred_helper_wins_over_auths_and_auths_still_work(tmp_path, monkeypatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _helper(bin_dir, "fake", "helper-user", "helper-secret")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    cfg = tmp_path / "docker"
    cfg.mkdir()
    (cfg / "config.json").write_text(json.dumps({
        "credHelpers": {"registry.example.test:5000": "fake"},
        "auths": {
            "registry.example.test:5000": {"auth": base64.b64encode(b"plain:ignored").decode()},
            "other.example.test": {"auth": base64.b64encode(b"alice:s3cret").decode()},
        },
    }))
    env = {"DOCKER_CONFIG": str(cfg), "PATH": os.environ["PATH"]}
    creds = registry_credentials(parse_reference("registry.example.test:5000/team/app:v1"), env)
    assert (creds.username, creds.password) == ("helper-user", "helper-secret")
    creds = registry_credentials(parse_reference("other.example.test/team/app:v1"), env)
    assert (creds.username, creds.password) == ("alice", "s3cret")
    assert not registry_credentials(parse_reference("nobody.example.test/x:v1"), env)
    assert load_credentials("registry.example.test:5000", cfg) == ("helper-user", "helper-secret")
    assert load_credentials("other.example.test", cfg) == ("alice", "s3cret")
