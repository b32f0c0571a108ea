/* sink: the worker's PostgreSQL sink (DESIGN.md §10): drains <prefix>:outbox
 * into table campaigns, on the worker's loop, without ever holding up a sync.
 *
 * One batch at a time: claim up to ADSYNC_PG_BATCH_ROWS entries into this
 * worker's claim list (outbox_claim.lua), upsert them with one parameterised
 * statement (pgrow_upsert_sql), and only after its COMMIT drop the claim list
 * (outbox_ack.lua; sent again after a Redis outage until it is answered, it
 * is idempotent). A full batch is followed by the next claim at once;
 * otherwise the sink looks again after ADSYNC_PG_BATCH_MS. So delivery is at
 * least once; the upsert makes it one row per campaign, newest sync wins.
 * Claims and acknowledgements use a Redis connection of their own, so they
 * never queue behind the progress writes of a busy worker.
 *
 * A statement refused because of a value (SQLSTATE class 22/23) is split in
 * halves until the refused rows are alone; those go to the dead letters with
 * the database's message and the rest is written. Any other failure (server
 * gone, table missing, out of resources) keeps the batch and retries it with
 * a capped backoff after re-checking the table; a lost connection waits for
 * pg.c's reconnect. While PostgreSQL is away nothing is claimed: results wait
 * in the outbox (its depth is a metric: worker/metrics.c samples it).
 *
 * The table is checked (check.sql), never altered, after every connect. The
 * sink owns its Redis and pg connections, its timer and its batch; worker.c
 * starts it after registration and stops it in the second stage of the
 * shutdown (an unacknowledged claim list is pushed back by reap.lua). */
#include "sink.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "pg.h"
#include "pgrow.h"
#include "scripts.h"
#include "sql.h"

#define QUERY_TIMEOUT_MS 30000
#define SCHEMA_RECHECK_MS 5000
#define RETRY_MIN_MS 200
#define RETRY_MAX_MS 5000
#define MAX_SPLITS 64            /* bisection depth for 5000 rows is 13 */
#define UPSERT_NAME "adsync_upsert"   /* the prepared full-batch statement */

/* The scripts of the sink's own Redis connection. */
enum { SK_CLAIM, SK_ACK, SK_SCRIPTS };
static const char *const sink_scripts[SK_SCRIPTS] = { [SK_CLAIM] = script_outbox_claim,
                                                      [SK_ACK] = script_outbox_ack };

typedef struct range {
    size_t lo, n;                /* positions in batch.ins */
} range;

/* The batch between its claim and its acknowledgement. */
typedef struct batch {
    size_t n;                    /* entries claimed */
    char **entries;              /* as claimed (for dead letters) */
    size_t *lens;
    pgrow *rows;                 /* parsed entries (zeroed where parsing failed) */
    size_t *ins;                 /* indices of parsed rows, in insert order */
    size_t nins;
    range todo[MAX_SPLITS];      /* ranges still to insert; the last one goes next */
    size_t ntodo;
    char **dead;                 /* dead letters (JSON) */
    size_t ndead;
    size_t written;              /* rows committed */
    int full;                    /* claimed as many as allowed: claim again at once */
} batch;

struct sink {
    wctx *x;
    rds *redis;                  /* claims and acknowledgements */
    pg_conn *pg;
    uv_timer_t timer;            /* next claim, table re-check or retry */
    char outbox[KEYS_MAX_LEN], claim[KEYS_MAX_LEN], dead[KEYS_MAX_LEN], stats[KEYS_MAX_LEN];
    char max_rows[16];
    Oid *types;                  /* pgrow_types once per row of the largest batch */
    batch *b;
    int schema_ok;               /* check.sql passed on this connection */
    int prepared;                /* UPSERT_NAME exists on this connection */
    char schema_problem[256];    /* the last problem logged */
    int claiming, acking, stopping, closed;
    int claim_clean;             /* the claim in flight was sent with all our writes landed */
    int idle_clean;              /* ...and found the outbox empty */
    int trouble;                 /* a retryable database error was logged */
    long long outbox_left;       /* outbox length after the last claim (for the debug log) */
    uint64_t retry_ms;
};

static void step(sink *s);

/* ---- batches ---------------------------------------------------------------- */

