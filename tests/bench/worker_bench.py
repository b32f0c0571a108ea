"""Worker throughput benchmark, against a floor program in the same run.

floor (tests/bench/floor.c) is the least a program can do for the same work:
log in, list every page, POST each sync, one HSET per campaign, on libuv +
curl multi + hiredis, with no queue, limiter or bookkeeping. The worker and
the floor run alternately on identical settings (20 clients x 1,000
campaigns, sync latency 0, concurrency 256, pages of 100), each on a fresh
Redis, against two platforms:
  cheap   the mock as usual (2 threads, nothing spent per request);
  costly  one thread spending 70 us of CPU per request (--threads 1
          --cpu-cost-us 70): the platform, not the worker, is the slow side.
Reported: campaigns/s, worker CPU per campaign and peak RSS, each as a ratio
to the floor's (medians of the rounds), plus Redis CPU and commands per
synced campaign (INFO cpu and INFO commandstats deltas; commands run inside
scripts count), and with ADSYNC_BASELINE_BIN_DIR the same Redis figures of
the baseline commit's worker ("before", worker.sh builds it), which must be
3x higher. Then two workers against one on the cheap platform (1.7x where the box's
cores allow it: see below), and the 200 ms
latency scenario against its 1,280/s bound.
Usage: worker_bench.py OUT.json FLOOR_BINARY [ROUNDS]"""
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import harness  # noqa: E402
from harness import Mock, Redis, Worker  # noqa: E402
import workerlib as wl  # noqa: E402

CLIENTS, CAMPAIGNS, PAGE, CONCURRENCY = 20, 1000, 100, 256
PLATFORMS = {"cheap": ("--threads", 2), "costly": ("--threads", 1, "--cpu-cost-us", 70)}


def proc_stat(pid):
    """(cpu seconds, peak RSS KiB) of a live process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return cpu, hwm


def redis_counters(redis):
    """(CPU seconds, commands executed) of the server so far."""
    info = redis.cmd("INFO", "all")
    cpu = calls = 0.0
    for line in info.splitlines():
        if line.startswith(("used_cpu_sys:", "used_cpu_user:")):
            cpu += float(line.split(":")[1])
        elif line.startswith("cmdstat_") and not line.startswith(("cmdstat_info:", "cmdstat_hgetall:")):
            calls += int(line.split("calls=")[1].split(",")[0])
    return cpu, calls


def platform(kind, latency_ms=0):
    return Mock("--clients", CLIENTS, "--campaigns", CAMPAIGNS, "--sync-latency-ms", latency_ms,
                "--rate-limit", 0, "--fail-every", 0, "--hang-every", 0, "--seed", 1, *PLATFORMS[kind])


def measure(redis, start, total, others=()):
    """Runs start() -> (processes, wait_fn); returns the figures of the run.
    others: the platform's and Redis's processes, whose CPU over the run
    goes with the workers' into box_cpu_percent (how full the box was)."""
    rcpu0, rcalls0 = redis_counters(redis)
    t0 = time.monotonic()
    procs, wait = start()
    cpu0 = [proc_stat(p.pid)[0] for p in procs]
    others0 = sum(proc_stat(p.pid)[0] for p in others)
    wait()
    elapsed = time.monotonic() - t0
    stats = [proc_stat(p.pid) for p in procs]
    others1 = sum(proc_stat(p.pid)[0] for p in others)
    rcpu1, rcalls1 = redis_counters(redis)
    busy = sum(s[0] for s in stats) - sum(cpu0) + others1 - others0
    return {"campaigns_per_s": round(total / elapsed, 1),
            "box_cpu_percent": round(busy * 100 / elapsed),
            "cpu_us_per_campaign": round((sum(s[0] for s in stats) - sum(cpu0)) * 1e6 / total, 1),
            "peak_rss_mb": round(max(s[1] for s in stats) / 1024, 1),
            "redis_cpu_us_per_campaign": round((rcpu1 - rcpu0) * 1e6 / total, 2),
            "redis_commands_per_campaign": round((rcalls1 - rcalls0) / total, 2)}


def run_floor(floor, kind):
    redis, mock = Redis(), platform(kind)
    try:
        args = [floor, "--redis", f"127.0.0.1:{redis.port}", "--api", mock.url, "--clients", str(CLIENTS),
                "--page-size", str(PAGE), "--concurrency", str(CONCURRENCY)]
        return measure_floor(redis, lambda: subprocess.Popen(args, stdout=subprocess.PIPE, text=True))
    finally:
        mock.close()
        redis.close()


