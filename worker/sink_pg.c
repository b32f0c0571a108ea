/* sink_pg: the PostgreSQL writer of the sink (DESIGN.md §10; sinkwriter.h).
 *
 * Each claimed entry is parsed into a row of table campaigns (pgrow); the
 * rows are upserted with one parameterised statement (pgrow_upsert_sql),
 * prepared once per connection for full batches. A statement refused
 * because of a value (SQLSTATE class 22/23) is split in halves until the
 * refused rows are alone; those become dead letters with the database's
 * message and the rest is written. Any other failure (server gone, table
 * missing, out of resources) keeps the batch and retries it with a capped
 * backoff after re-checking the table; a lost connection waits for pg.c's
 * reconnect. The table is checked (check.sql), never altered, after every
 * connect. */
#include "sinkwriter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "pg.h"
#include "pgrow.h"
#include "sql.h"

#define QUERY_TIMEOUT_MS 30000
#define SCHEMA_RECHECK_MS 5000
#define RETRY_MIN_MS 200
#define RETRY_MAX_MS 5000
#define MAX_SPLITS 64            /* bisection depth for 5000 rows is 13 */
#define UPSERT_NAME "adsync_upsert"   /* the prepared full-batch statement */

typedef struct range {
    size_t lo, n;                /* positions in rows.ins */
} range;

/* A batch as rows of the table (sink_batch.rows). */
typedef struct rows {
    pgrow *row;                  /* parsed entries (zeroed where parsing failed) */
    size_t *ins;                 /* indices of parsed rows, in insert order */
    size_t nins;
    range todo[MAX_SPLITS];      /* ranges still to insert; the last one goes next */
    size_t ntodo;
} rows;

typedef struct pgw {
    wctx *x;
    sink_host host;
    pg_conn *pg;
    Oid *types;                  /* pgrow_types once per row of the largest batch */
    sink_batch *b;               /* the batch being written */
    int schema_ok;               /* check.sql passed on this connection */
    int prepared;                /* UPSERT_NAME exists on this connection */
    char schema_problem[256];    /* the last problem logged */
    int trouble;                 /* a retryable database error was logged */
    uint64_t retry_ms;
    int closed;
} pgw;

/* ---- reading a batch --------------------------------------------------------- */

static int bury(sink_batch *b, const pgrow *row, size_t i, const char *error)
{
    char *letter = pgrow_dead_letter(row, b->entries[i], b->lens[i], error, clock_wall_ms());
    if (letter == NULL || sink_batch_bury(b, letter) < 0) {
        free(letter);
        return -1;
    }
    return 0;
}

static int take(void *w, sink_batch *b)
{
    (void)w;
    rows *r = calloc(1, sizeof *r);
    if (r == NULL)
        return -1;
    b->rows = r;
    if ((r->row = calloc(b->n, sizeof *r->row)) == NULL || (r->ins = calloc(b->n, sizeof *r->ins)) == NULL)
        return -1;   /* release frees what there is */
    for (size_t i = 0; i < b->n; i++) {
        char err[128];
        if (pgrow_parse(&r->row[i], b->entries[i], b->lens[i], err, sizeof err) == 0) {
            r->ins[r->nins++] = i;
            continue;
        }
        log_warn("postgres sink: unreadable outbox entry dead-lettered", LOG_STR("error", err));
        if (bury(b, NULL, i, err) < 0)
            return -1;
    }
    if (r->nins > 0)
        r->todo[r->ntodo++] = (range){ 0, r->nins };
    return 0;
}

static void release(sink_batch *b)
{
    rows *r = b->rows;
    if (r == NULL)
        return;
    for (size_t i = 0; r->row && i < b->n; i++)
        pgrow_clear(&r->row[i]);
    free(r->row);
    free(r->ins);
    free(r);
    b->rows = NULL;
}

static int finished(const sink_batch *b)
{
    const rows *r = b->rows;
    return r->ntodo == 0;
}

/* ---- database trouble ------------------------------------------------------------ */

/* A retryable failure: keep the batch, re-check the table, try again later. */
static void trouble(pgw *p, const char *error)
{
    if (!p->trouble)
        log_warn("postgres refused a batch; it stays claimed and is retried", LOG_STR("error", error));
    p->trouble = 1;
    p->schema_ok = 0;
    p->host.retry_in(p->host.ud, p->retry_ms);
    p->retry_ms = p->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : p->retry_ms * 2;
}