static void batch_free(batch *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < b->n && b->entries && b->rows; i++) {
        free(b->entries[i]);
        pgrow_clear(&b->rows[i]);
    }
    for (size_t i = 0; i < b->ndead; i++)
        free(b->dead[i]);
    free(b->entries), free(b->lens), free(b->rows), free(b->ins), free(b->dead);
    free(b);
}

static int add_dead(batch *b, const pgrow *row, size_t i, const char *error)
{
    char *letter = pgrow_dead_letter(row, b->entries[i], b->lens[i], error, clock_wall_ms());
    if (letter == NULL)
        return -1;
    b->dead[b->ndead++] = letter;
    return 0;
}

/* Parses one claimed entry: into the insert order, or to the dead letters. */
static int batch_take(batch *b, size_t i, const char *str, size_t len)
{
    char err[128];
    if ((b->entries[i] = malloc(len + 1)) == NULL)
        return -1;
    memcpy(b->entries[i], str, len);
    b->entries[i][len] = '\0';
    b->lens[i] = len;
    if (pgrow_parse(&b->rows[i], str, len, err, sizeof err) == 0) {
        b->ins[b->nins++] = i;
        return 0;
    }
    log_warn("postgres sink: unreadable outbox entry dead-lettered", LOG_STR("error", err));
    return add_dead(b, NULL, i, err);
}

/* Copies and parses the claimed entries (the reply is borrowed). */
static batch *batch_new(redisReply **items, size_t n, int full)
{
    batch *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->n = n;   /* every array is zeroed: freeing a half-built batch is safe */
    b->full = full;
    b->entries = calloc(n, sizeof *b->entries);
    b->lens = calloc(n, sizeof *b->lens);
    b->rows = calloc(n, sizeof *b->rows);
    b->ins = calloc(n, sizeof *b->ins);
    b->dead = calloc(n, sizeof *b->dead);
    int ok = b->entries && b->lens && b->rows && b->ins && b->dead;
    for (size_t i = 0; ok && i < n; i++) {
        int str = items[i]->type == REDIS_REPLY_STRING;
        ok = batch_take(b, i, str ? items[i]->str : "", str ? items[i]->len : 0) == 0;
    }
    if (!ok) {
        batch_free(b);
        return NULL;
    }
    if (b->nins > 0)
        b->todo[b->ntodo++] = (range){ 0, b->nins };
    return b;
}

/* ---- timers ---------------------------------------------------------------------- */

static void on_timer(uv_timer_t *t)
{
    step(t->data);
}

static void arm(sink *s, uint64_t ms)
{
    uv_timer_start(&s->timer, on_timer, ms, 0);
}

/* ---- database trouble ------------------------------------------------------------ */

/* A retryable failure: keep the batch, re-check the table, try again later. */
static void trouble(sink *s, const char *error)
{
    if (!s->trouble)
        log_warn("postgres refused a batch; it stays claimed and is retried", LOG_STR("error", error));
    s->trouble = 1;
    s->schema_ok = 0;
    arm(s, s->retry_ms);
    s->retry_ms = s->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : s->retry_ms * 2;
}

static void no_trouble(sink *s)
{
    if (s->trouble)
        log_info("postgres accepts batches again");
    s->trouble = 0;
    s->retry_ms = RETRY_MIN_MS;
}

/* ---- acknowledging ------------------------------------------------------------- */

static void on_acked(rds *r, redisReply *reply, void *ud)
{
    (void)r;
    sink *s = ud;
    s->acking = 0;
    if (s->closed)
        return;
    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        arm(s, RETRY_MIN_MS);   /* lost or refused: sent again (idempotent) */
        return;
    }
    batch *b = s->b;
    wctx *x = s->x;
    x->n.pg_rows_written += b->written;
    x->n.pg_rows_dead += b->ndead;
    x->n.pg_batches++;
    log_debug("postgres batch committed", LOG_INT("rows", (long long)b->written),
              LOG_INT("dead", (long long)b->ndead), LOG_INT("outbox_left", s->outbox_left));
    int full = b->full;
    batch_free(b);
    s->b = NULL;
    if (full)
        step(s);
    else
        arm(s, x->cfg.pg_batch_ms);
}

