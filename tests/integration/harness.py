"""Integration-test harness: real redis-server, real adsync-mock-api, real
adsync binaries, all on loopback ports picked at run time and stopped by the
test that started them.

Binaries come from $ADSYNC_BIN_DIR (set by ctest to <build>/bin). Every child
process is tracked and killed at exit, so a failing test leaves nothing behind.
"""
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

BIN_DIR = os.environ.get("ADSYNC_BIN_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "bin")

_children = []


def _reap_all():
    for p in _children:
        if p.poll() is None:
            p.kill()
            p.wait()


atexit.register(_reap_all)


def binpath(name):
    path = os.path.join(BIN_DIR, name)
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} is not built")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, what, interval=0.02):
    """Poll pred() until it is truthy; return its value or raise naming what."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def spawn(args, env=None, stdout=None, stderr=None, stdin=subprocess.DEVNULL):
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    p = subprocess.Popen(args, env=full_env, stdout=stdout, stderr=stderr, stdin=stdin)
    _children.append(p)
    return p


class TempDir:
    def __init__(self, tag="adsync"):
        self.path = tempfile.mkdtemp(prefix=f"{tag}-")

    def file(self, name):
        return os.path.join(self.path, name)

    def cleanup(self):
        shutil.rmtree(self.path, ignore_errors=True)


# --------------------------------------------------------------------------
# Redis: a throwaway redis-server and a minimal RESP client (no dependency).

class RedisError(Exception):
    pass


class RespClient:
    def __init__(self, port, timeout=10.0, auth=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        if auth:
            self.cmd("AUTH", *auth)

    def close(self):
        self.sock.close()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode("utf-8", "surrogateescape")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RedisError(f"bad RESP type {line!r}")

    @staticmethod
    def _encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        return b"".join(out)

    def cmd(self, *args):
        return self.pipeline([args])[0]

    def pipeline(self, commands):
        """Sends every command at once, then reads the replies in order."""
        self.sock.sendall(b"".join(self._encode(c) for c in commands))
        replies = [self._reply() for _ in commands]
        for r in replies:
            if isinstance(r, RedisError):
                raise r
        return replies


class Redis:
    """redis-server on a free port; data in its own temp dir."""

    def __init__(self, appendonly=False, aclfile=None, auth=None):
        """aclfile: users to load (--aclfile); auth: (user, password) for
        this object's own commands when the default user is off."""
        self.dir = TempDir("redis")
        self.port = free_port()
        self.appendonly = appendonly
        self.aclfile, self.auth = aclfile, auth
        self.proc = None
        self._client = None
        self.start()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--dir", self.dir.path, "--daemonize", "no",
                "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", "always", "--loglevel", "warning"]
        if self.aclfile:
            args += ["--aclfile", self.aclfile]
        self.proc = spawn(args, stdout=subprocess.DEVNULL)
        wait_until(self._ping, 10, f"redis-server on port {self.port}")

    def _ping(self):
        try:
            c = RespClient(self.port, timeout=1, auth=self.auth)
            ok = c.cmd("PING") == "PONG"
            c.close()
            return ok
        except OSError:
            return False

    def cmd(self, *args):
        return self.pipeline([args])[0]

    def pipeline(self, commands):
        if self._client is None:
            self._client = RespClient(self.port, auth=self.auth)
        try:
            return self._client.pipeline(commands)
        except (ConnectionError, OSError):
            self._client = None
            raise

    def stop(self, sig=signal.SIGTERM):
        if self._client:
            self._client.close()
            self._client = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)

    def restart(self):
        self.stop()
        self.start()

    def close(self):
        self.stop()
        self.dir.cleanup()


# --------------------------------------------------------------------------
# The mock ad platform.

class Mock:
    def __init__(self, *flags, verbose=False):
        self.port = free_port()
        self.flags = [str(f) for f in flags]
        self.log = TempDir("mock")
        self.proc = None
        self.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        with open(self.log.file("stdout"), "ab") as out:   # the child keeps its own copy
            self.proc = spawn([binpath("adsync-mock-api"), "--port", str(self.port)] + self.flags,
                              stdout=out, stderr=subprocess.STDOUT)
        wait_until(self._healthy, 10, f"mock-api on port {self.port}")

    def _healthy(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"mock-api exited with {self.proc.returncode}: {self.output()}")
        try:
            return self.request("GET", "/health")[0] == 200
        except OSError:
            return False

    def output(self):
        with open(self.log.file("stdout"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def request(self, method, path, body=None, headers=None, timeout=10):
        """Returns (status, headers, body bytes); never raises on HTTP errors."""
        data = body.encode() if isinstance(body, str) else body
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def stats(self):
        status, _, body = self.request("GET", "/admin/stats")
        assert status == 200, status
        return json.loads(body)

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)

    def close(self):
        self.stop()
        self.log.cleanup()


# --------------------------------------------------------------------------
# adsync programs.

def adsync_env(redis=None, mock=None, prefix=None, **extra):
    env = {"ADSYNC_LOG_FORMAT": "json"}
    if redis:
        env["REDIS_URL"] = redis.url
    if mock:
        env["AD_PLATFORM_URL"] = mock.url
    if prefix:
        env["ADSYNC_PREFIX"] = prefix
    env.update({k: str(v) for k, v in extra.items()})
    return env


def enqueue(args, env, input=None, timeout=60):
    """Run adsync-enqueue to completion; returns CompletedProcess (text)."""
    full_env = dict(os.environ)
    full_env.update(env)
    return subprocess.run([binpath("adsync-enqueue")] + list(args), env=full_env,
                          input=input, capture_output=True, text=True, timeout=timeout)


class Worker:
    """adsync-worker with its stderr captured to a file for log assertions."""

    def __init__(self, env, *args):
        self.dir = TempDir("worker")
        self.logpath = self.dir.file("stderr")
        with open(self.logpath, "wb") as logf:   # the child keeps its own copy
            self.proc = spawn([binpath("adsync-worker")] + list(args), env=env,
                              stdout=logf, stderr=logf)

    def log(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait(self, timeout):
        return self.proc.wait(timeout=timeout)

    def signal(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.dir.cleanup()
