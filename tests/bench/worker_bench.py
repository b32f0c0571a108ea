"""Worker throughput benchmark (issue: the end-to-end paginated sync).

Scenario 1: faults and latency off, one worker, 20 clients x 1,000 campaigns:
campaigns/s, worker CPU per campaign, peak RSS.
Scenario 2: 200 ms sync latency, concurrency 256: campaigns/s against the
256 / 0.2 s = 1,280/s bound.
Prints a table and writes JSON (path in argv[1])."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from harness import Mock, Redis, Worker  # noqa: E402
import workerlib as wl  # noqa: E402


def proc_stat(pid):
    """(cpu seconds, peak RSS KiB) of a live process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return cpu, hwm


def scenario(clients, campaigns, latency_ms, concurrency, client_concurrency, page_size):
    redis = Redis()
    mock = Mock("--clients", clients, "--campaigns", campaigns, "--sync-latency-ms", latency_ms,
                "--rate-limit", 0, "--fail-every", 0, "--hang-every", 0, "--seed", 1)
    try:
        ids = wl.register_clients(redis, clients)
        env = wl.fast_env(redis, mock, ADSYNC_CONCURRENCY=concurrency,
                          ADSYNC_CLIENT_CONCURRENCY=client_concurrency, ADSYNC_PAGE_SIZE=page_size,
                          ADSYNC_MAX_JOBS=clients, ADSYNC_HTTP_TIMEOUT_MS=30000,
                          ADSYNC_LOG_LEVEL="warn")
        w = Worker(env)
        time.sleep(0.3)   # connected and registered before the clock starts
        cpu0, _ = proc_stat(w.proc.pid)
        t0 = time.monotonic()
        wl.sync_all(env)
        wl.wait_runs_done(redis, ids, 600, workers=[w])
        elapsed = time.monotonic() - t0
        cpu1, rss = proc_stat(w.proc.pid)
        total = clients * campaigns
        for cid in ids:
            run = wl.last_run(redis, cid)[1]
            assert int(run["synced"]) == campaigns, run
        w.signal(15)
        rc = w.wait(30)
        assert rc == 0, w.log()[-2000:]
        w.close()
        return {"campaigns": total, "seconds": round(elapsed, 3),
                "campaigns_per_s": round(total / elapsed, 1),
                "worker_cpu_us_per_campaign": round((cpu1 - cpu0) / total * 1e6, 1),
                "worker_peak_rss_mb": round(rss / 1024, 1)}
    finally:
        mock.close()
        redis.close()


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "bench-worker.json"
    results = {"machine": f"{os.uname().nodename}, {os.cpu_count()} cores (shared)"}
    results["throughput"] = scenario(20, 1000, 0, 64, 4, 100)
    results["latency_200ms"] = scenario(4, 2000, 200, 256, 64, 100)
    bound = 256 / 0.2
    results["latency_200ms"]["fraction_of_bound"] = round(results["latency_200ms"]["campaigns_per_s"] / bound, 3)
    t, l = results["throughput"], results["latency_200ms"]
    print(f"{'scenario':<28}{'campaigns/s':>12}{'cpu us/camp':>13}{'peak RSS MB':>13}")
    print(f"{'20x1000, no latency':<28}{t['campaigns_per_s']:>12}{t['worker_cpu_us_per_campaign']:>13}{t['worker_peak_rss_mb']:>13}")
    print(f"{'4x2000, 200 ms, conc 256':<28}{l['campaigns_per_s']:>12}{l['worker_cpu_us_per_campaign']:>13}{l['worker_peak_rss_mb']:>13}")
    print(f"latency scenario reaches {l['fraction_of_bound']*100:.0f}% of the 1,280/s bound")
    checks = [("throughput >= 5000/s", t["campaigns_per_s"] >= 5000),
              ("peak RSS <= 32 MB", t["worker_peak_rss_mb"] <= 32),
              (">= 90% of the latency bound", l["fraction_of_bound"] >= 0.9)]
    return wl.report_checks(checks, results, out)


if __name__ == "__main__":
    sys.exit(main())
