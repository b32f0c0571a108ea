/* worker.h: the pieces of adsync-worker and how they share state.
 *
 * One process is one libuv loop (DESIGN.md §5, §6):
 *
 *   worker.c  process life: Redis connections, popping jobs, heartbeat,
 *             reaper, retry promotion, --drain, graceful shutdown
 *   flow.c    what a job does: list pages, sync campaigns, record outcomes
 *   sched.c   API calls: per-client queues served round-robin under the
 *             worker, client and shared rate limits; 401 and 429 handling
 *   client.c  per-client state: credentials, shared token, headers
 *   store.c   ordered, replayable Redis script writes that survive outages
 *   sink.c    the optional PostgreSQL sink: outbox -> table campaigns
 *
 * These files are one program, so they share the structs below; nothing
 * outside worker/ sees them. */
#ifndef ADSYNC_WORKER_H
#define ADSYNC_WORKER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "api.h"
#include "cfg.h"
#include "http.h"
#include "job.h"
#include "keys.h"
#include "policy.h"
#include "ratepad.h"
#include "rds.h"
#include "seal.h"
#include "store.h"

typedef struct worker worker;
typedef struct client client;
typedef struct op op;
typedef struct held held;
typedef struct sink sink;

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

/* Metric dimensions (worker/metrics.c names them). */
typedef enum { WK_EP_AUTH, WK_EP_LIST, WK_EP_SYNC, WK_EP_COUNT } wk_endpoint;
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
    uint64_t http_by[WK_EP_COUNT][WK_HTTP_CLASSES];
    uint64_t http_ms_sum[WK_EP_COUNT], http_ms_buckets[WK_EP_COUNT][WK_DURATION_BOUNDS + 1];
    uint64_t jobs_by[WK_JOB_TYPES][WK_JOB_OUTCOMES];   /* [type][outcome] */
} wk_counters;

struct worker {
    uv_loop_t *loop;
    cfg cfg;
    keys keys;
    char id[KEYS_TOKEN_MAX + 1];
    char host[128];
    int drain;
    int registered;          /* own leftovers taken back: popping may start */
    uint64_t started_at;

    rds *redis;              /* every command but the blocking pop */
    rds *pop;                /* BLMOVE only */
    http_client *http;
    const seal_keyring *seal; /* borrowed from main: opens credentials and tokens */
    store *store;
    sink *sink;              /* NULL unless ADSYNC_PG_URL is set */

    client *clients;         /* registry: clients some held job uses */
    held *jobs;              /* jobs held (in our processing list) */
    uint64_t page_bytes;     /* flow.c: listed campaigns' text held (ADSYNC_BODY_BUDGET_BYTES) */
    int lists_waiting;       /* flow.c: a list waits for page_bytes to fall under the budget */
    unsigned lists_out;      /* flow.c: list requests submitted, not yet answered */
    uint64_t page_est;       /* flow.c: what a page's body is expected to take (recent pages) */
    size_t njobs;
    size_t starting;         /* held jobs that have not asked for an HTTP slot yet */
    unsigned pops_pending;
    int orphan_check;        /* new pop connection: 1 = check our list before popping, 2 = asked */
    client *ring;            /* sched.c: clients with queued work, served round-robin */
    unsigned inflight;       /* sched.c: HTTP requests + rate checks in flight */
    int pumping, pump_again;
    rl_pad rate_pad;         /* sched.c: the limiter's window padding */
    double held_rate;        /* sched.c: requests per ms the held rate-limited clients may make */
    unsigned held_unlimited; /* sched.c: held clients without a rate limit */
    double latency_ms;       /* sched.c: moving average of API request durations */

    uv_timer_t heartbeat_timer, reaper_timer, promote_timer, housekeeping_timer, grace_timer;
    uv_timer_t batch_timer;  /* flow.c: sends the batches of synced outcomes */
    held *dirty;             /* flow.c: held jobs with synced outcomes not yet sent */
    struct batch_call *calls;    /* flow.c: synced.lua calls sent, not yet confirmed (owned) */
    uv_signal_t sigterm, sigint;
    int stopping;            /* 1: draining in-flight work; 2: handing jobs back */
    int exit_code;
    int promote_failing;     /* promote.lua answered an error; logged once */
    int closed;

    wk_counters n;           /* totals since start */
    wk_counters flushed;     /* part of n already added to <prefix>:stats */
    uint64_t rate_seq;       /* unique suffix for rate-limit log members */
    char processing_key[KEYS_MAX_LEN];
    char heartbeat_key[KEYS_MAX_LEN];
    char retention[24], dead_max[16];   /* cfg.retention_ms, cfg.dead_max as script arguments */
    char global_keys[KEYS_GLOBAL_COUNT][KEYS_MAX_LEN];   /* built once at start: wk_key() */
    pol_limits policy;       /* policy.h: attempts and backoff, from cfg */
};

