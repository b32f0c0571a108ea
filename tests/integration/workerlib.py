"""Shared setup for worker integration tests: register the mock's accounts
in Redis, enqueue runs, run workers, and check DESIGN.md §4's invariant."""
import json
import os
import time
import unittest

from harness import Mock, Redis, Worker, adsync_env, enqueue, wait_until

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
# What the worker logs when its own bookkeeping goes wrong (flow.c: an event
# its job's state does not take): as fatal to a test as a sanitizer report.
FAULT_MARKS = SANITIZER_MARKS + ("bug: ",)


class Processes:
    """A redis-server plus the mocks and workers started with mock() and
    worker(), all stopped by close_all()."""

    def start_all(self, redis):
        self.redis = redis
        self.mocks, self.workers = [], []

    def mock(self, *flags):
        m = Mock(*flags)
        self.mocks.append(m)
        return m

    def worker(self, env, *args):
        w = Worker(env, *args)
        self.workers.append(w)
        return w

    def close_all(self):
        for w in self.workers:
            w.close()
        for m in self.mocks:
            m.close()
        self.redis.close()


class SystemTest(Processes, unittest.TestCase):
    """A real redis-server per test, plus the mocks and workers the test
    starts with mock() and worker(); all stopped in tearDown, which also
    fails the test if a worker's log holds a sanitizer report or a bug line."""
    redis_aof = False

    def setUp(self):
        self.start_all(Redis(appendonly=self.redis_aof))

    def tearDown(self):
        reports = [w.log() for w in self.workers if any(m in w.log() for m in FAULT_MARKS)]
        self.close_all()
        self.assertEqual(reports, [], "sanitizer reports or bug lines in worker logs")


def register_clients(redis, n, prefix="adsync", api_url=None):
    """Registers client_1..n with the mock's credentials, as `client add` would."""
    ids = [f"client_{i}" for i in range(1, n + 1)]
    for cid in ids:
        fields = ["email", f"{cid}@example.test", "password", f"secret-{cid}"]
        if api_url:
            fields += ["api_url", api_url]
        redis.cmd("HSET", f"{prefix}:client:{cid}", *fields)
        redis.cmd("SADD", f"{prefix}:clients", cid)
    return ids


def sync_all(env):
    r = enqueue(["sync", "--all", "--json"], env)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return r


def run_hash(redis, run_id, prefix="adsync"):
    flat = redis.cmd("HGETALL", f"{prefix}:run:{run_id}")
    return dict(zip(flat[::2], flat[1::2]))


def last_run(redis, cid, prefix="adsync"):
    rid = redis.cmd("GET", f"{prefix}:client:{cid}:last_run")
    assert rid, f"no run recorded for {cid}"
    return rid, run_hash(redis, rid, prefix)


def wait_runs_done(redis, ids, timeout, prefix="adsync", workers=()):
    """Waits for every client's last run to be done; fails at once, with the
    log, if one of the given workers exits meanwhile."""
    def all_done():
        for w in workers:
            if w.proc.poll() is not None:
                raise AssertionError(f"worker exited {w.proc.returncode}:\n{w.log()[-3000:]}")
        return all(last_run(redis, cid, prefix)[1].get("state") == "done" for cid in ids)
    wait_until(all_done, timeout, "every run to be done", interval=0.1)


def check_invariant(testcase, redis, cid, expected_listed, prefix="adsync"):
    """Nothing listed is ever lost: listed == synced + dead, all stored."""
    _, run = last_run(redis, cid, prefix)
    listed, synced, dead = int(run["listed"]), int(run["synced"]), int(run["dead"])
    testcase.assertEqual(listed, expected_listed, run)
    testcase.assertEqual(listed, synced + dead, run)
    testcase.assertEqual(int(run.get("retrying", 0)), 0, run)
    stored = redis.cmd("HLEN", f"{prefix}:client:{cid}:campaigns")
    testcase.assertEqual(stored, synced, f"{cid}: {stored} stored, {synced} synced")
    return run


def stored_campaigns(redis, cid, prefix="adsync"):
    flat = redis.cmd("HGETALL", f"{prefix}:client:{cid}:campaigns")
    return {k: json.loads(v) for k, v in zip(flat[::2], flat[1::2])}


def start_workers(n, env, *args):
    return [Worker(env, *args) for _ in range(n)]


def wait_exit(testcase, workers, timeout):
    deadline = time.monotonic() + timeout
    for w in workers:
        left = max(0.1, deadline - time.monotonic())
        rc = w.wait(left)
        testcase.assertEqual(rc, 0, f"worker exited {rc}:\n{w.log()[-4000:]}")


def fast_env(redis, mock, **extra):
    base = dict(ADSYNC_BACKOFF_BASE_MS=50, ADSYNC_BACKOFF_MAX_MS=500, ADSYNC_LEASE_MS=3000,
                ADSYNC_RATE_LIMIT=0, ADSYNC_HTTP_TIMEOUT_MS=1000,
                ADSYNC_SHUTDOWN_GRACE_MS=2000)
    base.update(extra)
    return adsync_env(redis=redis, mock=mock, **base)


def report_checks(checks, results, path):
    """Benchmarks: prints PASS/FAIL per (name, ok) check, writes results (with
    the checks) as JSON to path, returns the exit code."""
    for name, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}: {name}")
    results["checks"] = {name: ok for name, ok in checks}
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {path}")
    return 0 if all(ok for _, ok in checks) else 1


# ---- memory (README "Memory") ---------------------------------------------------

MIB = 1 << 20
# The sanitizer build (what tests/run.sh runs) adds its runtime, shadow
# memory and redzones; tests keep its quarantine of freed memory small
# (asan_env) and allow this much on top of the README's bound.
ASAN_ALLOWANCE_MB = 48


def readme_memory_bound_mb(s):
    """The README's bound on a worker's peak RSS for settings s (env names)."""
    return (16 + s["ADSYNC_CONCURRENCY"] * 32 / 1024 + s["ADSYNC_MAX_JOBS"] * 200 / 1024
            + 2 * (s["ADSYNC_BODY_BUDGET_BYTES"] + s["ADSYNC_MAX_BODY_BYTES"]) / MIB)


def asan_env(env):
    env["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "detect_leaks=1") + ":quarantine_size_mb=4"
    return env


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def memory_bound_mb(pid, settings):
    """The bound for a running worker: the README's, plus the sanitizer's share."""
    with open(f"/proc/{pid}/maps") as f:
        sanitized = "libasan" in f.read()
    return readme_memory_bound_mb(settings) + (ASAN_ALLOWANCE_MB if sanitized else 0)
