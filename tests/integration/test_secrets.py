"""Sealed credentials (issue: credentials sealed at rest): passwords and
cached tokens are sealed with the key in ADSYNC_SECRET_KEY_FILE; no
plaintext in Redis, its AOF or MONITOR; values that cannot be opened are
dead-lettered and never sent; key files are checked; rotation and migration
of stored clients. Real redis-server, real mock, real workers and CLI."""
import json
import os
import re
import signal
import socket
import stat
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import TempDir, enqueue, wait_until  # noqa: E402
import workerlib as wl  # noqa: E402

CLEAN = ("--sync-latency-ms", 0, "--rate-limit", 0, "--fail-every", 0, "--hang-every", 0)


class Monitor:
    """Everything Redis executes while it runs (MONITOR on a raw socket)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(b"*1\r\n$7\r\nMONITOR\r\n")
        self.chunks = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            self.chunks.append(data)

    def text(self):
        self.sock.close()
        self.thread.join(5)
        return b"".join(self.chunks).decode("utf-8", "replace")


def readable_memory(pid):
    """(mapping line, bytes) of a live process's readable mappings; the
    sanitizer's huge shadow mappings are skipped."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            addr, perms = line.split()[:2]
            start, end = (int(x, 16) for x in addr.split("-"))
            if not perms.startswith("r") or end - start > (256 << 20) or "[vvar]" in line:
                continue
            try:
                mem.seek(start)
                yield line, mem.read(end - start)
            except (OSError, ValueError, OverflowError):
                continue


def found_in_memory(pid, needles):
    """Which needles (bytes) a live process's memory holds. Returns (found,
    bytes read)."""
    found, total = set(), 0
    for _, data in readable_memory(pid):
        total += len(data)
        found |= {n for n in needles if n in data}
    return found, total


def copies_in_memory(pid, needle):
    """Each place needle is found: (mapping line, the 40 bytes before it)."""
    hits = []
    for line, data in readable_memory(pid):
        at = data.find(needle)
        while at >= 0:
            hits.append((line.strip(), data[max(0, at - 40):at]))
            at = data.find(needle, at + 1)
    return hits


