"""A throwaway PostgreSQL server of the test's own, for tests that stop, kill or restart it.

Never the shared server the suite runs on (127.0.0.1:5432): `initdb` into a temporary folder,
its own port, its socket in that folder. As root, the server runs as the `postgres` user, as
PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def free_port() -> int:
    """A loopback port nothing listens on (closed again at once): to serve on, or to be
    refused by."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def postgres_binaries() -> Path | None:
    """The newest installed server's bin folder, or None where PostgreSQL is not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: Path(p).parts[4])
    return Path(found[-1]).parent if found else None


class OwnPostgres:
    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="homework-pg-"))
        self.data = self.folder / "data"
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
            account = pwd.getpwnam("postgres")
            os.chown(self.folder, account.pw_uid, account.pw_gid)

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        subprocess.run([*self._as_postgres, *command], check=True, capture_output=True, timeout=60)

    def _pg_ctl(self, action: str, *options: str) -> None:
        self._run(str(self.binaries / "pg_ctl"), "-D", str(self.data), "-w", action, *options)

    def start(self) -> None:
        initdb = str(self.binaries / "initdb")
        self._run(initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self._pg_ctl("start", *self._server_options())

    def _server_options(self) -> list[str]:
        settings = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        return ["-o", settings, "-l", str(self.folder / "server.log")]

    def restart(self, mode: str) -> None:
        """`pg_ctl restart -m fast` (sessions told and closed) or `-m immediate` (killed)."""
        self._pg_ctl("restart", "-m", mode, *self._server_options())

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._pg_ctl("stop", "-m", "immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
