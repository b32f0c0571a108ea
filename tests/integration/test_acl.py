"""Least-privilege Redis users (deploy/redis-users.acl, issue: credentials
sealed at rest): a real redis-server loaded with the shipped rules (fresh
passwords from deploy/redis-users.sh); the worker and adsync-enqueue run a
whole sealed sync as their own users; the autoscaler can only LLEN the jobs
list; the inspector reads and cannot write; the default user is off."""
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Redis, RedisError, RespClient, TempDir, enqueue  # noqa: E402
import workerlib as wl  # noqa: E402

DEPLOY = os.path.join(os.path.dirname(__file__), "..", "..", "deploy")


class AclTest(wl.SystemTest):
    def setUp(self):
        self.dir = TempDir("acl")
        subprocess.run(["bash", os.path.join(DEPLOY, "redis-users.sh"), self.dir.path], check=True)
        with open(self.dir.file("redis-passwords")) as f:
            self.passwords = dict(line.split() for line in f)
        acl = self.dir.file("redis-users.acl")
        with open(acl, "a") as f:   # the test's own view of the data, outside the roles
            f.write("user test-admin on >test-admin-pw ~* &* +@all\n")
        self.start_all(Redis(aclfile=acl, auth=("test-admin", "test-admin-pw")))

    def tearDown(self):
        super().tearDown()
        self.dir.cleanup()

    def url(self, user):
        return f"redis://{user}:{self.passwords[user]}@127.0.0.1:{self.redis.port}/0"

    def client_as(self, user):
        return RespClient(self.redis.port, auth=(user, self.passwords[user]))

    def test_roles_run_a_sealed_sync_and_nothing_more(self):
        mock = self.mock("--clients", 2, "--campaigns", 30, "--sync-latency-ms", 0, "--rate-limit", 0,
                         "--fail-every", 3, "--hang-every", 0, "--error-rate", 0.1, "--seed", 5)
        key = self.dir.file("secret.key")
        self.assertEqual(enqueue(["secrets", "keygen", key], {}).returncode, 0)
        enq = wl.fast_env(self.redis, mock, ADSYNC_SECRET_KEY_FILE=key, REDIS_URL=self.url("adsync-enqueue"))
        wrk = dict(enq, REDIS_URL=self.url("adsync-worker"))
        for cid in ("client_1", "client_2"):
            r = enqueue(["client", "add", cid, "--email", f"{cid}@example.test"], enq, input=f"secret-{cid}\n")
            self.assertEqual(r.returncode, 0, r.stderr)
        workers = [self.worker(wrk) for _ in range(2)]
        r = enqueue(["sync", "--all", "--wait"], enq, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for cid in ("client_1", "client_2"):
            wl.check_invariant(self, self.redis, cid, 30)
        status = json.loads(enqueue(["status", "--json"], enq).stdout)
        self.assertEqual(sum(1 for w in status["workers"] if w.get("alive")), 2, status["workers"])
        for args in (["client", "list"], ["dead", "list"], ["secrets", "status"], ["secrets", "rotate"]):
            r = enqueue(args, enq)
            self.assertEqual(r.returncode, 0, (args, r.stderr))
        for w in workers:
            w.signal(15)
            self.assertEqual(w.wait(30), 0, w.log()[-2000:])
            self.assertNotIn("NOPERM", w.log())

        scaler = self.client_as("adsync-autoscaler")
        self.assertEqual(scaler.cmd("LLEN", "adsync:jobs"), 0)
        for cmd in (("HGETALL", "adsync:client:client_1"), ("LLEN", "adsync:dead"), ("GET", "adsync:jobs"),
                    ("LPUSH", "adsync:jobs", "x")):
            with self.assertRaisesRegex(RedisError, "NOPERM", msg=cmd):
                scaler.cmd(*cmd)

        inspector = self.client_as("adsync-inspector")
        self.assertTrue(inspector.cmd("HGET", "adsync:client:client_1", "password").startswith("sealed:v1:"))
        self.assertEqual(inspector.cmd("HLEN", "adsync:client:client_1:campaigns"), 30)
        for cmd in (("SET", "adsync:x", "1"), ("DEL", "adsync:jobs"), ("HSET", "adsync:client:client_1", "a", "b"),
                    ("KEYS", "*"), ("FLUSHALL",), ("CONFIG", "GET", "*")):
            with self.assertRaisesRegex(RedisError, "NOPERM", msg=cmd):
                inspector.cmd(*cmd)

        self.check_console(enq)

        worker_conn = self.client_as("adsync-worker")
        for cmd in (("FLUSHALL",), ("KEYS", "*"), ("GET", "other:key"), ("CONFIG", "GET", "*")):
            with self.assertRaisesRegex(RedisError, "NOPERM", msg=cmd):
                worker_conn.cmd(*cmd)
        anonymous = RespClient(self.redis.port)
        with self.assertRaisesRegex(RedisError, "NOAUTH|WRONGPASS|NOPERM"):
            anonymous.cmd("GET", "adsync:jobs")   # the default user is off
        for c in (scaler, inspector, worker_conn, anonymous):
            c.close()

    def check_console(self, enq):
        """The console as adsync-console: every view and action works, and
        the user cannot read a client's credentials hash or token at all."""
        from test_web import Console, dead_letter
        self.redis.cmd("LPUSH", "adsync:dead", dead_letter("a" * 32, "client_1", "campaign_1", "HTTP 400"))
        self.redis.cmd("ZADD", "adsync:retry", 1, dead_letter("b" * 32, "client_2", "campaign_2", "HTTP 503"))
        console = Console(dict(enq, REDIS_URL=self.url("adsync-console")))
        try:
            run = self.redis.cmd("GET", "adsync:client:client_1:last_run")
            for path in ("/api/status", "/api/clients?q=client", "/api/activity", "/api/dead", "/api/retry",
                         f"/api/run?id={run}"):
                status, body = console.get(path)
                self.assertEqual(status, 200, (path, body))
            self.assertEqual(len(json.loads(console.get("/api/run?id=" + run)[1])["campaigns"]), 30)
            csrf = console.get("/")[1].decode().split('name="csrf-token" content="')[1].split('"')[0]
            headers = {"X-CSRF-Token": csrf, "Origin": console.url, "Content-Type": "application/json"}
            for path, body in (("/api/sync", {"client": "client_2"}), ("/api/retry/now", {"all": True}),
                               ("/api/dead/retry", {"all": True}), ("/api/dead/purge", {})):
                status, answer = console.request("POST", path, json.dumps(body).encode(), headers)
                self.assertEqual(status, 200, (path, answer))
            due = self.redis.cmd("ZSCORE", "adsync:retry", dead_letter("b" * 32, "client_2", "campaign_2", "HTTP 503"))
            self.assertGreater(float(due), time.time() * 1000 - 60000, "retry now made it due now")
            self.assertEqual(self.redis.cmd("LLEN", "adsync:dead"), 0)
        finally:
            console.close()
        conn = self.client_as("adsync-console")
        for cmd in (("HGETALL", "adsync:client:client_1"), ("GET", "adsync:client:client_1:token"),
                    ("HGET", "adsync:client:client_1", "password")):
            with self.assertRaisesRegex(RedisError, "NOPERM", msg=cmd):
                conn.cmd(*cmd)
        conn.close()


if __name__ == "__main__":
    unittest.main()
