"""adsync-worker end to end: real redis-server, real mock API, real workers
(issue: the end-to-end paginated sync). Tests A, B and C of the issue plus
bad configuration and bad jobs."""
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import binpath, spawn  # noqa: E402
import workerlib as wl  # noqa: E402


class WorkerTest(wl.SystemTest):
    def test_a_faults_on_everything_synced(self):
        """A: 3 clients x 250, 503 every 5th list, hang every 10th, 20% 500s,
        5% malformed; two draining workers sync everything."""
        mock = self.mock("--clients", 3, "--campaigns", 250, "--sync-latency-ms", 20,
                         "--rate-limit", 0, "--fail-every", 5, "--hang-every", 10,
                         "--error-rate", 0.2, "--malformed-rate", 0.05, "--seed", 7)
        ids = wl.register_clients(self.redis, 3)
        env = wl.fast_env(self.redis, mock, ADSYNC_MAX_ATTEMPTS=30)
        wl.sync_all(env)
        workers = [self.worker(env, "--drain") for _ in range(2)]
        wl.wait_exit(self, workers, 120)

        stats = mock.stats()["clients"]
        for cid in ids:
            run = wl.check_invariant(self, self.redis, cid, 250)
            self.assertEqual(run["state"], "done")
            self.assertEqual(int(run["dead"]), 0)
            synced = stats[cid]["synced"]
            missing = [f"campaign_{k}" for k in range(1, 251) if synced.get(f"campaign_{k}", 0) < 1]
            self.assertEqual(missing, [], f"{cid}: never synced on the platform")
            self.assertGreater(stats[cid]["requests"]["list"].get("503", 0), 0, "faults were on")
            self.assertIsNone(self.redis.cmd("GET", f"adsync:client:{cid}:active_run"))
            stored = wl.stored_campaigns(self.redis, cid)
            c7 = stored["campaign_7"]
            self.assertEqual(c7["id"], "campaign_7")
            self.assertIn("synced_at", c7)
            self.assertEqual(c7["run"], wl.last_run(self.redis, cid)[0])
        self.assertEqual(self.redis.cmd("LLEN", "adsync:dead"), 0)
        self.assertEqual(self.redis.cmd("LLEN", "adsync:jobs"), 0)
        self.assertEqual(self.redis.cmd("ZCARD", "adsync:retry"), 0)
        self.assertGreater(int(self.redis.cmd("HGET", "adsync:stats", "campaigns_retried") or 0), 0)

    def test_b_always_failing_campaign_ends_dead(self):
        """B: one campaign always answers 500 -> dead after MAX_ATTEMPTS."""
        mock = self.mock("--clients", 1, "--campaigns", 40, "--sync-latency-ms", 0,
                         "--rate-limit", 0, "--fail-every", 0, "--hang-every", 0,
                         "--fail-campaign", "campaign_13")
        wl.register_clients(self.redis, 1)
        env = wl.fast_env(self.redis, mock, ADSYNC_MAX_ATTEMPTS=4)
        wl.sync_all(env)
        w = self.worker(env, "--drain")
        wl.wait_exit(self, [w], 60)

        run = wl.check_invariant(self, self.redis, "client_1", 40)
        self.assertEqual(run["state"], "done")
        self.assertEqual(int(run["dead"]), 1)
        self.assertEqual(int(run["synced"]), 39)
        dead = self.redis.cmd("LRANGE", "adsync:dead", 0, -1)
        self.assertEqual(len(dead), 1)
        import json
        letter = json.loads(dead[0])
        self.assertEqual(letter["campaign"]["id"], "campaign_13")
        self.assertEqual(letter["attempt"], 4)
        self.assertIn("HTTP 500", letter["last_error"])
        self.assertEqual(mock.stats()["clients"]["client_1"]["requests"]["sync"]["500"], 4)
        # 40 states would be a listpack (every lookup a scan); progress.lua
        # makes a new items hash a hash table and leaves no field of its own.
        items = f"adsync:run:{wl.last_run(self.redis, 'client_1')[0]}:items"
        self.assertEqual(self.redis.cmd("OBJECT", "ENCODING", items), "hashtable")
        self.assertEqual(self.redis.cmd("HLEN", items), 40)

    def test_c_expiring_tokens_reauthenticate_no_secret_logged(self):
        """C: tokens expire every second mid-run -> new logins, nothing lost,
        no password or token in any log line."""
        mock = self.mock("--clients", 2, "--campaigns", 120, "--sync-latency-ms", 30,
                         "--rate-limit", 0, "--fail-every", 0, "--hang-every", 0,
                         "--token-ttl", 1)
        ids = wl.register_clients(self.redis, 2)
        env = wl.fast_env(self.redis, mock, ADSYNC_CLIENT_CONCURRENCY=2, ADSYNC_LOG_LEVEL="debug")
        wl.sync_all(env)
        seen_tokens = set()
        stop = threading.Event()

        def watch_tokens():
            while not stop.is_set():
                for cid in ids:
                    try:
                        t = self.redis.cmd("GET", f"adsync:client:{cid}:token")
                    except Exception:
                        t = None
                    if t:
                        seen_tokens.add(t)
                time.sleep(0.05)

        watcher = threading.Thread(target=watch_tokens)
        watcher.start()
        try:
            w = self.worker(env, "--drain")
            wl.wait_exit(self, [w], 90)
        finally:
            stop.set()
            watcher.join()
        stats = mock.stats()["clients"]
        for cid in ids:
            wl.check_invariant(self, self.redis, cid, 120)
            self.assertGreaterEqual(stats[cid]["requests"]["auth"]["200"], 2, "tokens expired mid-run")
            self.assertGreater(stats[cid]["requests"]["list"].get("401", 0)
                               + stats[cid]["requests"]["sync"].get("401", 0), 0)
        self.assertTrue(seen_tokens)
        log = w.log()
        for secret in [f"secret-{cid}" for cid in ids] + sorted(seen_tokens):
            self.assertNotIn(secret, log)
        self.assertNotRegex(log, r"(?i)(bearer|basic) [A-Za-z0-9+/=]{8,}")

    def test_bad_jobs_are_dead_lettered_and_work_goes_on(self):
        mock = self.mock("--clients", 1, "--campaigns", 15, "--sync-latency-ms", 0,
                         "--rate-limit", 0, "--fail-every", 0, "--hang-every", 0)
        wl.register_clients(self.redis, 1)
        env = wl.fast_env(self.redis, mock)
        for junk in ["not json", '{"v":1}', '{"v":1,"id":"x","type":"client","client":"bad:id","run":"r"}',
                     '{"v":1,"id":"y","type":"client","client":"nobody","run":"r9","attempt":0}']:
            self.redis.cmd("LPUSH", "adsync:jobs", junk)
        wl.sync_all(env)
        w = self.worker(env, "--drain")
        wl.wait_exit(self, [w], 60)
        wl.check_invariant(self, self.redis, "client_1", 15)
        dead = self.redis.cmd("LRANGE", "adsync:dead", 0, -1)
        self.assertEqual(len(dead), 4, dead)
        text = "\n".join(dead)
        self.assertIn("unparseable job", text)
        self.assertIn("no credentials for client nobody", text)
        self.assertEqual(self.redis.cmd("HGET", "adsync:run:r9", "state"), "failed")

    def test_bad_config_exits_78_naming_the_variable(self):
        cases = {"ADSYNC_CONCURRENCY": "abc", "ADSYNC_MAX_ATTEMPTS": "0",
                 "REDIS_URL": "redis://:hunter2pw@h:99999", "AD_PLATFORM_URL": "ftp://x",
                 "ADSYNC_LOG_LEVEL": ""}
        for name, value in cases.items():
            p = spawn([binpath("adsync-worker")], env={name: value}, stdout=-1, stderr=-1)
            out, err = p.communicate(timeout=10)
            self.assertEqual(p.returncode, 78, (name, err))
            lines = err.decode().strip().splitlines()
            self.assertEqual(len(lines), 1, err)
            self.assertIn(name, lines[0])
            self.assertNotIn("hunter2", lines[0])
        p = spawn([binpath("adsync-worker"), "--bogus"], stdout=-1, stderr=-1)
        p.communicate(timeout=10)
        self.assertEqual(p.returncode, 64)


if __name__ == "__main__":
    unittest.main()