/* The name of a key every job shares (<prefix>:jobs, ...), built at start. */
static inline const char *wk_key(const worker *w, keys_global k)
{
    return w->global_keys[k];
}

/* ---- worker.c ------------------------------------------------------------ */
/* seal is borrowed and must outlive the worker (an empty ring: no sealing). */
int wk_init(worker *w, uv_loop_t *loop, const cfg *c, const seal_keyring *seal, const char *id, int drain);
void wk_start(worker *w);
/* Called when work finished somewhere, so popping/draining can move on. */
void wk_kick(worker *w);
void wk_count_http(worker *w, wk_endpoint ep, const http_result *res);

/* ---- sink.c: the PostgreSQL sink (DESIGN.md §10) ------------------------ */
/* Starts it (after registration, when cfg.pg_url is set): connects, checks
 * the table, drains the outbox. 0, or -1 when out of memory. */
int sink_start(worker *w);
/* Shutdown: claim no more batches; the one in progress may still finish. */
void sink_stop(worker *w);
/* A batch is on its way and can make progress (PostgreSQL connected). */
int sink_busy(const worker *w);
/* --drain: nothing of ours is left to deliver, or PostgreSQL is unusable
 * (then what is left stays in the outbox for later). */
int sink_idle(const worker *w);
/* A job was popped: its results may reach the outbox, so the sink is not
 * idle until a later claim finds the outbox empty. NULL sink is a no-op. */
void sink_touch(worker *w);
/* Drops the connection; an unacknowledged batch stays in the claim list.
 * NULL sink is a no-op. */
void sink_free(worker *w);

/* ---- client.c ---------------------------------------------------------- */
typedef enum { CL_LOADING, CL_NEED_TOKEN, CL_AUTHING, CL_READY, CL_FAILED } cl_state;

struct client {
    client *next;            /* registry */
    worker *w;
    char id[KEYS_ID_MAX + 1];
    unsigned refs;           /* held jobs using it */
    unsigned pending_io;     /* Redis/HTTP callbacks that still point here */

    char email[321];         /* what client add accepts: 320 bytes */
    int email_too_long;
    char *password;          /* as stored: sealed (opened only to log in), or plain text */
    char base_url[1024];
    unsigned rate_limit, page_size;
    int rate_limit_named;    /* "rate_limit" was in the hash: ignore "rate_limit_per_min" */
    uint64_t rate_window_ms;

    cl_state state;
    int failed_permanent;    /* CL_FAILED: retryable (auth outage) or not (no credentials) */
    char failure[256];
    char token[API_TOKEN_MAX];
    char *token_stored;      /* the token as <prefix>:client:<id>:token holds it */
    uint64_t token_recheck_at;  /* mono ms: re-read the shared token after this */
    http_headers *headers;
    uv_timer_t timer;        /* token wait, rate wait, cooldown */
    int timer_armed;

    /* sched.c */
    op *queue_head, *queue_tail;
    size_t queued;
    unsigned inflight;       /* HTTP in flight + rate checks in flight */
    uint64_t parked_until;   /* mono ms: waiting for the rate window/cooldown */
    client *ring_prev, *ring_next;
    int in_ring;
    double demand_rate;      /* what it adds to held_rate; < 0: counted as unlimited */
    int in_demand;
};

client *cl_acquire(worker *w, const char *id);   /* +1 ref; loads on first use */
void cl_release(client *c);                      /* -1 ref; freed when unused and idle */
/* Makes the client usable: credentials and a token. sched_pump is called
 * when the state changes. */
void cl_prepare(client *c);
/* A 401 came back for a request sent with token: forget it everywhere. */
void cl_token_rejected(client *c, const char *token);
void cl_arm_timer(client *c, uint64_t ms);
void cl_free_all(worker *w);

/* ---- sched.c ----------------------------------------------------------- */
typedef enum { OP_LIST, OP_SYNC } op_kind;

/* The result of an API call as the flow sees it. */
typedef struct op_result {
    api_verdict verdict;     /* API_OK, API_RETRY or API_PERMANENT */
    int aborted;             /* shutdown: no outcome, the job goes back whole */
    const http_result *http; /* NULL when no request was made (client failed) */
    char error[512];         /* set unless API_OK */
    unsigned long retry_after_ms;
} op_result;

typedef void op_done_fn(op *o, const op_result *res);

