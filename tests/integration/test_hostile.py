"""A whole sync against a hostile platform (hardening issue, "What to build"
2): `adsync-mock-api --hostile` gives each of ten clients one kind of
misbehaviour (mock-api/hostile.h: odd ids, numbers beyond 2^53, deep
nesting, wrong types, oversized items, a huge page, bodies cut half way,
slow bodies, redirects, tokens with control characters).

The invariant, checked for every client: the run ends `done`; every listed
campaign is synced or dead, and every dead one has a dead letter with a
reason; nothing is left in the jobs list, the retry set or any processing
list; the worker never exits; its peak RSS stays under the README's bound
for its memory settings. Then
what each kind needs on top: odd ids reach the platform as themselves,
numbers are stored digit for digit, redirects are never followed."""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import wait_until  # noqa: E402
import workerlib as wl  # noqa: E402

CLEAN = ("--sync-latency-ms", 0, "--rate-limit", 0, "--fail-every", 0, "--hang-every", 0)
KINDS = ["odd-ids", "numbers", "nested", "wrong-types", "oversized", "huge-page", "truncated",
         "slow-body", "redirect", "bad-token"]
CAMPAIGNS, PAGE_SIZE = 12, 5
# Memory settings: the README's bound for them is what the peak RSS must
# stay under (workerlib.memory_bound_mb).
SETTINGS = dict(ADSYNC_CONCURRENCY=64, ADSYNC_MAX_JOBS=64, ADSYNC_MAX_BODY_BYTES=4 << 20,
                ADSYNC_BODY_BUDGET_BYTES=16 << 20)
ODD_SYNCED = {".", "..", "a/b", "%2F", "caf\u00e9 \u2603", "?x=1#y"}
ODD_DEAD = {"", "bad\x01id", "L" * 300}


class HostileTest(wl.SystemTest):
    def test_every_run_ends_with_nothing_lost_or_stranded(self):
        mock = self.mock("--hostile", "--clients", len(KINDS), "--campaigns", CAMPAIGNS, *CLEAN)
        env = wl.asan_env(wl.fast_env(self.redis, mock, ADSYNC_PAGE_SIZE=PAGE_SIZE, ADSYNC_HTTP_TIMEOUT_MS=1000,
                                      ADSYNC_MAX_ATTEMPTS=8, **SETTINGS))
        ids = wl.register_clients(self.redis, len(KINDS))
        kind_of = dict(zip(ids, KINDS))
        worker = self.worker(env)
        wl.sync_all(env)

        def ended():
            if worker.proc.poll() is not None:
                raise AssertionError(f"worker exited {worker.proc.returncode}:\n{worker.log()[-3000:]}")
            return all(wl.last_run(self.redis, cid)[1].get("state") in ("done", "failed") for cid in ids)
        wait_until(ended, 120, "every run to end", interval=0.1)

        letters = [json.loads(d) for d in self.redis.cmd("LRANGE", "adsync:dead", 0, -1)]
        for cid in ids:
            with self.subTest(client=cid, kind=kind_of[cid]):
                run_id, run = wl.last_run(self.redis, cid)
                self.assertEqual(run["state"], "done", run)
                wl.check_invariant(self, self.redis, cid, CAMPAIGNS)
                items = self.redis.cmd("HGETALL", f"adsync:run:{run_id}:items")
                dead_ids = {k for k, v in zip(items[::2], items[1::2]) if v == "dead"}
                reasons = {d["campaign"]["id"]: d.get("last_error", "") for d in letters
                           if d.get("client") == cid and isinstance(d.get("campaign"), dict)}
                self.assertEqual(set(reasons), dead_ids, "one dead letter per dead campaign")
                self.assertTrue(all(reasons.values()), f"every dead letter has a reason: {reasons}")

        self.assertEqual(self.redis.cmd("LLEN", "adsync:jobs"), 0)
        self.assertEqual(self.redis.cmd("ZCARD", "adsync:retry"), 0)
        for key in self.redis.cmd("KEYS", "adsync:processing:*"):
            self.assertEqual(self.redis.cmd("LLEN", key), 0, key)
        self.assertIsNone(worker.proc.poll(), "the worker keeps serving")
        rss, bound = wl.peak_rss_mb(worker.proc.pid), wl.memory_bound_mb(worker.proc.pid, SETTINGS)
        print(f"worker peak RSS {rss:.1f} MB (bound {bound:.1f} MB)", file=sys.stderr)
        self.assertLess(rss, bound)

        by_kind = {kind_of[cid]: cid for cid in ids}
        stored = {kind: wl.stored_campaigns(self.redis, cid) for kind, cid in by_kind.items()}
        self.assertEqual(ODD_SYNCED & set(stored["odd-ids"]), ODD_SYNCED)
        self.assertFalse(ODD_DEAD & set(stored["odd-ids"]))
        synced_at_platform = mock.stats()["clients"][by_kind["odd-ids"]]["synced"]
        self.assertEqual({f"campaign_{k}" for k in range(1, 7)} - set(synced_at_platform), set(),
                         "the odd ids reached the platform as themselves")

        raw = self.redis.cmd("HGET", f"adsync:client:{by_kind['numbers']}:campaigns", "campaign_3")
        for literal in ('"big":9007199254740993', '"huge":1e400', '"tiny":-1e-400',
                        '"precise":0.1000000000000000055511151231257827'):
            self.assertIn(literal, raw)
        deep = self.redis.cmd("HGET", f"adsync:client:{by_kind['nested']}:campaigns", "campaign_1")
        self.assertIn("[" * 400 + "]" * 400, deep)
        self.assertIn("campaign_2", stored["oversized"])
        self.assertNotIn("campaign_1", stored["oversized"])
        self.assertIn("too large to retry", next(d["last_error"] for d in letters
                                                  if d.get("client") == by_kind["oversized"]))
        self.assertEqual(mock.stats()["hostile"]["redirects_followed"], 0)
        self.assertNotIn("X-Injected", worker.log())


if __name__ == "__main__":
    unittest.main()
