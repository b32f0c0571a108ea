"""adsync-worker's /metrics and /healthz (DESIGN.md §7, §9): a real worker
syncs against a faulty mock; its /metrics must parse with
prometheus_client's own text parser and its counters must equal what the
mock counted in /admin/stats. /healthz turns 503 while redis-server is down
and 200 again when it is back. A bad or busy ADSYNC_METRICS_ADDR is a
config error (exit 78) before Redis is touched.

Needs python3-prometheus-client (Debian; deploy/install-deps.sh test); ctest
runs it with Debian's /usr/bin/python3."""
import os
import re
import socket
import sys
import time
import unittest
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, os.path.dirname(__file__))
from harness import binpath, free_port, spawn, wait_until  # noqa: E402
import workerlib as wl  # noqa: E402

ENDPOINTS = ("auth", "list", "sync")
CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "timeout", "error")


def http_get(port, path, timeout=5):
    """(status, content type, body text); never raises on HTTP errors."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def scrape(port):
    """{(sample name, frozenset(labels)): value} after a strict parse."""
    status, ctype, text = http_get(port, "/metrics")
    assert status == 200, (status, text)
    assert ctype.startswith("text/plain; version=0.0.4"), ctype
    samples, families = {}, {}
    for fam in text_string_to_metric_families(text):   # raises on anything malformed
        assert fam.name.startswith("adsync_"), fam.name
        assert fam.documentation, f"{fam.name} has no HELP"
        assert fam.type in ("counter", "gauge", "histogram"), (fam.name, fam.type)
        families[fam.name] = fam.type
        for s in fam.samples:
            if fam.type == "counter":
                assert s.name.endswith("_total"), s.name
            assert "client" not in s.labels and "campaign" not in s.labels, s
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, families


def value(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


def mock_class(code):
    if code == "hang":
        return "timeout"
    return f"{int(code) // 100}xx"


def mock_requests_by_class(stats):
    """{endpoint: {class: n}} summed over every client."""
    out = {e: {k: 0 for k in CLASSES} for e in ENDPOINTS}
    for c in stats["clients"].values():
        for ep, codes in c["requests"].items():
            for code, n in codes.items():
                out[ep][mock_class(code)] += n
    return out


class MetricsTest(wl.SystemTest):
    def test_counters_match_the_mock_and_healthz_follows_redis(self):
        self.platform = self.mock("--clients", 2, "--campaigns", 60, "--sync-latency-ms", 10,
                                  "--fail-every", 3, "--hang-every", 4, "--error-rate", 0.1,
                                  "--rate-limit", 15, "--rate-window-ms", 1000, "--seed", 11)
        ids = wl.register_clients(self.redis, 2)
        port = free_port()
        env = wl.fast_env(self.redis, self.platform, ADSYNC_MAX_ATTEMPTS=30,
                          ADSYNC_METRICS_ADDR=f"127.0.0.1:{port}")
        wl.sync_all(env)
        w = self.worker(env)
        wait_until(lambda: self._answers(port), 10, "the metrics endpoint")

        # A client that connects and says nothing must not hold anyone up.
        silent = socket.create_connection(("127.0.0.1", port))
        try:
            t0 = time.monotonic()
            self.assertEqual(http_get(port, "/healthz")[0], 200)
            self.assertLess(time.monotonic() - t0, 2.0)
            # Mid-run, the platform forgets every token: 401s, then new logins.
            wait_until(lambda: value(scrape(port)[0], "adsync_campaigns_total", outcome="synced") >= 10,
                       60, "some campaigns synced", interval=0.05)
            self.assertEqual(self.platform.request("POST", "/admin/revoke-tokens")[0], 200)
            wl.wait_runs_done(self.redis, ids, 120)
        finally:
            silent.close()
        for cid in ids:
            wl.check_invariant(self, self.redis, cid, 60)

        def settled():
            s, _ = scrape(port)
            return s if (value(s, "adsync_http_requests_in_flight") == 0 and
                         value(s, "adsync_jobs_held") == 0 and
                         value(s, "adsync_store_pending_writes") == 0) else None
        s = wait_until(settled, 20, "the worker to go idle", interval=0.2)
        _, families = scrape(port)
        self.check_against_mock(s, self.platform.stats())
        self.check_jobs(s)
        self.assertEqual(families["adsync_http_request_duration_seconds"], "histogram")
        self.check_depths(port)
        self.check_names_used_by_deploy(port)
        self.check_healthz_follows_redis(port)
        self.assertIsNone(w.proc.poll(), "the worker is still running")
        w.signal(15)
        self.assertEqual(w.wait(30), 0, w.log()[-3000:])

    def _answers(self, port):
        try:
            return http_get(port, "/healthz", timeout=1)[0] == 200
        except OSError:
            return False

    def check_against_mock(self, s, stats):
        want = mock_requests_by_class(stats)
        for ep in ENDPOINTS:
            got = {k: value(s, "adsync_http_requests_total", endpoint=ep, status_class=k) for k in CLASSES}
            self.assertEqual(got, want[ep], ep)
            self.assertEqual(value(s, "adsync_http_request_duration_seconds_count", endpoint=ep),
                             sum(want[ep].values()), ep)
        # The faults were really on.
        self.assertGreater(want["list"]["5xx"], 0)
        self.assertGreater(want["list"]["timeout"], 0)
        self.assertGreater(want["sync"]["5xx"], 0)
        platform_429 = sum(c["requests"][ep].get("429", 0)
                           for c in stats["clients"].values() for ep in c["requests"])
        self.assertGreater(platform_429, 0)
        self.assertEqual(value(s, "adsync_http_rate_limited_total"), platform_429)
        synced = sum(n for c in stats["clients"].values() for n in c["synced"].values())
        self.assertEqual(value(s, "adsync_campaigns_total", outcome="synced"), synced)
        self.assertEqual(synced, 120)
        platform_401 = sum(c["requests"][ep].get("401", 0)
                           for c in stats["clients"].values() for ep in ("list", "sync"))
        refreshes = value(s, "adsync_token_refreshes_total")
        self.assertGreater(refreshes, 0)
        self.assertLessEqual(refreshes, platform_401)
        self.assertEqual(value(s, "adsync_campaigns_total", outcome="retried"),
                         want["sync"]["5xx"] + want["sync"]["timeout"] + want["sync"]["error"])

    def check_jobs(self, s):
        def jobs(t, o):
            return value(s, "adsync_jobs_total", type=t, outcome=o)
        self.assertEqual(jobs("client", "done"), 2)
        self.assertEqual(jobs("client", "dead") + jobs("campaign", "dead"), 0)
        campaign_jobs = sum(jobs("campaign", o) for o in ("done", "retried", "dead"))
        # every retried campaign came back once as a campaign job
        self.assertEqual(campaign_jobs, value(s, "adsync_campaigns_total", outcome="retried"))
        ended = sum(jobs(t, o) for t in ("client", "campaign", "unparseable")
                    for o in ("done", "retried", "dead"))
        self.assertEqual(ended, value(s, "adsync_jobs_popped_total"))
        self.assertEqual(value(s, "adsync_redis_connected", connection="main"), 1)

    def check_depths(self, port):
        self.redis.cmd("LPUSH", "adsync:dead", "a", "b", "c")
        far = int(time.time() * 1000) + 3_600_000
        self.redis.cmd("ZADD", "adsync:retry", far, '{"v":1}')

        def sampled():
            s, _ = scrape(port)
            got = {q: s.get(("adsync_queue_length", frozenset({("queue", q)}))) for q in
                   ("jobs", "retry", "retry_due", "dead", "outbox")}
            return got if got == {"jobs": 0, "retry": 1, "retry_due": 0, "dead": 3, "outbox": 0} else None
        wait_until(sampled, 10, "the sampled queue lengths", interval=0.2)
        s, _ = scrape(port)
        self.assertEqual(value(s, "adsync_workers_registered"), 1)

    def check_names_used_by_deploy(self, port):
        """Every adsync_* name in the alert rules and the KEDA query is one
        the worker really exports."""
        import yaml
        s, _ = scrape(port)
        exported = {name for name, _ in s}
        deploy = os.path.join(os.path.dirname(__file__), "..", "..", "deploy")
        texts = []
        with open(os.path.join(deploy, "prometheus", "alerts.yml")) as f:
            texts += [r["expr"] for g in yaml.safe_load(f)["groups"] for r in g["rules"]]
        with open(os.path.join(deploy, "k8s", "keda-scaledobject.yaml")) as f:
            texts += [t["metadata"]["query"] for d in yaml.safe_load_all(f) if d["kind"] == "ScaledObject"
                      for t in d["spec"]["triggers"] if t["type"] == "prometheus"]
        used = {n for t in texts for n in re.findall(r"\badsync_[a-z_]+", t)}
        self.assertTrue(used)
        self.assertEqual(used - exported, set())

    def check_healthz_follows_redis(self, port):
        self.redis.stop()
        status, _, body = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(http_get(port, "/healthz")),
                                     15, "/healthz to turn 503")
        self.assertIn("redis", body)
        s, _ = scrape(port)   # still served while Redis is away
        self.assertEqual(value(s, "adsync_redis_connected", connection="main"), 0)
        self.redis.start()
        wait_until(lambda: http_get(port, "/healthz")[0] == 200, 30, "/healthz to be 200 again", interval=0.1)
        s, _ = scrape(port)
        self.assertGreaterEqual(value(s, "adsync_redis_reconnects_total"), 1)

    def test_bad_or_busy_address_exits_78(self):
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        busy_port = busy.getsockname()[1]
        nobody = f"redis://127.0.0.1:{free_port()}/0"   # never reached: exit comes first
        try:
            for addr in ("nonsense", "127.0.0.1:99999", "127.0.0.1:", "no-such-host.invalid:9100",
                         f"127.0.0.1:{busy_port}"):
                p = spawn([binpath("adsync-worker")], env={"ADSYNC_METRICS_ADDR": addr, "REDIS_URL": nobody},
                          stdout=-1, stderr=-1)
                _, err = p.communicate(timeout=10)
                lines = err.decode().strip().splitlines()
                self.assertEqual(p.returncode, 78, (addr, err))
                self.assertEqual(len(lines), 1, err)
                self.assertIn("ADSYNC_METRICS_ADDR", lines[0])
            self.assertIn("in use", lines[0])
        finally:
            busy.close()


if __name__ == "__main__":
    unittest.main()