/* After the last COMMIT: the claim list goes, refused rows are buried. */
static void ack(sink *s)
{
    batch *b = s->b;
    size_t argc = 4 + b->ndead;
    const char **argv = malloc(argc * sizeof *argv);
    char written[24];
    if (argv == NULL) {
        arm(s, RETRY_MAX_MS);
        return;
    }
    snprintf(written, sizeof written, "%zu", b->written);
    argv[0] = s->claim, argv[1] = s->dead, argv[2] = s->stats, argv[3] = written;
    for (size_t i = 0; i < b->ndead; i++)
        argv[4 + i] = b->dead[i];
    if (rds_script(s->redis, SK_ACK, on_acked, s, 3, (int)argc, argv, NULL) == 0)
        s->acking = 1;
    else
        arm(s, RETRY_MIN_MS);   /* Redis away: again once it is back */
    free(argv);
}

/* ---- inserting -------------------------------------------------------------------- */

/* A statement refused because of its values: split it; a single row is
 * the culprit and goes to the dead letters. 0, or -1 when it could not be
 * buried (out of memory). */
static int split(batch *b, range r, const char *error)
{
    if (r.n > 1) {
        size_t half = r.n / 2;
        b->todo[b->ntodo++] = (range){ r.lo + half, r.n - half };
        b->todo[b->ntodo++] = (range){ r.lo, half };
        return 0;
    }
    size_t i = b->ins[r.lo];
    char why[600];
    snprintf(why, sizeof why, "postgres: %s", error);
    if (add_dead(b, &b->rows[i], i, why) < 0)
        return -1;
    log_warn("postgres refused a row; dead-lettered", LOG_STR("client", pgrow_client(&b->rows[i])),
             LOG_STR("campaign", pgrow_campaign_id(&b->rows[i])), LOG_STR("error", error));
    return 0;
}

static void on_inserted(pg_conn *pg, const PGresult *res, void *ud)
{
    (void)pg;
    sink *s = ud;
    if (s->closed || res == NULL)
        return;   /* connection lost: the batch waits for the reconnect */
    batch *b = s->b;
    range r = b->todo[--b->ntodo];
    if (PQresultStatus(res) == PGRES_COMMAND_OK) {
        b->written += r.n;
        no_trouble(s);
        step(s);
        return;
    }
    char error[512];
    pg_result_error(res, error, sizeof error);
    if (pgrow_is_row_error(PQresultErrorField(res, PG_DIAG_SQLSTATE)) && b->ntodo + 2 <= MAX_SPLITS &&
        split(b, r, error) == 0) {
        step(s);
        return;
    }
    b->todo[b->ntodo++] = r;
    trouble(s, error);
}

static void on_prepared(pg_conn *pg, const PGresult *res, void *ud)
{
    (void)pg;
    sink *s = ud;
    if (s->closed || res == NULL)
        return;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        char error[512];
        pg_result_error(res, error, sizeof error);
        trouble(s, error);
        return;
    }
    s->prepared = 1;
    step(s);
}

/* Full batches, the common case under load, run one prepared statement
 * (half the server's work of parsing and planning it each time). */
static void prepare(sink *s)
{
    unsigned rows = s->x->cfg.pg_batch_rows;
    char *sql = pgrow_upsert_sql(rows);
    if (sql == NULL || pg_prepare(s->pg, UPSERT_NAME, sql, (int)(rows * PGROW_NCOLS), s->types, on_prepared, s) < 0)
        arm(s, RETRY_MIN_MS);
    free(sql);
}

/* Sends rows r of the batch: a full batch prepared, anything else as text. */
static int send_rows(sink *s, range r, const char *const *values)
{
    int nparams = (int)(r.n * PGROW_NCOLS);
    if (r.n == s->x->cfg.pg_batch_rows)
        return pg_query_prepared(s->pg, UPSERT_NAME, nparams, values, on_inserted, s);
    char *sql = pgrow_upsert_sql(r.n);
    int rc = sql ? pg_query(s->pg, sql, nparams, s->types, values, on_inserted, s) : -1;
    free(sql);
    return rc;
}

