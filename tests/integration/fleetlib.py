"""Many clients at the platform's real rules (DESIGN.md §6): the shared part
of tests/bench/fleet.sh and test_fleet.py.

A fleet run registers N clients on a mock that enforces `limit` requests per
sliding window per client, enqueues one sync of each, and measures against
the bound the platform's rules allow: a client that must make n /api
requests can make them no faster than `limit` per window, so its last one
leaves floor((n - 1) / limit) windows after its first and is answered one
sync latency later; a request the platform never answers (a hang) costs that
client the HTTP timeout on top. The bound of the run is the slowest client's;
clients run in parallel and the HTTP slots are assumed not to limit."""
import os
import statistics
import time

from harness import Redis, adsync_env, enqueue, wait_until
import workerlib as wl


def mock_flags(clients, campaigns, limit, window_ms, sync_ms, fail_every, hang_every):
    return ("--clients", clients, "--campaigns", campaigns, "--sync-latency-ms", sync_ms,
            "--rate-limit", limit, "--rate-window-ms", window_ms,
            "--fail-every", fail_every, "--hang-every", hang_every, "--faults-per-platform",
            "--threads", 2, "--seed", 7)


def client_bound_s(req, campaigns, limit, window_ms, sync_ms, timeout_ms):
    """The fastest this client's run could go under the platform's rules."""
    lists = sum(n for status, n in req.get("list", {}).items() if status != "429")
    n = lists + campaigns        # every page it had to ask for, and each campaign once
    hangs = req.get("list", {}).get("hang", 0) + req.get("sync", {}).get("hang", 0)
    return ((n - 1) // limit * window_ms + sync_ms + hangs * timeout_ms) / 1000.0


def proc_peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def proc_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def wait_all_done(redis, ids, timeout_s, workers):
    """wl.wait_runs_done for a thousand clients: two pipelined round trips a
    poll, so the poller does not take the CPU the workers are measured on."""
    def all_done():
        for w in workers:
            if w.proc.poll() is not None:
                raise AssertionError(f"worker exited {w.proc.returncode}:\n{w.log()[-3000:]}")
        runs = redis.pipeline([("GET", f"adsync:client:{cid}:last_run") for cid in ids])
        if None in runs:
            return False
        states = redis.pipeline([("HGET", f"adsync:run:{rid}", "state") for rid in runs])
        return all(s == "done" for s in states)
    wait_until(all_done, timeout_s, "every run to be done", interval=0.25)


def run(test, clients, campaigns, limit, window_ms, sync_ms, workers, fail_every=5,
        hang_every=0, timeout_s=600, **env_extra):
    """Runs one fleet sync inside a wl.SystemTest-like object `test` (for its
    redis, mock() and worker()); returns the figures as a dict."""
    mock = test.mock(*mock_flags(clients, campaigns, limit, window_ms, sync_ms, fail_every, hang_every))
    ids = wl.register_clients(test.redis, clients)
    settings = dict(ADSYNC_RATE_LIMIT=limit, ADSYNC_RATE_WINDOW_MS=window_ms, ADSYNC_LOG_LEVEL="warn")
    settings.update(env_extra)
    env = adsync_env(redis=test.redis, mock=mock, **settings)
    timeout_ms = int(env_extra.get("ADSYNC_HTTP_TIMEOUT_MS", 30000))
    procs = [test.worker(env) for _ in range(workers)]
    time.sleep(0.3)   # registered and popping: the clock starts at the enqueue
    t0_ms = int(time.time() * 1000)
    r = enqueue(["sync", "--all"], env)
    assert r.returncode == 0, r.stderr
    wait_all_done(test.redis, ids, timeout_s, procs)
    rss = [proc_peak_rss_mb(w.proc.pid) for w in procs]
    cpu = [proc_cpu_s(w.proc.pid) for w in procs]
    stats = mock.stats()["clients"]
    runs = [wl.last_run(test.redis, cid)[1] for cid in ids]
    finish = [(int(run["finished_at"]) - t0_ms) / 1000.0 for run in runs]
    start = [(int(run["started_at"]) - t0_ms) / 1000.0 for run in runs]
    bounds = [client_bound_s(stats[cid]["requests"], campaigns, limit, window_ms, sync_ms, timeout_ms)
              for cid in ids]
    requests = too_many = 0
    for cid in ids:
        for ep in ("list", "sync"):
            codes = stats[cid]["requests"].get(ep, {})
            requests += sum(codes.values())
            too_many += codes.get("429", 0)
    synced = [n for cid in ids for n in stats[cid].get("synced", {}).values()]
    bound = max(bounds)
    elapsed = max(finish)
    return {
        "clients": clients, "campaigns": campaigns, "workers": workers,
        "rules": {"limit": limit, "window_ms": window_ms, "sync_ms": sync_ms,
                  "fail_every": fail_every, "hang_every": hang_every},
        "seconds": round(elapsed, 2), "bound_seconds": round(bound, 2),
        "time_over_bound": round(elapsed / bound, 3),
        "requests": requests, "http_429": too_many,
        "share_429": round(too_many / max(1, requests), 5),
        "duplicate_syncs": sum(n - 1 for n in synced if n > 1),
        "finish_p50": round(statistics.median(finish), 2), "finish_p99": round(percentile(finish, 99), 2),
        "finish_max": round(max(finish), 2), "start_p50": round(statistics.median(start), 2),
        "start_max": round(max(start), 2),
        "slowest": sorted(({"client": cid, "start": round(st, 2), "finish": round(fi, 2),
                            "requests": stats[cid]["requests"]}
                           for cid, st, fi in zip(ids, start, finish)), key=lambda x: -x["finish"])[:3],
        "slowest_over_bound_windows": round((max(finish) - bound) * 1000.0 / window_ms, 2),
        "peak_rss_mb": [round(x, 1) for x in rss], "cpu_s": [round(x, 2) for x in cpu],
        "ids": ids, "env": env, "mock": mock, "procs": procs,
    }


class Rig(wl.Processes):
    """What run() needs outside a unittest (the benchmark): a redis-server,
    mocks and workers, all stopped by close()."""

    def __init__(self):
        self.start_all(Redis())

    def close(self):
        self.close_all()
