/* keys: the Redis key schema of DESIGN.md §3, in one place.
 *
 * Every key is "<prefix>:<name>" or "<prefix>:<kind>:<id>[:<sub>]". Ids that
 * go into keys are validated here, so a hostile client id can never address
 * another key ("acme:token" is not a client id). Pure: formats into caller
 * buffers, allocates nothing. */
#ifndef ADSYNC_KEYS_H
#define ADSYNC_KEYS_H

#include <stddef.h>

#define KEYS_MAX_LEN 256    /* every key fits; pass buffers of this size */
#define KEYS_ID_MAX 64      /* client ids: ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$ */
#define KEYS_TOKEN_MAX 128  /* run, job and worker ids: same charset, longer */

typedef struct keys {
    char prefix[64];
} keys;

typedef enum {
    KEYS_CLIENTS,      /* set of registered client ids */
    KEYS_JOBS,         /* list of ready jobs */
    KEYS_WORKERS,      /* set of registered worker ids */
    KEYS_RETRY,        /* zset: jobs waiting for their backoff */
    KEYS_DEAD,         /* list of dead letters */
    KEYS_DELIVERIES,   /* hash: job id -> times popped */
    KEYS_OUTBOX,       /* list: results for the PostgreSQL sink */
    KEYS_STATS,        /* hash of global counters */
    KEYS_GLOBAL_COUNT
} keys_global;

typedef enum {
    KEYS_CLIENT,             /* hash: credentials and per-client settings */
    KEYS_CLIENT_TOKEN,       /* cached access token */
    KEYS_CLIENT_CAMPAIGNS,   /* hash: campaign id -> stored JSON */
    KEYS_CLIENT_ACTIVE_RUN,  /* run id being queued or run */
    KEYS_CLIENT_COOLDOWN,    /* set after a 429 */
    KEYS_CLIENT_RATELIMIT,   /* zset: sliding-window request log */
    KEYS_CLIENT_AUTHLOCK,    /* short lock: one authentication at a time (addition) */
    KEYS_CLIENT_LAST_RUN,    /* id of the newest run (addition, for status) */
} keys_client_kind;

/* prefix is copied; longer than 63 bytes is truncated (cfg validates it). */
void keys_init(keys *k, const char *prefix);

/* 1 if id is a valid client id, else 0. */
int keys_valid_client_id(const char *id);
/* 1 if id is a valid run/job/worker id (1-128 of [A-Za-z0-9_.:-]), else 0. */
int keys_valid_token(const char *id);
/* A token without ':', for ids that become one segment of a key (run and
 * job ids): a run id "x:items" would otherwise name run x's items hash. */
int keys_valid_segment(const char *id);

/* Each returns the key length, or -1 if an id is invalid or out is too
 * small (out then holds ""). */
int keys_global_key(const keys *k, keys_global which, char *out, size_t outlen);
int keys_client_key(const keys *k, const char *client_id, keys_client_kind which,
                    char *out, size_t outlen);
int keys_run_key(const keys *k, const char *run_id, char *out, size_t outlen);
/* "<prefix>:run:<id>:items": campaign id -> listed|retrying|synced|dead
 * (addition to DESIGN.md §3; makes run counters idempotent). */
int keys_run_items_key(const keys *k, const char *run_id, char *out, size_t outlen);
int keys_processing_key(const keys *k, const char *worker_id, char *out, size_t outlen);
int keys_worker_key(const keys *k, const char *worker_id, char *out, size_t outlen);
/* "<prefix>:outbox:<worker id>": outbox entries a worker's PostgreSQL sink
 * claimed and has not yet committed (addition to DESIGN.md §3). */
int keys_outbox_claim_key(const keys *k, const char *worker_id, char *out, size_t outlen);

#endif