static void no_trouble(pgw *p)
{
    if (p->trouble)
        log_info("postgres accepts batches again");
    p->trouble = 0;
    p->retry_ms = RETRY_MIN_MS;
}

/* ---- inserting -------------------------------------------------------------------- */

/* A statement refused because of its values: split it; a single row is
 * the culprit and goes to the dead letters. 0, or -1 when it could not be
 * buried (out of memory). */
static int split(sink_batch *b, range r, const char *error)
{
    rows *rs = b->rows;
    if (r.n > 1) {
        size_t half = r.n / 2;
        rs->todo[rs->ntodo++] = (range){ r.lo + half, r.n - half };
        rs->todo[rs->ntodo++] = (range){ r.lo, half };
        return 0;
    }
    size_t i = rs->ins[r.lo];
    char why[600];
    snprintf(why, sizeof why, "postgres: %s", error);
    if (bury(b, &rs->row[i], i, why) < 0)
        return -1;
    log_warn("postgres refused a row; dead-lettered", LOG_STR("client", pgrow_client(&rs->row[i])),
             LOG_STR("campaign", pgrow_campaign_id(&rs->row[i])), LOG_STR("error", error));
    return 0;
}

static void on_inserted(pg_conn *pg, const PGresult *res, void *ud)
{
    (void)pg;
    pgw *p = ud;
    if (p->closed || res == NULL)
        return;   /* connection lost: the batch waits for the reconnect */
    sink_batch *b = p->b;
    rows *rs = b->rows;
    range r = rs->todo[--rs->ntodo];
    if (PQresultStatus(res) == PGRES_COMMAND_OK) {
        b->written += r.n;
        no_trouble(p);
        p->host.step(p->host.ud);
        return;
    }
    char error[512];
    pg_result_error(res, error, sizeof error);
    if (pgrow_is_row_error(PQresultErrorField(res, PG_DIAG_SQLSTATE)) && rs->ntodo + 2 <= MAX_SPLITS &&
        split(b, r, error) == 0) {
        p->host.step(p->host.ud);
        return;
    }
    rs->todo[rs->ntodo++] = r;
    trouble(p, error);
}

static void on_prepared(pg_conn *pg, const PGresult *res, void *ud)
{
    (void)pg;
    pgw *p = ud;
    if (p->closed || res == NULL)
        return;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        char error[512];
        pg_result_error(res, error, sizeof error);
        trouble(p, error);
        return;
    }
    p->prepared = 1;
    p->host.step(p->host.ud);
}

/* Full batches, the common case under load, run one prepared statement
 * (half the server's work of parsing and planning it each time). */
static void prepare_upsert(pgw *p)
{
    unsigned n = p->x->cfg.pg_batch_rows;
    char *sql = pgrow_upsert_sql(n);
    if (sql == NULL || pg_prepare(p->pg, UPSERT_NAME, sql, (int)(n * PGROW_NCOLS), p->types, on_prepared, p) < 0)
        p->host.retry_in(p->host.ud, RETRY_MIN_MS);
    free(sql);
}

/* Sends rows r of the batch: a full batch prepared, anything else as text. */
static int send_rows(pgw *p, range r, const char *const *values)
{
    int nparams = (int)(r.n * PGROW_NCOLS);
    if (r.n == p->x->cfg.pg_batch_rows)
        return pg_query_prepared(p->pg, UPSERT_NAME, nparams, values, on_inserted, p);
    char *sql = pgrow_upsert_sql(r.n);
    int rc = sql ? pg_query(p->pg, sql, nparams, p->types, values, on_inserted, p) : -1;
    free(sql);
    return rc;
}

static void write_next(void *w, sink_batch *b)
{
    pgw *p = w;
    rows *rs = b->rows;
    range r = rs->todo[rs->ntodo - 1];
    p->b = b;
    if (r.n == p->x->cfg.pg_batch_rows && !p->prepared) {
        prepare_upsert(p);
        return;
    }
    const char **values = malloc(r.n * PGROW_NCOLS * sizeof *values);
    if (values == NULL) {
        p->host.retry_in(p->host.ud, RETRY_MAX_MS);
        return;
    }
    for (size_t k = 0; k < r.n; k++)
        memcpy(values + k * PGROW_NCOLS, rs->row[rs->ins[r.lo + k]].values, sizeof(char *) * PGROW_NCOLS);
    if (send_rows(p, r, values) < 0)
        p->host.retry_in(p->host.ud, RETRY_MIN_MS);   /* not connected (the reconnect wakes us) or OOM */
    free(values);
}

