/* sink: the worker's outbox sink (DESIGN.md §10): drains <prefix>:outbox
 * through a writer (sinkwriter.h; PostgreSQL: sink_pg.c), on the worker's
 * loop, without ever holding up a sync.
 *
 * One batch at a time: claim up to ADSYNC_PG_BATCH_ROWS entries into this
 * worker's claim list (outbox_claim.lua), let the writer write them, and
 * only once it has written or refused every one drop the claim list and
 * bury the refused ones (outbox_ack.lua; sent again after a Redis outage
 * until it is answered, it is idempotent). A full batch is followed by the
 * next claim at once; otherwise the sink looks again after
 * ADSYNC_PG_BATCH_MS. So delivery is at least once; the writer makes it one
 * row per campaign. Claims and acknowledgements use a Redis connection of
 * their own, so they never queue behind the progress writes of a busy
 * worker. While the writer is not usable nothing is claimed: results wait
 * in the outbox (its depth is a metric: worker/exporter.c samples it).
 *
 * worker.c starts the sink after registration and stops it in the second
 * stage of the shutdown (an unacknowledged claim list is pushed back by
 * reap.lua). */
#include "sink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "scripts.h"
#include "sinkwriter.h"

#define RETRY_MIN_MS 200
#define RETRY_MAX_MS 5000

/* The scripts of the sink's own Redis connection. */
enum { SK_CLAIM, SK_ACK, SK_SCRIPTS };
static const char *const sink_scripts[SK_SCRIPTS] = { [SK_CLAIM] = script_outbox_claim,
                                                      [SK_ACK] = script_outbox_ack };

struct sink {
    wctx *x;
    const sink_writer_ops *ops;
    void *writer;
    rds *redis;                  /* claims and acknowledgements */
    uv_timer_t timer;            /* next claim, or the writer's retry */
    char outbox[KEYS_MAX_LEN], claim[KEYS_MAX_LEN], dead[KEYS_MAX_LEN], stats[KEYS_MAX_LEN];
    char max_rows[16];
    sink_batch *b;
    int claiming, acking, stopping, closed;
    int claim_clean;             /* the claim in flight was sent with all our writes landed */
    int idle_clean;              /* ...and found the outbox empty */
    long long outbox_left;       /* outbox length after the last claim (for the debug log) */
};

static void step(sink *s);

/* ---- batches ---------------------------------------------------------------- */

static void batch_free(const sink *s, sink_batch *b)
{
    if (b == NULL)
        return;
    s->ops->release(b);
    for (size_t i = 0; i < b->n && b->entries; i++)
        free(b->entries[i]);
    for (size_t i = 0; i < b->ndead; i++)
        free(b->dead[i]);
    free(b->entries), free(b->lens), free(b->dead);
    free(b);
}

/* Copies the claimed entries (the reply is borrowed) and hands them to the
 * writer to read. */
