/* db: "adsync-enqueue db migrate": creates or upgrades the PostgreSQL sink's
 * table (DESIGN.md §8, §10) from common/sql/schema.sql.
 *
 * Synchronous libpq, one short connection to ADSYNC_PG_URL (Redis is not
 * touched). Everything runs in one transaction under an advisory lock, so two
 * migrations at once queue up instead of racing, and ends with check.sql, the
 * same check the worker makes: a table that exists but cannot be used (an
 * older layout, a missing key) is reported and nothing is changed. */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "cli.h"
#include "pg.h"
#include "sql.h"

#define CONNECT_TIMEOUT_S "5"
#define MIGRATE_LOCK "7301290421"   /* pg_advisory_xact_lock key: "adsync schema" */

/* ---- one connection ------------------------------------------------------------ */

typedef struct db {
    PGconn *conn;
    char password[256];   /* masked in every message */
} db;

static void quiet_notices(void *arg, const char *message)
{
    (void)arg;   /* "relation already exists, skipping" and the like */
    (void)message;
}

/* Connects to url. 0, or EX_UNAVAILABLE after one line was printed. */
static int db_open(db *d, const char *url)
{
    if (pg_conninfo_password(url, d->password, sizeof d->password) < 0)
        d->password[0] = '\0';
    const char *const keywords[] = { "connect_timeout", "dbname", NULL };
    const char *const values[] = { CONNECT_TIMEOUT_S, url, NULL };   /* the URL's own settings win */
    d->conn = PQconnectdbParams(keywords, values, 1);
    if (d->conn && PQstatus(d->conn) == CONNECTION_OK) {
        PQsetNoticeProcessor(d->conn, quiet_notices, NULL);
        return 0;
    }
    char why[PG_ERR_LEN + 64];
    pg_conn_error(d->conn, d->password, "cannot connect to PostgreSQL", why, sizeof why);
    app_error("db migrate: %s", why);
    return EX_UNAVAILABLE;
}

static void db_close(db *d)
{
    PQfinish(d->conn);
    d->conn = NULL;
}

/* Runs sql; on failure prints "db migrate: <step>: <error>". Returns the
 * result (PQclear it) or NULL. */
static PGresult *db_exec(db *d, const char *step, const char *sql, ExecStatusType want)
{
    PGresult *res = PQexec(d->conn, sql);
    if (res && PQresultStatus(res) == want)
        return res;
    char why[PG_ERR_LEN + 64];
    if (res)
        pg_result_error(res, why, sizeof why);
    else
        pg_conn_error(d->conn, d->password, "no answer", why, sizeof why);
    app_error("db migrate: %s: %s", step, why);
    PQclear(res);
    return NULL;
}

static int db_run(db *d, const char *step, const char *sql)
{
    PGresult *res = db_exec(d, step, sql, PGRES_COMMAND_OK);
    PQclear(res);
    return res ? 0 : -1;
}

/* One text value of a one-row answer: 1 and out filled, 0 when NULL, -1 on
 * failure (printed). */
static int db_value(db *d, const char *step, const char *sql, char *out, size_t outlen)
{
    PGresult *res = db_exec(d, step, sql, PGRES_TUPLES_OK);
    if (res == NULL)
        return -1;
    int rc = 0;
    if (PQntuples(res) != 1 || PQnfields(res) != 1) {
        app_error("db migrate: %s: unexpected answer", step);
        rc = -1;
    } else if (!PQgetisnull(res, 0, 0)) {
        snprintf(out, outlen, "%s", PQgetvalue(res, 0, 0));
        rc = 1;
    }
    PQclear(res);
    return rc;
}

/* ---- db migrate ------------------------------------------------------------------ */

/* Inside the transaction: apply, check. Exit code. */
static int migrate_in_tx(db *d)
{
    char locked[8], existed[8] = "", problem[512] = "";
    if (db_value(d, "lock", "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK ")", locked, sizeof locked) < 0 ||
        db_value(d, "inspect", "SELECT (to_regclass('campaigns') IS NOT NULL)::text", existed, sizeof existed) < 0 ||
        db_run(d, "apply schema.sql", sql_schema) < 0)
        return EX_UNAVAILABLE;
    int rc = db_value(d, "check", sql_check, problem, sizeof problem);
    if (rc < 0)
        return EX_UNAVAILABLE;
    if (rc == 1) {
        app_error("db migrate: table campaigns is not usable by adsync, nothing changed: %s", problem);
        return EX_DATAERR;
    }
    if (db_run(d, "commit", "COMMIT") < 0)
        return EX_UNAVAILABLE;
    printf("table campaigns %s\n", strcmp(existed, "true") == 0 ? "is up to date" : "created");
    return 0;
}

static const app_cmd_spec migrate_spec = {
    "db migrate",
    "Creates or upgrades the PostgreSQL sink's table campaigns (common/sql/schema.sql)\n"
    "in the database of ADSYNC_PG_URL, in one transaction, then checks that the\n"
    "worker can use it. Idempotent: running it again changes nothing. Redis is not\n"
    "touched. Workers never change the schema; they check it and wait for this.\n"
    "exit codes: 0 ok, 64 usage, 65 an existing table campaigns has an incompatible\n"
    "layout (nothing changed), 69 PostgreSQL unavailable or refused, 78 configuration\n"
    "(ADSYNC_PG_URL unset or malformed).\n",
    NULL, "",
};

static int db_migrate_cmd(int argc, char **argv)
{
    int unused = 0, first;
    int rc = app_parse_opts(&migrate_spec, argc, argv, app_flag_opt, &unused, &first);
    if (rc)
        return rc == APP_HELP ? 0 : rc;
    if (first < argc)
        return app_usage_error(migrate_spec.usage, "unexpected argument '%s'", argv[first]);
    cfg c;
    char err[CFG_ERR_LEN];
    if (cfg_load(&c, NULL, err, sizeof err) < 0) {
        app_error("%s", err);
        return CFG_EXIT_CONFIG;
    }
    if (c.pg_url[0] == '\0') {
        app_error("ADSYNC_PG_URL: not set (expected a libpq URI postgresql://[user[:password]@]host[:port]/dbname)");
        return CFG_EXIT_CONFIG;
    }
    db d = { 0 };
    if ((rc = db_open(&d, c.pg_url)) != 0) {
        db_close(&d);
        return rc;
    }
    rc = db_run(&d, "begin", "BEGIN") < 0 ? EX_UNAVAILABLE : migrate_in_tx(&d);
    db_close(&d);   /* an open transaction is rolled back */
    return rc;
}

/* ---- the group --------------------------------------------------------------------- */

static const app_subcmd db_cmds[] = {
    { "migrate", db_migrate_cmd },
};

int cli_db(int argc, char **argv)
{
    static const app_group group = {
        "db migrate",
        "  db migrate    create/upgrade the PostgreSQL schema (idempotent)\n"
        "\"adsync-enqueue db migrate --help\" explains it.\n",
        db_cmds, sizeof db_cmds / sizeof db_cmds[0],
    };
    return app_dispatch(&group, argc, argv);
}
