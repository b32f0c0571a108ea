/* ctx: what every part of one worker process shares, and nothing else.
 *
 * The process module (worker.c) fills one wctx at start and owns it; the
 * parts below it (client, sched, flow, sink) get a pointer and read the
 * configuration, the connections and the keys from it, count into its
 * counters and call ctx_kick when work ended, so that the process can pop
 * more or move its shutdown on. None of them sees the process itself.
 *
 *   worker.c   process life             (worker.h: main's interface)
 *   flow.c     what a job does          (flow.h)
 *   scheduler.c API calls under limits  (scheduler.h)
 *   client.c   credentials and tokens   (client.h)
 *   sink.c     the outbox sink          (sink.h; writers: sinkwriter.h, sink_pg.c)
 *   store.c, policy.c, progress.c: leaves that need no ctx. */
#ifndef ADSYNC_WORKER_CTX_H
#define ADSYNC_WORKER_CTX_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "api.h"
#include "cfg.h"
#include "http.h"
#include "job.h"
#include "keys.h"
#include "policy.h"
#include "rds.h"
#include "seal.h"
#include "store.h"

/* Indices into the script table given to rds (worker.c). */
enum {
    SCRIPT_PROGRESS,
    SCRIPT_RATELIMIT,
    SCRIPT_PROMOTE,
    SCRIPT_REAP,
    SCRIPT_BURY,
    SCRIPT_CAD,
    SCRIPT_UNPOP,
    SCRIPT_SYNCED,
    SCRIPT_COUNT
};

/* The life of the process, in order; it only ever moves forward.
 *
 *   STARTING   connected or connecting; shared key types checked, then
 *              registered (our own leftovers taken back first)
 *   RUNNING    popping and working
 *   DRAINING   a stop was asked (signal, --drain found no work, a fatal
 *              key type): nothing new starts, requests in flight finish
 *              within the grace
 *   STOPPING   queued calls cancelled: recorded results land, then what is
 *              still held is handed back to the queue
 *   CLOSING    deregistering (reap.lua "graceful")
 *   CLOSED     handles closing; the loop ends */
typedef enum { WK_STARTING, WK_RUNNING, WK_DRAINING, WK_STOPPING, WK_CLOSING, WK_CLOSED } wk_phase;

/* Metric dimensions (worker/exporter.c names them; endpoints are api.h's). */
/* HTTP outcome: status class 1xx..5xx (index status/100 - 1), or no status. */
enum { WK_HTTP_TIMEOUT = 5, WK_HTTP_ERROR, WK_HTTP_CLASSES };
/* Job type: job_type, or WK_JOB_UNPARSED; outcome of a held job. */
enum { WK_JOB_UNPARSED = JOB_CAMPAIGN + 1, WK_JOB_TYPES };
typedef enum { WK_JOB_DONE, WK_JOB_RETRIED, WK_JOB_DEAD, WK_JOB_OUTCOMES } wk_job_outcome;
#define WK_DURATION_BOUNDS 11
extern const uint64_t wk_duration_bounds_ms[WK_DURATION_BOUNDS];

/* Counters flushed to <prefix>:stats and exported as metrics. */
typedef struct wk_counters {
    uint64_t http_requests, http_5xx, http_429, http_timeouts;   /* also in <prefix>:stats */
    uint64_t auth_requests, rate_waits, token_refreshes;
    uint64_t campaigns_synced, campaigns_retried, campaigns_dead, campaigns_invalid;
    uint64_t jobs_done, jobs_retried, jobs_dead, jobs_recovered, jobs_popped;
    uint64_t jobs_handed_back;   /* after a step that could not be carried out (flow.c) */
    uint64_t redis_reconnects;
    uint64_t pg_rows_written, pg_rows_dead, pg_batches, pg_reconnects;   /* sink.c */
    uint64_t http_by[API_EP_COUNT][WK_HTTP_CLASSES];
    uint64_t http_ms_sum[API_EP_COUNT], http_ms_buckets[API_EP_COUNT][WK_DURATION_BOUNDS + 1];
    uint64_t jobs_by[WK_JOB_TYPES][WK_JOB_OUTCOMES];   /* [type][outcome] */
} wk_counters;

typedef void wctx_kick_fn(void *ud);

typedef struct wctx {
    uv_loop_t *loop;
    cfg cfg;
    keys keys;
    char id[KEYS_TOKEN_MAX + 1];
    wk_phase phase;

    rds *redis;                  /* every command but the blocking pop */
    http_client *http;           /* NULL once shutdown aborted what was in flight */
    store *store;
    const seal_keyring *seal;    /* opens credentials and tokens (an empty ring: no sealing) */
    uint64_t page_bytes;         /* listed campaigns' text held (flow.c), the HTTP budget's count */
    size_t jobs_held;            /* jobs in our processing list that flow.c holds */

    wk_counters n;               /* totals since start */
    pol_limits policy;           /* attempts and backoff, from cfg */
    char processing_key[KEYS_MAX_LEN];
    char retention[24], dead_max[16];   /* cfg.retention_ms, cfg.dead_max as script arguments */
    char global_keys[KEYS_GLOBAL_COUNT][KEYS_MAX_LEN];

    wctx_kick_fn *kick;          /* work ended somewhere: the process may move on */
    void *kick_ud;
} wctx;

/* Fills what follows from the configuration (keys, policy, script
 * arguments) for the worker called id; connections are the caller's. */
void ctx_init(wctx *x, uv_loop_t *loop, const cfg *c, const seal_keyring *seal, const char *id);

/* The name of a key every job shares (<prefix>:jobs, ...). */
static inline const char *ctx_key(const wctx *x, keys_global k)
{
    return x->global_keys[k];
}

/* A stop was asked: nothing new may start. */
static inline int ctx_stopping(const wctx *x)
{
    return x->phase >= WK_DRAINING;
}

static inline void ctx_kick(wctx *x)
{
    if (x->kick)
        x->kick(x->kick_ud);
}

void ctx_count_http(wctx *x, api_endpoint ep, const http_result *res);

#endif
