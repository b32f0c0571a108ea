"""Fleet benchmark: many clients, each held to the platform's rate limit.

The platform's rules, compressed tenfold in time: 10 requests per sliding
6 s window per client, 200 ms per sync, a 503 on every 5th list call and a
hang on every 500th (counted over all clients), 20 campaigns per client in
pages of 10. Two workers run with their default settings, except that the
worker's own time constants are compressed with the platform's clock: the
HTTP timeout (30 s -> 3 s; a hung request costs it) and the backoff base
(1 s -> 100 ms; a 503 on a page costs it). Prints time / bound, 429s / requests, the p50,
p99 and max client finish times, and each worker's peak RSS and CPU."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import fleetlib  # noqa: E402
import workerlib as wl  # noqa: E402

WINDOW_MS, LIMIT, SYNC_MS, CAMPAIGNS = 6000, 10, 200, 20


def main():
    clients = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    out = sys.argv[2] if len(sys.argv) > 2 else "bench-fleet.json"
    rig = fleetlib.Rig()
    try:
        r = fleetlib.run(rig, clients, CAMPAIGNS, LIMIT, WINDOW_MS, SYNC_MS, 2, fail_every=5,
                         hang_every=500, timeout_s=900, ADSYNC_HTTP_TIMEOUT_MS=3000,
                         ADSYNC_BACKOFF_BASE_MS=100, ADSYNC_BACKOFF_MAX_MS=30000)
        for k in ("ids", "env", "mock", "procs"):
            r.pop(k)
    finally:
        rig.close()
    r["machine"] = f"{os.uname().nodename}, {os.cpu_count()} cores (shared)"
    r["cpu_us_per_request"] = round(sum(r["cpu_s"]) * 1e6 / max(1, r["requests"]), 1)
    print(json.dumps(r, indent=2))
    checks = [
        (f"time {r['seconds']} s <= 1.15 x the {r['bound_seconds']} s bound", r["time_over_bound"] <= 1.15),
        (f"429s {r['http_429']} <= 0.2 % of {r['requests']} requests", r["share_429"] <= 0.002),
        (f"slowest client {r['finish_max']} s within 2 windows of the bound", r["slowest_over_bound_windows"] <= 2),
        (f"peak RSS per worker {r['peak_rss_mb']} MB <= 64 MB", max(r["peak_rss_mb"]) <= 64),
    ]
    return wl.report_checks(checks, r, out)


if __name__ == "__main__":
    sys.exit(main())