class SecretsTest(wl.SystemTest):
    redis_aof = True

    def setUp(self):
        super().setUp()
        self.dir = TempDir("keys")

    def tearDown(self):
        self.dir.cleanup()
        super().tearDown()

    def keygen(self, name):
        path = self.dir.file(name)
        r = enqueue(["secrets", "keygen", path], {})
        self.assertEqual(r.returncode, 0, r.stderr)
        return path, re.search(r"wrote key ([0-9a-f]{16})", r.stdout).group(1)

    def env(self, mock, key=None, previous=None, **extra):
        env = wl.fast_env(self.redis, mock, **extra)
        if key:
            env["ADSYNC_SECRET_KEY_FILE"] = key
        if previous:
            env["ADSYNC_SECRET_PREVIOUS_KEY_FILE"] = previous
        return env

    def add_clients(self, env, n, start=1):
        for i in range(start, start + n):
            cid = f"client_{i}"
            r = enqueue(["client", "add", cid, "--email", f"{cid}@example.test"], env,
                        input=f"secret-{cid}\n")
            self.assertEqual(r.returncode, 0, r.stderr)
        return [f"client_{i}" for i in range(start, start + n)]

    def sync_and_drain(self, env, ids, *flags):
        r = enqueue(["sync", *flags, *ids], env)
        self.assertEqual(r.returncode, 0, r.stderr)
        w = self.worker(env, "--drain")
        self.assertEqual(w.wait(60), 0, w.log()[-3000:])
        return w

    def password(self, cid):
        return self.redis.cmd("HGET", f"adsync:client:{cid}", "password")

    def dead_reasons(self, env):
        r = enqueue(["dead", "list", "--json"], env)
        return {d.get("client"): d.get("last_error", "") for d in json.loads(r.stdout)["dead"]}

    def everything_in_redis(self):
        """Every key and value, as one text."""
        out = []
        for key in self.redis.cmd("KEYS", "*"):
            kind = self.redis.cmd("TYPE", key)
            if kind == "string":
                v = [self.redis.cmd("GET", key)]
            elif kind == "hash":
                v = self.redis.cmd("HGETALL", key)
            elif kind == "list":
                v = self.redis.cmd("LRANGE", key, 0, -1)
            elif kind == "set":
                v = self.redis.cmd("SMEMBERS", key)
            elif kind == "zset":
                v = self.redis.cmd("ZRANGE", key, 0, -1)
            else:
                v = []
            out.append(key + "\n" + "\n".join(str(x) for x in v))
        return "\n".join(out)

    def aof_text(self):
        data = b""
        for root, _, files in os.walk(self.redis.dir.path):
            for f in files:
                if ".aof" in f:
                    with open(os.path.join(root, f), "rb") as fh:
                        data += fh.read()
        self.assertGreater(len(data), 0, "the AOF was written")
        return data.decode("utf-8", "replace")

    # ---------------------------------------------------------------------------

    def test_sealed_sync_leaves_no_plaintext_in_redis_aof_or_monitor(self):
        """3 clients sealed at `client add`, synced by a worker with the key:
        neither a password nor a token the platform issued appears in any
        Redis key or value, in the AOF, or in MONITOR output of the run."""
        mock = self.mock("--clients", 3, "--campaigns", 25, *CLEAN)
        key, kid = self.keygen("k")
        env = self.env(mock, key)
        monitor = Monitor(self.redis.port)
        ids = self.add_clients(env, 3)
        for cid in ids:
            self.assertTrue(self.password(cid).startswith(f"sealed:v1:{kid}:"), self.password(cid))
        self.sync_and_drain(env, ids)
        for cid in ids:
            wl.check_invariant(self, self.redis, cid, 25)
            self.assertTrue(self.redis.cmd("GET", f"adsync:client:{cid}:token").startswith(f"sealed:v1:{kid}:"))
        self.redis.cmd("BGREWRITEAOF")   # the rewritten file too
        wait_until(lambda: self.redis.cmd("INFO", "persistence").find("aof_rewrite_in_progress:0") >= 0,
                   10, "the AOF rewrite")
        issued = json.loads(mock.request("GET", "/admin/tokens")[2])["tokens"]
        tokens = [t for cid in ids for t in issued[cid]]
        self.assertEqual(len(tokens), 3, "one login per client")
        secrets = [f"secret-{cid}" for cid in ids] + tokens
        places = {"redis": self.everything_in_redis(), "aof": self.aof_text(), "monitor": monitor.text()}
        self.assertIn("sealed:v1:", places["monitor"], "MONITOR saw the run")
        for where, text in places.items():
            for s in secrets:
                self.assertNotIn(s, text, f"plaintext secret in {where}")

    def test_no_plaintext_password_stays_in_the_worker_and_no_core_files(self):
        """After a sealed sync the worker's memory holds no client password
        (opened only to log in, then wiped), and it can leave no core file."""
        mock = self.mock("--clients", 3, "--campaigns", 5, *CLEAN)
        key, _ = self.keygen("k")
        env = self.env(mock, key)
        ids = self.add_clients(env, 3)
        w = self.worker(env)
        self.assertEqual(enqueue(["sync", *ids], env).returncode, 0)
        wl.wait_runs_done(self.redis, ids, 30, workers=[w])
        with open(f"/proc/{w.proc.pid}/limits") as f:
            core = next(line for line in f if line.startswith("Max core file size"))
        self.assertEqual(core.split()[4:6], ["0", "0"], core)
        found, scanned = found_in_memory(w.proc.pid, [f"secret-{cid}".encode() for cid in ids])
        self.assertGreater(scanned, 1 << 20)
        self.assertEqual(found, set(), "client passwords in the worker's memory")

    def test_the_redis_password_is_kept_once(self):
        """Hardening row 10, the Redis password: the environment forgets it,
        the configuration keeps one copy (what reconnects use), the log's
        masking list keeps it XOR a pad, AUTH is formatted in a buffer that
        is wiped. What is left: that one copy, plus, in a release build,
        hiredis's freed output buffer of each connection (two) until malloc
        reuses it. The sanitizer build fills freed memory here, so only live
        copies count; its runtime's own snapshot of the initial environment
        (read before main) is not the program's and is told apart by the
        "REDIS_URL=" in front of it."""
        mock = self.mock("--clients", 3, "--campaigns", 5, *CLEAN)
        password = "Rp-" + os.urandom(12).hex()
        self.redis.cmd("CONFIG", "SET", "requirepass", password)
        env = wl.fast_env(self.redis, mock)
        env["REDIS_URL"] = f"redis://:{password}@127.0.0.1:{self.redis.port}/0"
        env["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "detect_leaks=1") + \
            ":max_free_fill_size=1048576:free_fill_byte=0"
        ids = wl.register_clients(self.redis, 3)
        w = self.worker(env)
        self.assertEqual(enqueue(["sync", *ids], env).returncode, 0)
        wl.wait_runs_done(self.redis, ids, 30, workers=[w])
        with open(f"/proc/{w.proc.pid}/environ", "rb") as f:
            self.assertNotIn(password.encode(), f.read())
        with open(f"/proc/{w.proc.pid}/maps") as f:
            sanitized = "libasan" in f.read()
        hits = copies_in_memory(w.proc.pid, password.encode())
        ours = [h for h in hits if not (sanitized and h[1].endswith(b"REDIS_URL=redis://:"))]
        self.assertGreaterEqual(len(ours), 1, "the copy reconnects use")
        self.assertLessEqual(len(ours), 1 if sanitized else 3, ours)

    def test_values_that_cannot_be_opened_are_dead_lettered_and_never_sent(self):
        """Wrong key, tampered value, a value swapped from another client: each
        client's job is dead-lettered with "credentials cannot be opened (key
        id ...)" and the platform sees no request from it."""
        mock = self.mock("--clients", 4, "--campaigns", 5, *CLEAN)
        key, kid = self.keygen("k")
        other, other_kid = self.keygen("other")
        env = self.env(mock, key)
        ids = self.add_clients(env, 4)
        self.add_clients(self.env(mock, other), 1, start=1)                # client_1: another key
        tampered = self.password("client_2")
        tampered = tampered[:-6] + ("A" if tampered[-6] != "A" else "B") + tampered[-5:]
        self.redis.cmd("HSET", "adsync:client:client_2", "password", tampered)
        self.redis.cmd("HSET", "adsync:client:client_3", "password", self.password("client_4"))  # swapped
        self.sync_and_drain(env, ids)
        reasons = self.dead_reasons(env)
        self.assertIn(f"credentials cannot be opened (key id {other_kid})", reasons["client_1"])
        self.assertIn(f"credentials cannot be opened (key id {kid})", reasons["client_2"])
        self.assertIn(f"credentials cannot be opened (key id {kid})", reasons["client_3"])
        stats = mock.stats()["clients"]
        for cid in ("client_1", "client_2", "client_3"):
            sent = sum(sum(codes.values()) for codes in stats[cid]["requests"].values())
            self.assertEqual(sent, 0, f"{cid} reached the platform")
        wl.check_invariant(self, self.redis, "client_4", 5)

    def test_plaintext_is_refused_then_migrated(self):
        """Clients stored in plain text (no key at `client add`): a worker with
        a key dead-letters them naming the fix, unless plain text is allowed;
        `secrets migrate` seals them all and the next sync works."""
        mock = self.mock("--clients", 3, "--campaigns", 5, *CLEAN)
        key, kid = self.keygen("k")
        plain_env, env = self.env(mock), self.env(mock, key)
        ids = self.add_clients(plain_env, 3)
        self.assertEqual(self.password("client_1"), "secret-client_1")
        self.sync_and_drain(env, ["client_1"])
        self.assertIn("adsync-enqueue secrets migrate", self.dead_reasons(env)["client_1"])
        self.sync_and_drain(self.env(mock, key, ADSYNC_ALLOW_PLAINTEXT_CREDENTIALS=1), ["client_2"])
        wl.check_invariant(self, self.redis, "client_2", 5)
        self.redis.cmd("SET", "adsync:client:client_3:token", "plain-token")
        r = enqueue(["secrets", "migrate"], env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("sealed 3 passwords", r.stdout)
        self.assertIsNone(self.redis.cmd("GET", "adsync:client:client_3:token"), "plain token dropped")
        status = json.loads(enqueue(["secrets", "status", "--json"], env).stdout)
        self.assertEqual(status["current_key"], kid)
        self.assertEqual(status["passwords"], {kid: 3, "plain": 0})
        self.assertEqual(enqueue(["secrets", "migrate"], env).stdout.split()[1], "0", "idempotent")
        self.sync_and_drain(env, ids, "--force")
        for cid in ids:
            wl.check_invariant(self, self.redis, cid, 5)

    def test_bad_key_files_stop_both_programs_with_78(self):
        mock = self.mock("--clients", 1, *CLEAN)
        key, _ = self.keygen("k")
        r = enqueue(["secrets", "keygen", key], {})
        self.assertEqual(r.returncode, 73, "an existing key is never overwritten")
        self.assertEqual(stat.S_IMODE(os.stat(key).st_mode), 0o600)
        loose = self.dir.file("loose")
        with open(loose, "wb") as f:
            f.write(os.urandom(32))
        os.chmod(loose, 0o644)
        short = self.dir.file("short")
        with open(short, "wb") as f:
            f.write(b"0123456789abcdef")
        os.chmod(short, 0o600)
        cases = [(loose, "lets group or others read it"), (short, "expected exactly 32 bytes"),
                 (self.dir.file("missing"), "No such file")]
        for path, why in cases:
            with self.subTest(path=path):
                env = self.env(mock, path)
                r = enqueue(["status"], env)
                self.assertEqual(r.returncode, 78, r.stderr)
                self.assertIn(f"ADSYNC_SECRET_KEY_FILE: key file {path}: ", r.stderr)
                self.assertIn(why, r.stderr)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1)
                w = self.worker(env)
                self.assertEqual(w.wait(10), 78)
                self.assertIn(why, w.log())
        creds = self.dir.file("creds")
        os.mkdir(creds)
        os.rename(key, os.path.join(creds, "adsync-secret-key"))
        r = enqueue(["secrets", "status"], dict(self.env(mock), CREDENTIALS_DIRECTORY=creds))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("none configured", r.stdout, "the systemd credential is the key")

    def test_rotation_while_two_workers_sync(self):
        """Key A, then B with A as the previous key, workers restarted one by
        one mid-run and `secrets rotate`: no run fails; then A is removed
        and syncing still works."""
        mock = self.mock("--clients", 4, "--campaigns", 60, "--sync-latency-ms", 100, "--rate-limit", 0,
                         "--fail-every", 0, "--hang-every", 0)
        key_a, _ = self.keygen("a")
        key_b, kid_b = self.keygen("b")
        env_a, env_ab, env_b = self.env(mock, key_a), self.env(mock, key_b, key_a), self.env(mock, key_b)
        ids = self.add_clients(env_a, 4)
        workers = [self.worker(env_a, "--concurrency", "2") for _ in range(2)]
        self.assertEqual(enqueue(["sync", *ids], env_a).returncode, 0)
        for i in range(2):   # rolling restart onto the new key ring
            wait_until(lambda: sum(int(wl.last_run(self.redis, c)[1].get("synced", 0)) for c in ids) > 20 * (i + 1),
                       30, "some progress")
            workers[i].signal(signal.SIGTERM)
            self.assertEqual(workers[i].wait(30), 0, workers[i].log()[-2000:])
            workers[i] = self.worker(env_ab, "--concurrency", "2")
        self.assertTrue(any(wl.last_run(self.redis, c)[1]["state"] != "done" for c in ids), "still syncing")
        r = enqueue(["secrets", "rotate"], env_ab)
        self.assertEqual(r.returncode, 0, r.stderr)
        status = json.loads(enqueue(["secrets", "status", "--json"], env_ab).stdout)
        self.assertEqual(status["passwords"], {kid_b: 4, "plain": 0})
        wl.wait_runs_done(self.redis, ids, 60, workers=workers)
        for w in workers:
            w.signal(signal.SIGTERM)
            self.assertEqual(w.wait(30), 0)
        for cid in ids:
            run = wl.check_invariant(self, self.redis, cid, 60)
            self.assertEqual(int(run["dead"]), 0, run)
        self.sync_and_drain(env_b, ids, "--force")   # A is gone
        for cid in ids:
            run = wl.check_invariant(self, self.redis, cid, 60)
            self.assertEqual(int(run["dead"]), 0, run)
        self.assertEqual(self.redis.cmd("LLEN", "adsync:dead"), 0)


if __name__ == "__main__":
    unittest.main()
