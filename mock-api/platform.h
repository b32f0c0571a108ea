/* platform: the simulated ad platform's state and every decision it makes:
 * credentials and tokens, the per-client sliding-window rate limit, fault
 * injection (every-Nth 503/hang, random 500/malformed, per-campaign hooks),
 * the seeded PRNG, per-client request statistics and sync counts, and the
 * JSON bodies of all answers. No sockets, no threads, no clocks: callers pass
 * the time in, and the server carries out the returned action (answer now,
 * answer after a delay, never answer). One internal mutex makes every public
 * call safe from any thread; it is held only for the bookkeeping. */
#ifndef ADSYNC_MOCK_PLATFORM_H
#define ADSYNC_MOCK_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#include "accounts.h"
#include "hostile.h"

typedef struct plat plat;

typedef struct plat_config {
  uint32_t rate_limit;       /* accepted /api requests per window and client; 0 = no limit */
  uint32_t rate_window_ms;   /* sliding window length; 0 = no limit */
  uint32_t fail_every;       /* Nth list request of a client -> 503; 0 = never */
  uint32_t hang_every;       /* Nth list request of a client is never answered; 0 = never */
  int faults_platform;       /* 1: fail_every/hang_every count list requests of all clients
                                together (a busy platform's faults hit whoever calls) */
  uint32_t sync_latency_ms;  /* delay of sync answers past the rate limit; 0 = none */
  uint32_t list_latency_ms;  /* same for list answers */
  double error_rate;         /* probability of a 500 on sync */
  double malformed_rate;     /* probability of a malformed 200 on list and sync */
  uint32_t token_ttl_s;      /* token lifetime, >= 1 */
  uint64_t seed;             /* fault PRNG seed (deterministic runs) */
  uint64_t token_seed;       /* token PRNG seed (unique tokens across runs) */
  const char *const *fail_campaigns;   /* borrowed; sync of these always answers 500 */
  size_t n_fail_campaigns;
  const char *const *reject_campaigns; /* borrowed; sync of these answers 400 */
  size_t n_reject_campaigns;
  int hostile;               /* 1: --hostile (hostile.h), one behaviour per account */
  uint32_t campaign_bytes;   /* every listed campaign carries a "pad" of this many bytes */
} plat_config;

/* What the server does with a reply. */
typedef enum plat_action {
  PLAT_NOW,    /* answer right away */
  PLAT_DELAY,  /* answer after delay_ms */
  PLAT_HANG,   /* never answer (until shutdown or the client leaves) */
} plat_action;

/* One answer. The body is heap memory owned by the reply (free() it or call
 * plat_reply_clear); it is NULL only when an allocation failed. */
typedef struct plat_reply {
  int status;
  plat_action action;
  uint32_t delay_ms;       /* with PLAT_DELAY */
  uint32_t retry_after_s;  /* > 0: also send "Retry-After: <s>" */
  char *body;
  size_t body_len;
  long account;            /* account the request was counted under, or -1 */
  hostile_delivery delivery; /* how the body is sent (--hostile) */
  const char *location;    /* static; "Location" of a redirect, or NULL */
} plat_reply;

/* One request's inputs; all pointers are borrowed for the call. */
typedef struct plat_request {
  const char *authorization;  /* Authorization header, or NULL */
  const char *client_id;      /* X-Client-Id header, or NULL */
  const char *page;           /* list: decoded query values, or NULL */
  const char *limit;
  const char *campaign_id;    /* sync: the decoded {id} path segment */
  const char *body;           /* sync: request body (need not be NUL-terminated) */
  size_t body_len;
  int64_t mono_ms;            /* monotonic clock: token expiry, rate windows */
  int64_t wall_ms;            /* wall clock (ms since the epoch): issued_at, synced_at */
} plat_request;

#define PLAT_TOKEN_LEN 32       /* hex characters */
#define PLAT_TOKENS_PER_ACCOUNT 32 /* older tokens of an account stop being valid */
#define PLAT_LIST_MAX_LIMIT 1000

/* Takes ownership of `accounts` (freed even when this fails); cfg and the
 * campaign arrays it points to are borrowed and must outlive the platform.
 * NULL on allocation failure. */
plat *plat_new(const plat_config *cfg, acct_list *accounts);

/* Frees everything; NULL is a no-op. */
void plat_free(plat *p);

/* The accounts (borrowed, read-only, valid until plat_free). */
const acct_list *plat_accounts(const plat *p);

/* POST /auth/token. Never delayed, never faulty, not rate limited. Missing
 * header 401, garbled header or base64 400, wrong email or password 401
 * (counted under the account the email names, if any), else 200. */
void plat_auth(plat *p, const plat_request *rq, plat_reply *out);

/* The /api endpoints check, in order: Authorization present and Bearer (401),
 * X-Client-Id present (400), token issued to that client (401 "Invalid
 * token") and not expired or revoked (401 "Token expired"), the client's
 * rate window (429 with retry_after; not recorded), then the endpoint's own
 * checks and faults. Every answer from the rate window on gets the
 * endpoint's latency. Counted under the X-Client-Id account when it exists. */

/* GET /api/campaigns: page/limit (400; not counted as a fault step), then
 * the client's (or, with faults_platform, the platform's) Nth list request
 * hangs when N % hang_every == 0, else 503
 * when N % fail_every == 0, else malformed with malformed_rate, else the
 * page. */
void plat_list(plat *p, const plat_request *rq, plat_reply *out);

/* POST /api/campaigns/{id}/sync: body {"campaign_id":<same id>} (400), known
 * campaign (404), --reject-campaign (400 success:false), --fail-campaign or
 * error_rate (500), malformed_rate (200, not synced), else 200 and the
 * campaign's sync count + 1. */
void plat_sync(plat *p, const plat_request *rq, plat_reply *out);

/* GET /admin/stats. */
void plat_stats(plat *p, plat_reply *out);

/* POST /admin/reset: zeroes statistics, sync counts, fault counters and rate
 * windows (tokens stay valid). */
void plat_reset(plat *p, plat_reply *out);

/* POST /admin/revoke-tokens: every token issued so far answers 401 "Token
 * expired" from now on. */
void plat_revoke_tokens(plat *p, plat_reply *out);

/* GET /admin/tokens (test hook): every token issued so far, per client:
 * {"tokens":{"client_1":["<hex>",...],...}}, so a test can look for them
 * where they must not be (Redis, its AOF, MONITOR output). */
void plat_tokens(plat *p, plat_reply *out);

/* A request reached hostile.h's redirect target (nobody should follow). */
void plat_redirect_followed(plat *p, plat_reply *out);

/* GET /health. */
void plat_health(plat_reply *out);

/* Any other answer: {"error":error,"message":message} with status. */
void plat_reply_error(plat_reply *out, int status, const char *error, const char *message);

/* Frees the body and resets *r; safe on a zeroed or cleared reply. */
void plat_reply_clear(plat_reply *r);

#endif
