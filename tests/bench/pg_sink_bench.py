"""PostgreSQL sink benchmark (issue: the PostgreSQL sink).

One worker, 20 clients x 5,000 campaigns (CAMPAIGNS=...), platform at 0 latency without
faults (as tests/bench/worker_bench.py's throughput scenario). Each round runs
the same sync with the sink off and on (fresh Redis, fresh database), in
alternating order; the median of each counts (the machine is shared).
Measured: campaigns/s (sync --all until every run is done), and with the sink
on, the time from the last run done to an empty outbox with every row in
PostgreSQL. Prints a table, writes JSON (path in argv[1])."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from harness import Mock, Redis, Worker, enqueue  # noqa: E402
import pglib  # noqa: E402
import workerlib as wl  # noqa: E402

CLIENTS, CAMPAIGNS = 20, int(os.environ.get("CAMPAIGNS", "5000"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))


def outbox_empty(redis):
    return redis.cmd("LLEN", "adsync:outbox") == 0 and not redis.cmd("KEYS", "adsync:outbox:*")


def run(pg, sink, rnd):
    redis = Redis()
    mock = Mock("--clients", CLIENTS, "--campaigns", CAMPAIGNS, "--sync-latency-ms", 0,
                "--rate-limit", 0, "--fail-every", 0, "--hang-every", 0, "--seed", 1)
    w = None
    try:
        ids = wl.register_clients(redis, CLIENTS)
        extra = dict(ADSYNC_CONCURRENCY=64, ADSYNC_CLIENT_CONCURRENCY=4, ADSYNC_PAGE_SIZE=100,
                     ADSYNC_MAX_JOBS=CLIENTS, ADSYNC_HTTP_TIMEOUT_MS=30000, ADSYNC_LOG_LEVEL="warn",
                     ADSYNC_PG_BATCH_ROWS=os.environ.get("BATCH_ROWS", "500"))
        if sink:
            extra["ADSYNC_PG_URL"] = pg.create_db(f"bench{rnd}")
        env = wl.fast_env(redis, mock, **extra)
        if sink:
            r = enqueue(["db", "migrate"], env)
            assert r.returncode == 0, r.stderr
        w = Worker(env)
        time.sleep(0.5)   # connected, registered (and the sink's table checked) before the clock starts
        t0 = time.monotonic()
        wl.sync_all(env)
        while int(redis.cmd("HGET", "adsync:stats", "runs_done") or 0) < CLIENTS:
            time.sleep(0.01)   # one cheap command a poll: the bench must not compete for the CPU
        done = time.monotonic()
        assert all(wl.last_run(redis, cid)[1].get("state") == "done" for cid in ids)
        total = CLIENTS * CAMPAIGNS
        out = {"sink": sink, "campaigns": total, "seconds": round(done - t0, 3),
               "campaigns_per_s": round(total / (done - t0), 1)}
        if sink:
            outbox_at_done = redis.cmd("LLEN", "adsync:outbox")
            while not outbox_empty(redis):
                time.sleep(0.01)
            empty = time.monotonic()
            rows = int(pg.psql("SELECT count(*) FROM campaigns", db=f"bench{rnd}"))
            assert rows == total, rows
            out.update(outbox_at_last_sync=outbox_at_done, outbox_empty_after_s=round(empty - done, 3),
                       rows=rows, pg_rows_written=int(redis.cmd("HGET", "adsync:stats", "pg_rows_written")))
        w.signal(15)
        assert w.wait(30) == 0, w.log()[-2000:]
        return out
    finally:
        if w:
            w.close()
        mock.close()
        redis.close()


def median(rounds, sink):
    rates = sorted(r["campaigns_per_s"] for r in rounds if r["sink"] == sink)
    mid = len(rates) // 2
    return rates[mid] if len(rates) % 2 else round((rates[mid - 1] + rates[mid]) / 2, 1)


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else "bench-pg-sink.json"
    pg = pglib.Postgres()
    rounds = []
    try:
        for rnd in range(ROUNDS):
            order = (False, True) if rnd % 2 == 0 else (True, False)
            for sink in order:
                r = run(pg, sink, rnd)
                rounds.append(r)
                print(f"round {rnd + 1} sink {'on ' if sink else 'off'}: {r['campaigns_per_s']:>8} campaigns/s"
                      + (f", outbox empty {r['outbox_empty_after_s']} s after the last sync" if sink else ""),
                      flush=True)
    finally:
        pg.close()
    off, on = median(rounds, False), median(rounds, True)
    worst_lag = max(r["outbox_empty_after_s"] for r in rounds if r["sink"])
    ratio = on / off
    results = {"machine": f"{os.uname().nodename}, {os.cpu_count()} cores (shared)",
               "rounds": rounds, "median_off_campaigns_per_s": off, "median_on_campaigns_per_s": on,
               "ratio_on_off": round(ratio, 3), "worst_outbox_empty_after_s": worst_lag}
    print(f"median campaigns/s: sink off {off}, sink on {on} ({ratio * 100:.0f}%); "
          f"outbox empty at most {worst_lag} s after the last sync")
    checks = [("sink on >= 80% of sink off", ratio >= 0.8),
              ("outbox empty within 1 s of the last sync", worst_lag <= 1.0)]
    return wl.report_checks(checks, results, out_path)


if __name__ == "__main__":
    sys.exit(main())
