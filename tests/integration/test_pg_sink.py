"""The PostgreSQL sink end to end (DESIGN.md section 10): real redis-server,
mock API, workers and a real PostgreSQL started here (pglib: own data
directory and port, unprivileged user, stopped at the end).

- 3 clients x 200 campaigns with faults on: exactly 600 rows, each equal to
  the Redis copy; the same sync again moves synced_at and adds no row.
- PostgreSQL stopped for 5 s mid-run: every row arrives once, no campaign is
  lost, the workers never exit, one log line per state change.
- Hostile campaign names are stored byte for byte; rows the database refuses
  go to the dead letters with its message; an older sync never overwrites a
  newer one; bad configuration and an unusable table are handled."""
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import binpath, enqueue, spawn, wait_until  # noqa: E402
import pglib  # noqa: E402
import workerlib as wl  # noqa: E402

ISO = 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'
ROWS_SQL = (f"SELECT coalesce(json_agg(r ORDER BY r.client, r.id), '[]') FROM ("
            f"SELECT client, id, name, status, budget::text AS budget, impressions, clicks, conversions, "
            f"to_char(created_at AT TIME ZONE 'UTC', '{ISO}') AS created_at, "
            f"to_char(synced_at AT TIME ZONE 'UTC', '{ISO}') AS synced_at, run, "
            f"extract(epoch FROM updated_at)::float8 AS updated_at FROM campaigns) r")
HOSTILE = {
    "campaign_3": "O'Brien \"quoted\" back\\slash '); DROP TABLE campaigns; -- \u00fcn\u00efc\u00f8d\u00e9 "
                  "\u65e5\u672c\u8a9e \U0001F389 $1 %s",
    "campaign_4": "tab\there, newline\nthere, \\\\ \\' \\\" ''; DELETE FROM campaigns WHERE '1'='1",
}


