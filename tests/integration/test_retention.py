"""Retention (hardening issue, row 15): Redis does not grow with the number
of runs. Every key a run creates expires ADSYNC_RETENTION_MS after the run
ended, except its client's newest run, which status keeps showing; the dead
list keeps its newest ADSYNC_DEAD_MAX letters and counts what it trimmed.

The soak test drives one client through 3,000 short runs at 200 a second,
each of which syncs one campaign and buries another (a permanent 400), with
a retention of 1.5 s and a dead cap of 50, and checks that Redis's key
count and used_memory stay flat once the first retention window has
passed."""
import json
import os
import re
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import enqueue, wait_until  # noqa: E402
import workerlib as wl  # noqa: E402

CLEAN = ("--sync-latency-ms", 0, "--rate-limit", 0, "--fail-every", 0, "--hang-every", 0)
LUA_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "common", "lua")
RETENTION_MS = 1500
DEAD_MAX = 50
PER_WAVE, WAVE_EVERY_S, SOAK_S = 50, 0.25, 15   # 200 runs a second, 3,000 runs


def lua_script(name):
    """A script as the programs embed it: `-- @include` lines expanded."""
    with open(os.path.join(LUA_DIR, name)) as f:
        text = f.read()

    def include(m):
        with open(os.path.join(LUA_DIR, m.group(1))) as inc:
            return inc.read()
    return re.sub(r"^-- @include (\S+)$", include, text, flags=re.M)


