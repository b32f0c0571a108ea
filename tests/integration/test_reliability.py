"""adsync-worker when processes die (DESIGN.md section 5): a worker killed
with SIGKILL, a graceful SIGTERM/SIGINT, poison jobs, Redis stopped and
restarted, the ad platform stopped and restarted. Every test runs real
processes and ends with the invariant: nothing listed is ever lost."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import RedisError, RespClient, wait_until  # noqa: E402
import workerlib as wl  # noqa: E402

FAULT_FREE = ("--rate-limit", 0, "--fail-every", 0, "--hang-every", 0)


def run_of(redis, cid):
    return wl.last_run(redis, cid)[1]


def synced_so_far(redis, ids):
    total = 0
    for cid in ids:
        rid = redis.cmd("GET", f"adsync:client:{cid}:last_run")
        total += int(redis.cmd("HGET", f"adsync:run:{rid}", "synced") or 0)
    return total


def platform_syncs(mock):
    """Sync calls counted 200 over every client (the mock counts a call
    when it arrives, before its latency: requests in flight included)."""
    return sum(c["requests"].get("sync", {}).get("200", 0) for c in mock.stats()["clients"].values())


def duplicate_syncs(mock):
    """Syncs beyond the first of each campaign, over every client."""
    return sum(n - 1 for c in mock.stats()["clients"].values() for n in c["synced"].values() if n > 1)


# Keeps the server busy (a script spinning on TIME) so that every other
# client's commands wait for seconds without any connection dropping.
BUSY_LUA = """
local function now() local t = redis.call('TIME') return t[1] * 1000000 + t[2] end
local stop = now() + tonumber(ARGV[1])
while now() < stop do end
return 1
"""


def redis_busy(port, seconds):
    c = RespClient(port, timeout=seconds + 10)
    try:
        c.cmd("EVAL", BUSY_LUA, 0, int(seconds * 1000000))
    finally:
        c.close()


def log_events(worker, msg):
    out = []
    for line in worker.log().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("msg") == msg:
            out.append(rec)
    return out


def resp(*args):
    """One command in RESP, for pipelining by hand."""
    out = b"*%d\r\n" % len(args)
    for a in args:
        b = str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(b), b)
    return out


def start_again(redis):
    """Restarts a stopped redis-server on its port, waiting out LOADING (an
    AOF being read back), which the harness's ping takes for an error."""
    try:
        redis.start()
    except RedisError:
        wait_until(lambda: ping(redis.port), 10, "redis-server to load its AOF")


def ping(port):
    try:
        c = RespClient(port, timeout=1)
        try:
            return c.cmd("PING") == "PONG"
        finally:
            c.close()
    except (OSError, RedisError):
        return False


class Reliability(wl.SystemTest):
    """What the tests below share (no tests of its own)."""

    def processing(self, wid):
        return self.redis.cmd("LRANGE", f"adsync:processing:{wid}", 0, -1)

    def assert_nothing_lost(self, ids, campaigns):
        """Every run done, every campaign synced and stored, no queue left."""
        for cid in ids:
            run = wl.check_invariant(self, self.redis, cid, campaigns)
            self.assertEqual(run["state"], "done", (cid, run))
            self.assertEqual(int(run["dead"]), 0, (cid, run))
        self.assertEqual(self.redis.cmd("LRANGE", "adsync:dead", 0, -1), [])
        self.assertEqual(self.redis.cmd("LLEN", "adsync:jobs"), 0)
        self.assertEqual(self.redis.cmd("ZCARD", "adsync:retry"), 0)
        for wid in self.redis.cmd("SMEMBERS", "adsync:workers"):
            self.assertEqual(self.processing(wid), [], wid)

    def stop_all(self, workers, timeout=20):
        for w in workers:
            w.signal(signal.SIGTERM)
        wl.wait_exit(self, workers, timeout)


