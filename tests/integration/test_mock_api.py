"""Integration test of adsync-mock-api: the real binary on a loopback port,
driven over HTTP with the standard library only. Covers auth, pagination,
the default fault schedule (503 / hang), the sliding-window rate limit,
token binding, expiry and revocation, the per-campaign test hooks, sync
latency, /admin/stats and /admin/reset, hostile input, the CLI and a clean
SIGTERM with a hung connection open."""
import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.error

sys.path.insert(0, os.path.dirname(__file__))
from harness import Mock, TempDir, binpath, wait_until  # noqa: E402

CLEAN = ["--sync-latency-ms", 0, "--fail-every", 0, "--hang-every", 0, "--rate-limit", 0]


def basic(email, password):
    raw = f"{email}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def creds(client):
    return basic(f"{client}@example.test", f"secret-{client}")


def auth(mock, client="client_1"):
    status, _, body = mock.request("POST", "/auth/token", headers={"Authorization": creds(client)})
    assert status == 200, (status, body)
    return json.loads(body)["access_token"]


def api(mock, method, path, token, client, body=None, timeout=10):
    headers = {"Authorization": f"Bearer {token}", "X-Client-Id": client}
    if body is not None:
        headers["Content-Type"] = "application/json"
    return mock.request(method, path, body=body, headers=headers, timeout=timeout)


def sync(mock, token, client, cid, timeout=10):
    body = json.dumps({"campaign_id": cid})
    return api(mock, "POST", f"/api/campaigns/{cid}/sync", token, client, body, timeout)


def list_page(mock, token, client, page=1, limit=10, timeout=10):
    return api(mock, "GET", f"/api/campaigns?page={page}&limit={limit}", token, client,
               timeout=timeout)


def error_of(body):
    return json.loads(body)["error"]


def compact_stats(stats):
    """Stats without empty endpoint/synced maps and without idle clients, so the
    comparison holds whether or not the mock lists clients it never saw."""
    out = {}
    for cid, c in stats["clients"].items():
        reqs = {ep: codes for ep, codes in c.get("requests", {}).items() if codes}
        synced = {k: v for k, v in c.get("synced", {}).items() if v}
        if reqs or synced:
            out[cid] = {"requests": reqs, "synced": synced}
    return out


def raw_request(port, text):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(text.encode() if isinstance(text, str) else text)
    return s


def poke(port, data):
    """Sends data, reads whatever comes back within 0.5 s, hangs up."""
    s = raw_request(port, data)
    s.settimeout(0.5)
    try:
        s.recv(4096)
    except OSError:
        pass
    s.close()


def close_clean(mock):
    """SIGTERM, then insist on exit 0 and no sanitizer report (a leak at
    shutdown makes an ASan build exit non-zero)."""
    try:
        mock.stop()
        out = mock.output()
        assert mock.proc.returncode == 0, f"mock exited {mock.proc.returncode}: {out[-2000:]}"
        assert "Sanitizer" not in out and "runtime error" not in out, out[-2000:]
    finally:
        mock.close()


class MockCase(unittest.TestCase):
    flags = CLEAN

    @classmethod
    def setUpClass(cls):
        cls.mock = Mock(*cls.flags)

    @classmethod
    def tearDownClass(cls):
        close_clean(cls.mock)


