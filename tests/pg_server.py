"""A throwaway PostgreSQL server for the tests: its own cluster in a temp folder, on loopback.

``initdb`` refuses to run as root, so under root the cluster belongs to an unprivileged user
(``nobody``) and every server process runs as that user. The server listens on 127.0.0.1 on
a free port with password authentication (so a wrong password is a real refusal), with fsync
off (a test cluster is thrown away, durability across power loss is not what is tested).

``tools/system_packages.sh`` installs the server binaries on a clean CI machine.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

USER = "forgekit"
PASSWORD = "forgekit-test"
DATABASE = "audit"
RUN_AS = "nobody"


class ServerUnavailable(RuntimeError):
    """No PostgreSQL server could be started here; the message says why."""


def bin_dir() -> Path:
    """The newest PostgreSQL server binaries on this machine (Debian's layout, else PATH)."""
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                         key=lambda p: int(Path(p).parent.name), reverse=True):
        if (Path(folder) / "initdb").exists():
            return Path(folder)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise ServerUnavailable("PostgreSQL server binaries (initdb, postgres) are not installed; "
                            "run tools/system_packages.sh as root (apt-get install postgresql)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgServer:
    """A running throwaway server; :attr:`dsn` connects as its superuser."""

    folder: Path
    port: int
    process: subprocess.Popen

    @property
    def dsn(self) -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    def stop(self) -> None:
        """Fast shutdown (SIGINT), SIGKILL if it hangs, then delete the cluster."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def start(*, durable: bool = False, timeout: float = 60.0) -> PgServer:
    """Create a cluster and start ``postgres`` on a free loopback port.

    ``durable=False`` turns fsync off (tests); benchmarks pass ``durable=True`` to measure the
    default, crash-safe settings.

    Raises:
        ServerUnavailable: no binaries, no unprivileged user to run as, or the server did not
            start (its log is included).
    """
    binaries = bin_dir()
    kwargs: dict = {}
    folder = Path(tempfile.mkdtemp(prefix="forgekit-pg-"))  # the system temp dir: world-traversable
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam(RUN_AS)
        except KeyError:
            shutil.rmtree(folder)
            raise ServerUnavailable(f"running as root and there is no {RUN_AS!r} user to run "
                                    "initdb as (it refuses root)") from None
        os.chown(folder, account.pw_uid, account.pw_gid)
        kwargs = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
    pwfile = folder / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if kwargs:
        os.chown(pwfile, kwargs["user"], kwargs["group"])
    data = folder / "data"
    init = subprocess.run(
        [str(binaries / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={pwfile}",
         "--auth-host=scram-sha-256", "--auth-local=trust", "--no-locale", "-E", "UTF8",
         "--no-sync"],
        cwd=folder, env=env, capture_output=True, text=True, **kwargs)
    if init.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise ServerUnavailable(f"initdb failed: {init.stderr.strip()[-800:]}")
    port = _free_port()
    settings = ["-c", "listen_addresses=127.0.0.1", "-c", f"port={port}",
                "-c", f"unix_socket_directories={folder}", "-c", "max_connections=60",
                "-c", "shared_buffers=16MB"]
    if not durable:
        settings += ["-c", "fsync=off", "-c", "synchronous_commit=off",
                     "-c", "full_page_writes=off"]
    log = open(folder / "server.log", "wb")  # noqa: SIM115 - the server writes it until stop()
    proc = subprocess.Popen([str(binaries / "postgres"), "-D", str(data), *settings],
                            cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, **kwargs)
    server = PgServer(folder, port, proc)
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        ready = subprocess.run(
            [str(binaries / "psql"), "-h", str(folder), "-p", str(port), "-U", USER,
             "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", f"CREATE DATABASE {DATABASE}"],
            cwd=folder, env=env, capture_output=True, text=True, **kwargs)
        if ready.returncode == 0:
            atexit.register(server.stop)  # also when the session dies before its teardown
            return server
        last = ready.stderr.strip()
        time.sleep(0.3)
    text = (folder / "server.log").read_text(errors="replace")[-1500:]
    server.stop()
    raise ServerUnavailable(f"postgres did not start: {last}\n{text}")
