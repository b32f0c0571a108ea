/* libFuzzer target: the configuration (common/cfg.c): the URL parsers, which
 * read REDIS_URL, AD_PLATFORM_URL, a client's api_url and listen addresses
 * (a refused value never echoes a password into the error line), and the
 * whole of cfg_load with the input as the value of one variable, so every
 * getter and its buffer sees hostile lengths and bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"

static const char *const names[] = {
    "REDIS_URL", "AD_PLATFORM_URL", "ADSYNC_PREFIX", "ADSYNC_LOG_LEVEL", "ADSYNC_LOG_FORMAT",
    "ADSYNC_METRICS_ADDR", "ADSYNC_PG_URL", "ADSYNC_CONCURRENCY", "ADSYNC_RATE_LIMIT",
    "ADSYNC_RATE_LIMIT_PER_MIN", "ADSYNC_BODY_BUDGET_BYTES", "ADSYNC_RETENTION_MS",
};

typedef struct one_var {
    const char *name, *value;
} one_var;

static const char *get_one(void *ud, const char *name)
{
    const one_var *v = ud;
    return strcmp(name, v->name) == 0 ? v->value : NULL;
}

/* The first byte picks the variable, the rest is its value. */
static void load_with_one(const char *s)
{
    if (s[0] == '\0')
        return;
    one_var v = { names[(unsigned char)s[0] % (sizeof names / sizeof names[0])], s + 1 };
    cfg_env env = { get_one, &v };
    cfg c;
    char err[CFG_ERR_LEN];
    if (cfg_load(&c, &env, err, sizeof err) < 0 && strlen(err) >= sizeof err)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    char err[CFG_ERR_LEN];
    cfg_redis_url r;
    cfg_http_url h;
    cfg_hostport hp;
    if (cfg_parse_redis_url("REDIS_URL", s, &r, err, sizeof err) == 0) {
        if (r.port < 1 || r.port > 65535 || r.db < 0 || r.db > 15)
            abort();
    } else if (strlen(s) > 16 && strstr(err, s)) {
        abort();   /* the whole value (and so any password) echoed */
    }
    if (cfg_parse_http_url("AD_PLATFORM_URL", s, &h, err, sizeof err) == 0 && (h.port < 1 || h.port > 65535))
        abort();
    cfg_parse_hostport("ADSYNC_METRICS_ADDR", s, &hp, err, sizeof err);
    load_with_one(s);
    free(s);
    return 0;
}