def measure_floor(redis, start):
    """The floor exits when done: its CPU and peak RSS come from wait4's rusage."""
    rcpu0, rcalls0 = redis_counters(redis)
    t0 = time.monotonic()
    p = start()
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    assert p.returncode == 0, out
    rcpu1, rcalls1 = redis_counters(redis)
    total = CLIENTS * CAMPAIGNS
    return {"campaigns_per_s": round(total / elapsed, 1),
            "cpu_us_per_campaign": round((usage.ru_utime + usage.ru_stime) * 1e6 / total, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "redis_cpu_us_per_campaign": round((rcpu1 - rcpu0) * 1e6 / total, 2),
            "redis_commands_per_campaign": round((rcalls1 - rcalls0) / total, 2)}


def baseline_workers(kind):
    """The worker of the baseline commit (worker.sh builds it; its directory
    holds that adsync-worker beside today's enqueue and mock) on the same
    settings, for the Redis figures "before"."""
    today = harness.BIN_DIR
    harness.BIN_DIR = os.environ["ADSYNC_BASELINE_BIN_DIR"]
    try:
        return run_workers(kind)
    finally:
        harness.BIN_DIR = today


def run_workers(kind, n_workers=1, clients=CLIENTS, campaigns=CAMPAIGNS, latency_ms=0, client_concurrency=4):
    redis = Redis()
    mock = Mock("--clients", clients, "--campaigns", campaigns, "--sync-latency-ms", latency_ms,
                "--rate-limit", 0, "--fail-every", 0, "--hang-every", 0, "--seed", 1, *PLATFORMS[kind])
    try:
        ids = wl.register_clients(redis, clients)
        env = wl.fast_env(redis, mock, ADSYNC_CONCURRENCY=CONCURRENCY, ADSYNC_CLIENT_CONCURRENCY=client_concurrency,
                          ADSYNC_PAGE_SIZE=PAGE, ADSYNC_HTTP_TIMEOUT_MS=30000, ADSYNC_LOG_LEVEL="warn")
        workers = [Worker(env) for _ in range(n_workers)]
        time.sleep(0.3)   # connected and registered before the clock starts

        def start():
            wl.sync_all(env)
            return [w.proc for w in workers], lambda: wait_all_done(redis, clients, workers)
        r = measure(redis, start, clients * campaigns, others=(mock.proc, redis.proc))
        wl.wait_runs_done(redis, ids, 10, workers=workers)
        for cid in ids:
            assert int(wl.last_run(redis, cid)[1]["synced"]) == campaigns
        for w in workers:
            w.signal(15)
            assert w.wait(30) == 0, w.log()[-2000:]
            w.close()
        return r
    finally:
        mock.close()
        redis.close()


def wait_all_done(redis, clients, workers):
    """One HGET a poll (not one GET and HGETALL per client): the polling's own
    Redis CPU is counted as the worker's."""
    def done():
        for w in workers:
            assert w.proc.poll() is None, w.log()[-3000:]
        return int(redis.cmd("HGET", "adsync:stats", "runs_done") or 0) >= clients
    wl.wait_until(done, 600, "every run to be done", interval=0.02)


def median_of(runs):
    return {k: round(statistics.median(r[k] for r in runs), 2) for k in runs[0]}


def main():
    out = sys.argv[1]
    floor = sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    results = {"machine": f"{os.uname().nodename}, {os.cpu_count()} cores (shared)", "rounds": rounds}
    checks = []
    print(f"{'platform':<8}{'who':<8}{'campaigns/s':>12}{'cpu us/c':>10}{'RSS MB':>8}{'redis us/c':>12}{'cmds/c':>8}")
    baseline = "ADSYNC_BASELINE_BIN_DIR" in os.environ
    for kind in PLATFORMS:
        floors, workers, befores = [], [], []
        for _ in range(rounds):   # alternately, so drift on a shared box hits both
            floors.append(run_floor(floor, kind))
            workers.append(run_workers(kind))
            if baseline:
                befores.append(baseline_workers(kind))
        f, w = median_of(floors), median_of(workers)
        ratio = {"campaigns_per_s": round(w["campaigns_per_s"] / f["campaigns_per_s"], 3),
                 "cpu_us_per_campaign": round(w["cpu_us_per_campaign"] / f["cpu_us_per_campaign"], 3),
                 "peak_rss_mb": round(w["peak_rss_mb"] / f["peak_rss_mb"], 3)}
        results[kind] = {"floor": f, "worker": w, "worker_over_floor": ratio}
        for who, r in (("floor", f), ("worker", w)):
            print(f"{kind:<8}{who:<8}{r['campaigns_per_s']:>12}{r['cpu_us_per_campaign']:>10}{r['peak_rss_mb']:>8}"
                  f"{r['redis_cpu_us_per_campaign']:>12}{r['redis_commands_per_campaign']:>8}")
        print(f"{kind:<8}{'ratio':<8}{ratio['campaigns_per_s']:>12}{ratio['cpu_us_per_campaign']:>10}"
              f"{ratio['peak_rss_mb']:>8}")
        if baseline:
            b = median_of(befores)
            fewer = {k: round(b[k] / w[k], 2) for k in ("redis_cpu_us_per_campaign", "redis_commands_per_campaign")}
            results[kind]["baseline"], results[kind]["baseline_over_worker"] = b, fewer
            print(f"{kind:<8}{'before':<8}{b['campaigns_per_s']:>12}{b['cpu_us_per_campaign']:>10}{b['peak_rss_mb']:>8}"
                  f"{b['redis_cpu_us_per_campaign']:>12}{b['redis_commands_per_campaign']:>8}")
            print(f"{kind:<8}{'fewer':<8}{'':>12}{'':>10}{'':>8}{fewer['redis_cpu_us_per_campaign']:>11}x"
                  f"{fewer['redis_commands_per_campaign']:>7}x")
            checks.append((f"{kind}: Redis CPU and commands per campaign at least 3x fewer than before",
                           min(fewer.values()) >= 3))
        checks += [(f"{kind}: campaigns/s >= 0.9x the floor's", ratio["campaigns_per_s"] >= 0.9),
                   (f"{kind}: CPU per campaign <= 1.25x the floor's", ratio["cpu_us_per_campaign"] <= 1.25),
                   (f"{kind}: peak RSS <= 16 MB", w["peak_rss_mb"] <= 16),
                   (f"{kind}: Redis <= 10 us and <= 4 commands per campaign",
                    w["redis_cpu_us_per_campaign"] <= 10 and w["redis_commands_per_campaign"] <= 4)]
    # Two workers can only go faster while the box has cores to spare: with
    # the one-worker run keeping U% of the box's cores x 100% busy (workers,
    # platform and Redis together, each growing with the rate), no number of
    # workers gets past (cores x 100 / U) x one. The issue asks 1.7x "when
    # the box has room"; where it has not, the check is only that a second
    # worker does not slow the work down, and the figures say what it allowed.
    ones, twos = [], []
    for _ in range(rounds):
        ones.append(run_workers("cheap"))
        twos.append(run_workers("cheap", n_workers=2))
    one, two = median_of(ones), median_of(twos)
    speedup = round(two["campaigns_per_s"] / one["campaigns_per_s"], 3)
    room = round(os.cpu_count() * 100 / one["box_cpu_percent"], 2)
    results["two_workers"] = {"one": one, "two": two, "speedup": speedup, "box_allows": room}
    print(f"two workers on the cheap platform: {speedup}x one; the one-worker run kept {one['box_cpu_percent']}% "
          f"of {os.cpu_count() * 100}% busy, so the box allows at most {room}x (the two-worker run: {two['box_cpu_percent']}%)")
    if room >= 1.7:
        checks.append(("two workers >= 1.7x one (cheap platform)", speedup >= 1.7))
    else:
        checks.append((f"two workers not slower than one (cheap platform; 1.7x not asked: the box allows {room}x)",
                       speedup >= 1.0))
    lat = run_workers("cheap", clients=4, campaigns=2000, latency_ms=200, client_concurrency=64)
    lat["fraction_of_bound"] = round(lat["campaigns_per_s"] / (CONCURRENCY / 0.2), 3)
    results["latency_200ms"] = lat
    print(f"200 ms latency, concurrency 256: {lat['campaigns_per_s']}/s = {lat['fraction_of_bound'] * 100:.0f}% of 1,280/s")
    checks.append((">= 90% of the latency bound", lat["fraction_of_bound"] >= 0.9))
    return wl.report_checks(checks, results, out)


if __name__ == "__main__":
    sys.exit(main())
