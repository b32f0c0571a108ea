"""Rate limits, fairness and shared tokens across workers (issue: rate
limits, fairness and shared tokens). Real redis-server, real mock with its
own sliding-window limit, real workers sharing the Lua limiter."""
import os
import statistics
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Mock, enqueue  # noqa: E402
import workerlib as wl  # noqa: E402

LIMIT, WINDOW_MS = 20, 1000


def api_requests(stats, cid):
    req = stats[cid]["requests"]
    return sum(sum(req.get(ep, {}).values()) for ep in ("list", "sync"))


def status_count(stats, cid, status):
    req = stats[cid]["requests"]
    return sum(req.get(ep, {}).get(status, 0) for ep in ("list", "sync"))


def limited_mock_flags(clients, campaigns, latency_ms):
    return ("--clients", clients, "--campaigns", campaigns, "--sync-latency-ms", latency_ms,
            "--rate-limit", LIMIT, "--rate-window-ms", WINDOW_MS, "--fail-every", 0, "--hang-every", 0)


class RateLimitTest(wl.SystemTest):
    def start(self, clients, campaigns, workers, latency_ms=0, **extra):
        self.platform = self.mock(*limited_mock_flags(clients, campaigns, latency_ms))
        ids = wl.register_clients(self.redis, clients)
        env = wl.fast_env(self.redis, self.platform, ADSYNC_RATE_LIMIT=LIMIT,
                          ADSYNC_RATE_WINDOW_MS=WINDOW_MS, **extra)
        for _ in range(workers):
            self.worker(env)
        return ids, env

    def run_seconds(self, cid, ms_field="finished_at"):
        _, run = wl.last_run(self.redis, cid)
        return (int(run[ms_field]) - int(run["enqueued_at"])) / 1000.0

    def test_shared_limit_keeps_429s_rare_and_rate_high(self):
        """4 clients x 200, 3 workers: <= 1% 429s, each client >= 85% of its limit."""
        ids, env = self.start(4, 200, 3)
        wl.sync_all(env)
        wl.wait_runs_done(self.redis, ids, 90)
        stats = self.platform.stats()["clients"]
        total = sum(api_requests(stats, cid) for cid in ids)
        too_many = sum(status_count(stats, cid, "429") for cid in ids)
        self.assertLessEqual(too_many, 0.01 * total, f"{too_many} 429s of {total} requests")
        for cid in ids:
            wl.check_invariant(self, self.redis, cid, 200)
            rate = api_requests(stats, cid) / self.run_seconds(cid)
            self.assertGreaterEqual(rate, 0.85 * LIMIT, f"{cid} reached {rate:.1f}/s of {LIMIT}/s")
            # A sliding window allows LIMIT more at the start of the run, so
            # over T seconds the ceiling is LIMIT * (T / window + 1).
            ceiling = LIMIT * (self.run_seconds(cid) * 1000 / WINDOW_MS + 1)
            self.assertLessEqual(api_requests(stats, cid), ceiling)

    def test_one_login_per_client_across_workers(self):
        ids, env = self.start(5, 30, 3)
        wl.sync_all(env)
        wl.wait_runs_done(self.redis, ids, 60)
        stats = self.platform.stats()["clients"]
        for cid in ids:
            self.assertEqual(stats[cid]["requests"]["auth"], {"200": 1}, cid)

    def test_big_client_does_not_starve_small_ones(self):
        """1 client x 2000 enqueued before 20 x 50; 2 workers: every small run
        finishes before the big one and the median small run takes <= 1.5x
        what one takes alone."""
        small = 50
        ids, env = self.start(21, small, 2, latency_ms=20, ADSYNC_CONCURRENCY=16)
        # client_2 alone first: the baseline for one small run
        r = enqueue(["sync", "client_2"], env)
        self.assertEqual(r.returncode, 0, r.stderr)
        wl.wait_runs_done(self.redis, ["client_2"], 60)
        alone = self.run_seconds("client_2")
        # client_1 becomes the big one: its api_url points at a second mock
        # whose client_1 has 2,000 campaigns (same credentials).
        big_mock = Mock(*limited_mock_flags(1, 2000, 20))
        try:
            self.redis.cmd("HSET", "adsync:client:client_1", "api_url", big_mock.url)
            self.assertEqual(enqueue(["sync", "client_1"], env).returncode, 0)
            time.sleep(0.5)   # the big run is under way first
            smalls = ids[1:]
            r = enqueue(["sync", "--force"] + smalls, env)
            self.assertEqual(r.returncode, 0, r.stderr)
            wl.wait_runs_done(self.redis, smalls, 120)
            big_state = wl.last_run(self.redis, "client_1")[1]["state"]
            self.assertNotEqual(big_state, "done", "the big run finished before a small one")
            durations = [self.run_seconds(cid) for cid in smalls]
            median = statistics.median(durations)
            self.assertLessEqual(median, 1.5 * alone,
                                 f"median small run {median:.2f}s vs {alone:.2f}s alone")
        finally:
            big_mock.close()


if __name__ == "__main__":
    unittest.main()
