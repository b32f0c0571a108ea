/* exporter: what adsync-worker shows on ADSYNC_METRICS_ADDR (DESIGN.md §9).
 *
 *   /metrics  Prometheus text: the worker's counters since start (ctx n),
 *             its gauges, and queue depths sampled from Redis every
 *             SAMPLE_MS with plain non-blocking commands
 *   /healthz  200 "ok" while the loop runs and Redis is connected, else 503
 *             with the reason
 *
 * Labels only ever take values from the fixed tables below: never a client,
 * campaign or job id, never a secret. Nothing here blocks: a scrape renders
 * from memory, and a depth sample that is still out when the next one is due
 * is simply not repeated. Owns the HTTP endpoint (common/metrics.c) and the
 * sample timer; reads the worker through its view (exporter.h). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exporter.h"

#include "clock.h"
#include "metrics.h"

#define SAMPLE_MS 2000
#define FIRST_SAMPLE_MS 200

/* Queue depths, in the order the sample sends its commands. */
enum { Q_JOBS, Q_RETRY, Q_RETRY_DUE, Q_DEAD, Q_OUTBOX, Q_WORKERS, Q_COUNT };

typedef struct depth_slot {
    wm_endpoint *m;
    int index;
} depth_slot;

struct wm_endpoint {
    wm_view_fn *view;
    const void *source;
    mx_server *srv;
    uv_timer_t timer;
    depth_slot slots[Q_COUNT];
    unsigned outstanding;      /* replies of the current sample still to come */
    int sample_ok;
    uint64_t pending[Q_COUNT];
    uint64_t depth[Q_COUNT];   /* last complete sample */
    uint64_t sampled_at;       /* wall ms of that sample; 0: none yet */
};

static const char *const class_names[WK_HTTP_CLASSES] = {
    "1xx", "2xx", "3xx", "4xx", "5xx", [WK_HTTP_TIMEOUT] = "timeout", [WK_HTTP_ERROR] = "error",
};
static const char *const job_type_names[WK_JOB_TYPES] = {
    [JOB_CLIENT] = "client", [JOB_CAMPAIGN] = "campaign", [WK_JOB_UNPARSED] = "unparseable",
};
static const char *const job_outcome_names[WK_JOB_OUTCOMES] = {
    [WK_JOB_DONE] = "done", [WK_JOB_RETRIED] = "retried", [WK_JOB_DEAD] = "dead",
};
static const char *const queue_names[Q_WORKERS] = {
    [Q_JOBS] = "jobs", [Q_RETRY] = "retry", [Q_RETRY_DUE] = "retry_due",
    [Q_DEAD] = "dead", [Q_OUTBOX] = "outbox",
};

/* Counters without labels, straight from wk_counters. */
static const struct {
    const char *name, *help;
    size_t off;
} plain_counters[] = {
#define C(name, field, help) { name, help, offsetof(wk_counters, field) }
    C("adsync_http_rate_limited_total", http_429,
      "HTTP 429 answers from the platform (also counted in adsync_http_requests_total as 4xx)."),
    C("adsync_rate_limit_waits_total", rate_waits,
      "Requests delayed by the shared per-client rate limiter."),
    C("adsync_token_refreshes_total", token_refreshes,
      "Access tokens dropped after a 401 and fetched again."),
    C("adsync_redis_reconnects_total", redis_reconnects,
      "Reconnects of the main Redis connection after it was lost."),
    C("adsync_jobs_recovered_total", jobs_recovered,
      "Jobs taken back from dead workers' processing lists by this worker's reaper."),
    C("adsync_jobs_popped_total", jobs_popped, "Jobs popped from the jobs list."),
    C("adsync_jobs_handed_back_total", jobs_handed_back,
      "Jobs given back to the jobs list while running, after a step that could not be carried out (out of memory)."),
    C("adsync_campaigns_invalid_total", campaigns_invalid,
      "Listed campaigns rejected before any request (bad id); also counted as dead."),
    C("adsync_pg_rows_written_total", pg_rows_written, "Rows the PostgreSQL sink committed."),
    C("adsync_pg_rows_dead_total", pg_rows_dead, "Outbox rows the PostgreSQL sink could not store."),
    C("adsync_pg_batches_total", pg_batches, "Batches the PostgreSQL sink committed."),
    C("adsync_pg_reconnects_total", pg_reconnects, "Reconnects of the PostgreSQL sink."),
#undef C
};

static uint64_t counter_at(const wk_counters *n, size_t off)
{
    uint64_t v;
    memcpy(&v, (const char *)n + off, sizeof v);
    return v;
}

/* ---- /metrics ------------------------------------------------------------ */

