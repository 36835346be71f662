"""A PostgreSQL server of a test's own, so the test can stop and restart it: initdb into a fresh
folder, a free port on 127.0.0.1, Debian's binaries (/usr/lib/postgresql/<version>/bin). As root,
the server runs as the `postgres` user (PostgreSQL refuses to run as root)."""

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.harness import free_port


def postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


class PostgresServer:
    def __init__(self) -> None:
        self.bin = postgres_bin()
        if self.bin is None:
            if os.environ.get("CI") == "true":
                pytest.fail("PostgreSQL's server binaries (pg_ctl, initdb) are needed for the restart tests")
            pytest.skip("no PostgreSQL server binaries (pg_ctl, initdb)")
        # Not under pytest's tmp_path: as root that is private to root, and the server runs as postgres.
        self.folder = Path(tempfile.mkdtemp(prefix="gs-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")

    @property
    def url(self) -> str:
        """The admin URL (tests/databases.py creates each test's databases through it)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> "PostgresServer":
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.folder}"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "30", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        """`fast` disconnects every client and shuts down cleanly; `immediate` is a crash."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop", check=False)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)

    def _run(self, program: str, *args: str, check: bool = True) -> None:
        command = [str(self.bin / program), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=check, capture_output=True, timeout=120, cwd=self.folder)
