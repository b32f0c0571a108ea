"""Out of memory on the job path (worker-core issue): the k-th allocation the
worker makes after start-up fails (tests/oom/failalloc.c, preloaded; the
program's own allocations only, libraries spared), for k across the whole
job path of a small sync: 2 clients x 12 campaigns in pages of 4, each k
in turn from the first to the last. A calibration run without failures
counts the allocations first (a couple of hundred: the synced outcomes go
in batches).

Whatever k hits — a job's element, a request, a page, a batch, a store
write, a client's credentials — no job is left held: each worker run with
--drain ends on its own with exit 0 (or, when the failed allocation was part
of its set-up, exit 1 before it took anything), nothing stays in its
processing list, and every run ends done with listed == synced + dead and
nothing dead (one failed allocation is not a reason to bury anything). A
failure before any job was taken is finished by a clean worker. Runs go six
at a time, each under its own ADSYNC_PREFIX on one Redis and one mock.
A second test fails every 3rd, 7th or 13th allocation, 150 of them, and
asks the same."""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BIN_DIR, TempDir, Worker, adsync_env, enqueue  # noqa: E402
import workerlib as wl  # noqa: E402

CLIENTS, CAMPAIGNS, PAGE = 2, 12, 4
PARALLEL = 6
SHIM = os.path.join(BIN_DIR, "libfailalloc.so")


def sanitized(path):
    """Whether the program links AddressSanitizer, under whose allocator the
    shim cannot sit."""
    out = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
    return "libasan" in out


class OutOfMemoryTest(wl.SystemTest):
    def setUp(self):
        worker = os.path.join(BIN_DIR, "adsync-worker")
        if sanitized(worker):
            self.fail(f"{worker} is built with AddressSanitizer: run this test on a plain build "
                      "(tests/run.sh configures ADSYNC_PLAIN_BIN_DIR for it)")
        super().setUp()
        self.mock = self.mock("--clients", CLIENTS, "--campaigns", CAMPAIGNS, "--sync-latency-ms", 0,
                              "--rate-limit", 0, "--fail-every", 0, "--hang-every", 0)
        self.tmp = TempDir("oom")
        self.arm = self.tmp.file("arm")
        open(self.arm, "w").close()   # armed from the start: counting begins at the 64th call

    def tearDown(self):
        self.tmp.cleanup()
        super().tearDown()

    def env(self, prefix, **extra):
        return adsync_env(self.redis, self.mock, prefix=prefix, ADSYNC_PAGE_SIZE=PAGE, ADSYNC_RATE_LIMIT=0,
                          ADSYNC_BACKOFF_BASE_MS=20, ADSYNC_BACKOFF_MAX_MS=200, ADSYNC_LEASE_MS=3000,
                          ADSYNC_HTTP_TIMEOUT_MS=2000, ADSYNC_SHUTDOWN_GRACE_MS=1000, **extra)

    def queue(self, prefix):
        ids = wl.register_clients(self.redis, CLIENTS, prefix=prefix)
        r = enqueue(["sync", *ids], self.env(prefix))
        self.assertEqual(r.returncode, 0, r.stderr)
        return ids

    def failing_worker(self, prefix, k, report=None, limit=1, **settings):
        env = self.env(prefix, **settings, LD_PRELOAD=SHIM, FAILALLOC_EVERY=k, FAILALLOC_LIMIT=limit,
                       FAILALLOC_ARM_FILE=self.arm,
                       ASAN_OPTIONS="verify_asan_link_order=0:allocator_may_return_null=1:detect_leaks=0")
        if report:
            env["FAILALLOC_REPORT"] = report
        return self.worker(env, "--drain")

    def check_finished(self, prefix, ids, w, k):
        try:
            rc = w.wait(30)
        except subprocess.TimeoutExpired:
            self.fail(f"k={k}: still running 30 s after a run of well under a second:\n{w.log()[-4000:]}")
        log = w.log()
        self.assertIn(rc, (0, 1), f"k={k}: worker exited {rc}:\n{log[-3000:]}")
        if rc == 1:   # its set-up failed: it took nothing, a clean worker does the work
            self.assertIn("could not set up the worker", log, f"k={k}:\n{log[-3000:]}")
            wl.wait_exit(self, [self.worker(self.env(prefix), "--drain")], 90)
        held = [self.redis.cmd("LLEN", key) for key in self.redis.cmd("KEYS", f"{prefix}:processing:*")]
        self.assertEqual(sum(held), 0, f"k={k}: jobs left held\n{log[-3000:]}")
        self.assertEqual(self.redis.cmd("LLEN", f"{prefix}:jobs"), 0, f"k={k}")
        self.assertEqual(self.redis.cmd("ZCARD", f"{prefix}:retry"), 0, f"k={k}")
        self.assertEqual(self.redis.cmd("LLEN", f"{prefix}:dead"), 0, f"k={k}: {log[-3000:]}")
        for cid in ids:
            run = wl.last_run(self.redis, cid, prefix)[1]
            self.assertEqual(run["state"], "done", f"k={k} {cid}: {run}\n{log[-4000:]}")
            self.assertEqual(run["dead"], "0", f"k={k} {cid}: {run}")
            wl.check_invariant(self, self.redis, cid, CAMPAIGNS, prefix=prefix)

    def test_one_failed_allocation_anywhere_leaves_nothing_held(self):
        self.assertTrue(os.path.exists(SHIM), f"{SHIM} is not built")
        report = self.tmp.file("calls")
        ids = self.queue("cal")
        w = self.failing_worker("cal", 10**12, report)   # counts, never fails
        self.check_finished("cal", ids, w, "none")
        with open(report) as f:
            calls = int(f.read().split()[0])
        self.assertGreater(calls, 200, "the job path allocates: the shim sees too few calls")
        ks = list(range(1, calls + 10))   # every one, and a few past the end
        print(f"{calls} allocations after arming; failing each of {len(ks)} of them in turn")
        handed_back = 0
        for i in range(0, len(ks), PARALLEL):
            batch = []
            for k in ks[i:i + PARALLEL]:
                prefix = f"oom{k}"
                batch.append((prefix, self.queue(prefix), self.failing_worker(prefix, k), k))
            for prefix, ids, w, k in batch:
                self.check_finished(prefix, ids, w, k)
                handed_back += "job handed back" in w.log()
        print(f"runs in which a job was handed back after a failed step: {handed_back}")
        self.assertGreater(handed_back, 0, "no failure ever hit a job: the sweep misses the job path")

    def test_memory_short_for_a_while_leaves_nothing_held(self):
        """Every 3rd, 7th or 13th allocation fails, 150 times in a row. Each
        failed step hands its job back, and a hand-back counts as a
        delivery: with the default ADSYNC_MAX_DELIVERIES (5) a job handed
        back that often is buried as poison, by design (a job that keeps
        failing its worker must not loop). Here deliveries are not the
        question, so they are not capped."""
        self.assertTrue(os.path.exists(SHIM), f"{SHIM} is not built")
        runs = []
        for every in (3, 7, 13):
            prefix = f"often{every}"
            ids = self.queue(prefix)
            w = self.failing_worker(prefix, every, limit=150, ADSYNC_MAX_DELIVERIES=1000)
            runs.append((prefix, ids, w, every))
        for prefix, ids, w, every in runs:
            self.check_finished(prefix, ids, w, f"every {every}")


if __name__ == "__main__":
    unittest.main()
