"""A throwaway PostgreSQL server for the distributed tests (loopback only, stopped afterwards)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """``postgresql://nas@127.0.0.1:PORT/postgres`` of a server started in a temp folder with initdb + pg_ctl.

    Skips when the binaries or the psycopg2 driver are missing. As root (initdb refuses root) the
    server runs as the ``postgres`` user.
    """
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not on PATH; install Debian's postgresql package")
    pytest.importorskip("psycopg2", reason="the PostgreSQL test needs psycopg2-binary (the test extra)")
    kw: dict[str, Any] = {}
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        kw["user"] = "postgres"
    root = tempfile.mkdtemp(prefix="nas-pg-")
    os.chmod(root, 0o777)
    data = os.path.join(root, "data")
    port = _free_port()
    init = subprocess.run([initdb, "-D", data, "-U", "nas", "--auth=trust", "-E", "UTF8", "--no-sync"],
                          capture_output=True, text=True, **kw)
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"initdb failed: {init.stderr.strip()[-300:]}")
    opts = f"-p {port} -h 127.0.0.1 -k {root} -c fsync=off -c max_connections=50"
    start = subprocess.run([pg_ctl, "-D", data, "-l", os.path.join(root, "log"), "-w", "-o", opts, "start"],
                           capture_output=True, text=True, **kw)
    if start.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"the PostgreSQL server did not start: {start.stderr.strip()[-300:]}")
    try:
        yield f"postgresql://nas@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"], capture_output=True, **kw)
        shutil.rmtree(root, ignore_errors=True)
