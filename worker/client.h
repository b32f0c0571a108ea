/* client: one client account as a worker knows it while it holds jobs for
 * it — credentials, the shared token, request headers (see client.c).
 *
 * Clients live in a registry (cl_set) and are reference counted by the jobs
 * that use them. Whoever schedules their requests (scheduler.c) hears of them
 * through one event callback given to cl_set_new, so this module never
 * calls upwards; it keeps a pointer (sched) to that module's state for the
 * client, which it never looks into. The struct is visible because the
 * scheduler reads the request settings (base_url, headers, limits, state)
 * on every call; only client.c writes it. */
#ifndef ADSYNC_WORKER_CLIENT_H
#define ADSYNC_WORKER_CLIENT_H

#include <stdint.h>
#include <uv.h>

#include "api.h"
#include "ctx.h"
#include "http.h"
#include "ilist.h"

typedef struct client client;
typedef struct cl_set cl_set;
struct sc_client;   /* scheduler.c's per-client state */

typedef enum { CL_LOADING, CL_NEED_TOKEN, CL_AUTHING, CL_READY, CL_FAILED } cl_state;

/* What the registry tells the scheduler. */
typedef enum {
    CL_EV_NEW,        /* registered (its defaults known): set up c->sched; < 0 refuses it (OOM) */
    CL_EV_LIMITS,     /* its own rate limit is known now */
    CL_EV_CHANGED,    /* its state changed: it may be able to start work */
    CL_EV_TIMER,      /* the timer of cl_arm_timer fired */
    CL_EV_GONE,       /* about to be freed: forget it */
} cl_event;

typedef int cl_event_fn(client *c, cl_event ev, void *ud);

struct client {
    il_node link;            /* the registry's list */
    cl_set *set;
    char id[KEYS_ID_MAX + 1];
    unsigned refs;           /* held jobs using it */
    unsigned pending_io;     /* callbacks that still point here (cl_pin) */

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
    uint64_t token_gen;      /* moves whenever token does: what a request went out with */
    char *token_stored;      /* the token as <prefix>:client:<id>:token holds it */
    uint64_t token_recheck_at;  /* mono ms: re-read the shared token after this */
    http_headers *headers;
    uv_timer_t timer;        /* token wait, rate wait, cooldown */
    int timer_armed;

    struct sc_client *sched; /* the event handler's, set on CL_EV_NEW */
};

/* x is borrowed and must outlive the set. NULL on OOM. */
cl_set *cl_set_new(wctx *x, cl_event_fn *on_event, void *ud);
/* Destroys every client (teardown: their memory goes once libuv closed
 * their timers, so run the loop once more), then the set. NULL is a no-op. */
void cl_set_free(cl_set *s);

client *cl_acquire(cl_set *s, const char *id);   /* +1 ref; loads on first use; NULL on OOM */
void cl_release(client *c);                      /* -1 ref; freed when unused and idle */
/* Something outside the registry points at c (a queued request): it is not
 * freed before the matching cl_unpin. */
void cl_pin(client *c);
void cl_unpin(client *c);
/* Makes the client usable: credentials and a token. CL_EV_CHANGED follows
 * when the state changes. */
void cl_prepare(client *c);
/* A 401 came back for a request sent while token_gen was token_gen:
 * forget that token everywhere (unless it was replaced meanwhile). */
void cl_token_rejected(client *c, uint64_t token_gen);
/* CL_EV_TIMER after ms (replaces an armed timer). */
void cl_arm_timer(client *c, uint64_t ms);

#endif
