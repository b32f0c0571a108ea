"""Memory follows the configuration, not the platform (hardening issue,
row 3 and "What to build" 3).

Sixty clients list pages of about 1 MB each (100 campaigns of 10 KB) from a
platform that answers syncs slowly, so listed campaigns pile up waiting for
their sync: left alone a worker holds a page or two of every client it holds
(~75 MB peak here). With ADSYNC_BODY_BUDGET_BYTES at 8 MiB its peak RSS stays
under the README's bound for these settings:

    16 MB + ADSYNC_CONCURRENCY x 32 KiB + ADSYNC_MAX_JOBS x 200 KiB
          + 2 x (ADSYNC_BODY_BUDGET_BYTES + ADSYNC_MAX_BODY_BYTES)

and every run still finishes. A page over ADSYNC_MAX_PAGE_ITEMS is refused
before it is parsed (the hostile test's huge page covers that)."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import workerlib as wl  # noqa: E402

CLIENTS, CAMPAIGNS, PAGE_SIZE, PAD = 60, 100, 100, 10_000
MIB = wl.MIB
SETTINGS = dict(ADSYNC_PAGE_SIZE=PAGE_SIZE, ADSYNC_MAX_BODY_BYTES=2 * MIB,
                ADSYNC_BODY_BUDGET_BYTES=8 * MIB, ADSYNC_CONCURRENCY=64, ADSYNC_MAX_JOBS=64,
                ADSYNC_HTTP_TIMEOUT_MS=10000)


class MemoryTest(wl.SystemTest):
    def test_peak_rss_stays_within_the_configured_budget(self):
        mock = self.mock("--clients", CLIENTS, "--campaigns", CAMPAIGNS, "--campaign-bytes", PAD,
                         "--sync-latency-ms", 100, "--rate-limit", 0, "--fail-every", 0,
                         "--hang-every", 0, "--threads", 4)
        env = wl.asan_env(wl.fast_env(self.redis, mock, **SETTINGS))
        ids = wl.register_clients(self.redis, CLIENTS)
        worker = self.worker(env)
        wl.sync_all(env)
        wl.wait_runs_done(self.redis, ids, 240, workers=[worker])
        for cid in ids:
            wl.check_invariant(self, self.redis, cid, CAMPAIGNS)
        peak = wl.peak_rss_mb(worker.proc.pid)
        bound = wl.memory_bound_mb(worker.proc.pid, SETTINGS)
        print(f"worker peak RSS {peak:.1f} MB, bound {bound:.1f} MB", file=sys.stderr)
        self.assertLess(peak, bound)


if __name__ == "__main__":
    unittest.main()
