"""A throwaway PostgreSQL server for the SQL tests: `initdb` into a temporary folder, started
with `pg_ctl` on a free port (its unix socket in that folder too), one database and one
login role with a password; stopped and removed afterwards.

The server binaries come from the Debian package ``postgresql`` (``/usr/lib/postgresql/<N>
/bin``; CI installs it). PostgreSQL refuses to run as root: as root, the folder is handed
to user ``postgres`` and every command runs through ``runuser -u postgres``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PASSWORD = "pg-pw-7Kq2-not-for-the-history"  # what the tests look for where it must not be
_TIMEOUT = 120  # seconds any one server command may take


def binaries() -> Path | None:
    """The newest installed server's bin folder, if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major)
    return Path(found[-1]).parent if found else None


def _major(path: str) -> int:
    version = Path(path).parent.parent.name
    return int(version) if version.isdigit() else 0


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    database: str
    user: str
    password: str

    @property
    def url(self) -> str:
        """A SQLAlchemy URL without the password (as a Connection holds it)."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{self.database}"


@contextlib.contextmanager
def local_postgres(bindir: Path) -> Iterator[Postgres]:
    root = Path(tempfile.mkdtemp(prefix="af-pg-"))  # not under pytest's 0700 tmp folders
    as_root = os.geteuid() == 0
    if as_root:
        shutil.chown(root, "postgres")

    def run(*argv: str) -> None:
        command = [str(bindir / argv[0]), *argv[1:]]
        if as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(
            command, check=True, cwd=root, timeout=_TIMEOUT, capture_output=True, text=True
        )

    data, port = root / "data", _free_port()
    try:
        run(
            "initdb",
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
        )
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        run(
            "pg_ctl",
            "-D",
            str(data),
            "-l",
            str(root / "log"),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        )
        try:
            psql = [
                "psql",
                "-h",
                str(root),
                "-p",
                str(port),
                "-U",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
            ]
            run(*psql, "-c", f"create role app login password '{PASSWORD}'")
            run(*psql, "-c", "create database app owner app")
            yield Postgres("127.0.0.1", port, "app", "app", PASSWORD)
        finally:
            run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
    except subprocess.CalledProcessError as exc:
        log = root / "log"
        detail = log.read_text() if log.exists() else ""
        raise RuntimeError(f"{exc.cmd}: {exc.stderr}\n{detail}") from exc
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
