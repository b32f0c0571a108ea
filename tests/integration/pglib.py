"""A throwaway PostgreSQL server for the sink's tests and bench (DESIGN.md
section 10): initdb into its own temp directory, a free loopback port, the
unix socket in that directory, run as an unprivileged user (PostgreSQL refuses
root; under root the files belong to `nobody`, or to a system user created
with useradd when `nobody` is missing), fsync off. Stopped (and its files
removed) by close(); every child is also killed by harness at exit.

TCP needs a password (scram-sha-256), so the URL the worker gets carries one;
psql, for the assertions, comes in through the socket (trust)."""
import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile

import harness
from harness import free_port, wait_until

FALLBACK_USER = "adsync-pg"


def bindir():
    """The newest /usr/lib/postgresql/<v>/bin with a server (or $ADSYNC_PG_BINDIR)."""
    wanted = os.environ.get("ADSYNC_PG_BINDIR")
    dirs = [wanted] if wanted else sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                                          key=lambda d: int(d.split("/")[-2]) if d.split("/")[-2].isdigit() else 0)
    for d in reversed(dirs):
        if os.access(os.path.join(d, "postgres"), os.X_OK):
            return d
    raise RuntimeError("PostgreSQL server not found in /usr/lib/postgresql/*/bin "
                       "(deploy/install-deps.sh test installs it)")


def _server_user():
    """(uid, gid) to run the server as: ourselves unless we are root."""
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid()
    for name in ("nobody", FALLBACK_USER):
        try:
            pw = pwd.getpwnam(name)
            return pw.pw_uid, pw.pw_gid
        except KeyError:
            pass
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    FALLBACK_USER], check=True)
    pw = pwd.getpwnam(FALLBACK_USER)
    return pw.pw_uid, pw.pw_gid


class Postgres:
    def __init__(self):
        self.bin = bindir()
        self.uid, self.gid = _server_user()
        self.dir = tempfile.mkdtemp(prefix="adsync-pg-")
        os.chmod(self.dir, 0o700)
        os.chown(self.dir, self.uid, self.gid)
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.password = "pw-" + secrets.token_hex(8)
        self.proc = None
        self._initdb()
        self.start()

    def _as_server_user(self, args, **kw):
        return subprocess.run(args, user=self.uid, group=self.gid, cwd=self.dir, **kw)

    def _initdb(self):
        pwfile = os.path.join(self.dir, "pwfile")
        with open(pwfile, "w") as f:
            f.write(self.password + "\n")
        os.chown(pwfile, self.uid, self.gid)
        r = self._as_server_user([os.path.join(self.bin, "initdb"), "-D", self.data, "-U", "postgres",
                                  "--pwfile", pwfile, "--auth-local=trust", "--auth-host=scram-sha-256",
                                  "--encoding=UTF8", "--no-locale", "--no-sync"],
                                 capture_output=True, text=True)
        os.unlink(pwfile)
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed: {r.stdout}{r.stderr}")

    def url(self, db="postgres"):
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/{db}"

    def start(self):
        log = open(os.path.join(self.dir, "server.log"), "ab")
        self.proc = subprocess.Popen(
            [os.path.join(self.bin, "postgres"), "-D", self.data, "-p", str(self.port), "-k", self.dir,
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "shared_buffers=32MB", "-c", "max_connections=50"],
            user=self.uid, group=self.gid, cwd=self.dir, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        log.close()
        harness._children.append(self.proc)
        wait_until(self._ready, 30, f"postgres on port {self.port}", interval=0.1)

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"postgres exited with {self.proc.returncode}: {self.log()[-2000:]}")
        r = subprocess.run([os.path.join(self.bin, "pg_isready"), "-q", "-h", self.dir, "-p", str(self.port)])
        return r.returncode == 0

    def log(self):
        try:
            with open(os.path.join(self.dir, "server.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        """Fast shutdown: clients are disconnected, nothing is lost."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=30)

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def psql(self, sql, db="postgres", check=True):
        """Runs sql through the socket; returns stdout (unaligned, tuples only)."""
        r = subprocess.run([os.path.join(self.bin, "psql"), "-X", "-q", "-h", self.dir, "-p", str(self.port),
                            "-U", "postgres", "-d", db, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
                           capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(f"psql failed ({r.returncode}): {r.stderr}")
        return r.stdout.rstrip("\n")

    def create_db(self, name):
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)