static void render_http(mx_buf *b, const wk_counters *n)
{
    mx_family(b, "adsync_http_requests_total", MX_COUNTER,
              "Finished platform API requests by endpoint and status class (timeout/error: no status).");
    for (int e = 0; e < API_EP_COUNT; e++) {
        for (int k = 0; k < WK_HTTP_CLASSES; k++) {
            mx_label l[] = { { "endpoint", api_endpoints[e].name }, { "status_class", class_names[k] } };
            mx_sample_u64(b, "adsync_http_requests_total", l, 2, n->http_by[e][k]);
        }
    }
    double bounds[WK_DURATION_BOUNDS];
    for (int i = 0; i < WK_DURATION_BOUNDS; i++)
        bounds[i] = (double)wk_duration_bounds_ms[i] / 1000.0;
    mx_family(b, "adsync_http_request_duration_seconds", MX_HISTOGRAM,
              "Platform API request duration, queueing in libcurl included.");
    for (int e = 0; e < API_EP_COUNT; e++) {
        mx_label l[] = { { "endpoint", api_endpoints[e].name } };
        mx_histogram(b, "adsync_http_request_duration_seconds", l, 1, bounds, WK_DURATION_BOUNDS,
                     n->http_ms_buckets[e], (double)n->http_ms_sum[e] / 1000.0);
    }
}

static void render_outcomes(mx_buf *b, const wk_counters *n)
{
    const struct { const char *outcome; uint64_t v; } campaigns[] = {
        { "synced", n->campaigns_synced }, { "retried", n->campaigns_retried }, { "dead", n->campaigns_dead },
    };
    mx_family(b, "adsync_campaigns_total", MX_COUNTER,
              "Campaign sync outcomes recorded by this worker (retried: put on the retry set).");
    for (size_t i = 0; i < sizeof campaigns / sizeof campaigns[0]; i++) {
        mx_label l[] = { { "outcome", campaigns[i].outcome } };
        mx_sample_u64(b, "adsync_campaigns_total", l, 1, campaigns[i].v);
    }
    mx_family(b, "adsync_jobs_total", MX_COUNTER,
              "Jobs this worker ended, by type and outcome (retried: back on the retry set).");
    for (int t = 0; t < WK_JOB_TYPES; t++) {
        for (int o = 0; o < WK_JOB_OUTCOMES; o++) {
            mx_label l[] = { { "type", job_type_names[t] }, { "outcome", job_outcome_names[o] } };
            mx_sample_u64(b, "adsync_jobs_total", l, 2, n->jobs_by[t][o]);
        }
    }
    for (size_t i = 0; i < sizeof plain_counters / sizeof plain_counters[0]; i++) {
        mx_family(b, plain_counters[i].name, MX_COUNTER, plain_counters[i].help);
        mx_sample_u64(b, plain_counters[i].name, NULL, 0, counter_at(n, plain_counters[i].off));
    }
}

static void gauge(mx_buf *b, const char *name, const char *help, double v)
{
    mx_family(b, name, MX_GAUGE, help);
    mx_sample(b, name, NULL, 0, v);
}

static int connected(rds *r)
{
    return r != NULL && rds_is_connected(r);
}

static wm_view look(const wm_endpoint *m)
{
    wm_view v;
    m->view(m->source, &v);
    return v;
}

static void render_gauges(mx_buf *b, const wm_view *v)
{
    const wctx *x = v->x;
    gauge(b, "adsync_http_requests_in_flight", "Platform requests (and rate checks) in flight.", v->inflight);
    gauge(b, "adsync_jobs_held", "Jobs this worker holds in its processing list.", (double)x->jobs_held);
    gauge(b, "adsync_store_pending_writes", "Result writes not yet confirmed by Redis.",
          x->store ? (double)st_backlog(x->store) : 0);
    gauge(b, "adsync_worker_stopping", "1 while the worker drains for shutdown.", ctx_stopping(x) ? 1 : 0);
    gauge(b, "adsync_worker_start_time_seconds", "When this worker started (Unix time).",
          (double)v->started_at / 1000.0);
    mx_family(b, "adsync_redis_connected", MX_GAUGE, "1 while the Redis connection is up.");
    mx_label main_l[] = { { "connection", "main" } }, pop_l[] = { { "connection", "pop" } };
    mx_sample(b, "adsync_redis_connected", main_l, 1, connected(x->redis));
    mx_sample(b, "adsync_redis_connected", pop_l, 1, v->pop_connected);
}

/* Depths only once a sample has come back: an unknown value is left out. */
static void render_depths(mx_buf *b, const wm_endpoint *m)
{
    if (m->sampled_at == 0)
        return;
    mx_family(b, "adsync_queue_length", MX_GAUGE,
              "Length of a shared Redis queue (retry_due: retries already due), sampled.");
    for (int q = 0; q < Q_WORKERS; q++) {
        mx_label l[] = { { "queue", queue_names[q] } };
        mx_sample_u64(b, "adsync_queue_length", l, 1, m->depth[q]);
    }
    gauge(b, "adsync_workers_registered", "Workers in the workers set (live or not yet reaped), sampled.",
          (double)m->depth[Q_WORKERS]);
    gauge(b, "adsync_queue_sample_timestamp_seconds", "When the queue lengths were sampled (Unix time).",
          (double)m->sampled_at / 1000.0);
}

static void render_metrics(wm_endpoint *m, mx_reply *reply)
{
    reply->status = 200;
    reply->content_type = MX_CONTENT_TYPE;
    wm_view v = look(m);
    render_http(&reply->body, &v.x->n);
    render_outcomes(&reply->body, &v.x->n);
    render_gauges(&reply->body, &v);
    render_depths(&reply->body, m);
}