class PgSinkTest(wl.SystemTest):
    @classmethod
    def setUpClass(cls):
        cls.pg = pglib.Postgres()
        cls.dbs = 0

    @classmethod
    def tearDownClass(cls):
        cls.pg.close()

    def setUp(self):
        super().setUp()
        PgSinkTest.dbs += 1
        self.db = f"t{PgSinkTest.dbs}"
        self.url = self.pg.create_db(self.db)

    # ---- helpers ------------------------------------------------------------

    def env(self, mock, **extra):
        return wl.fast_env(self.redis, mock, ADSYNC_PG_URL=self.url, **extra)

    def migrate(self, env, expect="created"):
        r = enqueue(["db", "migrate"], env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(expect, r.stdout)

    def rows(self):
        return json.loads(self.pg.psql(ROWS_SQL, db=self.db))

    def count(self):
        return int(self.pg.psql("SELECT count(*) FROM campaigns", db=self.db))

    def outbox_empty(self):
        claims = self.redis.cmd("KEYS", "adsync:outbox:*")
        ok = self.redis.cmd("LLEN", "adsync:outbox") == 0 and not claims
        if not ok:
            print("OUTBOX", self.redis.cmd("LLEN", "adsync:outbox"), claims,
                  [self.redis.cmd("LLEN", c) for c in claims], file=sys.stderr)
        return ok

    def assert_rows_equal_redis(self, ids):
        """Every stored campaign has its row, every row its campaign, equal."""
        rows = {(r["client"], r["id"]): r for r in self.rows() if r["client"] in ids}
        expected = 0
        for cid in ids:
            for camp_id, c in wl.stored_campaigns(self.redis, cid).items():
                expected += 1
                row = rows.get((cid, camp_id))
                self.assertIsNotNone(row, f"{cid}/{camp_id} missing in PostgreSQL")
                for field in ("id", "name", "status", "impressions", "clicks", "conversions",
                              "created_at", "synced_at", "run"):
                    self.assertEqual(row[field], c[field], f"{cid}/{camp_id}.{field}")
                self.assertEqual(row["budget"], str(c["budget"]), f"{cid}/{camp_id}.budget")
        self.assertEqual(len(rows), expected)
        return rows

    def assert_no_secret(self, w):
        self.assertNotIn(self.pg.password, w.log())
        self.assertNotIn(self.url, w.log())

    # ---- tests ----------------------------------------------------------------

    def test_600_rows_with_faults_then_resync_updates_in_place(self):
        mock = self.mock("--clients", 3, "--campaigns", 200, "--sync-latency-ms", 5, "--rate-limit", 0,
                         "--fail-every", 5, "--hang-every", 10, "--error-rate", 0.1,
                         "--malformed-rate", 0.02, "--seed", 11)
        ids = wl.register_clients(self.redis, 3)
        env = self.env(mock, ADSYNC_MAX_ATTEMPTS=30, ADSYNC_PG_BATCH_ROWS=64)
        self.migrate(env, "created")
        self.migrate(env, "up to date")

        wl.sync_all(env)
        workers = [self.worker(env, "--drain") for _ in range(2)]
        wl.wait_exit(self, workers, 120)
        for cid in ids:
            run = wl.check_invariant(self, self.redis, cid, 200)
            self.assertEqual((run["state"], run["dead"]), ("done", "0"))
        self.assertTrue(self.outbox_empty(), "outbox drained before --drain exits")
        first = self.assert_rows_equal_redis(ids)
        self.assertEqual(len(first), 600)
        for w in workers:
            self.assert_no_secret(w)

        wl.sync_all(env)
        workers = [self.worker(env, "--drain") for _ in range(2)]
        wl.wait_exit(self, workers, 120)
        self.assertTrue(self.outbox_empty())
        second = self.assert_rows_equal_redis(ids)
        self.assertEqual(self.count(), 600)
        for key, row in second.items():
            self.assertGreater(row["synced_at"], first[key]["synced_at"], key)
            self.assertGreater(row["updated_at"], first[key]["updated_at"], key)
            self.assertNotEqual(row["run"], first[key]["run"], key)
        written = int(self.redis.cmd("HGET", "adsync:stats", "pg_rows_written"))
        self.assertGreaterEqual(written, 1200)
        status = enqueue(["status", "--json"], env)
        self.assertEqual(json.loads(status.stdout)["outbox"], 0)

    def test_postgres_down_5s_mid_run(self):
        mock = self.mock("--clients", 3, "--campaigns", 200, "--sync-latency-ms", 100, "--rate-limit", 0,
                         "--fail-every", 0, "--hang-every", 0, "--seed", 3)
        ids = wl.register_clients(self.redis, 3)
        env = self.env(mock, ADSYNC_CLIENT_CONCURRENCY=2, ADSYNC_PG_BATCH_ROWS=20)
        self.migrate(env)
        workers = [self.worker(env) for _ in range(2)]
        wl.sync_all(env)

        def synced():
            return int(self.redis.cmd("HGET", "adsync:stats", "campaigns_synced") or 0)
        wait_until(lambda: synced() >= 120, 60, "a quarter of the campaigns synced", interval=0.05)
        self.pg.stop()
        down_at, depth, synced_during = time.monotonic(), 0, synced()
        while time.monotonic() - down_at < 5:
            depth = max(depth, self.redis.cmd("LLEN", "adsync:outbox"))
            time.sleep(0.1)
        synced_during = synced() - synced_during
        self.pg.start()

        wl.wait_runs_done(self.redis, ids, 90)
        wait_until(lambda: self.outbox_empty() and self.count() == 600, 30, "every row in PostgreSQL",
                   interval=0.1)
        self.assertGreater(synced_during, 20, "campaigns kept syncing while PostgreSQL was down")
        self.assertGreater(depth, 20, "the outbox grew while PostgreSQL was down")
        for cid in ids:
            wl.check_invariant(self, self.redis, cid, 200)
        self.assertEqual(len(self.assert_rows_equal_redis(ids)), 600)
        for w in workers:
            self.assertIsNone(w.proc.poll(), "the worker keeps running")
            log = w.log()
            self.assertEqual(log.count('"postgres unavailable'), 1, log[-3000:])
            self.assertEqual(log.count('"postgres connected"'), 2, log[-3000:])
            self.assert_no_secret(w)
        for w in workers:
            w.signal(15)
        wl.wait_exit(self, workers, 30)

    def test_hostile_names_byte_for_byte_refused_rows_dead_lettered_newer_wins(self):
        accounts = self.tmpfile("accounts.json", json.dumps(
            [{"id": "client_1", "email": "client_1@example.test", "password": "secret-client_1",
              "campaigns": 12, "names": HOSTILE}]))
        mock = self.mock("--accounts", accounts, "--sync-latency-ms", 0, "--rate-limit", 0,
                         "--fail-every", 0, "--hang-every", 0)
        wl.register_clients(self.redis, 1)
        env = self.env(mock, ADSYNC_PG_BATCH_ROWS=8)   # the first batch: 8 entries, prepared, then split
        self.migrate(env)

        def entry(cid, **campaign):
            base = {"id": "x", "name": "n", "status": "active", "budget": 1, "impressions": 1, "clicks": 0,
                    "conversions": 0, "created_at": "2025-01-01T00:00:00.000Z",
                    "synced_at": "2025-06-01T00:00:00.000Z", "run": "r0"}
            base.update(campaign)
            return json.dumps({"client": cid, "campaign": base})
        # One batch mixing good rows, rows PostgreSQL refuses and a broken entry.
        pushed = [entry("other", id=f"ok_{i}") for i in range(5)]
        pushed.insert(2, entry("other", id="too_big", impressions=1e30))
        pushed.insert(4, entry("other", id="bad_date", created_at="yesterday-ish"))
        pushed.insert(6, entry("other", id="out_of_range", clicks=9.3e18))
        pushed.append("not json at all")
        self.redis.cmd("RPUSH", "adsync:outbox", *pushed)

        wl.sync_all(env)
        w = self.worker(env, "--drain")
        wl.wait_exit(self, [w], 60)
        self.assertTrue(self.outbox_empty())
        self.assert_rows_equal_redis(["client_1"])
        for camp, name in HOSTILE.items():
            hexed = self.pg.psql("SELECT encode(convert_to(name, 'UTF8'), 'hex') FROM campaigns "
                                 f"WHERE client = 'client_1' AND id = '{camp}'", db=self.db)
            self.assertEqual(hexed, name.encode().hex(), camp)
        others = self.pg.psql("SELECT string_agg(id, ',' ORDER BY id) FROM campaigns WHERE client = 'other'",
                              db=self.db)
        self.assertEqual(others, "ok_0,ok_1,ok_2,ok_3,ok_4")
        self.assertEqual(self.count(), 12 + 5)

        letters = [json.loads(d) for d in self.redis.cmd("LRANGE", "adsync:dead", 0, -1)]
        by = {(d.get("campaign") or {}).get("id", "raw"): d for d in letters}
        self.assertEqual(sorted(by), ["bad_date", "out_of_range", "raw", "too_big"])
        self.assertTrue(all(d["type"] == "pg_row" for d in letters))
        self.assertIn('type bigint: "1e+30"', by["too_big"]["last_error"])
        self.assertIn("timestamp", by["bad_date"]["last_error"])
        self.assertIn('"9300000000000000000" is out of range for type bigint', by["out_of_range"]["last_error"])
        self.assertEqual(by["raw"]["raw"], "not json at all")
        self.assertEqual(self.redis.cmd("HGET", "adsync:stats", "pg_rows_dead"), "4")
        for args in (["dead", "list"], ["dead", "list", "--json"]):
            r = enqueue(args, env)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("too_big", r.stdout)
        self.assertIn("postgres refused a row", w.log())
        self.assert_no_secret(w)

        # Newer wins: an older sync of campaign_5 changes nothing, a newer one lands.
        before = {r["id"]: r for r in self.rows() if r["client"] == "client_1"}["campaign_5"]
        self.redis.cmd("RPUSH", "adsync:outbox",
                       entry("client_1", id="campaign_5", name="stale", synced_at="2001-01-01T00:00:00.000Z"))
        w = self.worker(env, "--drain")
        wl.wait_exit(self, [w], 30)
        after = {r["id"]: r for r in self.rows() if r["client"] == "client_1"}["campaign_5"]
        self.assertEqual(after, before)
        self.redis.cmd("RPUSH", "adsync:outbox",
                       entry("client_1", id="campaign_5", name="newer", synced_at="2999-01-01T00:00:00.000Z"),
                       entry("client_1", id="campaign_5", name="older", synced_at="2998-01-01T00:00:00.000Z"))
        w = self.worker(env, "--drain")
        wl.wait_exit(self, [w], 30)
        after = {r["id"]: r for r in self.rows() if r["client"] == "client_1"}["campaign_5"]
        self.assertEqual((after["name"], after["synced_at"]), ("newer", "2999-01-01T00:00:00.000Z"))

    def test_claims_of_dead_and_restarted_workers_are_recovered(self):
        mock = self.mock("--clients", 1, "--campaigns", 1, "--sync-latency-ms", 0, "--rate-limit", 0,
                         "--fail-every", 0, "--hang-every", 0)
        env = self.env(mock)
        self.migrate(env)

        def entry(camp):
            return json.dumps({"client": "other", "campaign": {"id": camp, "synced_at": "2025-06-01T00:00:00Z"}})
        # A worker that died holding a claimed batch, and our own id's leftover from a crash.
        self.redis.cmd("SADD", "adsync:workers", "ghost")
        self.redis.cmd("RPUSH", "adsync:outbox:ghost", entry("g1"), entry("g2"))
        self.redis.cmd("RPUSH", "adsync:outbox:me", entry("m1"))
        w = self.worker(env, "--id", "me")
        wait_until(lambda: self.count() == 3 and self.outbox_empty(), 20, "the claimed rows in PostgreSQL",
                   interval=0.1)
        self.assertEqual(self.pg.psql("SELECT string_agg(id, ',' ORDER BY id) FROM campaigns", db=self.db),
                         "g1,g2,m1")
        self.assertEqual(self.redis.cmd("SISMEMBER", "adsync:workers", "ghost"), 0)
        w.signal(15)
        wl.wait_exit(self, [w], 30)

    def test_unusable_table_waits_and_bad_url_exits_78(self):
        self.pg.psql("CREATE TABLE campaigns (id text PRIMARY KEY, name text, synced_at timestamptz)",
                     db=self.db)
        mock = self.mock("--clients", 1, "--campaigns", 20, "--sync-latency-ms", 0, "--rate-limit", 0,
                         "--fail-every", 0, "--hang-every", 0)
        wl.register_clients(self.redis, 1)
        env = self.env(mock)
        r = enqueue(["db", "migrate"], env)
        self.assertEqual(r.returncode, 65, r.stderr)
        self.assertIn("has no column(s) client", r.stderr)
        w = self.worker(env)
        wait_until(lambda: "postgres table not usable" in w.log(), 20, "the table check to fail")
        wl.sync_all(env)
        wl.wait_runs_done(self.redis, ["client_1"], 60)   # syncing does not wait for the database
        wl.check_invariant(self, self.redis, "client_1", 20)
        wait_until(lambda: self.redis.cmd("LLEN", "adsync:outbox") == 20, 10, "results in the outbox")
        w.signal(15)
        wl.wait_exit(self, [w], 30)
        self.assertEqual(w.log().count("postgres table not usable"), 1)

        r = enqueue(["db", "migrate"], dict(env, ADSYNC_PG_URL=""))
        self.assertEqual(r.returncode, 78)
        for bad in ("postgresql://u:hunter2pw@h/db?bogus_option=1", "postgresql://u:hunter2pw@[::1/db",
                    "mysql://u:hunter2pw@h/db"):
            for prog in (["adsync-worker"], ["adsync-enqueue", "db", "migrate"]):
                p = spawn([binpath(prog[0])] + prog[1:], env={"ADSYNC_PG_URL": bad}, stdout=-1, stderr=-1)
                _, err = p.communicate(timeout=10)
                self.assertEqual(p.returncode, 78, (prog, bad, err))
                lines = err.decode().strip().splitlines()
                self.assertEqual(len(lines), 1, err)
                self.assertIn("ADSYNC_PG_URL", lines[0])
                self.assertNotIn("hunter2", lines[0])

    def tmpfile(self, name, text):
        path = os.path.join(self.redis.dir.path, name)
        with open(path, "w") as f:
            f.write(text)
        return path


if __name__ == "__main__":
    unittest.main()
