/* scheduler (sched_): every platform API call of a worker goes through here (see
 * scheduler.c): per-client FIFOs served round-robin under the worker's and each
 * client's concurrency and the shared rate limit; 401 and 429 handled.
 *
 * The scheduler owns its queues, its ring and its per-client state (hung on
 * client.sched through the client registry's event callback,
 * sched_on_client_event). It reaches the platform and the shared limiter
 * only through a sched_io, so its unit test runs without HTTP or Redis. */
#ifndef ADSYNC_WORKER_SCHEDULER_H
#define ADSYNC_WORKER_SCHEDULER_H

#include <stdint.h>

#include "api.h"
#include "client.h"
#include "ctx.h"
#include "http.h"

typedef struct sched sched;
typedef struct op op;

/* The result of an API call as the job's owner sees it. */
typedef struct op_result {
    api_verdict verdict;     /* API_OK, API_RETRY or API_PERMANENT */
    int aborted;             /* shutdown: no outcome, the job goes back whole */
    const http_result *http; /* NULL when no request was made (client failed) */
    char error[512];         /* set unless API_OK */
    unsigned long retry_after_ms;
} op_result;

/* Runs once per submitted op, with the op no longer the scheduler's: the
 * owner frees or resubmits it. */
typedef void op_done_fn(op *o, const op_result *res);

/* One API call, allocated and owned by the caller (flow.c) between submit
 * and done. */
struct op {
    op *next;                /* the client's queue */
    api_endpoint ep;             /* which call (api.h) */
    client *client;          /* borrowed: the owner holds a reference */
    void *owner;
    op_done_fn *done;
    unsigned page;           /* API_EP_LIST: page to fetch; API_EP_SYNC: page it was listed on */
    api_campaign campaign;   /* API_EP_SYNC */
    int reauthed;            /* already retried once after a 401 */
    uint64_t not_before_ms;  /* mono ms: not started before (a page retried in place) */
    uint64_t rate_asked_ns;  /* when the shared limiter was asked (0: no limit) */
    uint64_t submitted_ns;   /* when the HTTP request was handed to curl */
    uint64_t token_gen;      /* the client's token_gen when sent (a 401 names the token) */
};

/* How the scheduler reaches the outside. NULL in sched_new: the worker's
 * HTTP client and ratelimit.lua on ctx's Redis connection. */
typedef struct sched_io {
    /* As http_submit: 0 and done runs later, or < 0 and it never does. */
    int (*send)(void *ud, const http_request_spec *spec, http_done_fn *done, void *arg);
    /* Counts o's request in its client's window (window_ms long, the
     * client's rate_limit requests) under member: 0 and sched_rate_answered
     * runs later, or < 0 and it never does. */
    int (*check_rate)(void *ud, op *o, uint64_t window_ms, const char *member);
    /* Tells every worker that c cools down for ms (best effort). */
    void (*cool_down)(void *ud, const client *c, unsigned long ms);
    void *ud;
} sched_io;

/* x (and io, when given) are borrowed and must outlive the scheduler. NULL
 * on OOM. */
sched *sched_new(wctx *x, const sched_io *io);
void sched_free(sched *s);   /* NULL is a no-op; nothing may be queued */

/* The client registry's event callback (cl_set_new(x, sched_on_client_event, s)). */
int sched_on_client_event(client *c, cl_event ev, void *ud);

/* The limiter's answer to check_rate: 0 go, > 0 ms to wait,
 * SCHED_RATE_UNKNOWN when it could not answer, SCHED_RATE_RESET when its log
 * held another type and was replaced. */
#define SCHED_RATE_UNKNOWN (-1)
#define SCHED_RATE_RESET (-2)
void sched_rate_answered(op *o, long long wait_ms);

/* Queues o at its client's tail. While stopping, o is done at once
 * (aborted). */
void sched_submit(sched *s, op *o);
void sched_pump(sched *s);            /* starts what limits allow */
/* Shutdown: every queued op is done (aborted); those in flight go on. */
void sched_cancel_queued(sched *s);
unsigned sched_inflight(const sched *s);   /* requests and rate checks in flight */
/* HTTP slots that no held job can use right now (0 while any client with
 * work is ready to start): room for more jobs. */
unsigned sched_idle_slots(const sched *s);
/* Slots the held clients keep busy on average: a client without a rate
 * limit up to ADSYNC_CLIENT_CONCURRENCY, a rate-limited one its requests per
 * ms times the measured request duration. */
double sched_expected_busy(const sched *s);

#endif
