"""Redis contents and credentials as input (part of the hardening issue):
a client key of the wrong type is dead-lettered once instead of polled
forever, a cached token no header can carry is replaced by a new login,
credentials as long as `client add` accepts reach the platform uncut, and
1 MB of junk on the queue becomes a small dead letter logged once."""
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import TempDir, enqueue, wait_until  # noqa: E402
import workerlib as wl  # noqa: E402

CLEAN = ("--sync-latency-ms", 0, "--rate-limit", 0, "--fail-every", 0, "--hang-every", 0)


class RedisInputTest(wl.SystemTest):
    def drain(self, env, *ids):
        r = enqueue(["sync", *ids], env)
        self.assertEqual(r.returncode, 0, r.stderr)
        w = self.worker(env, "--drain")
        self.assertEqual(w.wait(30), 0, "the drain ends: " + w.log()[-2000:])
        return w

    def dead_reasons(self, env):
        letters = json.loads(enqueue(["dead", "list", "--json"], env).stdout)["dead"]
        return {d.get("client"): d.get("last_error", "") for d in letters}

    def test_wrong_type_client_key_is_dead_lettered_once(self):
        mock = self.mock("--clients", 1, "--campaigns", 3, *CLEAN)
        env = wl.fast_env(self.redis, mock)
        self.redis.cmd("SET", "adsync:client:client_1", "foo")
        self.redis.cmd("SADD", "adsync:clients", "client_1")
        w = self.drain(env, "client_1")
        self.assertIn("cannot read the hash of client client_1: WRONGTYPE", self.dead_reasons(env)["client_1"])
        self.assertEqual(w.log().count("client unusable"), 1, "logged once")
        self.assertEqual(mock.stats()["clients"]["client_1"]["requests"].get("auth", {}), {})

    def test_huge_junk_job_becomes_a_small_dead_letter_logged_once(self):
        mock = self.mock("--clients", 1, *CLEAN)
        env = wl.fast_env(self.redis, mock)
        self.redis.cmd("LPUSH", "adsync:jobs", "j" * (1 << 20))
        w = self.worker(env, "--drain")
        self.assertEqual(w.wait(30), 0, w.log()[-2000:])
        (letter,) = self.redis.cmd("LRANGE", "adsync:dead", 0, -1)
        self.assertLess(len(letter), 8192)
        doc = json.loads(letter)
        self.assertEqual(doc["raw_bytes"], 1 << 20)
        self.assertIn("unparseable job", doc["last_error"])
        self.assertEqual(sum(1 for line in w.log().splitlines() if '"job dead"' in line), 1)

    def test_campaign_too_large_to_retry_ends_dead_not_stuck(self):
        """A listed campaign over the 64 KiB job limit that fails once cannot
        become a retry job: it is dead at once, and the run ends."""
        tmp = TempDir("accounts")
        try:
            path = tmp.file("accounts.json")
            with open(path, "w") as f:
                json.dump([{"id": "big", "email": "big@example.test", "password": "pw", "campaigns": 3,
                            "names": {"campaign_2": "n" * 100000}}], f)
            mock = self.mock("--accounts", path, "--fail-campaign", "campaign_2", *CLEAN)
            env = wl.fast_env(self.redis, mock)
            self.assertEqual(enqueue(["client", "add", "big", "--email", "big@example.test"], env,
                                     input="pw\n").returncode, 0)
            self.drain(env, "big")
            run = wl.check_invariant(self, self.redis, "big", 3)
            self.assertEqual((run["state"], run["synced"], run["dead"]), ("done", "2", "1"))
            (letter,) = self.redis.cmd("LRANGE", "adsync:dead", 0, -1)
            self.assertLess(len(letter), 4096)
            self.assertIn("too large to retry", json.loads(letter)["last_error"])
        finally:
            tmp.cleanup()

    def test_processing_list_of_an_unregistered_worker_is_recovered(self):
        """A job in the processing list of a worker that is in no workers set
        and has no heartbeat (a pop that landed after its worker
        deregistered) is handed back by the reaper; a live worker's list is
        left alone."""
        mock = self.mock("--clients", 2, "--campaigns", 4, *CLEAN)
        env = wl.fast_env(self.redis, mock)
        wl.register_clients(self.redis, 2)
        enqueue(["sync", "client_1", "client_2"], env)
        stranded = self.redis.cmd("RPOP", "adsync:jobs")
        alive = self.redis.cmd("RPOP", "adsync:jobs")
        self.redis.cmd("LPUSH", "adsync:processing:ghost", stranded)
        self.redis.cmd("LPUSH", "adsync:processing:alive", alive)
        self.redis.cmd("SET", "adsync:worker:alive", "{}", "PX", 60000)
        self.worker(env)
        cid = json.loads(stranded)["client"]
        wl.wait_runs_done(self.redis, [cid], 30)
        wl.check_invariant(self, self.redis, cid, 4)
        self.assertEqual(self.redis.cmd("LLEN", "adsync:processing:ghost"), 0)
        self.assertEqual(self.redis.cmd("LRANGE", "adsync:processing:alive", 0, -1), [alive])

    def test_token_with_line_breaks_is_replaced(self):
        mock = self.mock("--clients", 1, "--campaigns", 5, *CLEAN)
        env = wl.fast_env(self.redis, mock)
        ids = wl.register_clients(self.redis, 1)
        self.redis.cmd("SET", "adsync:client:client_1:token", "abc\r\nX-Injected: 1", "PX", 600000)
        self.drain(env, *ids)
        wl.check_invariant(self, self.redis, "client_1", 5)
        token = self.redis.cmd("GET", "adsync:client:client_1:token")
        self.assertRegex(token, r"^[0-9a-f]{32}$", "a fresh login replaced it")

    def test_long_credentials_reach_the_platform_uncut(self):
        email = "x" * 307 + "@example.test"          # 320 bytes, the most client add takes
        password = "p" * 1023
        tmp = TempDir("accounts")
        try:
            path = tmp.file("accounts.json")
            with open(path, "w") as f:
                json.dump([{"id": "long", "email": email, "password": password, "campaigns": 4}], f)
            mock = self.mock("--accounts", path, *CLEAN)
            env = wl.fast_env(self.redis, mock)
            r = enqueue(["client", "add", "long", "--email", email], env, input=password + "\n")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.drain(env, "long")
            wl.check_invariant(self, self.redis, "long", 4)
            # one byte more than the worker keeps is refused, never cut
            self.redis.cmd("HSET", "adsync:client:long", "email", "y" + email)
            self.redis.cmd("DEL", "adsync:client:long:token")
            self.drain(env, "long", "--force")
            self.assertIn("longer than 320 bytes", self.dead_reasons(env)["long"])
        finally:
            tmp.cleanup()

    # -- wrong types in every key the worker reads (hardening, "What to build" 6) ------

    def test_wrong_types_in_client_and_run_keys_end_that_job_once(self):
        """Each client has one key of the wrong type. A cached token or a
        rate-limit log that is not ours is replaced (one line each); a run
        hash, items hash or campaigns hash that is not a hash ends that job
        dead naming the key, as does a run counter that is not a number; the
        other clients and the drain finish."""
        mock = self.mock("--clients", 8, "--campaigns", 3, *CLEAN)
        env = wl.fast_env(self.redis, mock, ADSYNC_RATE_LIMIT=1000, ADSYNC_RATE_WINDOW_MS=1000)
        ids = wl.register_clients(self.redis, 8)
        self.assertEqual(enqueue(["sync", *ids], env).returncode, 0)
        run = {cid: self.redis.cmd("GET", f"adsync:client:{cid}:last_run") for cid in ids}
        self.redis.cmd("HSET", f"adsync:run:{run['client_8']}", "synced", "junk")
        self.redis.cmd("HSET", "adsync:client:client_1:token", "not", "a string")
        for cid, key in (("client_2", f"adsync:run:{run['client_2']}"),
                         ("client_3", f"adsync:run:{run['client_3']}:items"),
                         ("client_4", "adsync:client:client_4:campaigns"),
                         ("client_5", "adsync:client:client_5:ratelimit")):
            self.redis.cmd("DEL", key)
            self.redis.cmd("SET", key, "junk")
        self.redis.cmd("HSET", "adsync:client:client_6:cooldown", "x", "1")
        w = self.worker(env, "--drain")
        self.assertEqual(w.wait(30), 0, "the drain ends: " + w.log()[-2000:])
        log = w.log()

        for cid in ("client_1", "client_5", "client_6", "client_7"):
            wl.check_invariant(self, self.redis, cid, 3)
        self.assertRegex(self.redis.cmd("GET", "adsync:client:client_1:token"), r"^[0-9a-f]{32}$")
        self.assertEqual(log.count("cached token key holds the wrong type"), 1)
        self.assertEqual(log.count("rate-limit log held the wrong type"), 1)

        reasons = self.dead_reasons(env)
        for cid, key in (("client_2", f"adsync:run:{run['client_2']}"),
                         ("client_3", f"adsync:run:{run['client_3']}:items"),
                         ("client_4", "adsync:client:client_4:campaigns"),
                         ("client_8", f"adsync:run:{run['client_8']}")):
            self.assertEqual(reasons.get(cid), f"Redis key {key} holds the wrong type", cid)
        dead_lines = [line for line in log.splitlines() if '"job dead"' in line]
        self.assertEqual(len(dead_lines), 4, dead_lines)
        for cid in ("client_3", "client_4", "client_8"):
            self.assertEqual(wl.last_run(self.redis, cid)[1]["state"], "failed")
        self.assertIsNone(self.redis.cmd("GET", "adsync:client:client_2:active_run"), "released")

    def test_a_shared_key_of_the_wrong_type_stops_the_worker_at_start(self):
        """The queues, the dead list, deliveries and stats are every job's:
        one of the wrong type is named in one line and the worker exits 78
        before it takes a job (nothing popped, nothing lost)."""
        mock = self.mock("--clients", 1, *CLEAN)
        env = wl.fast_env(self.redis, mock)
        wl.register_clients(self.redis, 1)
        self.assertEqual(enqueue(["sync", "client_1"], env).returncode, 0)
        job = self.redis.cmd("LRANGE", "adsync:jobs", 0, -1)
        for key, expected in (("adsync:retry", "zset"), ("adsync:dead", "list"), ("adsync:deliveries", "hash"),
                              ("adsync:stats", "hash"), ("adsync:workers", "set"), ("adsync:outbox", "list")):
            with self.subTest(key=key):
                self.redis.cmd("DEL", key)
                self.redis.cmd("SET", key, "junk")
                w = self.worker(env)
                self.assertEqual(w.wait(15), 78, w.log()[-2000:])
                lines = [line for line in w.log().splitlines() if "holds the wrong type" in line]
                self.assertEqual(len(lines), 1, lines)
                self.assertEqual((json.loads(lines[0])["key"], json.loads(lines[0])["expected"]), (key, expected))
                self.assertEqual(self.redis.cmd("LRANGE", "adsync:jobs", 0, -1), job, "nothing popped")
                self.redis.cmd("DEL", key)

    def test_retry_set_overwritten_while_running_is_logged_once(self):
        mock = self.mock("--clients", 1, "--campaigns", 3, *CLEAN)
        env = wl.fast_env(self.redis, mock)
        ids = wl.register_clients(self.redis, 1)
        w = self.worker(env)
        wait_until(lambda: "worker registered" in w.log(), 10, "the worker to register")
        self.redis.cmd("SET", "adsync:retry", "junk")
        time.sleep(3.5)   # three promote ticks at least
        enqueue(["sync", *ids], env)
        wl.wait_runs_done(self.redis, ids, 20, workers=[w])
        self.assertEqual(w.log().count("cannot promote due retries"), 1)
        self.redis.cmd("DEL", "adsync:retry")
        wait_until(lambda: "promoting due retries again" in w.log(), 5, "promote to recover")


if __name__ == "__main__":
    unittest.main()
