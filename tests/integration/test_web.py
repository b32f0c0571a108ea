"""The web console (adsync-enqueue web), in a real headless Chromium against
a real redis-server, mock and worker (issue: a web console for operators).
The overview's numbers equal `status --json` and rise without a reload; a
hostile dead-letter reason stays text; retry and purge act (purge only after
its confirmation); POSTs without the CSRF token or from another origin get
403; a non-loopback listener needs a token; 10,000 clients page fine.
The overview's screenshot is saved as console-overview.png in the build
directory (README's picture)."""
import json
import os
import signal
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import TempDir, binpath, enqueue, free_port, spawn, wait_until  # noqa: E402
import workerlib as wl  # noqa: E402

try:
    from selenium import webdriver
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
except ImportError:   # deploy/install-deps.sh test installs python3-selenium
    webdriver = None

HOSTILE = '<img src=x onerror="window.__xss=1;alert(1)">'
SCREENSHOT = os.path.join(os.path.dirname(os.path.abspath(os.environ.get("ADSYNC_BIN_DIR", "."))),
                          "console-overview.png")


def dead_letter(job_id, client, campaign, reason, attempt=8):
    return json.dumps({"v": 1, "id": job_id, "type": "campaign", "client": client, "run": "run-" + client,
                       "campaign": {"id": campaign}, "attempt": attempt, "last_error": reason})