class WorkerDeathTest(Reliability):
    """Workers killed, stopped or taken for dead; poison jobs."""

    def test_kill9_mid_run_survivor_finishes_within_lease(self):
        """kill -9 of one of two workers during 3 x 300 campaigns (50 ms
        latency): the other reaps its jobs, resumes them from the runs'
        cursors and finishes; duplicates stay within what the killed worker
        could have had in flight."""
        clients, campaigns, lease_ms, concurrency = 3, 300, 2000, 16
        mock = self.mock("--clients", clients, "--campaigns", campaigns, "--sync-latency-ms", 50,
                         *FAULT_FREE)
        ids = wl.register_clients(self.redis, clients)
        env = wl.fast_env(self.redis, mock, ADSYNC_LEASE_MS=lease_ms, ADSYNC_CONCURRENCY=concurrency,
                          ADSYNC_CLIENT_CONCURRENCY=5, ADSYNC_MAX_JOBS=2, ADSYNC_HTTP_TIMEOUT_MS=15000)
        ws = {wid: self.worker(env, "--id", wid) for wid in ("w1", "w2")}
        wait_until(lambda: self.redis.cmd("SCARD", "adsync:workers") == 2, 10, "both workers registered")
        t0 = time.monotonic()
        wl.sync_all(env)
        total = clients * campaigns
        wait_until(lambda: synced_so_far(self.redis, ids) >= total * 0.35, 60, "a third of the run")

        victim = max(ws, key=lambda wid: len(self.processing(wid)))
        held = len(self.processing(victim))
        self.assertGreater(held, 0, "the victim holds jobs")
        ws[victim].proc.kill()
        ws[victim].proc.wait()
        t_kill = time.monotonic()
        done_at_kill = synced_so_far(self.redis, ids)
        run_time = (t_kill - t0) * total / max(done_at_kill, 1)   # the whole run at this pace

        survivor = ws["w2" if victim == "w1" else "w1"]
        wl.wait_runs_done(self.redis, ids, lease_ms / 1000 + 2 * run_time + 10)
        elapsed = time.monotonic() - t_kill
        self.assertLessEqual(elapsed, lease_ms / 1000 * 1.5 + run_time + 5,
                             f"finished {elapsed:.1f}s after the kill (run time ~{run_time:.1f}s)")
        self.assertIsNone(survivor.proc.poll(), "the survivor keeps running")
        self.stop_all([survivor])

        self.assert_nothing_lost(ids, campaigns)
        self.assertEqual(int(self.redis.cmd("HGET", "adsync:stats", "jobs_recovered") or 0), held)
        self.assertEqual(self.redis.cmd("SMEMBERS", "adsync:workers"), [], "the dead worker was removed")
        self.assertEqual(len(log_events(survivor, "recovered jobs of a dead worker")), 1)
        stats = mock.stats()["clients"]
        for cid in ids:
            missing = [k for k in range(1, campaigns + 1) if stats[cid]["synced"].get(f"campaign_{k}", 0) < 1]
            self.assertEqual(missing, [], cid)
            # Resumed from the cursor, not page 1: a page or two listed again at most.
            self.assertLessEqual(stats[cid]["requests"]["list"]["200"], campaigns // 10 + 5, cid)
        dups = duplicate_syncs(mock)
        self.assertLessEqual(dups, concurrency, f"{dups} duplicate syncs")

    def test_worker_taken_for_dead_registers_again(self):
        """A live worker that another reaper removed from adsync:workers (its
        heartbeat expired while Redis was away and it came back late) adds
        itself again with its next heartbeat: if it dies later, what it holds
        is still recovered."""
        lease_ms = 1500
        mock = self.mock("--clients", 1, "--campaigns", 20, "--sync-latency-ms", 3000, *FAULT_FREE)
        ids = wl.register_clients(self.redis, 1)
        env = wl.fast_env(self.redis, mock, ADSYNC_LEASE_MS=lease_ms, ADSYNC_HTTP_TIMEOUT_MS=10000,
                          ADSYNC_CLIENT_CONCURRENCY=10)
        wl.sync_all(env)
        a = self.worker(env, "--id", "late")
        wait_until(lambda: len(self.processing("late")) == 1 and log_events(a, "job started"), 20,
                   "the job started")
        # What reap.lua does to a worker without heartbeat (its list is left
        # alone here, as if it had been empty then).
        self.redis.cmd("SREM", "adsync:workers", "late")
        self.redis.cmd("DEL", "adsync:worker:late")
        wait_until(lambda: self.redis.cmd("SISMEMBER", "adsync:workers", "late") == 1 and
                   self.redis.cmd("EXISTS", "adsync:worker:late") == 1, lease_ms / 1000 * 2, "registered again")
        a.proc.kill()
        a.proc.wait()
        b = self.worker(env, "--id", "rescuer")
        wl.wait_runs_done(self.redis, ids, 60)
        self.stop_all([b])
        self.assert_nothing_lost(ids, 20)
        self.assertEqual(int(self.redis.cmd("HGET", "adsync:stats", "jobs_recovered") or 0), 1)

    def test_job_popped_while_the_pop_connection_died_is_handed_back(self):
        """Redis moved a job into our processing list but the BLMOVE reply
        died with the connection: once the pop connection is back, the
        worker hands every element it does not hold back to the queue (else
        the job would sit there for as long as the worker lives)."""
        mock = self.mock("--clients", 1, "--campaigns", 20, "--sync-latency-ms", 0, *FAULT_FREE)
        ids = wl.register_clients(self.redis, 1)
        env = wl.fast_env(self.redis, mock)
        wl.sync_all(env)
        self.redis.cmd("LMOVE", "adsync:jobs", "held-aside", "RIGHT", "LEFT")
        w = self.worker(env, "--id", "lossy")
        wait_until(lambda: [c for c in self.redis.cmd("CLIENT", "LIST").splitlines() if "cmd=blmove" in c], 10,
                   "the worker blocked in BLMOVE")
        pop_id = next(c for c in self.redis.cmd("CLIENT", "LIST").splitlines()
                      if "cmd=blmove" in c).split()[0].split("=")[1]
        # One pipeline: the push serves the blocked BLMOVE, the kill drops its reply.
        c = RespClient(self.redis.port)
        c.sock.sendall(resp("LMOVE", "held-aside", "adsync:jobs", "RIGHT", "LEFT") +
                       resp("CLIENT", "KILL", "ID", pop_id))
        self.assertIsInstance(c._reply(), str)
        self.assertEqual(c._reply(), 1, "the pop connection was killed")
        c.close()
        wl.wait_runs_done(self.redis, ids, 20)
        self.stop_all([w])
        self.assert_nothing_lost(ids, 20)
        self.assertEqual([e["jobs"] for e in log_events(w, "handed back jobs whose pop reply was lost")], [1])

    def test_login_lock_of_a_dead_worker_does_not_block_the_client(self):
        """A worker killed while logging in leaves the client's login lock
        behind (and no token): the others poll for the token, and once the
        lock expires one of them logs in and the run goes on."""
        mock = self.mock("--clients", 1, "--campaigns", 20, "--sync-latency-ms", 0, *FAULT_FREE)
        ids = wl.register_clients(self.redis, 1)
        env = wl.fast_env(self.redis, mock)
        self.redis.cmd("SET", "adsync:client:client_1:authlock", "killed-mid-login", "PX", 1500)
        wl.sync_all(env)
        w = self.worker(env, "--drain")
        wl.wait_exit(self, [w], 20)
        self.assert_nothing_lost(ids, 20)
        self.assertEqual(mock.stats()["clients"]["client_1"]["requests"]["auth"], {"200": 1})

    # poison jobs

    def test_poison_job_at_max_deliveries_is_dead_lettered(self):
        """A client job and a campaign job already delivered MAX_DELIVERIES
        times go to the dead letters on their next pop; the rest runs on."""
        mock = self.mock("--clients", 2, "--campaigns", 15, "--sync-latency-ms", 0, *FAULT_FREE)
        wl.register_clients(self.redis, 2)
        env = wl.fast_env(self.redis, mock, ADSYNC_MAX_DELIVERIES=3)
        wl.sync_all(env)
        rid1, rid2 = wl.last_run(self.redis, "client_1")[0], wl.last_run(self.redis, "client_2")[0]
        client_job = next(json.loads(j) for j in self.redis.cmd("LRANGE", "adsync:jobs", 0, -1)
                          if json.loads(j)["client"] == "client_1")
        self.redis.cmd("HSET", "adsync:deliveries", client_job["id"], 3)
        camp_job = {"v": 1, "id": "poison-c2", "type": "campaign", "client": "client_2", "run": rid2,
                    "attempt": 2, "campaign": {"id": "campaign_4", "name": "Campaign 4"}}
        self.redis.cmd("HSET", "adsync:deliveries", camp_job["id"], 3)
        self.redis.cmd("RPUSH", "adsync:jobs", json.dumps(camp_job))   # popped first
        w = self.worker(env, "--drain")
        wl.wait_exit(self, [w], 60)

        letters = {j["id"]: j for j in map(json.loads, self.redis.cmd("LRANGE", "adsync:dead", 0, -1))}
        self.assertEqual(set(letters), {client_job["id"], camp_job["id"]})
        for letter in letters.values():
            self.assertEqual(letter["last_error"], "poison: delivered 4 times")
        self.assertEqual(letters[camp_job["id"]]["attempt"], 2)
        self.assertEqual(self.redis.cmd("HLEN", "adsync:deliveries"), 0)
        run1 = wl.run_hash(self.redis, rid1)
        self.assertEqual(run1["state"], "failed")
        self.assertEqual(run1["last_error"], "poison: delivered 4 times")
        self.assertIsNone(self.redis.cmd("GET", "adsync:client:client_1:active_run"))
        self.assertFalse(mock.stats()["clients"]["client_1"]["requests"].get("list"), "never started")
        run2 = wl.check_invariant(self, self.redis, "client_2", 15)
        self.assertEqual((run2["state"], int(run2["dead"]), int(run2["synced"])), ("done", 1, 14))
        self.assertEqual(mock.stats()["clients"]["client_2"]["synced"].get("campaign_4"), None)

    def test_worker_killed_repeatedly_on_one_job_buries_it(self):
        """A job whose worker dies every time it holds it (same --id, so the
        restart takes its jobs back at once) is dead-lettered as poison once
        popped more than MAX_DELIVERIES times, instead of killing workers
        forever."""
        mock = self.mock("--clients", 1, "--campaigns", 5, "--sync-latency-ms", 3000, *FAULT_FREE)
        ids = wl.register_clients(self.redis, 1)
        env = wl.fast_env(self.redis, mock, ADSYNC_MAX_DELIVERIES=2, ADSYNC_HTTP_TIMEOUT_MS=10000)
        wl.sync_all(env)
        job_id = json.loads(self.redis.cmd("LINDEX", "adsync:jobs", 0))["id"]
        for delivery in (1, 2):
            w = self.worker(env, "--id", "crashy")
            wait_until(lambda: int(self.redis.cmd("HGET", "adsync:deliveries", job_id) or 0) == delivery and
                       log_events(w, "job started"), 20, f"delivery {delivery} started")
            w.proc.kill()
            w.proc.wait()
            self.assertEqual(len(self.processing("crashy")), 1, "the dead worker still holds the job")
        w = self.worker(env, "--id", "crashy")
        wait_until(lambda: self.redis.cmd("LLEN", "adsync:dead") == 1, 20, "the job buried")
        letter = json.loads(self.redis.cmd("LINDEX", "adsync:dead", 0))
        self.assertEqual(letter["id"], job_id)
        self.assertEqual(letter["last_error"], "poison: delivered 3 times")
        self.assertEqual(run_of(self.redis, ids[0])["state"], "failed")
        self.assertEqual(self.processing("crashy"), [])
        self.assertEqual(self.redis.cmd("LLEN", "adsync:jobs"), 0)
        self.stop_all([w])


class OutageTest(Reliability):
    """Redis or the ad platform away for a while. Redis keeps an AOF, as in
    production, so a restart brings its data back."""
    redis_aof = True


    def test_redis_stopped_5s_mid_run_nothing_lost(self):
        """redis-server (AOF on) stopped for 5 s mid-run and restarted on the
        same port: the workers never exit, keep the answers of requests in
        flight in memory and write them when Redis is back (so nothing is
        synced twice), reconnect both connections, do not take each other
        for dead although every heartbeat expired meanwhile, and finish every
        run; one log line per state change and a reconnect counter."""
        clients, campaigns = 3, 200
        mock = self.mock("--clients", clients, "--campaigns", campaigns, "--sync-latency-ms", 300,
                         *FAULT_FREE)
        ids = wl.register_clients(self.redis, clients)
        env = wl.fast_env(self.redis, mock, ADSYNC_MAX_JOBS=2, ADSYNC_CLIENT_CONCURRENCY=10,
                          ADSYNC_HTTP_TIMEOUT_MS=15000)
        ws = [self.worker(env, "--id", wid) for wid in ("r1", "r2")]
        wait_until(lambda: self.redis.cmd("SCARD", "adsync:workers") == 2, 10, "both workers registered")
        wl.sync_all(env)
        total = clients * campaigns
        wait_until(lambda: synced_so_far(self.redis, ids) >= total * 0.25, 60, "a quarter of the run")

        unrecorded = platform_syncs(mock) - synced_so_far(self.redis, ids)
        self.redis.stop()
        time.sleep(5)
        start_again(self.redis)
        for w in ws:
            self.assertIsNone(w.proc.poll(), "a worker exited while Redis was away")

        wl.wait_runs_done(self.redis, ids, 90)
        for w in ws:
            self.assertIsNone(w.proc.poll(), "a worker exited after Redis came back")
        wait_until(lambda: int(self.redis.cmd("HGET", "adsync:stats", "redis_reconnects") or 0) >= 2, 10,
                   "the reconnects counted")
        self.stop_all(ws)
        self.assert_nothing_lost(ids, campaigns)
        stats = mock.stats()["clients"]
        for cid in ids:
            missing = [k for k in range(1, campaigns + 1) if stats[cid]["synced"].get(f"campaign_{k}", 0) < 1]
            self.assertEqual(missing, [], cid)
        self.assertGreater(unrecorded, 0, "requests were in flight when Redis went away")
        for w in ws:   # one line per state change, not one per attempt
            for conn in ("main", "pop"):
                lost = [e for e in log_events(w, "redis connection lost") if e.get("connection") == conn]
                up = [e for e in log_events(w, "redis connected") if e.get("connection") == conn]
                self.assertEqual((len(lost), len(up)), (1, 2), (conn, w.log()[-3000:]))
        # Seen at once (a reset too, see the next test), so no heartbeat
        # lapsed and nothing may be done twice.
        late = [e for w in ws for e in log_events(w, "redis connection lost") if "timeout" in e["reason"]]
        self.assertEqual(late, [], "a lost connection was only noticed at the command timeout")
        self.assertEqual(duplicate_syncs(mock), 0, "answers that came while Redis was away were kept")
        self.assertEqual(int(self.redis.cmd("HGET", "adsync:stats", "jobs_recovered") or 0), 0,
                         "no live worker was reaped")

    def test_reset_connection_is_noticed_at_once(self):
        """A connection reset (RST, as when redis-server is SIGKILLed) is
        seen to die at once, not at the 10 s command timeout: hiredis 0.14's
        libuv adapter drops poll errors, rds hands them to hiredis."""
        mock = self.mock("--clients", 1, "--campaigns", 10, *FAULT_FREE)
        w = self.worker(wl.fast_env(self.redis, mock))
        wait_until(lambda: "worker registered" in w.log(), 10, "the worker registered")
        t0 = time.monotonic()
        r = subprocess.run(["ss", "-K", "dst", f"127.0.0.1:{self.redis.port}"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        wait_until(lambda: len(log_events(w, "redis connection lost")) >= 2, 5, "both connections seen to die")
        self.assertLess(time.monotonic() - t0, 2.0)
        lost = log_events(w, "redis connection lost")
        self.assertEqual([e for e in lost if "timeout" in e["reason"]], [], lost)
        wait_until(lambda: len(log_events(w, "redis connected")) >= 4, 10, "both connections back")

    def test_sigterm_while_redis_is_away_leaves_jobs_to_the_reaper(self):
        """SIGTERM while Redis is down: the worker cannot hand its jobs back,
        so it exits 0 without them (and without leaking the results it could
        not write); once Redis is back another worker reaps and finishes."""
        lease_ms = 2000
        mock = self.mock("--clients", 1, "--campaigns", 100, "--sync-latency-ms", 100, *FAULT_FREE)
        ids = wl.register_clients(self.redis, 1)
        env = wl.fast_env(self.redis, mock, ADSYNC_LEASE_MS=lease_ms, ADSYNC_SHUTDOWN_GRACE_MS=500,
                          ADSYNC_HTTP_TIMEOUT_MS=10000)
        wl.sync_all(env)
        a = self.worker(env, "--id", "cut-off")
        wait_until(lambda: synced_so_far(self.redis, ids) >= 20, 30, "a fifth of the run")
        self.redis.stop()
        # The worker must know Redis is gone (a reset connection is only
        # noticed at the command timeout) for the stop to be immediate.
        wait_until(lambda: [e for e in log_events(a, "redis connection lost") if e["connection"] == "main"],
                   15, "the worker to see Redis gone")
        time.sleep(0.5)   # the answers in flight arrive; their writes wait in memory
        t0 = time.monotonic()
        a.signal(signal.SIGTERM)
        rc = a.wait(10)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, a.log()[-4000:])
        self.assertLess(took, 2.0, a.log()[-4000:])
        self.assertEqual(len(log_events(a, "stopped without handing jobs back; another worker's reaper will")), 1)

        start_again(self.redis)
        b = self.worker(env, "--id", "rescuer")
        wl.wait_runs_done(self.redis, ids, 60)
        self.stop_all([b])
        self.assert_nothing_lost(ids, 100)
        self.assertEqual(int(self.redis.cmd("HGET", "adsync:stats", "jobs_recovered") or 0), 1)

    def test_platform_down_2s_mid_run_nothing_dead(self):
        """The ad platform killed mid-run (connections refused) and restarted
        2 s later on the same port: calls are retried with backoff, nothing
        is dead-lettered within the default attempt budget, every run ends."""
        clients, campaigns = 2, 150
        mock = self.mock("--clients", clients, "--campaigns", campaigns, "--sync-latency-ms", 50,
                         *FAULT_FREE)
        ids = wl.register_clients(self.redis, clients)
        env = wl.fast_env(self.redis, mock, ADSYNC_BACKOFF_BASE_MS=200, ADSYNC_BACKOFF_MAX_MS=2000,
                          ADSYNC_MAX_ATTEMPTS=8, ADSYNC_HTTP_TIMEOUT_MS=15000)
        w = self.worker(env)
        wl.sync_all(env)
        wait_until(lambda: synced_so_far(self.redis, ids) >= clients * campaigns * 0.25, 60, "a quarter")
        mock.stop(signal.SIGKILL)
        time.sleep(2)
        mock.start()
        wl.wait_runs_done(self.redis, ids, 90)
        self.assertIsNone(w.proc.poll())
        self.stop_all([w])
        self.assert_nothing_lost(ids, campaigns)
        self.assertGreater(int(self.redis.cmd("HGET", "adsync:stats", "campaigns_retried") or 0), 0,
                           "the outage was felt")
        self.assertGreater(sum(c["requests"].get("auth", {}).get("200", 0)
                               for c in mock.stats()["clients"].values()), 0, "logged in to the new platform")


class ShutdownTest(Reliability):
    """SIGTERM and SIGINT: finish or abort within the grace, hand back the rest."""


    def test_sigterm_hands_back_within_grace_and_second_worker_completes(self):
        """SIGTERM with 2 s syncs and 500 ms grace: exit 0 within 1 s, every
        held job back on the queue (the client job with its cursor, the
        campaign job with its attempt unchanged), deregistered; a second
        worker completes every run."""
        clients, campaigns = 2, 40
        mock = self.mock("--clients", clients, "--campaigns", campaigns, "--sync-latency-ms", 2000,
                         *FAULT_FREE)
        ids = wl.register_clients(self.redis, clients)
        env = wl.fast_env(self.redis, mock, ADSYNC_SHUTDOWN_GRACE_MS=500, ADSYNC_CLIENT_CONCURRENCY=10,
                          ADSYNC_HTTP_TIMEOUT_MS=10000)
        wl.sync_all(env)
        first = self.worker(env, "--id", "first")
        # Mid-run: both clients past page 1, the next round of syncs in flight.
        wait_until(lambda: all(int(run_of(self.redis, cid).get("next_page", 1)) >= 2 for cid in ids),
                   30, "a round of syncs done")
        # A retry of campaign_1 arrives: it must go back exactly as it came.
        camp_job = json.dumps({"v": 1, "id": "retry-c1", "type": "campaign", "client": "client_1",
                               "run": wl.last_run(self.redis, "client_1")[0], "attempt": 3,
                               "last_error": "HTTP 503", "campaign": {"id": "campaign_1", "name": "Campaign 1"}},
                              separators=(",", ":"))
        self.redis.cmd("LPUSH", "adsync:jobs", camp_job)
        wait_until(lambda: len(self.processing("first")) == 3, 10, "the retry popped")
        time.sleep(0.3)
        held = sorted(self.processing("first"))
        deliveries = {j: int(self.redis.cmd("HGET", "adsync:deliveries", json.loads(j)["id"]) or 0) for j in held}
        t0 = time.monotonic()
        first.signal(signal.SIGTERM)
        rc = first.wait(10)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, first.log()[-3000:])
        self.assertLess(took, 1.0, f"exit took {took:.2f}s")

        self.assertEqual(sorted(self.redis.cmd("LRANGE", "adsync:jobs", 0, -1)), held,
                         "every held job back on the queue, byte for byte")
        self.assertIn(camp_job, held)
        self.assertEqual(self.processing("first"), [])
        self.assertEqual(self.redis.cmd("SMEMBERS", "adsync:workers"), [])
        self.assertIsNone(self.redis.cmd("GET", "adsync:worker:first"))
        for j, n in deliveries.items():   # a handed-back job did not fail: not a delivery
            self.assertEqual(int(self.redis.cmd("HGET", "adsync:deliveries", json.loads(j)["id"]) or 0), n - 1)
        for cid in ids:
            self.assertGreater(int(run_of(self.redis, cid).get("next_page", 1)), 1, f"{cid}: cursor kept")
        stopped = log_events(first, "stopped")
        self.assertEqual(len(stopped), 1, first.log()[-3000:])
        self.assertEqual(stopped[0]["jobs_handed_back"], 3)

        def lists():
            return {cid: c["requests"]["list"].get("200", 0) for cid, c in mock.stats()["clients"].items()}
        cursors = {cid: int(run_of(self.redis, cid)["next_page"]) for cid in ids}
        before = lists()
        second = self.worker(env, "--drain")
        wl.wait_exit(self, [second], 60)
        self.assert_nothing_lost(ids, campaigns)
        after = lists()
        for cid in ids:   # the second worker listed from the cursor on, not from page 1
            self.assertEqual(after[cid] - before[cid], campaigns // 10 - cursors[cid] + 1, cid)

    def test_sigterm_while_a_page_write_is_pending_starts_nothing_new(self):
        """A page whose write Redis confirms only after SIGTERM (Redis busy
        meanwhile) must not start its syncs: the job goes back whole and
        nothing queued after the stop is leaked."""
        mock = self.mock("--clients", 1, "--campaigns", 30, "--sync-latency-ms", 0, "--list-latency-ms", 1000,
                         *FAULT_FREE)
        ids = wl.register_clients(self.redis, 1)
        env = wl.fast_env(self.redis, mock, ADSYNC_SHUTDOWN_GRACE_MS=300, ADSYNC_HTTP_TIMEOUT_MS=10000)
        wl.sync_all(env)
        w = self.worker(env, "--id", "stopper")
        wait_until(lambda: mock.stats()["clients"]["client_1"]["requests"].get("list"), 20, "page 1 requested")
        busy = threading.Thread(target=redis_busy, args=(self.redis.port, 2.0))
        busy.start()   # the page arrives while Redis is busy: its write waits
        time.sleep(1.3)
        w.signal(signal.SIGTERM)
        busy.join()
        rc = w.wait(10)
        self.assertEqual(rc, 0, w.log()[-4000:])
        self.assertEqual(len(log_events(w, "stopped")), 1, w.log()[-3000:])
        self.assertEqual(self.redis.cmd("LLEN", "adsync:jobs"), 1, "the job went back")
        self.assertEqual(platform_syncs(mock), 0, "no sync started after the stop")
        run = run_of(self.redis, ids[0])
        self.assertEqual(int(run["listed"]), 10, "the page's write landed")
        second = self.worker(env, "--drain")
        wl.wait_exit(self, [second], 60)
        self.assert_nothing_lost(ids, 30)

    def test_second_signal_cuts_the_grace_to_zero(self):
        """SIGTERM with a long grace waits for requests in flight; a second
        signal (SIGINT) ends it at once, still handing everything back."""
        mock = self.mock("--clients", 1, "--campaigns", 20, "--sync-latency-ms", 5000, *FAULT_FREE)
        ids = wl.register_clients(self.redis, 1)
        env = wl.fast_env(self.redis, mock, ADSYNC_SHUTDOWN_GRACE_MS=60000, ADSYNC_HTTP_TIMEOUT_MS=20000)
        wl.sync_all(env)
        w = self.worker(env, "--id", "slow")
        wait_until(lambda: len(self.processing("slow")) == 1 and log_events(w, "job started"), 20,
                   "the job started")
        time.sleep(0.5)   # syncs are in flight now (5 s each)
        w.signal(signal.SIGTERM)
        time.sleep(1.0)
        self.assertIsNone(w.proc.poll(), "the first signal waits for requests in flight")
        t0 = time.monotonic()
        w.signal(signal.SIGINT)
        rc = w.wait(10)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, w.log()[-3000:])
        self.assertLess(took, 1.0, f"exit took {took:.2f}s after the second signal")
        self.assertEqual(len(log_events(w, "second signal: no more grace")), 1)
        self.assertEqual(self.redis.cmd("LLEN", "adsync:jobs"), 1)
        self.assertEqual(self.processing("slow"), [])
        self.assertGreater(platform_syncs(mock), 0, "syncs were in flight")
        run = run_of(self.redis, ids[0])
        self.assertEqual((run["state"], int(run.get("synced", 0))), ("running", 0), "every request was cut")


if __name__ == "__main__":
    unittest.main()