struct op {
    op *next;
    op_kind kind;
    client *client;
    held *owner;
    op_done_fn *done;
    unsigned page;           /* OP_LIST: page to fetch; OP_SYNC: page it was listed on */
    api_campaign campaign;   /* OP_SYNC: owned */
    int reauthed;            /* already retried once after a 401 */
    uint64_t not_before_ms;  /* mono ms: not started before (a page retried in place) */
    uint64_t rate_asked_ns;  /* when the shared limiter was asked (0: no limit) */
    uint64_t submitted_ns;   /* when the HTTP request was handed to curl */
    char token_used[API_TOKEN_MAX];
};

void sched_submit(worker *w, op *o);   /* queues at the tail */
void sched_pump(worker *w);            /* starts what limits allow */
void sched_client_gone(worker *w, client *c);
/* A client is held, or its rate limit became known: (re)counts what it may
 * ask of the slots. */
void sched_client_counted(worker *w, client *c);
/* Puts a client back in the rotation after its state changed. */
void sched_wake(worker *w, client *c);
/* Shutdown: abort queued ops (their done runs with API_RETRY "shutdown"). */
void sched_cancel_queued(worker *w);
/* HTTP slots that no held job can use right now (0 while any client with
 * work is ready to start): room for more jobs. */
unsigned sched_idle_slots(const worker *w);
/* Slots the held clients keep busy on average: a client without a rate
 * limit up to ADSYNC_CLIENT_CONCURRENCY, a rate-limited one its requests per
 * ms times the measured request duration. */
double sched_expected_busy(const worker *w);
/* The padding added to a client's rate window, from the measured time
 * between a request's count and its departure (see sched.c). */
uint64_t sched_rate_pad_ms(worker *w, uint64_t window_ms);

/* ---- flow.c ------------------------------------------------------------ */
/* A job popped from the queue and held until its outcome is written. */
struct held {
    held *next, *prev;
    worker *w;
    job job;
    char *elem;              /* the element exactly as popped (for LREM) */
    size_t elem_len;
    client *client;

    /* client jobs */
    unsigned next_page;      /* next page to request */
    int list_pending;        /* a list op queued or in flight */
    struct page_ctx *page_write;  /* a listed page whose write is queued (owned: freed on release) */
    int listing_done;
    int list_failed;         /* 1: retry the job later; 2: give up (permanent or attempts spent) */
    unsigned list_streak;    /* page fetches failed in a row, each retried in place */
    char list_error[512];
    unsigned long retry_after_ms;
    unsigned pages_seen;
    struct page_left { unsigned page; size_t left; } *pages;   /* outstanding pages, oldest first */
    size_t npages, pages_cap;
    size_t syncs_open;       /* sync ops not yet recorded */
    int finishing;
    int aborted;             /* a step could not be carried out (shutdown, out of memory):
                                once nothing of it is in flight the job is handed back */
    unsigned ops_out;        /* its HTTP ops not yet freed */
    unsigned writes_out;     /* its store writes not yet answered */
    int starting;            /* counted in w->starting until its first request is queued */
    struct synced_item { char *id; size_t id_len; char *stored; } *batch;   /* synced, not yet sent */
    size_t nbatch, batch_cap;
    held *next_dirty;        /* in w->dirty while in_dirty */
    int in_dirty;
};

/* Takes ownership of elem (malloc'd). Validates, counts the delivery and
 * starts the job, or buries it. */
void fl_start(worker *w, char *elem, size_t len);
void fl_free_all(worker *w);
/* Sends every batch of synced outcomes still waiting for its timer
 * (shutdown calls it before it waits for the store). */
void fl_flush_batches(worker *w);
/* Lists that waited for the page budget go on once it has room again
 * (housekeeping calls it). */
void fl_resume_lists(worker *w);
/* Hands back every aborted job that has nothing in flight (housekeeping
 * calls it): such a job is never left holding its place. */
void fl_hand_back_aborted(worker *w);

/* ---- metrics.c: /metrics and /healthz on ADSYNC_METRICS_ADDR -------------- */
typedef struct wm_endpoint wm_endpoint;

/* Binds addr before the loop runs (NULL with err filled when it cannot: the
 * caller exits 78). w is borrowed and read only from callbacks, so it may be
 * set up after this call. The endpoint never keeps uv_run going: once the
 * worker has stopped, call wm_close and run the loop once more. */
wm_endpoint *wm_open(uv_loop_t *loop, worker *w, const cfg_hostport *addr, char *err, size_t errlen);
void wm_close(wm_endpoint *m);   /* NULL is a no-op */

#endif
