/* policy: what a failure leads to, decided in one place (worker-core
 * redesign, "one failure policy"). Pure: the caller passes the attempt that
 * failed, what the platform asked for and the random factor, and gets a
 * decision; every path of the worker that retries or buries a job asks
 * here. Where a retry happens (in place, in the retry set, after a cooldown)
 * is the caller's business; whether and when is decided here.
 *
 *   failure            attempts left   decision
 *   TRANSIENT          yes             RETRY after max(backoff(attempt), retry_after)
 *   TRANSIENT          no              DEAD "<error> after N attempts"-style (caller's text)
 *   PERMANENT          -               DEAD
 *   TOO_LARGE          -               DEAD (a retry job could not hold it)
 *   POISON             -               DEAD (delivered too often)
 *   WRONGTYPE          -               DEAD (a key of its client or run holds another type)
 *   RATE_LIMITED (429) -               COOLDOWN for retry_after, no attempt spent
 *   AUTH_REJECTED      first 401       RELOGIN, the same attempt again
 *   AUTH_REJECTED      after relogin   DEAD
 */
#ifndef ADSYNC_WORKER_POLICY_H
#define ADSYNC_WORKER_POLICY_H

#include <stdint.h>

typedef enum pol_failure {
    POL_TRANSIENT,       /* timeout, connection, 5xx, malformed answer */
    POL_PERMANENT,       /* other 4xx, success:false */
    POL_TOO_LARGE,       /* a campaign over what a retry job may hold */
    POL_POISON,          /* delivered more than ADSYNC_MAX_DELIVERIES times */
    POL_WRONGTYPE,       /* a Redis key of the job's client or run holds another type */
    POL_RATE_LIMITED,    /* 429 */
    POL_AUTH_REJECTED,   /* 401 */
} pol_failure;

typedef enum pol_action {
    POL_RETRY,           /* try again after delay_ms; an attempt was spent */
    POL_DEAD,            /* to the dead letters */
    POL_COOLDOWN,        /* the client waits delay_ms; no attempt spent */
    POL_RELOGIN,         /* drop the token, log in, try again at once */
} pol_action;

typedef struct pol_limits {
    unsigned max_attempts;
    uint64_t backoff_base_ms, backoff_max_ms;
} pol_limits;

typedef struct pol_decision {
    pol_action action;
    uint64_t delay_ms;   /* POL_RETRY, POL_COOLDOWN: from now */
} pol_decision;

/* attempt: the number of the attempt that failed (1 = the first try);
 * retry_after_ms: what the platform asked for (0 if nothing); relogged: a
 * 401 came after logging in again; unit01: uniform in [0, 1] (the backoff's
 * jitter, backoff.h). */
pol_decision pol_decide(const pol_limits *l, pol_failure f, unsigned attempt, uint64_t retry_after_ms,
                        int relogged, double unit01);

#endif