static sink_batch *batch_new(const sink *s, redisReply **items, size_t n, int full)
{
    sink_batch *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->n = n;   /* every array is zeroed: freeing a half-built batch is safe */
    b->full = full;
    b->entries = calloc(n, sizeof *b->entries);
    b->lens = calloc(n, sizeof *b->lens);
    b->dead = calloc(n, sizeof *b->dead);
    int ok = b->entries && b->lens && b->dead;
    for (size_t i = 0; ok && i < n; i++) {
        int str = items[i]->type == REDIS_REPLY_STRING;
        size_t len = str ? items[i]->len : 0;
        ok = (b->entries[i] = malloc(len + 1)) != NULL;
        if (ok) {
            memcpy(b->entries[i], str ? items[i]->str : "", len);
            b->entries[i][len] = '\0';
            b->lens[i] = len;
        }
    }
    if (!ok || s->ops->take(s->writer, b) < 0) {
        batch_free(s, b);
        return NULL;
    }
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

/* ---- the writer's host ------------------------------------------------------------ */

static void host_step(void *ud)
{
    step(ud);
}

static void host_wake(void *ud)
{
    sink *s = ud;
    uv_timer_stop(&s->timer);
    step(s);
}

static void host_retry_in(void *ud, uint64_t ms)
{
    arm(ud, ms);
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
    sink_batch *b = s->b;
    wctx *x = s->x;
    x->n.pg_rows_written += b->written;
    x->n.pg_rows_dead += b->ndead;
    x->n.pg_batches++;
    log_debug("sink batch committed", LOG_STR("sink", s->ops->name), LOG_INT("rows", (long long)b->written),
              LOG_INT("dead", (long long)b->ndead), LOG_INT("outbox_left", s->outbox_left));
    int full = b->full;
    batch_free(s, b);
    s->b = NULL;
    if (full)
        step(s);
    else
        arm(s, x->cfg.pg_batch_ms);
}

/* After the writer wrote or refused every entry: the claim list goes,
 * refused entries are buried. */
static void ack(sink *s)
{
    sink_batch *b = s->b;
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
    s->b = batch_new(s, reply->element + 1, n, n >= x->cfg.pg_batch_rows);
    if (s->b == NULL) {
        log_error("sink: out of memory reading a batch; retrying", LOG_STR("sink", s->ops->name));
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

/* ---- the one place that decides what happens next ------------------------------- */

static void step(sink *s)
{
    if (s->closed || s->claiming || s->acking || uv_is_active((uv_handle_t *)&s->timer))
        return;   /* an answer is due, or waiting: next claim or a retry */
    if (s->b && s->ops->finished(s->b)) {
        ack(s);   /* written: needs Redis only */
        return;
    }
    if (!s->ops->prepare(s->writer))
        return;
    if (s->b)
        s->ops->write(s->writer, s->b);
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

/* ---- life ---------------------------------------------------------------------- */

static void on_timer_closed(uv_handle_t *h)
{
    sink *s = h->data;
    s->ops->destroy(s->writer);
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

sink *sink_start(wctx *x, const sink_writer_ops *writer)
{
    sink *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->x = x;
    s->ops = writer;
    sink_host host = { host_step, host_wake, host_retry_in, s };
    rds_options ropt = {
        .url = &x->cfg.redis, .name = "sink", .command_timeout_ms = 10000, .scripts = sink_scripts,
        .nscripts = SK_SCRIPTS, .on_state = on_redis_state, .ud = s,
    };
    if (sink_keys(s, x) < 0 || (s->writer = s->ops->open(x, &host)) == NULL) {
        free(s);
        return NULL;
    }
    if ((s->redis = rds_new(x->loop, &ropt)) == NULL) {
        s->ops->close(s->writer);
        s->ops->destroy(s->writer);   /* nothing of it can be due yet */
        free(s);
        return NULL;
    }
    uv_timer_init(x->loop, &s->timer);
    s->timer.data = s;
    log_info("sink on", LOG_STR("sink", s->ops->name), LOG_INT("batch_rows", x->cfg.pg_batch_rows),
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
    return s && !s->closed && (s->claiming || s->acking || (s->b && s->ops->state(s->writer) != SW_DOWN));
}

void sink_touch(sink *s)
{
    if (s)
        s->idle_clean = 0;   /* idle again only after a claim finds the outbox empty */
}

int sink_idle(const sink *s)
{
    if (s == NULL || s->closed || s->ops->state(s->writer) != SW_USABLE)
        return 1;   /* nothing to wait for: what is left stays in the outbox */
    return !s->b && !s->claiming && !s->acking && s->idle_clean;
}

void sink_free(sink *s)
{
    if (s == NULL)
        return;
    s->closed = 1;   /* callbacks still due (the writer's, Redis) see it and return */
    s->ops->close(s->writer);
    rds_close(s->redis);
    batch_free(s, s->b);
    s->b = NULL;
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}
