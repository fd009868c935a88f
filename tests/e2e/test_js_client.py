"""The JavaScript client (clients/js) against a real api: its Node tests, run by `node --test`.

The api runs with a real Postgres and S3 and no workers (an upload then publishes exactly
`document.created` and `job.status_updated`, which the tests count on). Node gets the api's
URL and the JWT secret, and mints its own tokens (short-lived ones too) with node:crypto. The
test fails when node fails, with node's output and the api's log.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from rag_testing.pytest_plugin import SystemFactory

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "js"
NODE_TIMEOUT_SECONDS = 600
CONNECTIONS_PER_USER = 4  # what clients/js/test/limits.test.js expects: one more is refused 4429


def node_command() -> list[str]:
    node = shutil.which("node")
    assert node, "node (20+) is required: the JS client's tests run on it"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
    major = int(version.strip().lstrip("v").split(".")[0])
    assert major >= 20, f"the JS client needs Node 20+, found {version.strip()}"
    # Node 20 and 21 have a global WebSocket only behind this flag; 22 has it by default.
    return [node, "--experimental-websocket"] if major < 22 else [node]


def test_js_client_against_a_real_api(system_factory: SystemFactory) -> None:
    system = system_factory(workers=False, WS_MAX_CONNECTIONS_PER_USER=str(CONNECTIONS_PER_USER))
    files = sorted(str(p.relative_to(CLIENT)) for p in (CLIENT / "test").glob("*.test.js"))
    assert files, "no clients/js/test/*.test.js"
    env = {
        **os.environ,
        "RAG_API_URL": system.api.url,
        "RAG_JWT_SECRET": system.env["JWT_SECRET"],
        "RAG_MAX_CONNECTIONS_PER_USER": str(CONNECTIONS_PER_USER),
    }
    result = subprocess.run(
        [*node_command(), "--test", "--test-reporter=spec", *files],
        cwd=CLIENT,
        env=env,
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT_SECONDS,
    )
    output = result.stdout + result.stderr
    print(output)
    assert result.returncode == 0, f"node --test failed:\n{output}\n{system.logs()}"


def test_the_console_is_served_the_client_source_itself(system_factory: SystemFactory) -> None:
    """One copy of the client: /rag-client.js is clients/js/src/index.js, byte for byte, as a
    JavaScript module the console's `import` accepts."""
    system = system_factory(workers=False)
    served = system.http_client(system.api).get("/rag-client.js")
    assert served.status_code == 200, served.text[:200]
    assert served.headers["content-type"].split(";")[0] in {"text/javascript", "application/javascript"}
    assert served.content == (CLIENT / "src" / "index.js").read_bytes()
    page = system.http_client(system.api).get("/")
    assert '<script type="module" src="app.js">' in page.text
    app = system.http_client(system.api).get("/app.js").text
    assert 'from "./rag-client.js"' in app


def test_the_api_wheel_ships_the_client(tmp_path: Path) -> None:
    """`pip wheel --no-deps ./services/api` (what the image's builder runs) puts the client in
    the wheel as a file, not a dangling link. Built from a copy of services/api and
    clients/js/src laid out as in the repository, so the shared tree gets no build/ output."""
    copy = tmp_path / "repo"
    shutil.copytree(
        ROOT / "services" / "api",
        copy / "services" / "api",
        symlinks=True,
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "tests"),
    )
    shutil.copytree(CLIENT / "src", copy / "clients" / "js" / "src")
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--wheel-dir",
            str(tmp_path / "out"),
            "./services/api",
        ],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp_path / "out").glob("rag_api-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read("rag_api/static/rag-client.js")
    assert shipped == (CLIENT / "src" / "index.js").read_bytes()