/* ---- the table ------------------------------------------------------------------- */

static void on_checked(pg_conn *pg, const PGresult *res, void *ud)
{
    (void)pg;
    pgw *p = ud;
    if (p->closed || res == NULL)
        return;
    char problem[sizeof p->schema_problem] = "";
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        pg_result_error(res, problem, sizeof problem);
    else if (PQntuples(res) != 1 || PQnfields(res) != 1)
        snprintf(problem, sizeof problem, "unexpected answer to the table check");
    else if (!PQgetisnull(res, 0, 0))
        snprintf(problem, sizeof problem, "%s", PQgetvalue(res, 0, 0));
    if (problem[0]) {
        if (strcmp(problem, p->schema_problem) != 0)
            log_error("postgres table not usable; results wait in the outbox (run: adsync-enqueue db migrate)",
                      LOG_STR("problem", problem));
        snprintf(p->schema_problem, sizeof p->schema_problem, "%s", problem);
        p->host.retry_in(p->host.ud, SCHEMA_RECHECK_MS);
        return;
    }
    if (p->schema_problem[0])
        log_info("postgres table usable");
    p->schema_problem[0] = '\0';
    p->schema_ok = 1;
    p->host.step(p->host.ud);
}

static int prepare(void *w)
{
    pgw *p = w;
    if (pg_is_busy(p->pg) || !pg_is_connected(p->pg))
        return 0;
    if (p->schema_ok)
        return 1;
    if (pg_query(p->pg, sql_check, 0, NULL, NULL, on_checked, p) < 0)
        p->host.retry_in(p->host.ud, RETRY_MIN_MS);
    return 0;
}

static sw_state state(const void *w)
{
    const pgw *p = w;
    if (!pg_is_connected(p->pg))
        return SW_DOWN;
    return p->schema_ok ? SW_USABLE : SW_CONNECTED;
}

static void on_pg_state(pg_conn *pg, int connected, const char *reason, void *ud)
{
    pgw *p = ud;
    if (!connected) {
        log_warn("postgres unavailable; results wait in the outbox", LOG_STR("reason", reason));
        return;
    }
    p->x->n.pg_reconnects = pg_reconnects(pg);
    log_info("postgres connected", LOG_INT("reconnects", (long long)pg_reconnects(pg)));
    p->schema_ok = 0;
    p->prepared = 0;
    p->host.wake(p->host.ud);
}

/* ---- life ---------------------------------------------------------------------- */

static Oid *row_types(unsigned n)
{
    Oid *types = malloc((size_t)n * PGROW_NCOLS * sizeof *types);
    for (size_t r = 0; types && r < n; r++)
        memcpy(types + r * PGROW_NCOLS, pgrow_types, sizeof pgrow_types);
    return types;
}

static void *open_writer(wctx *x, const sink_host *host)
{
    char password[256];
    if (pg_conninfo_password(x->cfg.pg_url, password, sizeof password) == 0)
        log_secret_add(password);
    explicit_bzero(password, sizeof password);
    pgw *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    *p = (pgw){ .x = x, .host = *host, .retry_ms = RETRY_MIN_MS };
    pg_options opt = {
        .conninfo = x->cfg.pg_url, .query_timeout_ms = QUERY_TIMEOUT_MS, .on_state = on_pg_state, .ud = p,
    };
    if ((p->types = row_types(x->cfg.pg_batch_rows)) == NULL || (p->pg = pg_new(x->loop, &opt)) == NULL) {
        free(p->types);
        free(p);
        return NULL;
    }
    return p;
}

/* The memory goes with the driver's (sink.c frees it once its timer closed:
 * a pg callback still due sees closed first). */
static void close_writer(void *w)
{
    pgw *p = w;
    p->closed = 1;
    pg_close(p->pg);   /* frees itself on a later loop turn */
}

static void destroy_writer(void *w)
{
    pgw *p = w;
    free(p->types);
    free(p);
}

const sink_writer_ops sink_pg_writer = {
    .name = "postgres",
    .open = open_writer,
    .state = state,
    .prepare = prepare,
    .take = take,
    .write = write_next,
    .finished = finished,
    .release = release,
    .close = close_writer,
    .destroy = destroy_writer,
};
