"""Rate-limit benchmark against the real platform's settings: 10 requests per
60 s window, faults on (503 every 5th list, a hang every 10th), 1 client x
100 campaigns. The bound is 110 API requests (100 syncs + 10 pages) at
10/min = 11 min; the goal is to finish within 10 % of it with zero 429s."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from harness import Mock, Redis, Worker, adsync_env  # noqa: E402
import workerlib as wl  # noqa: E402


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "bench-ratelimit.json"
    redis = Redis()
    mock = Mock("--clients", 1, "--campaigns", 100, "--seed", 3)   # real-platform defaults
    try:
        ids = wl.register_clients(redis, 1)
        env = adsync_env(redis=redis, mock=mock, ADSYNC_LOG_LEVEL="warn")   # worker defaults too
        w = Worker(env)
        t0 = time.monotonic()
        wl.sync_all(env)
        wl.wait_runs_done(redis, ids, 1500, workers=[w])
        elapsed = time.monotonic() - t0
        stats = mock.stats()["clients"]["client_1"]["requests"]
        api = sum(sum(stats.get(ep, {}).values()) for ep in ("list", "sync"))
        too_many = sum(stats.get(ep, {}).get("429", 0) for ep in ("list", "sync"))
        run = wl.last_run(redis, "client_1")[1]
        w.signal(15)
        w.wait(60)
        w.close()
    finally:
        mock.close()
        redis.close()
    bound = 110 / 10 * 60
    result = {"machine": f"{os.uname().nodename}, {os.cpu_count()} cores (shared)",
              "seconds": round(elapsed, 1), "bound_seconds": bound,
              "ratio_to_bound": round(elapsed / bound, 3), "api_requests": api, "http_429": too_many,
              "requests": stats, "run": {k: run.get(k) for k in ("state", "listed", "synced", "dead")}}
    print(json.dumps(result, indent=2))
    ok = elapsed <= 1.1 * bound and too_many == 0 and run.get("state") == "done"
    print(f"{'PASS' if ok else 'FAIL'}: {elapsed:.0f} s for a {bound:.0f} s bound "
          f"({elapsed / bound:.2f}x), {too_many} 429s")
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