class Console:
    """adsync-enqueue web on a free loopback port."""

    def __init__(self, env, *args):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = spawn([binpath("adsync-enqueue"), "web", "--listen", f"127.0.0.1:{self.port}", *args],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        wait_until(self.up, 10, "the console")

    def up(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"console exited {self.proc.returncode}: {self.proc.stdout.read()}")
        try:
            return self.get("/api/status")[0] == 200
        except OSError:
            return False

    def get(self, path, headers=None):
        return self.request("GET", path, headers=headers)

    def request(self, method, path, body=None, headers=None):
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        self.proc.stdout.close()


@unittest.skipIf(webdriver is None, "python3-selenium missing (deploy/install-deps.sh test installs it)")
class WebConsoleTest(wl.SystemTest):
    def setUp(self):
        super().setUp()
        self.platform = self.mock("--clients", 3, "--campaigns", 150, "--sync-latency-ms", 30, "--rate-limit", 0,
                                  "--fail-every", 0, "--hang-every", 0)
        self.ids = wl.register_clients(self.redis, 3)
        self.env = wl.fast_env(self.redis, self.platform)
        self.console = Console(self.env)
        o = Options()
        o.binary_location = "/usr/bin/chromium"
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"):
            o.add_argument(arg)
        self.browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
        self.browser.implicitly_wait(0)

    def tearDown(self):
        self.browser.quit()
        self.console.close()
        super().tearDown()

    def open(self, view):
        self.browser.get(f"{self.console.url}/#/{view}")

    def text_of(self, css, timeout=10):
        """The first non-empty text of css, read in one script call: the page
        redraws itself every few seconds, so elements go stale."""
        script = "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;"
        return wait_until(lambda: self.browser.execute_script(script, css) or None, timeout, css)

    def click(self, css):
        self.browser.execute_script("document.querySelector(arguments[0]).click()", css)

    def count(self, css):
        return self.browser.execute_script("return document.querySelectorAll(arguments[0]).length;", css)

    def card(self, name):
        return int(self.text_of(f"#q-{name} .n"))

    def status(self):
        return json.loads(enqueue(["status", "--json"], self.env).stdout)

    def test_overview_equals_status_and_rises_without_reload(self):
        self.assertEqual(enqueue(["sync", "--all"], self.env).returncode, 0)
        self.redis.cmd("LPUSH", "adsync:dead", dead_letter("d" * 32, "client_1", "campaign_1", "HTTP 400"))
        self.open("overview")
        s = self.status()   # nothing moves yet: no worker runs
        want = {"jobs": s["jobs"], "retry-due": s["retry_due"], "retry-later": s["retry"] - s["retry_due"],
                "dead": s["dead"], "outbox": s["outbox"], "workers": s["workers_alive"]}
        wait_until(lambda: {k: self.card(k) for k in want} == want, 10, f"the overview to show {want}")
        self.assertEqual(want["jobs"], 3)
        self.browser.execute_script("window.__marker = 42")
        self.worker(self.env, "--concurrency", "4")
        first = wait_until(lambda: self.card("synced") or None, 30, "some campaigns synced")
        wait_until(lambda: self.card("synced") > first, 30, "the synced count to rise on its own")
        self.assertEqual(self.browser.execute_script("return window.__marker"), 42, "the page was not reloaded")
        wl.wait_runs_done(self.redis, self.ids, 60)
        wait_until(lambda: self.card("synced") == 450, 10, "all 450 campaigns")
        s = self.status()
        self.assertEqual(sum(c["last_run"]["synced"] for c in s["clients"]), 450)
        self.browser.save_screenshot(SCREENSHOT)
        self.assertGreater(os.path.getsize(SCREENSHOT), 10000)

    def test_hostile_reason_is_shown_as_text(self):
        self.redis.cmd("LPUSH", "adsync:dead", dead_letter("e" * 32, "client_2", "campaign_9", HOSTILE))
        self.open("dead")
        cell = self.text_of("td.reason")
        self.assertEqual(cell, HOSTILE)
        time.sleep(1)   # a refresh cycle: the row is redrawn from JSON again
        with self.assertRaises(NoAlertPresentException):
            self.browser.switch_to.alert.text
        self.assertIsNone(self.browser.execute_script("return window.__xss"))
        self.assertEqual(self.count("main img"), 0)

    def test_retry_requeues_and_purge_asks_first(self):
        for i in range(3):
            self.redis.cmd("LPUSH", "adsync:dead", dead_letter(f"{i:032x}", "client_3", f"campaign_{i + 1}", "HTTP 500"))
        self.open("dead")
        wait_until(lambda: self.count("tr[data-job]") == 3, 10, "3 letters")
        self.browser.execute_script("document.querySelector(arguments[0]).click()",
                                    f'tr[data-job="{0:032x}"] button.retry-one')
        self.assertIn("Retry job", self.text_of("#confirm-text"))
        self.browser.find_element(By.ID, "confirm-yes").click()
        wait_until(lambda: self.redis.cmd("LLEN", "adsync:jobs") == 1, 10, "the letter back on the jobs list")
        self.assertEqual(json.loads(self.redis.cmd("LINDEX", "adsync:jobs", 0))["id"], f"{0:032x}")
        self.assertEqual(self.redis.cmd("LLEN", "adsync:dead"), 2)
        wait_until(lambda: self.count("tr[data-job]") == 2, 10, "2 left")
        self.click("#purge")
        self.assertIn("no undo", self.text_of("#confirm-text"))
        time.sleep(0.5)
        self.assertEqual(self.redis.cmd("LLEN", "adsync:dead"), 2, "purge waits for the answer")
        self.browser.find_element(By.ID, "confirm-no").click()
        time.sleep(0.5)
        self.assertEqual(self.redis.cmd("LLEN", "adsync:dead"), 2, "cancel keeps them")
        self.click("#purge")
        self.text_of("#confirm-text")
        self.browser.find_element(By.ID, "confirm-yes").click()
        wait_until(lambda: self.redis.cmd("LLEN", "adsync:dead") == 0, 10, "the purge")

    def test_posts_need_the_csrf_token_and_our_origin(self):
        self.redis.cmd("LPUSH", "adsync:dead", dead_letter("f" * 32, "client_1", "campaign_1", "x"))
        page = self.console.get("/")[1].decode()
        csrf = page.split('name="csrf-token" content="')[1].split('"')[0]
        origin = self.console.url
        cases = [({}, 403), ({"Origin": origin}, 403), ({"X-CSRF-Token": csrf}, 403),
                 ({"X-CSRF-Token": csrf, "Origin": "http://evil.example"}, 403),
                 ({"X-CSRF-Token": "0" * 64, "Origin": origin}, 403)]
        for headers, code in cases:
            with self.subTest(headers=headers):
                self.assertEqual(self.console.request("POST", "/api/dead/purge", b"{}", headers)[0], code)
        self.assertEqual(self.redis.cmd("LLEN", "adsync:dead"), 1, "nothing changed")
        self.assertEqual(self.console.get("/api/dead/purge")[0], 404, "a GET never acts")
        self.assertEqual(self.redis.cmd("LLEN", "adsync:dead"), 1)
        status, body = self.console.request("POST", "/api/dead/purge", b"{}", {"X-CSRF-Token": csrf, "Origin": origin})
        self.assertEqual((status, json.loads(body)), (200, {"purged": 1}))

    def test_ten_thousand_clients_page_and_search(self):
        ids = [f"bulk_{i:05d}" for i in range(10000)]
        for i in range(0, len(ids), 1000):
            self.redis.cmd("SADD", "adsync:clients", *ids[i:i + 1000])
        t0 = time.monotonic()
        self.open("clients")
        self.assertEqual(self.text_of("#client-range", timeout=30), "1–50 of 10003")
        first_paint = time.monotonic() - t0
        self.assertEqual(self.count("main tbody tr"), 50)
        box = self.browser.find_element(By.ID, "client-search")
        box.send_keys("bulk_09999")
        wait_until(lambda: self.text_of("#client-range") == "1–1 of 1", 30, "the search")
        print(f"10,003 clients: first page drawn in {first_paint:.2f} s", file=sys.stderr)
        self.assertLess(first_paint, 20)


class WebListenTest(wl.SystemTest):
    def test_non_loopback_needs_a_token(self):
        env = wl.fast_env(self.redis, None)
        port = free_port()
        r = subprocess.run([binpath("adsync-enqueue"), "web", "--listen", f"0.0.0.0:{port}"], env=dict(os.environ, **env),
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn("ADSYNC_WEB_TOKEN_FILE", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1)
        tmp = TempDir("webtoken")
        try:
            token = tmp.file("token")
            with open(token, "w") as f:
                f.write("s3cret-console-token-0123\n")
            os.chmod(token, 0o600)
            port = free_port()
            proc = spawn([binpath("adsync-enqueue"), "web", "--listen", f"0.0.0.0:{port}"],
                         env=dict(env, ADSYNC_WEB_TOKEN_FILE=token), stdout=subprocess.DEVNULL)
            base = f"http://127.0.0.1:{port}"

            def get(path, headers=None):
                try:
                    with urllib.request.urlopen(urllib.request.Request(base + path, headers=headers or {}),
                                                timeout=5) as resp:
                        return resp.status
                except urllib.error.HTTPError as e:
                    return e.code
                except OSError:
                    return None
            wait_until(lambda: get("/api/status") == 401, 10, "the console asking for its token")
            self.assertEqual(get("/api/status", {"Authorization": "Bearer s3cret-console-token-0123"}), 200)
            self.assertEqual(get("/api/status", {"Authorization": "Bearer wrong-token-wrong-token"}), 401)
            self.assertEqual(get("/api/status", {"Cookie": "adsync_token=s3cret-console-token-0123"}), 200)
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(10), 0)
        finally:
            tmp.cleanup()


if __name__ == "__main__":
    unittest.main()