/* ---- /healthz ------------------------------------------------------------ */

/* NULL when healthy, else why not. */
static const char *unhealthy(const wm_view *v)
{
    const wctx *x = v->x;
    if (x->phase == WK_CLOSED)
        return "stopped";
    if (!connected(x->redis))
        return "redis: main connection down";
    if (!ctx_stopping(x) && !v->pop_connected)
        return "redis: pop connection down";
    return NULL;
}

static void render_health(const wm_endpoint *m, mx_reply *reply)
{
    wm_view v = look(m);
    const char *why = unhealthy(&v);
    reply->status = why ? 503 : 200;
    mx_buf_printf(&reply->body, "%s\n", why ? why : "ok");
}

static void on_request(void *ud, const char *path, mx_reply *reply)
{
    wm_endpoint *m = ud;
    if (strcmp(path, "/metrics") == 0)
        render_metrics(m, reply);
    else if (strcmp(path, "/healthz") == 0)
        render_health(m, reply);
    else if (strcmp(path, "/") == 0) {
        reply->status = 200;
        mx_buf_puts(&reply->body, "adsync-worker: /metrics /healthz\n");
    }
}

/* ---- queue depth samples --------------------------------------------------- */

static void on_depth(rds *r, redisReply *reply, void *privdata)
{
    (void)r;
    depth_slot *slot = privdata;
    wm_endpoint *m = slot->m;
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer >= 0)
        m->pending[slot->index] = (uint64_t)reply->integer;
    else
        m->sample_ok = 0;
    if (--m->outstanding > 0 || !m->sample_ok)
        return;
    memcpy(m->depth, m->pending, sizeof m->depth);
    m->sampled_at = clock_wall_ms();
}

static int send_depth(wm_endpoint *m, int q, const char *fmt, const char *key, const char *arg)
{
    if (rds_commandf(look(m).x->redis, on_depth, &m->slots[q], fmt, key, arg) < 0)
        return -1;
    m->outstanding++;
    return 0;
}

static void sample(wm_endpoint *m)
{
    const wctx *x = look(m).x;
    if (m->outstanding > 0 || x->phase == WK_CLOSED || !connected(x->redis))
        return;
    char key[Q_COUNT][KEYS_MAX_LEN], now[24];
    keys_global_key(&x->keys, KEYS_JOBS, key[Q_JOBS], KEYS_MAX_LEN);
    keys_global_key(&x->keys, KEYS_RETRY, key[Q_RETRY], KEYS_MAX_LEN);
    keys_global_key(&x->keys, KEYS_RETRY, key[Q_RETRY_DUE], KEYS_MAX_LEN);
    keys_global_key(&x->keys, KEYS_DEAD, key[Q_DEAD], KEYS_MAX_LEN);
    keys_global_key(&x->keys, KEYS_OUTBOX, key[Q_OUTBOX], KEYS_MAX_LEN);
    keys_global_key(&x->keys, KEYS_WORKERS, key[Q_WORKERS], KEYS_MAX_LEN);
    snprintf(now, sizeof now, "%llu", (unsigned long long)clock_wall_ms());
    static const char *const fmt[Q_COUNT] = {
        [Q_JOBS] = "LLEN %s", [Q_RETRY] = "ZCARD %s", [Q_RETRY_DUE] = "ZCOUNT %s -inf %s",
        [Q_DEAD] = "LLEN %s", [Q_OUTBOX] = "LLEN %s", [Q_WORKERS] = "SCARD %s",
    };
    m->sample_ok = 1;
    for (int q = 0; q < Q_COUNT; q++) {
        if (send_depth(m, q, fmt[q], key[q], now) < 0) {
            m->sample_ok = 0;   /* the replies already asked for still come back */
            return;
        }
    }
}

static void on_sample_timer(uv_timer_t *t)
{
    sample(t->data);
}

/* ---- life ------------------------------------------------------------------- */

wm_endpoint *wm_open(uv_loop_t *loop, wm_view_fn *view, const void *source, const cfg_hostport *addr, char *err,
                     size_t errlen)
{
    wm_endpoint *m = calloc(1, sizeof *m);
    if (m == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->view = view;
    m->source = source;
    for (int q = 0; q < Q_COUNT; q++)
        m->slots[q] = (depth_slot){ m, q };
    m->srv = mx_listen(loop, addr, on_request, m, err, errlen);
    if (m->srv == NULL) {
        free(m);
        return NULL;
    }
    mx_unref(m->srv);
    uv_timer_init(loop, &m->timer);
    m->timer.data = m;
    uv_timer_start(&m->timer, on_sample_timer, FIRST_SAMPLE_MS, SAMPLE_MS);
    uv_unref((uv_handle_t *)&m->timer);
    return m;
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void wm_close(wm_endpoint *m)
{
    if (m == NULL)
        return;
    mx_close(m->srv);
    uv_close((uv_handle_t *)&m->timer, on_timer_closed);
}