class AuthAndBasics(MockCase):
    flags = CLEAN + ["--clients", 3]

    def test_startup_prints_address_and_credentials(self):
        out = self.mock.output()
        self.assertIn(f"listening on http://127.0.0.1:{self.mock.port}", out)
        for n in (1, 2, 3):
            self.assertIn(f"client_{n}@example.test", out)
            self.assertIn(f"secret-client_{n}", out)

    def test_health(self):
        status, _, body = self.mock.request("GET", "/health")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body), {"status": "ok"})

    def test_auth_success(self):
        before = time.time()
        status, headers, body = self.mock.request(
            "POST", "/auth/token", headers={"Authorization": creds("client_2")})
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("Content-Type"), "application/json")
        j = json.loads(body)
        self.assertRegex(j["access_token"], r"^[0-9a-f]{32}$")
        self.assertEqual(j["token_type"], "Bearer")
        self.assertEqual(j["expires_in"], 3600)
        self.assertLessEqual(abs(j["issued_at"] - before), 2)

    def test_auth_failures(self):
        status, _, body = self.mock.request(
            "POST", "/auth/token", headers={"Authorization": basic("client_1@example.test", "nope")})
        self.assertEqual(status, 401)
        self.assertEqual(error_of(body), "Invalid credentials")
        status, _, body = self.mock.request("POST", "/auth/token")
        self.assertEqual(status, 401)
        self.assertIn("error", json.loads(body))
        for bad in ("Basic !!!not-base64!!!", "Basic Zm9vYmFy", "Bearer abc", "Basic",
                    "Basic " + "A" * 5000):
            status, _, body = self.mock.request("POST", "/auth/token",
                                                headers={"Authorization": bad})
            self.assertIn(status, (400, 401), bad)
            self.assertIn("error", json.loads(body), bad)

    def test_pagination_over_100_campaigns(self):
        tok = auth(self.mock, "client_3")
        seen = []
        for page in range(1, 11):
            status, _, body = list_page(self.mock, tok, "client_3", page, 10)
            self.assertEqual(status, 200)
            j = json.loads(body)
            self.assertEqual(j["pagination"], {"page": page, "limit": 10, "total": 100,
                                               "has_more": page < 10})
            seen += [c["id"] for c in j["data"]]
        self.assertEqual(seen, [f"campaign_{k}" for k in range(1, 101)])
        status, _, body = list_page(self.mock, tok, "client_3", 11, 10)
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["data"], [])
        self.assertFalse(json.loads(body)["pagination"]["has_more"])
        status, _, body = api(self.mock, "GET", "/api/campaigns", tok, "client_3")
        j = json.loads(body)
        self.assertEqual(j["pagination"]["limit"], 10)
        self.assertEqual(j["data"][0], {
            "id": "campaign_1", "name": "Campaign 1", "status": "active", "budget": 1100,
            "impressions": 42, "clicks": 7, "conversions": 1,
            "created_at": "2025-12-31T10:00:00.000Z"})
        self.assertEqual(j["data"][1]["status"], "paused")

    def test_token_is_bound_to_its_account(self):
        tok1 = auth(self.mock, "client_1")
        status, _, body = list_page(self.mock, tok1, "client_2")
        self.assertEqual(status, 401)
        status, _, body = list_page(self.mock, "0" * 32, "client_1")
        self.assertEqual(status, 401)
        self.assertEqual(error_of(body), "Invalid token")
        status, _, _ = list_page(self.mock, tok1, "client_1")
        self.assertEqual(status, 200)

    def test_sync_success_and_url_decoding(self):
        tok = auth(self.mock, "client_1")
        before = time.time()
        status, _, body = sync(self.mock, tok, "client_1", "campaign_9")
        self.assertEqual(status, 200)
        j = json.loads(body)
        self.assertTrue(j["success"])
        self.assertEqual(j["campaign_id"], "campaign_9")
        self.assertRegex(j["synced_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        synced = time.mktime(time.strptime(j["synced_at"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        self.assertLess(abs(synced - before), 5)
        body = json.dumps({"campaign_id": "campaign_9"})
        status, _, _ = api(self.mock, "POST", "/api/campaigns/campaign%5F9/sync", tok,
                           "client_1", body)
        self.assertEqual(status, 200)
        body = json.dumps({"campaign_id": "campaign/9"})
        status, _, resp = api(self.mock, "POST", "/api/campaigns/campaign%2F9/sync", tok,
                              "client_1", body)
        self.assertEqual(status, 404)
        self.assertIn("error", json.loads(resp))

    def test_bad_inputs_get_4xx_json(self):
        tok = auth(self.mock, "client_1")
        cases = [
            ("GET", "/api/campaigns", {}, None, 401),
            ("GET", "/api/campaigns", {"Authorization": f"Bearer {tok}"}, None, 400),
            ("GET", "/api/campaigns?page=0", None, None, 400),
            ("GET", "/api/campaigns?limit=5000", None, None, 400),
            ("GET", "/api/campaigns?page=abc", None, None, 400),
            ("GET", "/api/campaigns?page=%zz", None, None, 400),
            ("POST", "/api/campaigns/campaign_1/sync", None, "garbage{", 400),
            ("POST", "/api/campaigns/campaign_1/sync", None, '{"campaign_id":"campaign_2"}', 400),
            ("POST", "/api/campaigns/campaign_1/sync", None, "", 400),
            ("POST", "/api/campaigns/campaign_999/sync", None, '{"campaign_id":"campaign_999"}', 404),
            ("POST", "/api/campaigns/bad%zz/sync", None, '{"campaign_id":"x"}', 400),
            ("GET", "/nope", {}, None, 404),
            ("GET", "/api/campaigns/campaign_1/sync", None, None, 405),
            ("DELETE", "/health", {}, None, 405),
            ("POST", "/auth/token", {}, "x" * (64 * 1024 + 1), 413),
        ]
        for method, path, headers, body, want in cases:
            if headers is None:
                headers = {"Authorization": f"Bearer {tok}", "X-Client-Id": "client_1"}
            status, _, resp = self.mock.request(method, path, body=body, headers=headers)
            self.assertEqual(status, want, (method, path, resp))
            self.assertIn("error", json.loads(resp), (method, path))
        # junk on the wire and a giant header do not take it down
        poke(self.mock.port, b"\x00\xff garbage \r\n\r\n")
        poke(self.mock.port, b"NOT HTTP AT ALL\r\n\r\n")
        poke(self.mock.port, "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + "a" * 200000 +
             "\r\n\r\n")
        poke(self.mock.port, "POST /auth/token HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
        status, _, _ = self.mock.request("GET", "/health")
        self.assertEqual(status, 200)
        self.assertIsNone(self.mock.proc.poll())


class DefaultFaults(MockCase):
    """Defaults reproduce the real platform: every 5th list request answers
    503, every 10th is never answered, 10 requests per 60 s."""
    flags = []

    def test_fifth_fails_tenth_hangs(self):
        tok = auth(self.mock)
        for n in range(1, 10):
            status, _, body = list_page(self.mock, tok, "client_1", timeout=5)
            if n == 5:
                self.assertEqual(status, 503, n)
                self.assertEqual(error_of(body), "Service unavailable")
            else:
                self.assertEqual(status, 200, n)
        t0 = time.monotonic()
        with self.assertRaises((TimeoutError, socket.timeout, urllib.error.URLError)):
            list_page(self.mock, tok, "client_1", timeout=1)
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)
        status, headers, body = list_page(self.mock, tok, "client_1")
        self.assertEqual(status, 429)
        self.assertGreaterEqual(json.loads(body)["retry_after"], 55)
        self.assertEqual(headers.get("Retry-After"), str(json.loads(body)["retry_after"]))
        self.assertEqual(compact_stats(self.mock.stats()), {"client_1": {
            "requests": {"auth": {"200": 1}, "list": {"200": 8, "503": 1, "hang": 1, "429": 1}},
            "synced": {}}})


class RateLimit(MockCase):
    flags = CLEAN[:-2] + ["--rate-limit", 3, "--rate-window-ms", 1000, "--clients", 2]

    def test_sliding_window(self):
        tok = auth(self.mock, "client_1")
        tok2 = auth(self.mock, "client_2")
        t0 = time.monotonic()
        self.assertEqual(list_page(self.mock, tok, "client_1")[0], 200)
        self.assertEqual(sync(self.mock, tok, "client_1", "campaign_1")[0], 200)
        self.assertEqual(list_page(self.mock, tok, "client_1")[0], 200)
        status, headers, body = sync(self.mock, tok, "client_1", "campaign_2")
        self.assertEqual(status, 429)
        j = json.loads(body)
        self.assertEqual(j["error"], "Rate limit exceeded")
        self.assertEqual(j["retry_after"], 1)
        self.assertEqual(headers.get("Retry-After"), "1")
        # per client: client_2 is not limited by client_1's traffic
        self.assertEqual(list_page(self.mock, tok2, "client_2")[0], 200)
        # auth is never rate limited
        auth(self.mock, "client_1")
        # mid-window: still limited (and this 429 must not take a slot)
        time.sleep(max(0, 0.6 - (time.monotonic() - t0)))
        status, headers, body = list_page(self.mock, tok, "client_1")
        self.assertEqual(status, 429)
        self.assertEqual(headers.get("Retry-After"), "1")
        # after the window the first three have left: exactly three accepted again
        time.sleep(max(0, 1.05 - (time.monotonic() - t0)))
        self.assertEqual([sync(self.mock, tok, "client_1", f"campaign_{k}")[0] for k in (2, 3, 4, 5)],
                         [200, 200, 200, 429])
        self.assertEqual(compact_stats(self.mock.stats())["client_1"]["requests"], {
            "auth": {"200": 2}, "list": {"200": 2, "429": 1}, "sync": {"200": 4, "429": 2}})


class TokenLifetime(MockCase):
    flags = CLEAN + ["--token-ttl", 1]

    def test_expiry(self):
        tok = auth(self.mock)
        self.assertEqual(list_page(self.mock, tok, "client_1")[0], 200)
        time.sleep(1.2)
        status, _, body = list_page(self.mock, tok, "client_1")
        self.assertEqual(status, 401)
        self.assertEqual(error_of(body), "Token expired")
        self.assertEqual(list_page(self.mock, auth(self.mock), "client_1")[0], 200)


class Revoke(MockCase):
    def test_revoke_tokens(self):
        tok = auth(self.mock)
        self.assertEqual(sync(self.mock, tok, "client_1", "campaign_1")[0], 200)
        status, _, _ = self.mock.request("POST", "/admin/revoke-tokens")
        self.assertEqual(status, 200)
        status, _, body = sync(self.mock, tok, "client_1", "campaign_1")
        self.assertEqual(status, 401)
        self.assertEqual(error_of(body), "Token expired")
        self.assertEqual(sync(self.mock, auth(self.mock), "client_1", "campaign_1")[0], 200)


class CampaignHooks(MockCase):
    flags = CLEAN + ["--fail-campaign", "campaign_2", "--reject-campaign", "campaign_3",
                     "--fail-campaign", "campaign_5"]

    def test_fail_and_reject(self):
        tok = auth(self.mock)
        for _ in range(3):
            status, _, body = sync(self.mock, tok, "client_1", "campaign_2")
            self.assertEqual(status, 500)
            self.assertEqual(error_of(body), "Internal server error")
        self.assertEqual(sync(self.mock, tok, "client_1", "campaign_5")[0], 500)
        status, _, body = sync(self.mock, tok, "client_1", "campaign_3")
        self.assertEqual(status, 400)
        j = json.loads(body)
        self.assertIs(j["success"], False)
        self.assertEqual(j["error"], "Campaign rejected")
        self.assertIn("message", j)
        self.assertEqual(sync(self.mock, tok, "client_1", "campaign_1")[0], 200)
        self.assertEqual(compact_stats(self.mock.stats())["client_1"], {
            "requests": {"auth": {"200": 1}, "sync": {"500": 4, "400": 1, "200": 1}},
            "synced": {"campaign_1": 1}})


class SyncLatency(MockCase):
    flags = ["--sync-latency-ms", 300, "--rate-limit", 0, "--fail-every", 0, "--hang-every", 0]

    def test_concurrent_delayed_syncs(self):
        tok = auth(self.mock)
        results = [None] * 20

        def worker(i):
            t = time.monotonic()
            status = sync(self.mock, tok, "client_1", f"campaign_{i + 1}")[0]
            results[i] = (status, time.monotonic() - t)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
        total = time.monotonic() - t0
        self.assertLess(total, 1.0)
        for status, took in results:
            self.assertEqual(status, 200)
            self.assertGreaterEqual(took, 0.28)
        self.assertEqual(len(compact_stats(self.mock.stats())["client_1"]["synced"]), 20)


class StatsAndReset(MockCase):
    flags = CLEAN[:-2] + ["--rate-limit", 5, "--clients", 2]

    def test_stats_exact_then_reset(self):
        tok = auth(self.mock, "client_1")
        self.mock.request("POST", "/auth/token",
                          headers={"Authorization": basic("client_1@example.test", "bad")})
        self.mock.request("POST", "/auth/token",
                          headers={"Authorization": basic("ghost@example.test", "bad")})
        self.assertEqual(list_page(self.mock, tok, "client_1")[0], 200)
        self.assertEqual(sync(self.mock, tok, "client_1", "campaign_1")[0], 200)
        self.assertEqual(sync(self.mock, tok, "client_1", "campaign_1")[0], 200)
        self.assertEqual(sync(self.mock, tok, "client_1", "campaign_2")[0], 200)
        self.assertEqual(sync(self.mock, tok, "client_1", "campaign_999")[0], 404)
        self.assertEqual(sync(self.mock, tok, "client_1", "campaign_3")[0], 429)
        stats = self.mock.stats()
        self.assertEqual(compact_stats(stats), {"client_1": {
            "requests": {"auth": {"200": 1, "401": 1}, "list": {"200": 1},
                         "sync": {"200": 3, "404": 1, "429": 1}},
            "synced": {"campaign_1": 2, "campaign_2": 1}}})
        # the raw shape: endpoint -> status string -> count
        for ep, codes in stats["clients"]["client_1"]["requests"].items():
            self.assertIn(ep, ("auth", "list", "sync"))
            for code, n in codes.items():
                self.assertIsInstance(code, str)
                self.assertIsInstance(n, int)

        status, _, _ = self.mock.request("POST", "/admin/reset")
        self.assertEqual(status, 200)
        self.assertEqual(compact_stats(self.mock.stats()), {})
        # the rate window was cleared too
        self.assertEqual(sync(self.mock, tok, "client_1", "campaign_3")[0], 200)
        self.assertEqual(compact_stats(self.mock.stats()), {"client_1": {
            "requests": {"sync": {"200": 1}}, "synced": {"campaign_3": 1}}})


class ResetFaultCounter(MockCase):
    flags = ["--rate-limit", 0, "--sync-latency-ms", 0, "--hang-every", 0, "--fail-every", 3]

    def test_reset_restarts_fault_schedule(self):
        tok = auth(self.mock)
        self.assertEqual([list_page(self.mock, tok, "client_1")[0] for _ in range(2)], [200, 200])
        self.mock.request("POST", "/admin/reset")
        self.assertEqual([list_page(self.mock, tok, "client_1")[0] for _ in range(3)],
                         [200, 200, 503])


class AccountsFile(unittest.TestCase):
    def test_accounts_with_names(self):
        tmp = TempDir("mockacct")
        path = tmp.file("accounts.json")
        names = {"campaign_2": 'He said "hi" \\ ünïcødé ✓', "campaign_3": "tab\there"}
        with open(path, "w", encoding="utf-8") as f:
            json.dump([{"id": "acme", "email": "ops@acme.test", "password": "pw1",
                        "campaigns": 3, "names": names},
                       {"id": "beta", "email": "b@beta.test", "password": "pw2"}], f)
        mock = Mock("--accounts", path, "--campaigns", 4, *CLEAN)
        try:
            status, _, body = mock.request("POST", "/auth/token",
                                           headers={"Authorization": basic("ops@acme.test", "pw1")})
            self.assertEqual(status, 200)
            tok = json.loads(body)["access_token"]
            status, _, body = list_page(mock, tok, "acme")
            j = json.loads(body)
            self.assertEqual([c["name"] for c in j["data"]],
                             ["Campaign 1", names["campaign_2"], names["campaign_3"]])
            self.assertEqual(j["pagination"]["total"], 3)
            status, _, body = mock.request("POST", "/auth/token",
                                           headers={"Authorization": basic("b@beta.test", "pw2")})
            tok2 = json.loads(body)["access_token"]
            self.assertEqual(json.loads(list_page(mock, tok2, "beta")[2])["pagination"]["total"], 4)
            self.assertIn("ops@acme.test", mock.output())
        finally:
            close_clean(mock)
            tmp.cleanup()


class RandomFaults(unittest.TestCase):
    def statuses(self, *flags):
        mock = Mock(*CLEAN, *flags)
        try:
            tok = auth(mock)
            return [sync(mock, tok, "client_1", "campaign_1")[0] for _ in range(30)]
        finally:
            close_clean(mock)

    def test_error_rate_deterministic_with_seed(self):
        a = self.statuses("--error-rate", 0.5, "--seed", 99)
        b = self.statuses("--error-rate", 0.5, "--seed", 99)
        self.assertEqual(a, b)
        self.assertEqual(set(a), {200, 500})

    def test_malformed_bodies(self):
        mock = Mock(*CLEAN, "--malformed-rate", 1)
        try:
            tok = auth(mock)
            for _ in range(6):
                status, _, body = sync(mock, tok, "client_1", "campaign_1")
                self.assertEqual(status, 200)
                try:
                    ok = json.loads(body).get("success") is True
                except (ValueError, AttributeError):
                    ok = False
                self.assertFalse(ok, body)
                status, _, body = list_page(mock, tok, "client_1")
                self.assertEqual(status, 200)
                try:
                    ok = isinstance(json.loads(body).get("data"), list)
                except (ValueError, AttributeError):
                    ok = False
                self.assertFalse(ok, body)
            self.assertEqual(compact_stats(mock.stats())["client_1"]["synced"], {})
        finally:
            close_clean(mock)


class Cli(unittest.TestCase):
    def run_bin(self, *args):
        return subprocess.run([binpath("adsync-mock-api")] + [str(a) for a in args],
                              capture_output=True, text=True, timeout=10)

    def test_bad_flags_exit_64(self):
        for args, flag in ((["--port", "abc"], "--port"), (["--bogus"], "--bogus"),
                           (["--error-rate", "2"], "--error-rate"),
                           (["--clients"], "--clients"),
                           (["--accounts", "/nonexistent/x.json"], "--accounts")):
            r = self.run_bin(*args)
            self.assertEqual(r.returncode, 64, args)
            self.assertIn(flag, r.stderr)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)

    def test_help(self):
        r = self.run_bin("--help")
        self.assertEqual(r.returncode, 0)
        for word in ("--fail-campaign", "--reject-campaign", "--sync-latency-ms", "/admin/stats",
                     "/admin/revoke-tokens", "--accounts"):
            self.assertIn(word, r.stdout)

    def test_verbose_logs_requests(self):
        mock = Mock(*CLEAN, "--verbose")
        try:
            mock.request("GET", "/health")
            wait_until(lambda: "GET /health 200" in mock.output(), 5, "a request log line")
        finally:
            close_clean(mock)


class Shutdown(unittest.TestCase):
    def test_sigterm_with_hung_connection(self):
        mock = Mock("--hang-every", 1, "--rate-limit", 0, "--sync-latency-ms", 5000)
        try:
            tok = auth(mock)
            hung = raw_request(mock.port, f"GET /api/campaigns HTTP/1.1\r\nHost: x\r\n"
                                          f"Authorization: Bearer {tok}\r\nX-Client-Id: client_1\r\n\r\n")
            body = json.dumps({"campaign_id": "campaign_1"})
            delayed = raw_request(mock.port, f"POST /api/campaigns/campaign_1/sync HTTP/1.1\r\n"
                                             f"Host: x\r\nAuthorization: Bearer {tok}\r\n"
                                             f"X-Client-Id: client_1\r\nContent-Length: {len(body)}"
                                             f"\r\n\r\n{body}")
            hung.settimeout(0.5)
            with self.assertRaises(socket.timeout):
                hung.recv(100)
            wait_until(lambda: mock.stats()["clients"]["client_1"]["requests"]["list"].get("hang") == 1,
                       5, "the hang to be counted")
            t0 = time.monotonic()
            mock.proc.send_signal(15)
            rc = mock.proc.wait(timeout=5)
            self.assertEqual(rc, 0)
            self.assertLess(time.monotonic() - t0, 2.0)
            hung.settimeout(2)
            try:
                self.assertEqual(hung.recv(100), b"")
            except ConnectionResetError:
                pass
            hung.close()
            delayed.close()
        finally:
            mock.close()


if __name__ == "__main__":
    unittest.main()
