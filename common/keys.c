/* keys: Redis key names and id validation (see keys.h). */
#include "keys.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const global_names[] = {
    [KEYS_CLIENTS] = "clients",     [KEYS_JOBS] = "jobs",   [KEYS_WORKERS] = "workers",
    [KEYS_RETRY] = "retry",         [KEYS_DEAD] = "dead",   [KEYS_DELIVERIES] = "deliveries",
    [KEYS_OUTBOX] = "outbox",       [KEYS_STATS] = "stats",
};

static const char *const client_suffixes[] = {
    [KEYS_CLIENT] = "",
    [KEYS_CLIENT_TOKEN] = ":token",
    [KEYS_CLIENT_CAMPAIGNS] = ":campaigns",
    [KEYS_CLIENT_ACTIVE_RUN] = ":active_run",
    [KEYS_CLIENT_COOLDOWN] = ":cooldown",
    [KEYS_CLIENT_RATELIMIT] = ":ratelimit",
    [KEYS_CLIENT_AUTHLOCK] = ":authlock",
    [KEYS_CLIENT_LAST_RUN] = ":last_run",
};

void keys_init(keys *k, const char *prefix)
{
    snprintf(k->prefix, sizeof k->prefix, "%s", prefix);
}

static int is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int valid_id(const char *id, size_t maxlen, const char *extra)
{
    if (id == NULL || !is_alnum(id[0]))
        return 0;
    size_t n = 0;
    for (; id[n]; n++)
        if (n >= maxlen || (!is_alnum(id[n]) && strchr(extra, id[n]) == NULL))
            return 0;
    return 1;
}

int keys_valid_client_id(const char *id)
{
    return valid_id(id, KEYS_ID_MAX, "_.-");
}

int keys_valid_token(const char *id)
{
    return valid_id(id, KEYS_TOKEN_MAX, "_.:-");
}

int keys_valid_segment(const char *id)
{
    return valid_id(id, KEYS_TOKEN_MAX, "_.-");
}

static int format_key(char *out, size_t outlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, outlen, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= outlen) {
        if (outlen)
            out[0] = '\0';
        return -1;
    }
    return n;
}

static int invalid(char *out, size_t outlen)
{
    if (outlen)
        out[0] = '\0';
    return -1;
}

int keys_global_key(const keys *k, keys_global which, char *out, size_t outlen)
{
    if ((size_t)which >= sizeof global_names / sizeof global_names[0])
        return invalid(out, outlen);
    return format_key(out, outlen, "%s:%s", k->prefix, global_names[which]);
}

int keys_client_key(const keys *k, const char *client_id, keys_client_kind which,
                    char *out, size_t outlen)
{
    if (!keys_valid_client_id(client_id) ||
        (size_t)which >= sizeof client_suffixes / sizeof client_suffixes[0])
        return invalid(out, outlen);
    return format_key(out, outlen, "%s:client:%s%s", k->prefix, client_id, client_suffixes[which]);
}

static int token_key(const keys *k, const char *kind, const char *id, char *out, size_t outlen)
{
    if (!keys_valid_token(id))
        return invalid(out, outlen);
    return format_key(out, outlen, "%s:%s:%s", k->prefix, kind, id);
}

int keys_run_key(const keys *k, const char *run_id, char *out, size_t outlen)
{
    return token_key(k, "run", run_id, out, outlen);
}

int keys_run_items_key(const keys *k, const char *run_id, char *out, size_t outlen)
{
    if (!keys_valid_token(run_id))
        return invalid(out, outlen);
    return format_key(out, outlen, "%s:run:%s:items", k->prefix, run_id);
}

int keys_processing_key(const keys *k, const char *worker_id, char *out, size_t outlen)
{
    return token_key(k, "processing", worker_id, out, outlen);
}

int keys_worker_key(const keys *k, const char *worker_id, char *out, size_t outlen)
{
    return token_key(k, "worker", worker_id, out, outlen);
}

int keys_outbox_claim_key(const keys *k, const char *worker_id, char *out, size_t outlen)
{
    return token_key(k, "outbox", worker_id, out, outlen);
}
