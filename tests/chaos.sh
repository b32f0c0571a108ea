#!/usr/bin/env bash
# chaos.sh: random worker deaths and Redis restarts while runs are syncing;
# after every round, DESIGN.md §4's invariant must hold (every run done,
# listed == synced + dead, everything stored, no job left anywhere) and
# every worker stopped by a signal must have exited 0 with a clean
# sanitizer log. Not part of ctest: it is long and random by design.
#
#   tests/chaos.sh [--rounds N] [--seed S]      (defaults: 5 rounds, random seed)
#
# Binaries come from ${ADSYNC_BIN_DIR:-build-test/bin}; the last line is
# "PASS ..." or "FAIL ..." and the exit code 0 or 1.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${ADSYNC_BIN_DIR:-$root/build-test/bin}
case $bin in /*) ;; *) bin=$PWD/$bin ;; esac
for b in adsync-worker adsync-enqueue adsync-mock-api; do
  if [ ! -x "$bin/$b" ]; then
    echo "FAIL chaos: $bin/$b is not built (set ADSYNC_BIN_DIR)"
    exit 1
  fi
done
export ADSYNC_BIN_DIR=$bin
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export PYTHONDONTWRITEBYTECODE=1
export CHAOS_HARNESS=$root/tests/integration

read -r -d '' chaos_py <<'PY' || true
import argparse
import os
import random
import signal
import sys
import time

sys.path.insert(0, os.environ["CHAOS_HARNESS"])
from harness import Mock, Redis, RedisError, Worker, adsync_env, enqueue, wait_until  # noqa: E402
import workerlib as wl  # noqa: E402

CLIENTS, CAMPAIGNS, LEASE_MS = 3, 300, 2000
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


class RoundFailed(Exception):
    pass


class AofRedis(Redis):
    """Redis with AOF: after a restart it answers LOADING for a while."""

    def __init__(self):
        super().__init__(appendonly=True)

    def _ping(self):
        try:
            return super()._ping()
        except RedisError:
            return False


class Round:
    def __init__(self, n, rng, redis, mock):
        self.n, self.rng, self.redis, self.mock = n, rng, redis, mock
        self.prefix = f"chaos{n}"
        self.env = adsync_env(redis=redis, mock=mock, prefix=self.prefix, ADSYNC_LEASE_MS=LEASE_MS,
                              ADSYNC_BACKOFF_BASE_MS=50, ADSYNC_BACKOFF_MAX_MS=1000, ADSYNC_MAX_ATTEMPTS=50,
                              ADSYNC_RATE_LIMIT=0, ADSYNC_HTTP_TIMEOUT_MS=5000,
                              ADSYNC_SHUTDOWN_GRACE_MS=300, ADSYNC_CONCURRENCY=16,
                              ADSYNC_CLIENT_CONCURRENCY=4, ADSYNC_MAX_JOBS=2)
        self.workers, self.retired, self.events = [], [], []
        self.seq = 0

    def log(self, what):
        self.events.append(what)

    def start_worker(self, wid=None):
        """A new worker; with wid, a restart under a dead one's id."""
        self.seq += 1
        w = Worker(self.env, "--id", wid or f"c{self.n}-w{self.seq}")
        w.wid = wid or f"c{self.n}-w{self.seq}"
        w.name = f"w{self.seq}"
        self.workers.append(w)
        # Up to here a signal would kill it before it could handle one.
        wait_until(lambda: "worker starting" in w.log() or w.proc.poll() is not None, 20, f"{w.name} to start")
        return w

    # ---- the chaos ----------------------------------------------------------

    def kill_worker(self):
        w = self.rng.choice(self.workers)
        self.workers.remove(w)
        w.proc.kill()
        w.proc.wait()
        w.rc = None
        self.retired.append(w)
        same = self.rng.random() < 0.3   # restarted under its id: takes its jobs back at once
        self.log(f"kill -9 {w.name}{' (same id)' if same else ''}")
        self.start_worker(w.wid if same else None)

    def term_worker(self):
        w = self.rng.choice(self.workers)
        self.workers.remove(w)
        w.signal(signal.SIGTERM)
        w.rc = w.wait(30)
        self.retired.append(w)
        self.log(f"SIGTERM {w.name} -> {w.rc}")
        if w.rc != 0:
            raise RoundFailed(f"{w.name} exited {w.rc} after SIGTERM")
        self.start_worker()

    def restart_redis(self):
        sig = self.rng.choice([signal.SIGTERM, signal.SIGKILL])
        down = self.rng.uniform(0.2, 4.0)
        self.redis.stop(sig)
        time.sleep(down)
        self.redis.start()
        self.log(f"redis {signal.Signals(sig).name} down {down:.1f}s")

    def chaos(self, actions):
        moves = [self.kill_worker, self.kill_worker, self.term_worker, self.restart_redis]
        for _ in range(actions):
            time.sleep(self.rng.uniform(0.3, 2.0))
            if self.finished():
                return
            self.rng.choice(moves)()
            for w in self.workers:
                if w.proc.poll() is not None:
                    raise RoundFailed(f"{w.name} exited {w.proc.returncode} on its own")

    # ---- the checks -----------------------------------------------------------

    def k(self, rest):
        return f"{self.prefix}:{rest}"

    def finished(self):
        """Every run ended and nothing left to do: a retry that a duplicate
        delivery made redundant still runs (and changes nothing)."""
        r = self.redis
        try:
            return (all(wl.last_run(r, c, self.prefix)[1].get("state") in ("done", "failed") for c in self.ids)
                    and r.cmd("LLEN", self.k("jobs")) == 0 and r.cmd("ZCARD", self.k("retry")) == 0
                    and all(r.cmd("LLEN", key) == 0 for key in r.cmd("KEYS", self.k("processing:*"))))
        except (OSError, RedisError):
            return False

    def check(self):
        r = self.redis
        problems = []
        for cid in self.ids:
            rid, run = wl.last_run(r, cid, self.prefix)
            listed, synced, dead = (int(run.get(f, 0)) for f in ("listed", "synced", "dead"))
            stored = r.cmd("HLEN", self.k(f"client:{cid}:campaigns"))
            if run.get("state") != "done":
                problems.append(f"{cid}: run {rid} is {run.get('state')}: {run}")
            if listed != CAMPAIGNS or listed != synced + dead or dead != 0 or stored != synced:
                problems.append(f"{cid}: listed {listed} synced {synced} dead {dead} stored {stored}")
            if int(run.get("retrying", 0)) != 0:
                problems.append(f"{cid}: {run.get('retrying')} still retrying")
        for key in ("jobs", "dead"):
            if r.cmd("LLEN", self.k(key)):
                problems.append(f"{key}: {r.cmd('LRANGE', self.k(key), 0, 5)}")
        if r.cmd("ZCARD", self.k("retry")):
            problems.append(f"retry: {r.cmd('ZRANGE', self.k('retry'), 0, 5)}")
        for key in r.cmd("KEYS", self.k("processing:*")):
            problems.append(f"{key}: {r.cmd('LRANGE', key, 0, 5)}")
        if problems:
            raise RoundFailed("; ".join(problems))

    def check_logs(self):
        for w in self.retired + self.workers:
            text = w.log()
            for mark in SANITIZER_MARKS:
                if mark in text:
                    raise RoundFailed(f"{w.name}: sanitizer report:\n{text[-4000:]}")

    # ---- one round ------------------------------------------------------------

    def run(self):
        self.ids = wl.register_clients(self.redis, CLIENTS, prefix=self.prefix)
        for _ in range(3):
            self.start_worker()
        r = enqueue(["sync", "--all"], self.env)
        if r.returncode != 0:
            raise RoundFailed(f"enqueue failed: {r.stderr}")
        self.chaos(self.rng.randint(3, 6))
        try:
            wait_until(self.finished, 120, "every run to end and every queue to empty", interval=0.2)
        except AssertionError as e:
            raise RoundFailed(str(e))
        for w in self.workers:
            w.signal(signal.SIGTERM)
        for w in self.workers:
            w.rc = w.wait(30)
            if w.rc != 0:
                raise RoundFailed(f"{w.name} exited {w.rc} at the end")
        self.retired += self.workers
        self.workers = []
        self.check()
        self.check_logs()

    def dump(self, keep):
        print(f"  events: {', '.join(self.events)}", flush=True)
        try:
            for cid in self.ids:
                rid, run = wl.last_run(self.redis, cid, self.prefix)
                print(f"  {cid} run {rid}: {run}", flush=True)
            for key in self.redis.cmd("KEYS", self.k("processing:*")) + [self.k("jobs")]:
                print(f"  {key}: {self.redis.cmd('LRANGE', key, 0, -1)}", flush=True)
            print(f"  retry: {self.redis.cmd('ZRANGE', self.k('retry'), 0, -1)}", flush=True)
        except (OSError, RedisError) as e:
            print(f"  (no Redis state: {e})", flush=True)
        for w in self.retired + self.workers:
            print(f"  --- {w.name} ({w.logpath}), last lines:", flush=True)
            print("\n".join("    " + line[:300] for line in w.log().splitlines()[-15:]), flush=True)
        if not keep:
            self.close()

    def close(self):
        for w in self.retired + self.workers:
            w.close()


def main():
    ap = argparse.ArgumentParser(prog="chaos.sh")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"chaos: {a.rounds} rounds, seed {seed}, binaries from {os.environ['ADSYNC_BIN_DIR']}", flush=True)
    redis = AofRedis()
    mock = Mock("--clients", CLIENTS, "--campaigns", CAMPAIGNS, "--sync-latency-ms", 80, "--rate-limit", 0,
                "--fail-every", 0, "--hang-every", 0, "--error-rate", 0.02, "--seed", seed)
    t_all = time.monotonic()
    failed = None
    try:
        for n in range(1, a.rounds + 1):
            t0 = time.monotonic()
            rnd = Round(n, rng, redis, mock)
            try:
                rnd.run()
            except (RoundFailed, AssertionError, OSError, RedisError) as e:
                failed = f"round {n}: {type(e).__name__}: {e}"
                print(f"round {n}: FAIL {e}", flush=True)
                rnd.dump(keep=True)
                break
            print(f"round {n}: ok in {time.monotonic() - t0:.1f}s ({', '.join(rnd.events)})", flush=True)
            rnd.close()
    finally:
        mock.close()
        redis.close()
    took = time.monotonic() - t_all
    if failed:
        print(f"FAIL chaos seed {seed}: {failed}")
        return 1
    print(f"PASS chaos: {a.rounds} rounds, seed {seed}, {took:.0f}s")
    return 0


sys.exit(main())
PY
exec python3 -c "$chaos_py" "$@"