static void insert_next(sink *s)
{
    batch *b = s->b;
    range r = b->todo[b->ntodo - 1];
    if (r.n == s->x->cfg.pg_batch_rows && !s->prepared) {
        prepare(s);
        return;
    }
    const char **values = malloc(r.n * PGROW_NCOLS * sizeof *values);
    if (values == NULL) {
        arm(s, RETRY_MAX_MS);
        return;
    }
    for (size_t k = 0; k < r.n; k++)
        memcpy(values + k * PGROW_NCOLS, b->rows[b->ins[r.lo + k]].values, sizeof(char *) * PGROW_NCOLS);
    if (send_rows(s, r, values) < 0)
        arm(s, RETRY_MIN_MS);   /* not connected (then the reconnect steps again) or out of memory */
    free(values);
}

/* ---- claiming ------------------------------------------------------------------- */

static void on_claimed(rds *r, redisReply *reply, void *privdata)
{
    (void)r;
    sink *s = privdata;
    s->claiming = 0;
    if (s->closed)
        return;
    wctx *x = s->x;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER) {
        arm(s, x->cfg.pg_batch_ms);   /* Redis trouble: rds reconnects, we look again */
        return;
    }
    s->outbox_left = reply->element[0]->integer;
    size_t n = reply->elements - 1;
    s->idle_clean = n == 0 && s->claim_clean;
    if (n == 0) {
        arm(s, x->cfg.pg_batch_ms);
        return;
    }
    s->b = batch_new(reply->element + 1, n, n >= x->cfg.pg_batch_rows);
    if (s->b == NULL) {
        log_error("postgres sink: out of memory reading a batch; retrying");
        arm(s, RETRY_MAX_MS);
        return;
    }
    step(s);
}

static void claim(sink *s)
{
    wctx *x = s->x;
    const char *args[] = { s->outbox, s->claim, s->max_rows };
    s->claim_clean = x->jobs_held == 0 && st_backlog(x->store) == 0;
    if (rds_script(s->redis, SK_CLAIM, on_claimed, s, 2, 3, args, NULL) == 0)
        s->claiming = 1;
    else
        arm(s, x->cfg.pg_batch_ms);
}

/* ---- the table ------------------------------------------------------------------- */

static void on_checked(pg_conn *pg, const PGresult *res, void *ud)
{
    (void)pg;
    sink *s = ud;
    if (s->closed || res == NULL)
        return;
    char problem[sizeof s->schema_problem] = "";
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        pg_result_error(res, problem, sizeof problem);
    else if (PQntuples(res) != 1 || PQnfields(res) != 1)
        snprintf(problem, sizeof problem, "unexpected answer to the table check");
    else if (!PQgetisnull(res, 0, 0))
        snprintf(problem, sizeof problem, "%s", PQgetvalue(res, 0, 0));
    if (problem[0]) {
        if (strcmp(problem, s->schema_problem) != 0)
            log_error("postgres table not usable; results wait in the outbox (run: adsync-enqueue db migrate)",
                      LOG_STR("problem", problem));
        snprintf(s->schema_problem, sizeof s->schema_problem, "%s", problem);
        arm(s, SCHEMA_RECHECK_MS);
        return;
    }
    if (s->schema_problem[0])
        log_info("postgres table usable");
    s->schema_problem[0] = '\0';
    s->schema_ok = 1;
    step(s);
}

/* ---- the one place that decides what happens next ------------------------------- */

static void step(sink *s)
{
    if (s->closed || s->claiming || s->acking || uv_is_active((uv_handle_t *)&s->timer))
        return;   /* an answer is due, or waiting: next claim, re-check or retry */
    if (s->b && s->b->ntodo == 0) {
        ack(s);   /* committed: needs Redis only */
        return;
    }
    if (pg_is_busy(s->pg) || !pg_is_connected(s->pg))
        return;
    if (!s->schema_ok) {
        if (pg_query(s->pg, sql_check, 0, NULL, NULL, on_checked, s) < 0)
            arm(s, RETRY_MIN_MS);
        return;
    }
    if (s->b)
        insert_next(s);
    else if (!s->stopping)
        claim(s);
}

static void on_redis_state(rds *r, int connected, const char *reason, void *ud)
{
    sink *s = ud;
    if (!connected) {
        log_warn("redis connection lost", LOG_STR("connection", "sink"), LOG_STR("reason", reason));
        return;
    }
    log_info("redis connected", LOG_STR("connection", "sink"), LOG_INT("reconnects", (long long)rds_reconnects(r)));
    step(s);
}

