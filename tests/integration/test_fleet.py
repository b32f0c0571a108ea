"""Hundreds of clients at the platform's rate limit (issue: thousands of
clients at the real rate limit), at a small scale: 200-300 clients, each held
to 10 requests per 2 s window, 200 ms syncs, a 503 on every 5th list call.
Time is compressed 30x against the real platform, so the worker's own time
constants are too (HTTP timeout 1 s, backoff base 33 ms); everything else is
at its default. The bounds are the benchmark's (tests/bench/fleet.sh), taken
loosely enough for a sanitizer build on a busy box."""
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import adsync_env, enqueue, wait_until  # noqa: E402
import fleetlib  # noqa: E402
import workerlib as wl  # noqa: E402

LIMIT, WINDOW_MS, SYNC_MS, CAMPAIGNS = 10, 2000, 200, 20
COMPRESSED = dict(ADSYNC_HTTP_TIMEOUT_MS=1000, ADSYNC_BACKOFF_BASE_MS=33, ADSYNC_BACKOFF_MAX_MS=10000)


class FleetTest(wl.SystemTest):
    def test_runs_near_the_bound_without_429s(self):
        """200 clients x 20, 2 default workers: time <= 1.6x the bound the
        platform's rules allow, <= 1 % 429s, the slowest client within 3
        windows of the bound and of the median, nothing synced twice."""
        r = fleetlib.run(self, 200, CAMPAIGNS, LIMIT, WINDOW_MS, SYNC_MS, 2, fail_every=5,
                         timeout_s=120, **COMPRESSED)
        summary = {k: r[k] for k in ("seconds", "bound_seconds", "requests", "http_429",
                                     "finish_p50", "finish_max", "peak_rss_mb")}
        self.assertLessEqual(r["time_over_bound"], 1.6, summary)
        self.assertLessEqual(r["share_429"], 0.01, summary)
        self.assertLessEqual(r["slowest_over_bound_windows"], 3, summary)
        self.assertLessEqual(r["finish_max"] - r["finish_p50"], 3 * WINDOW_MS / 1000, summary)
        self.assertEqual(r["duplicate_syncs"], 0, summary)
        for cid in r["ids"]:
            wl.check_invariant(self, self.redis, cid, CAMPAIGNS)

    def start_fleet(self, clients, worker_ids):
        mock = self.mock(*fleetlib.mock_flags(clients, CAMPAIGNS, LIMIT, WINDOW_MS, SYNC_MS, 5, 0))
        ids = wl.register_clients(self.redis, clients)
        env = adsync_env(redis=self.redis, mock=mock, ADSYNC_RATE_LIMIT=LIMIT,
                         ADSYNC_RATE_WINDOW_MS=WINDOW_MS, ADSYNC_LEASE_MS=3000,
                         ADSYNC_SHUTDOWN_GRACE_MS=3000, ADSYNC_LOG_LEVEL="warn", **COMPRESSED)
        workers = {wid: self.worker(env, "--id", wid) for wid in worker_ids}
        r = enqueue(["sync", "--all"], env)
        self.assertEqual(r.returncode, 0, r.stderr)
        return mock, ids, env, workers

    def held(self, wid):
        return self.redis.cmd("LLEN", f"adsync:processing:{wid}")

    def progressed(self, ids):
        """Clients whose current run has synced campaigns."""
        runs = self.redis.pipeline([("GET", f"adsync:client:{cid}:last_run") for cid in ids])
        synced = self.redis.pipeline([("HGET", f"adsync:run:{rid}", "synced") for rid in runs])
        return [cid for cid, n in zip(ids, synced) if n and int(n) > 0]

    def wait_holding(self, wid, n):
        wait_until(lambda: self.held(wid) >= n, 30, f"{wid} to hold {n} jobs", interval=0.05)

    def test_kill9_with_hundreds_held_loses_nothing(self):
        """300 clients, 2 workers; one is killed -9 while it holds >= 100
        client jobs: the survivor takes them over and every run ends with all
        20 campaigns synced."""
        _, ids, _, workers = self.start_fleet(300, ["victim", "survivor"])
        self.wait_holding("victim", 100)
        time.sleep(0.5)   # mid-window: pages recorded, syncs in flight
        workers["victim"].proc.kill()
        workers["victim"].proc.wait()
        wl.wait_runs_done(self.redis, ids, 120, workers=[workers["survivor"]])
        for cid in ids:
            run = wl.check_invariant(self, self.redis, cid, CAMPAIGNS)
            self.assertEqual(int(run["dead"]), 0, (cid, run))
        self.assertEqual(self.redis.cmd("LLEN", "adsync:jobs"), 0)
        self.assertEqual(self.held("victim"), 0, "the dead worker's list was recovered")

    def test_sigterm_hands_every_held_client_back_with_its_cursor(self):
        """One worker holding >= 100 clients gets SIGTERM: it exits 0, its
        processing list is empty, every unfinished run is back on the queue
        with the progress it made, and a fresh worker finishes them without
        syncing anything twice."""
        mock, ids, env, workers = self.start_fleet(300, ["first"])
        first = workers["first"]
        self.wait_holding("first", 100)
        wait_until(lambda: len(self.progressed(ids)) >= 50, 30, "50 runs with synced campaigns",
                   interval=0.05)
        held = self.held("first")
        first.signal(signal.SIGTERM)
        self.assertEqual(first.wait(30), 0, first.log()[-3000:])
        self.assertEqual(self.held("first"), 0)
        unfinished = [cid for cid in ids if wl.last_run(self.redis, cid)[1].get("state") != "done"]
        self.assertGreaterEqual(len(unfinished), held - 20, "the held clients were not finished")
        # back on the queue, or (a page that failed during the stop) due for a retry
        waiting = self.redis.cmd("LLEN", "adsync:jobs") + self.redis.cmd("ZCARD", "adsync:retry")
        self.assertEqual(waiting, len(unfinished))
        # Their progress went back with them: the run's cursor and the outcome
        # of every campaign synced so far, which the next worker skips.
        progressed = set(self.progressed(ids)) & set(unfinished)
        self.assertGreaterEqual(len(progressed), 40, "handed-back clients had synced campaigns")
        second = self.worker(env, "--id", "second")
        wl.wait_runs_done(self.redis, ids, 120, workers=[second])
        stats = mock.stats()["clients"]
        twice = {(cid, c): n for cid in ids for c, n in stats[cid]["synced"].items() if n > 1}
        self.assertEqual(twice, {}, "campaigns synced twice after the hand-back")
        for cid in ids:
            wl.check_invariant(self, self.redis, cid, CAMPAIGNS)


if __name__ == "__main__":
    unittest.main()
