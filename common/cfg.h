/* cfg: every setting of DESIGN.md §7, read from the environment and
 * validated before a program touches Redis.
 *
 * The typed getters are public so programs with settings of their own use the
 * same rules and messages. Every error is one line in err naming the
 * variable, what is wrong and the accepted form; the program prints it and
 * exits CFG_EXIT_CONFIG (78, EX_CONFIG). A value that may carry a secret (a
 * URL with a password) is never echoed into err. */
#ifndef ADSYNC_CFG_H
#define ADSYNC_CFG_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"

#define CFG_EXIT_CONFIG 78
#define CFG_ERR_LEN 512

/* Where values come from: get(ud, name) returns the value or NULL when
 * unset. A NULL cfg_env * means the process environment. */
typedef struct cfg_env {
    const char *(*get)(void *ud, const char *name);
    void *ud;
} cfg_env;

typedef struct cfg_redis_url {
    char host[256];
    int port;
    char user[128];
    char password[256];       /* secret: never log */
    int db;
} cfg_redis_url;

typedef struct cfg_http_url {
    char base[1024];          /* normalised: scheme://host[:port][/path], no trailing '/' */
    char host[256];
    int port;
    int tls;
} cfg_http_url;

typedef struct cfg_hostport {
    char host[256];
    int port;
} cfg_hostport;

typedef struct cfg {
    cfg_redis_url redis;
    char prefix[64];
    cfg_http_url platform;
    unsigned concurrency;
    unsigned client_concurrency;
    unsigned max_jobs;
    unsigned page_size;
    unsigned max_pages;
    unsigned max_page_items;       /* a page with more items is malformed (ADSYNC_MAX_PAGE_ITEMS) */
    unsigned http_timeout_ms;
    unsigned connect_timeout_ms;
    uint64_t max_body_bytes;
    uint64_t body_budget_bytes;    /* bodies in flight + listed campaigns held (ADSYNC_BODY_BUDGET_BYTES) */
    unsigned max_attempts;
    uint64_t backoff_base_ms;
    uint64_t backoff_max_ms;
    uint64_t lease_ms;
    unsigned max_deliveries;
    uint64_t shutdown_grace_ms;
    unsigned rate_limit;           /* requests per rate window (ADSYNC_RATE_LIMIT) */
    unsigned allow_plaintext_credentials;   /* 1: a sealing key does not refuse plain text */
    uint64_t rate_window_ms;
    uint64_t retention_ms;         /* an ended run's keys are kept this long (ADSYNC_RETENTION_MS) */
    unsigned dead_max;             /* dead letters kept, newest first (ADSYNC_DEAD_MAX) */
    log_level log_level;
    log_format log_format;
    int metrics_enabled;
    cfg_hostport metrics;
    char pg_url[1024];             /* empty: sink off; secret: never log */
    unsigned pg_batch_rows;
    uint64_t pg_batch_ms;
    const char *deprecated;        /* an old name that was used (static text), or NULL:
                                      the program logs one line about it */
} cfg;

/* Loads and validates everything. 0 on success; -1 with err filled. */
int cfg_load(cfg *c, const cfg_env *env, char *err, size_t errlen);

/* Wipes the values of REDIS_URL and ADSYNC_PG_URL in this process's
 * environment (they carry passwords; /proc/PID/environ and a memory dump
 * would show them): call once the configuration is loaded, by a program
 * that does not load it again. */
void cfg_forget_env_secrets(void);

/* Typed getters. An unset variable takes def, unless required, which makes
 * it an error. A variable set to the empty string is an error either way. */
int cfg_get_u64(const cfg_env *env, const char *name, int required, uint64_t def,
                uint64_t min, uint64_t max, uint64_t *out, char *err, size_t errlen);
int cfg_get_unsigned(const cfg_env *env, const char *name, int required, unsigned def,
                     unsigned min, unsigned max, unsigned *out, char *err, size_t errlen);
/* Copies into out (outlen bytes); too long is an error. def may be NULL
 * only when required. */
int cfg_get_str(const cfg_env *env, const char *name, int required, const char *def,
                char *out, size_t outlen, char *err, size_t errlen);

/* Parsers, usable on their own (flags, per-client api_url). name is only used
 * in the error message. */
int cfg_parse_redis_url(const char *name, const char *value, cfg_redis_url *out,
                        char *err, size_t errlen);
int cfg_parse_http_url(const char *name, const char *value, cfg_http_url *out,
                       char *err, size_t errlen);
int cfg_parse_hostport(const char *name, const char *value, cfg_hostport *out,
                       char *err, size_t errlen);

#endif