class RetentionTest(wl.SystemTest):
    def setUp(self):
        super().setUp()
        self.enqueue_sha = self.redis.cmd("SCRIPT", "LOAD", lua_script("enqueue_run.lua"))

    def queue_runs(self, cid, n):
        """n runs of cid, queued the way `adsync-enqueue sync --force` does
        (enqueue_run.lua), in one pipeline: thousands of runs without
        thousands of process starts."""
        now = int(time.time() * 1000)
        runs, cmds = [], []
        for _ in range(n):
            run = f"{now}-{os.urandom(8).hex()}"
            job = json.dumps({"v": 1, "id": os.urandom(16).hex(), "type": "client", "client": cid,
                              "run": run, "attempt": 0, "enqueued_at": now})
            cmds.append(("EVALSHA", self.enqueue_sha, 5, "adsync:clients", f"adsync:client:{cid}:active_run",
                         f"adsync:run:{run}", f"adsync:client:{cid}:last_run", "adsync:jobs",
                         cid, run, job, now, 86400000, "1", RETENTION_MS))
            runs.append(run)
        for reply in self.redis.pipeline(cmds):
            self.assertEqual(reply[0], "queued", reply)
        return runs

    def wait_ended(self, runs):
        def ended():
            states = self.redis.pipeline([("HGET", f"adsync:run:{r}", "state") for r in runs])
            return all(s in ("done", None) for s in states)
        wait_until(ended, 60, "the wave's runs to end", interval=0.02)

    def used_memory(self):
        info = self.redis.cmd("INFO", "memory")
        return int(re.search(r"used_memory:(\d+)", info).group(1))

    def test_thousands_of_runs_leave_redis_flat(self):
        mock = self.mock("--clients", 1, "--campaigns", 2, "--reject-campaign", "campaign_2", *CLEAN)
        env = wl.fast_env(self.redis, mock, ADSYNC_RETENTION_MS=RETENTION_MS, ADSYNC_DEAD_MAX=DEAD_MAX)
        (cid,) = wl.register_clients(self.redis, 1)
        worker = self.worker(env)
        # A steady pace, so what Redis holds at any time is about the runs of
        # one retention window (plus expiry's lag), whatever the box's speed.
        start, memory, key_counts, total = time.monotonic(), [], [], 0
        while time.monotonic() - start < SOAK_S:
            wave = time.monotonic()
            runs = self.queue_runs(cid, PER_WAVE)
            self.wait_ended(runs)
            total += PER_WAVE
            if time.monotonic() - start > 2 * RETENTION_MS / 1000:
                memory.append(self.used_memory())
                key_counts.append(int(self.redis.cmd("DBSIZE")))
            time.sleep(max(0.0, WAVE_EVERY_S - (time.monotonic() - wave)))
        self.assertIsNone(worker.proc.poll(), worker.log()[-2000:])
        last = runs[-1]
        wait_until(lambda: self.redis.cmd("GET", f"adsync:client:{cid}:active_run") is None, 10,
                   "the newest run to clear active_run")
        time.sleep(2 * RETENTION_MS / 1000)

        # Older runs are gone with their items; the newest one stays.
        keys = self.redis.cmd("KEYS", "adsync:run:*")
        self.assertEqual(sorted(keys), sorted([f"adsync:run:{last}", f"adsync:run:{last}:items"]),
                         f"{len(keys)} run keys left of {2 * total}")
        status = json.loads(enqueue(["status", "--json"], env).stdout)
        (client,) = status["clients"]
        self.assertEqual((client["last_run"]["run"], client["last_run"]["state"], client["last_run"]["listed"],
                          client["last_run"]["synced"], client["last_run"]["dead"]), (last, "done", 2, 1, 1))

        # The dead list holds the newest letters; the rest are counted.
        self.assertEqual(self.redis.cmd("LLEN", "adsync:dead"), DEAD_MAX)
        self.assertEqual((status["dead"], status["dead_trimmed"]), (DEAD_MAX, total - DEAD_MAX))
        newest = json.loads(self.redis.cmd("LINDEX", "adsync:dead", 0))
        self.assertIn(newest["run"], runs, "the newest letters are of the last wave (its runs end in any order)")

        # Flat: the keys stay about one window's runs, never the thousands
        # queued; memory saws by a couple of hundred KB as Redis expires in
        # cycles, while every run kept would add about 500 bytes (run hash,
        # items hash, dead letter): ~750 KB between the second and the last
        # quarter of the samples. Compare the quarters' peaks.
        self.assertGreater(total, 2000)
        self.assertGreater(len(memory), 20, "enough samples after the retention window")
        window_keys = 2 * (PER_WAVE / WAVE_EVERY_S) * (RETENTION_MS / 1000 + 1.5)
        self.assertLess(max(key_counts), window_keys + 50, f"keys {key_counts}")
        quarter = len(memory) // 4
        growth = max(memory[-quarter:]) - max(memory[quarter:2 * quarter])
        self.assertLess(growth, 256 * 1024, f"+{growth} bytes; used_memory samples {memory}")

    def test_a_run_reopened_by_dead_retry_stops_ageing(self):
        mock = self.mock("--clients", 1, "--campaigns", 2, "--reject-campaign", "campaign_2", *CLEAN)
        env = wl.fast_env(self.redis, mock, ADSYNC_RETENTION_MS=60000)
        (cid,) = wl.register_clients(self.redis, 1)
        worker = self.worker(env)
        old, newer = self.queue_runs(cid, 2)
        self.wait_ended([old, newer])
        worker.signal(signal.SIGTERM)
        self.assertEqual(worker.wait(10), 0, "stopped, so the retried run stays open")
        ttl = self.redis.cmd("PTTL", f"adsync:run:{old}")
        self.assertTrue(0 < ttl <= 60000, ttl)
        self.assertEqual(self.redis.cmd("PTTL", f"adsync:run:{newer}"), -1, "the newest run is kept")
        letter = next(d for d in self.redis.cmd("LRANGE", "adsync:dead", 0, -1) if json.loads(d)["run"] == old)
        r = enqueue(["dead", "retry", json.loads(letter)["id"]], env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.redis.cmd("PTTL", f"adsync:run:{old}"), -1)
        self.assertEqual(self.redis.cmd("PTTL", f"adsync:run:{old}:items"), -1)


if __name__ == "__main__":
    unittest.main()
