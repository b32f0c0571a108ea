"""Integration tests for adsync-enqueue (DESIGN.md §8) against a real
redis-server: every subcommand, the bad inputs with their exit codes, dedup
under concurrent schedulers, --wait against a simulated worker, and that a
client password never shows up in any output or in /proc while it runs.

The "worker" here is the test itself editing run hashes, so no other binary
is needed.
"""
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Redis, adsync_env, binpath, enqueue, free_port, wait_until  # noqa: E402

EX_USAGE, EX_DATAERR, EX_UNAVAILABLE, EX_CONFIG = 64, 65, 69, 78
PASSWORD = "Pa55-very-secret-xyzzy"


def jobs_of(redis, prefix="adsync"):
    return [json.loads(j) for j in redis.cmd("LRANGE", f"{prefix}:jobs", 0, -1)]


def hgetall(redis, key):
    flat = redis.cmd("HGETALL", key)
    return dict(zip(flat[::2], flat[1::2]))


class EnqueueTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = Redis()
        cls.env = adsync_env(redis=cls.redis)

    @classmethod
    def tearDownClass(cls):
        cls.redis.close()

    def setUp(self):
        self.redis.cmd("FLUSHALL")

    # -- helpers ---------------------------------------------------------------

    def run_enq(self, *args, input=None, env=None, rc=0):
        e = dict(self.env)
        e.update(env or {})
        p = enqueue(list(args), e, input=input)
        if rc is not None:
            self.assertEqual(p.returncode, rc, f"{args}: rc {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    def add_client(self, cid, password=PASSWORD, *flags):
        return self.run_enq("client", "add", cid, "--email", f"{cid}@example.test", *flags,
                            input=password + "\n")

    def add_clients(self, n, prefix="c"):
        ids = [f"{prefix}{i:03d}" for i in range(n)]
        for cid in ids:
            self.redis.cmd("SADD", "adsync:clients", cid)
            self.redis.cmd("HSET", f"adsync:client:{cid}", "email", f"{cid}@x.test", "password", "pw")
        return ids

    def last_run(self, cid):
        return self.redis.cmd("GET", f"adsync:client:{cid}:last_run")

    def set_run(self, run, **fields):
        args = []
        for k, v in fields.items():
            args += [k, str(v)]
        self.redis.cmd("HSET", f"adsync:run:{run}", *args)

    # -- client add / list / remove --------------------------------------------

    def test_client_add_stores_credentials_and_settings(self):
        p = self.run_enq("client", "add", "acme", "--email", "ops@acme.test", "--api-url",
                         "http://127.0.0.1:3001/", "--rate-limit", "25", "--page-size", "50",
                         input=PASSWORD + "\r\n")
        self.assertEqual(p.stdout.strip(), "added client acme")
        self.assertEqual(p.stderr, "", "no prompt or noise when stdin is a pipe")
        h = hgetall(self.redis, "adsync:client:acme")
        self.assertEqual(h, {"email": "ops@acme.test", "password": PASSWORD,
                             "api_url": "http://127.0.0.1:3001", "rate_limit": "25",
                             "page_size": "50"})
        self.assertEqual(self.redis.cmd("SMEMBERS", "adsync:clients"), ["acme"])
        # Re-adding replaces every setting and drops the cached token.
        self.redis.cmd("SET", "adsync:client:acme:token", "tok")
        p = self.run_enq("client", "add", "acme", "--email", "new@acme.test", input="pw2\n")
        self.assertEqual(p.stdout.strip(), "updated client acme")
        self.assertEqual(hgetall(self.redis, "adsync:client:acme"),
                         {"email": "new@acme.test", "password": "pw2"})
        self.assertEqual(self.redis.cmd("EXISTS", "adsync:client:acme:token"), 0)

    def test_client_add_rejects_bad_input(self):
        cases = [
            (["bad id!", "--email", "a@x"], PASSWORD, EX_DATAERR, "invalid client id"),
            (["-leadingdash", "--email", "a@x"], PASSWORD, None, None),  # parsed as an option
            (["acme", "--email", "a@x"], "\n", EX_DATAERR, "password is empty"),
            (["acme", "--email", "a@x"], "", EX_DATAERR, "password is empty"),
            (["acme", "--email", "a@x", "--api-url", "ftp://x"], PASSWORD, EX_DATAERR, "--api-url"),
            (["acme", "--email", "a@x", "--api-url", "http://u:p@h/"], PASSWORD, EX_DATAERR, "--api-url"),
            (["acme", "--email", ""], PASSWORD, EX_DATAERR, "--email"),
            (["acme", "--email", "a\x01b"], PASSWORD, EX_DATAERR, "--email"),
            (["acme", "--email", "a@x", "--rate-limit", "0"], PASSWORD, EX_DATAERR, "--rate-limit"),
            (["acme", "--email", "a@x", "--rate-limit", "12x"], PASSWORD, EX_DATAERR, "--rate-limit"),
            (["acme"], PASSWORD, EX_USAGE, "missing --email"),
            ([], PASSWORD, EX_USAGE, "missing client ID"),
            (["acme", "--email", "a@x", "--frobnicate"], PASSWORD, EX_USAGE, "unknown option"),
        ]
        for args, pw, rc, msg in cases:
            with self.subTest(args=args):
                p = self.run_enq("client", "add", *args, input=pw, rc=None)
                if rc is None:
                    self.assertIn(p.returncode, (EX_USAGE, EX_DATAERR))
                    continue
                self.assertEqual(p.returncode, rc, p.stderr)
                self.assertIn(msg, p.stderr)
                self.assertEqual(len(p.stderr.strip().splitlines()), 1 if rc == EX_DATAERR else 2)
                self.assertNotIn(PASSWORD, p.stdout + p.stderr)
        self.assertEqual(self.redis.cmd("KEYS", "*"), [], "a rejected add writes nothing")

    def test_client_list_text_and_json_without_passwords(self):
        self.add_client("beta")
        self.add_client("acme", PASSWORD, "--api-url", "https://api.example.test", "--rate-limit", "7")
        p = self.run_enq("client", "list")
        lines = p.stdout.splitlines()
        self.assertTrue(lines[0].startswith("ID"))
        self.assertTrue(lines[1].startswith("acme") and "https://api.example.test" in lines[1])
        self.assertTrue(lines[2].startswith("beta"))
        doc = json.loads(self.run_enq("client", "list", "--json").stdout)
        self.assertEqual([c["id"] for c in doc["clients"]], ["acme", "beta"])
        self.assertEqual(doc["clients"][0]["rate_limit"], 7)
        self.assertIsNone(doc["clients"][1]["api_url"])
        for c in doc["clients"]:
            self.assertNotIn("password", c)
        self.assertNotIn(PASSWORD, p.stdout + p.stderr)

    def test_client_remove_keeps_results_unless_purge(self):
        for cid in ("acme", "beta"):
            self.add_client(cid)
            for sub in ("token", "active_run", "cooldown", "last_run", "campaigns"):
                self.redis.cmd("SET" if sub != "campaigns" else "HSET",
                               f"adsync:client:{cid}:{sub}", *(["x"] if sub != "campaigns" else ["c1", "{}"]))
        p = self.run_enq("client", "remove", "acme")
        self.assertIn("removed client acme", p.stdout)
        self.assertEqual(self.redis.cmd("SMEMBERS", "adsync:clients"), ["beta"])
        left = sorted(self.redis.cmd("KEYS", "adsync:client:acme*"))
        self.assertEqual(left, ["adsync:client:acme:campaigns"])
        self.run_enq("client", "remove", "beta", "--purge")
        self.assertEqual(self.redis.cmd("KEYS", "adsync:client:*"), ["adsync:client:acme:campaigns"])
        p = self.run_enq("client", "remove", "beta", rc=EX_DATAERR)
        self.assertIn("no such client", p.stderr)
        self.run_enq("client", "remove", "bad/id", rc=EX_DATAERR)
        self.run_enq("client", "remove", rc=EX_USAGE)

    # -- secrets ------------------------------------------------------------------

    def test_password_never_in_any_output(self):
        self.add_client("acme")
        self.redis.cmd("RPUSH", "adsync:dead", "not json")
        outputs = []
        for args in (["client", "list"], ["client", "list", "--json"], ["status"], ["status", "--json"],
                     ["sync", "--all"], ["sync", "--all", "--json", "--force"], ["dead", "list"],
                     ["dead", "list", "--json"], ["client", "add", "acme", "--email", "a@x"]):
            p = self.run_enq(*args, input=PASSWORD + "\n", rc=None)
            outputs.append(p.stdout + p.stderr)
        for out in outputs:
            self.assertNotIn(PASSWORD, out)
        self.assertEqual(self.redis.cmd("HGET", "adsync:client:acme", "password"), PASSWORD)

    def test_password_not_in_proc_while_running(self):
        e = dict(os.environ)
        e.update(self.env)
        p = subprocess.Popen([binpath("adsync-enqueue"), "client", "add", "procc", "--email", "p@x"],
                             env=e, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        harness._children.append(p)
        # Blocked reading stdin once it has connected to Redis (a socket fd).
        def link(fd):
            try:
                return os.readlink(f"/proc/{p.pid}/fd/{fd}")
            except FileNotFoundError:   # closed between listdir and readlink
                return ""

        def waiting():
            return any("socket:" in link(fd) for fd in os.listdir(f"/proc/{p.pid}/fd"))
        wait_until(waiting, 5, "enqueue to connect and wait on stdin")
        with open(f"/proc/{p.pid}/cmdline", "rb") as f:
            cmdline = f.read()
        with open(f"/proc/{p.pid}/environ", "rb") as f:
            environ = f.read()
        ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
        self.assertIn(b"procc", cmdline, "sanity: this is the right process")
        self.assertIsNone(p.poll(), "still waiting for the password")
        p.stdin.write((PASSWORD + "\n").encode())
        p.stdin.flush()
        with open(f"/proc/{p.pid}/cmdline", "rb") as f:
            cmdline_after = f.read()
        out, err = p.communicate(timeout=10)
        self.assertEqual(p.returncode, 0, err)
        for blob in (cmdline, cmdline_after, environ, ps.encode(), out, err):
            self.assertNotIn(PASSWORD.encode(), blob)
        self.assertEqual(self.redis.cmd("HGET", "adsync:client:procc", "password"), PASSWORD)

    # -- usage, config, availability ----------------------------------------------

    def test_usage_errors_exit_64(self):
        for args in (["frobnicate"], [], ["sync"], ["sync", "--all", "acme"], ["sync", "--nope", "a"],
                     ["client"], ["client", "rename", "a"], ["dead"], ["dead", "retry"],
                     ["dead", "retry", "--all", "j1"], ["status", "extra"], ["dead", "purge", "x"],
                     ["client", "list", "--bogus"]):
            with self.subTest(args=args):
                p = self.run_enq(*args, rc=EX_USAGE)
                self.assertIn("usage: adsync-enqueue", p.stderr)
                self.assertEqual(p.stdout, "")

    def test_help_for_every_subcommand(self):
        for args in (["--help"], ["client", "--help"], ["client", "add", "--help"],
                     ["client", "list", "--help"], ["client", "remove", "--help"], ["sync", "--help"],
                     ["status", "--help"], ["dead", "--help"], ["dead", "list", "--help"],
                     ["dead", "retry", "--help"], ["dead", "purge", "--help"]):
            with self.subTest(args=args):
                p = self.run_enq(*args, env={"REDIS_URL": "redis://127.0.0.1:1/0"})
                self.assertTrue(p.stdout.startswith("usage: adsync-enqueue"), p.stdout)
        self.assertIn("--purge", self.run_enq("client", "remove", "--help").stdout)
        self.assertIn("24 h TTL", self.run_enq("sync", "--help").stdout)

    def test_redis_down_exit_69_fast_without_password(self):
        url = f"redis://admin:{PASSWORD}@127.0.0.1:{free_port()}/0"
        for args in (["status"], ["sync", "--all"], ["client", "list"], ["dead", "list"],
                     ["client", "add", "acme", "--email", "a@x"]):
            with self.subTest(args=args):
                t0 = time.monotonic()
                p = self.run_enq(*args, env={"REDIS_URL": url}, input="pw\n", rc=EX_UNAVAILABLE)
                self.assertLess(time.monotonic() - t0, 2.0)
                self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
                self.assertIn("Redis unavailable", p.stderr)
                self.assertNotIn(PASSWORD, p.stdout + p.stderr)

    def test_bad_config_exit_78_naming_the_variable(self):
        for var, value in (("ADSYNC_CONCURRENCY", "abc"), ("REDIS_URL", "http://x"),
                           ("ADSYNC_PREFIX", "bad prefix")):
            with self.subTest(var=var):
                p = self.run_enq("status", env={var: value}, rc=EX_CONFIG)
                lines = p.stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, p.stderr)
                self.assertIn(var, lines[0])
        p = self.run_enq("status", env={"REDIS_URL": f"redis://:{PASSWORD}@h:99999/0"}, rc=EX_CONFIG)
        self.assertNotIn(PASSWORD, p.stderr)

    # -- sync -----------------------------------------------------------------------

    def test_sync_creates_run_claims_active_and_pushes_job(self):
        self.add_clients(2)
        t0 = int(time.time() * 1000)
        p = self.run_enq("sync", "c000", "c001")
        lines = p.stdout.splitlines()
        self.assertEqual(len(lines), 2)
        for cid, line in zip(("c000", "c001"), lines):
            run = self.last_run(cid)
            self.assertEqual(line, f"{cid}: queued run {run}")
            self.assertRegex(run, r"^\d{13}-[0-9a-f]{16}$")
            h = hgetall(self.redis, f"adsync:run:{run}")
            self.assertEqual({k: v for k, v in h.items() if k != "enqueued_at"},
                             {"client": cid, "state": "queued", "next_page": "1", "listed": "0",
                              "synced": "0", "retrying": "0", "dead": "0"})
            self.assertLessEqual(abs(int(h["enqueued_at"]) - t0), 5000)
            self.assertEqual(self.redis.cmd("GET", f"adsync:client:{cid}:active_run"), run)
            ttl = self.redis.cmd("PTTL", f"adsync:client:{cid}:active_run")
            self.assertTrue(0 < ttl <= 24 * 3600 * 1000, ttl)
        jobs = jobs_of(self.redis)
        self.assertEqual(len(jobs), 2)
        for j in jobs:
            self.assertEqual(set(j), {"v", "id", "type", "client", "run", "attempt", "enqueued_at"})
            self.assertEqual((j["v"], j["type"], j["attempt"]), (1, "client", 0))
            self.assertEqual(j["run"], self.last_run(j["client"]))
            self.assertRegex(j["id"], r"^[0-9a-f]{32}$")

    def test_sync_skips_active_and_force_queues_again(self):
        self.add_clients(1)
        self.run_enq("sync", "c000")
        run1 = self.last_run("c000")
        p = self.run_enq("sync", "c000")
        self.assertEqual(p.stdout.strip(), f"c000: skipped: run {run1} already active")
        self.assertEqual(len(jobs_of(self.redis)), 1)
        p = self.run_enq("sync", "c000", "--force")
        run2 = self.last_run("c000")
        self.assertNotEqual(run1, run2)
        self.assertEqual(p.stdout.strip(), f"c000: queued run {run2}")
        self.assertEqual(self.redis.cmd("GET", "adsync:client:c000:active_run"), run2)
        self.assertEqual(sorted(j["run"] for j in jobs_of(self.redis)), sorted([run1, run2]))
        # Once the worker clears active_run, a plain sync queues again.
        self.redis.cmd("DEL", "adsync:client:c000:active_run")
        self.assertIn("queued run", self.run_enq("sync", "c000").stdout)

    def test_sync_unknown_and_invalid_ids_others_still_go(self):
        self.add_clients(2)
        p = self.run_enq("sync", "c000", "ghost", "no/slash", "c001", rc=EX_DATAERR)
        self.assertEqual(len(p.stdout.splitlines()), 2)
        self.assertIn("unknown client 'ghost'", p.stderr)
        self.assertIn("invalid client id 'no/slash'", p.stderr)
        self.assertEqual(sorted(j["client"] for j in jobs_of(self.redis)), ["c000", "c001"])
        self.assertIsNone(self.redis.cmd("GET", "adsync:client:ghost:active_run"))

    def test_sync_json_output(self):
        self.add_clients(2)
        self.run_enq("sync", "c001")
        p = self.run_enq("sync", "c000", "c001", "ghost", "--json", rc=EX_DATAERR)
        doc = json.loads(p.stdout)
        by = {r["client"]: r for r in doc["runs"]}
        self.assertEqual(by["c000"]["status"], "queued")
        self.assertEqual(by["c000"]["run"], self.last_run("c000"))
        self.assertEqual(by["c001"]["status"], "skipped")
        self.assertEqual(by["ghost"]["status"], "unknown")
        self.assertNotIn("run", by["ghost"])
        self.assertEqual((doc["queued"], doc["skipped"], doc["errors"]), (1, 1, 1))

    def test_sync_all_with_prefix(self):
        self.add_clients(3)
        e = {"ADSYNC_PREFIX": "other"}
        p = self.run_enq("sync", "--all", env=e)
        self.assertIn("no clients are registered", p.stderr)
        self.redis.cmd("SADD", "other:clients", "x1")
        self.run_enq("sync", "--all", env=e)
        self.assertEqual(len(jobs_of(self.redis, "other")), 1)
        self.assertEqual(self.redis.cmd("LLEN", "adsync:jobs"), 0)

    def test_dedup_under_20_concurrent_sync_all(self):
        ids = self.add_clients(50)
        e = dict(os.environ)
        e.update(self.env)
        procs = [subprocess.Popen([binpath("adsync-enqueue"), "sync", "--all"], env=e,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(20)]
        outs = [p.communicate(timeout=60) for p in procs]
        for p, (out, err) in zip(procs, outs):
            self.assertEqual(p.returncode, 0, err)
            self.assertEqual(len(out.splitlines()), 50)
        queued = sum(out.count(": queued run ") for out, _ in outs)
        self.assertEqual(queued, 50)
        self.assertEqual(self.redis.cmd("LLEN", "adsync:jobs"), 50)
        per_client = {}
        for j in jobs_of(self.redis):
            per_client[j["client"]] = per_client.get(j["client"], 0) + 1
        self.assertEqual(per_client, {cid: 1 for cid in ids})
        self.assertEqual(len(self.redis.cmd("KEYS", "adsync:run:*")), 50)

    # -- sync --wait (the test plays the worker) ---------------------------------------

    def start_wait(self, *args, env=None):
        e = dict(os.environ)
        e.update(self.env)
        e.update(env or {})
        p = subprocess.Popen([binpath("adsync-enqueue"), "sync", "--wait", *args], env=e,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        harness._children.append(p)
        return p

    def test_wait_exits_0_when_all_synced_with_progress_lines(self):
        self.add_clients(2)
        p = self.start_wait("c000", "c001")
        runs = [wait_until(lambda c=c: self.last_run(c), 5, f"run of {c}") for c in ("c000", "c001")]
        for run in runs:
            self.set_run(run, state="running", listed=10, synced=4, retrying=1)
        time.sleep(0.6)
        self.assertIsNone(p.poll(), "still waiting while runs are running")
        self.set_run(runs[0], state="done", listed=10, synced=10, retrying=0)
        time.sleep(0.6)
        self.assertIsNone(p.poll())
        self.set_run(runs[1], state="done", listed=10, synced=10, retrying=0)
        out, err = p.communicate(timeout=10)
        self.assertEqual(p.returncode, 0, err)
        self.assertIn(f"c000 run {runs[0]}: running  4/10 synced  1 retrying  0 dead", out)
        self.assertIn(f"c001 run {runs[1]}: done  10/10 synced  0 retrying  0 dead", out)
        self.assertIn("finished: 2 runs, 2 clean, 20/20 synced, 0 dead", out)
        # One line per change, not per poll: c000 reported done exactly once.
        self.assertEqual(out.count(f"c000 run {runs[0]}: done"), 1)

    def test_wait_exits_1_when_some_dead_and_json(self):
        self.add_clients(1)
        p = self.start_wait("c000", "--json")
        run = wait_until(lambda: self.last_run("c000"), 5, "run")
        self.set_run(run, state="done", listed=5, synced=3, dead=2)
        out, err = p.communicate(timeout=10)
        self.assertEqual(p.returncode, 1, err)
        doc = json.loads(out)
        self.assertEqual(doc["runs"][0]["state"], "done")
        self.assertEqual((doc["runs"][0]["synced"], doc["runs"][0]["dead"]), (3, 2))
        self.assertIs(doc["all_synced"], False)

    def test_wait_follows_an_already_active_run(self):
        self.add_clients(1)
        self.run_enq("sync", "c000")
        run = self.last_run("c000")
        self.set_run(run, state="done", listed=1, synced=1)
        p = self.run_enq("sync", "c000", "--wait")
        self.assertIn("skipped", p.stdout)
        self.assertIn("finished: 1 runs, 1 clean", p.stdout)

    def test_wait_exits_69_when_redis_goes_away(self):
        r = Redis()
        try:
            env = adsync_env(redis=r)
            r.cmd("SADD", "adsync:clients", "c000")
            p = self.start_wait("c000", env=env)
            wait_until(lambda: r.cmd("GET", "adsync:client:c000:last_run"), 5, "run")
            r.stop()
            t0 = time.monotonic()
            out, err = p.communicate(timeout=10)
            self.assertEqual(p.returncode, EX_UNAVAILABLE, err)
            self.assertLess(time.monotonic() - t0, 5)
            self.assertIn("Redis unavailable", err)
        finally:
            r.close()

    # -- status -----------------------------------------------------------------------

    def test_status_reflects_queues_workers_and_runs(self):
        now = int(time.time() * 1000)
        self.redis.cmd("LPUSH", "adsync:jobs", "a", "b", "c")
        self.redis.cmd("ZADD", "adsync:retry", now - 1000, "due1", now - 5, "due2", now + 60000, "later")
        self.redis.cmd("RPUSH", "adsync:dead", "d1", "d2")
        self.redis.cmd("RPUSH", "adsync:outbox", "o1")
        self.redis.cmd("SADD", "adsync:workers", "w1", "w2")
        self.redis.cmd("RPUSH", "adsync:processing:w1", "j1", "j2")
        self.redis.cmd("RPUSH", "adsync:processing:w2", "j3")
        hb = {"host": "node-a", "pid": 4242, "started_at": now - 60000, "inflight": 3, "ts": now - 2000}
        self.redis.cmd("SET", "adsync:worker:w1", json.dumps(hb), "PX", 30000)
        self.add_clients(2)
        self.run_enq("sync", "c000")
        run = self.last_run("c000")
        self.set_run(run, state="running", listed=30, synced=20, retrying=2, dead=1)

        doc = json.loads(self.run_enq("status", "--json").stdout)
        self.assertEqual(doc["jobs"], 4)          # 3 + the one just queued
        self.assertEqual((doc["retry"], doc["retry_due"]), (3, 2))
        self.assertEqual((doc["dead"], doc["outbox"], doc["workers_alive"]), (2, 1, 1))
        w = {x["id"]: x for x in doc["workers"]}
        self.assertEqual((w["w1"]["alive"], w["w1"]["processing"]), (True, 2))
        self.assertEqual(w["w1"]["heartbeat"]["host"], "node-a")
        self.assertTrue(1500 <= w["w1"]["heartbeat_age_ms"] < 10000, w["w1"])
        self.assertEqual((w["w2"]["alive"], w["w2"]["processing"]), (False, 1))
        c = {x["id"]: x for x in doc["clients"]}
        lr = c["c000"]["last_run"]
        self.assertEqual((lr["run"], lr["state"], lr["listed"], lr["synced"], lr["retrying"], lr["dead"]),
                         (run, "running", 30, 20, 2, 1))
        self.assertGreaterEqual(lr["age_ms"], 0)
        self.assertIsNone(c["c001"]["last_run"])

        text = self.run_enq("status").stdout
        self.assertRegex(text, r"jobs\s+4\n")
        self.assertRegex(text, r"retry\s+3 \(2 due\)")
        self.assertRegex(text, r"dead\s+2\n")
        self.assertIn("workers (2 registered, 1 alive)", text)
        self.assertRegex(text, r"w1\s+alive, last heartbeat \ds ago, host node-a pid 4242")
        self.assertRegex(text, r"w2\s+missing heartbeat, processing 1")
        self.assertRegex(text, r"c000\s+running\s+listed 30 synced 20 retrying 2 dead 1")
        self.assertRegex(text, r"c001\s+never synced")

    # -- dead letters --------------------------------------------------------------------

    def dead_letters(self, run):
        campaign = {"v": 1, "id": "jobcamp1", "type": "campaign", "client": "c000", "run": run,
                    "campaign": {"id": "campaign_7", "name": "C7"}, "attempt": 8,
                    "last_error": "HTTP 503 after 8 attempts", "dead_at": 1}
        client = {"v": 1, "id": "jobclient1", "type": "client", "client": "c000", "run": run,
                  "attempt": 2, "last_error": "auth failed: 401"}
        self.redis.cmd("RPUSH", "adsync:dead", json.dumps(campaign), "}{ not json \x01",
                       json.dumps(client), json.dumps({"v": 1, "id": "half"}))
        return campaign, client

    def test_dead_list_text_and_json(self):
        self.dead_letters("r1")
        p = self.run_enq("dead", "list")
        lines = p.stdout.splitlines()
        self.assertEqual(len(lines), 5)
        self.assertRegex(lines[1], r"^0\s+jobcamp1\s+campaign\s+c000\s+campaign_7\s+8\s+HTTP 503 after 8")
        self.assertIn("unparseable: }{ not json ?", lines[2])
        self.assertRegex(lines[3], r"^2\s+jobclient1\s+client\s+c000\s+-\s+2\s+auth failed: 401")
        doc = json.loads(self.run_enq("dead", "list", "--json").stdout)
        self.assertEqual(doc["count"], 4)
        self.assertEqual(doc["dead"][0]["campaign"], "campaign_7")
        self.assertEqual(doc["dead"][0]["last_error"], "HTTP 503 after 8 attempts")
        self.assertIs(doc["dead"][1]["unparseable"], True)
        self.assertEqual(doc["dead"][2]["attempt"], 2)
        self.assertIsNone(doc["dead"][3]["client"])

    def test_dead_retry_one_reopens_its_run(self):
        self.add_clients(1)
        run = "1700000000000-00000000000000aa"
        self.set_run(run, client="c000", state="done", listed=10, synced=9, retrying=0, dead=1)
        self.redis.cmd("HSET", f"adsync:run:{run}:items", "campaign_7", "dead", "campaign_1", "synced")
        self.redis.cmd("HSET", "adsync:deliveries", "jobcamp1", 5)
        self.dead_letters(run)
        p = self.run_enq("dead", "retry", "jobcamp1")
        self.assertEqual(p.stdout.strip(), "moved 1 dead letter back to the jobs list")
        jobs = jobs_of(self.redis)
        self.assertEqual(len(jobs), 1)
        self.assertEqual((jobs[0]["id"], jobs[0]["attempt"]), ("jobcamp1", 0))
        self.assertNotIn("last_error", jobs[0])
        self.assertEqual(jobs[0]["campaign"], {"id": "campaign_7", "name": "C7"})
        h = hgetall(self.redis, f"adsync:run:{run}")
        self.assertEqual((h["state"], h["dead"], h["retrying"]), ("running", "0", "1"))
        self.assertEqual(self.redis.cmd("HGET", f"adsync:run:{run}:items", "campaign_7"), "retrying")
        self.assertEqual(self.redis.cmd("GET", "adsync:client:c000:active_run"), run)
        self.assertIsNone(self.redis.cmd("HGET", "adsync:deliveries", "jobcamp1"))
        self.assertEqual(self.redis.cmd("LLEN", "adsync:dead"), 3)
        p = self.run_enq("dead", "retry", "jobcamp1", rc=EX_DATAERR)
        self.assertIn("no dead letter with job id 'jobcamp1'", p.stderr)
        self.run_enq("dead", "retry", "bad id!", rc=EX_DATAERR)

    def test_dead_retry_all_and_purge(self):
        run = "1700000000000-00000000000000bb"
        self.set_run(run, client="c000", state="failed", listed=0, synced=0, retrying=0, dead=0)
        self.dead_letters(run)
        p = self.run_enq("dead", "retry", "--all")
        self.assertEqual(p.stdout.strip(), "moved 2 dead letters back to the jobs list")
        self.assertEqual(p.stderr.count("cannot be retried"), 2)   # the non-JSON and the half job
        self.assertEqual(sorted(j["id"] for j in jobs_of(self.redis)), ["jobcamp1", "jobclient1"])
        self.assertEqual(self.redis.cmd("HGET", f"adsync:run:{run}", "state"), "queued")
        self.assertEqual(self.redis.cmd("LRANGE", "adsync:dead", 0, -1),
                         ["}{ not json \x01", json.dumps({"v": 1, "id": "half"})])
        p = self.run_enq("dead", "purge")
        self.assertEqual(p.stdout.strip(), "purged 2 dead letters")
        self.assertEqual(self.redis.cmd("EXISTS", "adsync:dead"), 0)
        self.assertEqual(self.run_enq("dead", "purge").stdout.strip(), "purged 0 dead letters")

    def test_dead_retry_survives_script_flush(self):
        self.dead_letters("r9")
        self.run_enq("dead", "list")
        self.redis.cmd("SCRIPT", "FLUSH")
        self.run_enq("dead", "retry", "jobclient1")
        self.redis.cmd("SCRIPT", "FLUSH")
        self.add_clients(1)
        self.assertIn("queued run", self.run_enq("sync", "c000").stdout)


if __name__ == "__main__":
    unittest.main()