static void on_pg_state(pg_conn *pg, int connected, const char *reason, void *ud)
{
    sink *s = ud;
    if (!connected) {
        log_warn("postgres unavailable; results wait in the outbox", LOG_STR("reason", reason));
        return;
    }
    s->x->n.pg_reconnects = pg_reconnects(pg);
    log_info("postgres connected", LOG_INT("reconnects", (long long)pg_reconnects(pg)));
    s->schema_ok = 0;
    s->prepared = 0;
    uv_timer_stop(&s->timer);
    step(s);
}

/* ---- life ---------------------------------------------------------------------- */

static void on_timer_closed(uv_handle_t *h)
{
    sink *s = h->data;
    free(s->types);
    free(s);
}

static int sink_keys(sink *s, const wctx *x)
{
    keys_global_key(&x->keys, KEYS_OUTBOX, s->outbox, sizeof s->outbox);
    keys_global_key(&x->keys, KEYS_DEAD, s->dead, sizeof s->dead);
    keys_global_key(&x->keys, KEYS_STATS, s->stats, sizeof s->stats);
    snprintf(s->max_rows, sizeof s->max_rows, "%u", x->cfg.pg_batch_rows);
    return keys_outbox_claim_key(&x->keys, x->id, s->claim, sizeof s->claim) < 0 ? -1 : 0;
}

static Oid *row_types(unsigned rows)
{
    Oid *types = malloc((size_t)rows * PGROW_NCOLS * sizeof *types);
    for (size_t r = 0; types && r < rows; r++)
        memcpy(types + r * PGROW_NCOLS, pgrow_types, sizeof pgrow_types);
    return types;
}

/* Opens the PostgreSQL and the Redis connection. 0 or -1. */
static int open_connections(sink *s)
{
    wctx *x = s->x;
    pg_options popt = {
        .conninfo = x->cfg.pg_url, .query_timeout_ms = QUERY_TIMEOUT_MS, .on_state = on_pg_state, .ud = s,
    };
    rds_options ropt = {
        .url = &x->cfg.redis, .name = "sink", .command_timeout_ms = 10000, .scripts = sink_scripts,
        .nscripts = SK_SCRIPTS, .on_state = on_redis_state, .ud = s,
    };
    s->pg = pg_new(x->loop, &popt);
    s->redis = s->pg ? rds_new(x->loop, &ropt) : NULL;
    if (s->redis)
        return 0;
    pg_close(s->pg);   /* frees itself on a later loop turn */
    return -1;
}

sink *sink_start(wctx *x)
{
    char password[256];
    if (pg_conninfo_password(x->cfg.pg_url, password, sizeof password) == 0)
        log_secret_add(password);
    sink *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->x = x;
    s->retry_ms = RETRY_MIN_MS;
    if (sink_keys(s, x) < 0 || (s->types = row_types(x->cfg.pg_batch_rows)) == NULL || open_connections(s) < 0) {
        free(s->types);
        free(s);
        return NULL;
    }
    uv_timer_init(x->loop, &s->timer);
    s->timer.data = s;
    log_info("postgres sink on", LOG_INT("batch_rows", x->cfg.pg_batch_rows),
             LOG_INT("batch_ms", (long long)x->cfg.pg_batch_ms));
    return s;
}

void sink_stop(sink *s)
{
    if (s)
        s->stopping = 1;
}

int sink_busy(const sink *s)
{
    return s && !s->closed && (s->claiming || s->acking || (s->b && pg_is_connected(s->pg)));
}

void sink_touch(sink *s)
{
    if (s)
        s->idle_clean = 0;   /* idle again only after a claim finds the outbox empty */
}

int sink_idle(const sink *s)
{
    if (s == NULL || s->closed || !pg_is_connected(s->pg) || !s->schema_ok)
        return 1;   /* nothing to wait for: what is left stays in the outbox */
    return !s->b && !s->claiming && !s->acking && s->idle_clean;
}

void sink_free(sink *s)
{
    if (s == NULL)
        return;
    s->closed = 1;   /* callbacks still due (pg, Redis) see it and return */
    pg_close(s->pg);
    rds_close(s->redis);
    batch_free(s->b);
    s->b = NULL;
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}
