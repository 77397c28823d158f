"""No unbounded response read can come back into the client: outside ``client/capped.py`` the
client modules (login included) neither send requests themselves (httpx's non-streaming calls
read the whole body before they return, and follow redirects by reading each redirect body) nor
touch a body (``.content``, ``.text``, ``.json()``, ``.read()``, ``.iter_*``).

The checker works on the syntax tree, so strings and comments do not count; ``test_checker_*``
show it finds each unbounded read the client used to have.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "trustbox"
CAPPED = SRC / "client" / "capped.py"

#: reading a body: always forbidden outside capped.py (``text`` only where httpx is used)
BODY_ATTRIBUTES = frozenset({
    "content", "iter_bytes", "iter_raw", "iter_text", "iter_lines",
    "aread", "aiter_bytes", "aiter_raw", "aiter_text", "aiter_lines",
})
#: sending: httpx.Client methods (and the module's shortcut functions)
SEND_METHODS = frozenset({"request", "send", "stream", "post", "put", "patch", "delete", "head", "options"})
#: keyword arguments only an HTTP call takes (``dict.get`` takes none)
HTTP_KEYWORDS = frozenset({"params", "headers", "auth", "timeout", "follow_redirects", "cookies", "content",
                           "data", "files", "json", "extensions"})
OTHER_HTTP_MODULES = ("urllib.request", "http.client", "requests", "urllib3", "aiohttp")


def _modules() -> list[Path]:
    files = sorted((SRC / "client").rglob("*.py"))
    return [f for f in files if f != CAPPED]


def _looks_like_url(node: ast.expr) -> bool:
    if isinstance(node, ast.JoinedStr | ast.BinOp):
        text = ast.unparse(node)
        return "/v2" in text or "://" in text or "url" in text.lower()
    if isinstance(node, ast.Name):
        return "url" in node.id.lower() or node.id in ("realm", "location")
    if isinstance(node, ast.Attribute):
        return "url" in node.attr.lower() or node.attr in ("realm", "location")
    if isinstance(node, ast.Subscript):
        return _looks_like_url(node.slice) if isinstance(node.slice, ast.expr) else False
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return "://" in node.value or node.value.startswith("/v2")
    return False


def unbounded_reads(source: str) -> list[str]:
    """``line: code`` of every place in ``source`` that reads a response body or sends a
    request other than through ``capped``."""
    tree = ast.parse(source)
    uses_httpx = any(
        isinstance(n, ast.Import | ast.ImportFrom)
        and any(a.name.split(".")[0] == "httpx" for a in n.names) | (getattr(n, "module", "") or "").startswith("httpx")
        for n in ast.walk(tree)
    )
    found: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            if any(n == m or n.startswith(m + ".") for n in names for m in OTHER_HTTP_MODULES):
                found.append(node)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            if node.attr in BODY_ATTRIBUTES or (node.attr == "text" and uses_httpx):
                found.append(node)
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        name, receiver = node.func.attr, node.func.value
        keywords = {k.arg for k in node.keywords}
        if name == "read" and not node.args and not keywords:
            found.append(node)  # response.read(); a file's read() without a size is unbounded too
        elif name == "json" and not node.args:
            found.append(node)
        elif name in SEND_METHODS:
            found.append(node)
        elif name == "get" and (
            keywords & HTTP_KEYWORDS
            or (isinstance(receiver, ast.Name) and receiver.id == "httpx")
            or (node.args and _looks_like_url(node.args[0]))
        ):
            found.append(node)
    lines = source.splitlines()
    at = sorted({n.lineno for n in found if hasattr(n, "lineno")})
    return [f"{line}: {lines[line - 1].strip()}" for line in at]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_no_unbounded_reads_outside_the_capped_reader(path: Path) -> None:
    assert unbounded_reads(path.read_text()) == []


def test_every_http_module_is_checked() -> None:
    users = [p for p in (SRC / "client").rglob("*.py") if "httpx" in p.read_text()]
    assert {p.name for p in users} >= {"remote.py", "distribution.py", "login.py", "capped.py"}
    assert set(users) - {CAPPED} <= set(_modules())
    assert "open_response" in (SRC / "client" / "login.py").read_text()
    assert not [p for p in (SRC / "auth").rglob("*.py") if "httpx" in p.read_text()]  # auth/ is server-only


# --- the checker finds what the client used to do ------------------------------------------------

OLD_CLIENT_CODE = [
    'resp = self.http.get(self.server_url + "/v2/", timeout=PING_TIMEOUT)',
    'resp = self.http.get(params["realm"], params=query, auth=auth, timeout=PING_TIMEOUT * 2)',
    "body = resp.json()",
    "resp.read()",
    "n = len(resp.content)",
    "value = loads(resp.content)",
    "for chunk in resp.iter_bytes():\n    pass",
    "for b in resp.iter_bytes(1024 * 1024):\n    pass",
    "resp = self.http.request(method, url, headers=self._headers(), **kwargs)",
    'with self.http.stream("GET", url, headers=self._headers()) as resp:\n    pass',
    'resp = self._client(scheme).get(f"{base}/v2/")',
    "resp = self._client(scheme_of_realm).get(url, auth=auth)",
    "resp = self._client(scheme).send(req, stream=stream, follow_redirects=follow)",
    'self._send("DELETE", resp.headers["location"], repo, True).read()',
    'resp = http.get(params["realm"], params=query, auth=auth)',
    "resp = client.get(url, headers=headers)",
    "data = resp.content",
    'ping = client.get(f"{base}/v2/")',
    'resp = client.get(f"{base}/v2/", auth=(user, password))',
    "resp = client.get(realm, params=query, auth=(user, password))",
    "data = resp.json()",
    "import httpx\nmessage = resp.text",
    'r = httpx.get("https://example.test/v2/")',
    "import urllib.request",
    "from urllib.request import urlopen",
]


@pytest.mark.parametrize("code", OLD_CLIENT_CODE)
def test_checker_finds_unbounded_reads(code: str) -> None:
    assert unbounded_reads(code), code


@pytest.mark.parametrize("code", [
    "x = headers.get('location')",
    "env = os.environ.get('DOCKER_CONFIG', '')",
    "b = fh.read(4096)",
    "with open_response(client, 'GET', url) as resp:\n    data = read_capped(resp, 10, 'x')",
    "self.text = text",
])
def test_checker_leaves_other_code_alone(code: str) -> None:
    assert unbounded_reads(code) == []
