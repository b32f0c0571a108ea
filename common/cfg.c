/* cfg: environment configuration with validation (see cfg.h). */
#include "cfg.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errbuf.h"
#include "pg.h"
#include "pgrow.h"

static const char *process_env_get(void *ud, const char *name)
{
    (void)ud;
    return getenv(name);
}

static const char *env_get(const cfg_env *env, const char *name)
{
    static const cfg_env process_env = { process_env_get, NULL };
    if (env == NULL)
        env = &process_env;
    return env->get(env->ud, name);
}

/* Looks a variable up. 1: *value set; 0: unset (not required); -1: error. */
static int lookup(const cfg_env *env, const char *name, int required,
                  const char **value, char *err, size_t errlen)
{
    const char *v = env_get(env, name);
    if (v == NULL) {
        if (required)
            return errbuf_set(err, errlen, "%s: missing, this variable is required", name);
        return 0;
    }
    if (*v == '\0')
        return errbuf_set(err, errlen, "%s: set but empty (unset it to take the default)", name);
    *value = v;
    return 1;
}

int cfg_get_u64(const cfg_env *env, const char *name, int required, uint64_t def,
                uint64_t min, uint64_t max, uint64_t *out, char *err, size_t errlen)
{
    const char *v = NULL;
    int found = lookup(env, name, required, &v, err, errlen);
    if (found <= 0) {
        *out = def;
        return found;
    }
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (!isdigit((unsigned char)v[0]) || *end != '\0')
        return errbuf_set(err, errlen, "%s: '%.64s' is not a number (expected an integer from %llu to %llu)",
                    name, v, (unsigned long long)min, (unsigned long long)max);
    if (errno == ERANGE || n < min || n > max)
        return errbuf_set(err, errlen, "%s: %.64s is out of range (expected an integer from %llu to %llu)",
                    name, v, (unsigned long long)min, (unsigned long long)max);
    *out = n;
    return 0;
}

int cfg_get_unsigned(const cfg_env *env, const char *name, int required, unsigned def,
                     unsigned min, unsigned max, unsigned *out, char *err, size_t errlen)
{
    uint64_t v = 0;
    if (cfg_get_u64(env, name, required, def, min, max, &v, err, errlen) < 0)
        return -1;
    *out = (unsigned)v;
    return 0;
}

int cfg_get_str(const cfg_env *env, const char *name, int required, const char *def,
                char *out, size_t outlen, char *err, size_t errlen)
{
    const char *v = NULL;
    int found = lookup(env, name, required, &v, err, errlen);
    if (found < 0)
        return -1;
    if (found == 0)
        v = def;
    if (strlen(v) >= outlen)
        return errbuf_set(err, errlen, "%s: too long (at most %zu bytes)", name, outlen - 1);
    memcpy(out, v, strlen(v) + 1);
    return 0;
}

/* ---- URLs --------------------------------------------------------------- */

/* Parses "host[:port]" (host may be [v6]) into out; port stays default_port
 * when absent. */
static int parse_authority(const char *name, const char *s, size_t n, int default_port,
                           char *host, size_t hostlen, int *port, char *err, size_t errlen)
{
    const char *colon = NULL;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (close == NULL)
            return errbuf_set(err, errlen, "%s: unterminated [IPv6] host", name);
        if ((size_t)(close + 1 - s) < n) {
            if (close[1] != ':')
                return errbuf_set(err, errlen, "%s: junk after ]", name);
            colon = close + 1;
        }
    } else {
        colon = memchr(s, ':', n);
    }
    size_t hlen = colon ? (size_t)(colon - s) : n;
    if (hlen == 0)
        return errbuf_set(err, errlen, "%s: the host is empty", name);
    if (hlen >= hostlen)
        return errbuf_set(err, errlen, "%s: the host is too long", name);
    for (size_t i = 0; i < hlen; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr(".-_[]:", s[i]))
            return errbuf_set(err, errlen, "%s: the host has an invalid character", name);
    /* An IPv6 literal is kept without its brackets: that is what
     * getaddrinfo and connect want. */
    size_t skip = s[0] == '[' ? 1 : 0;
    memcpy(host, s + skip, hlen - 2 * skip);
    host[hlen - 2 * skip] = '\0';
    *port = default_port;
    if (colon == NULL)
        return 0;
    const char *p = colon + 1, *end = s + n;
    if (p == end)
        return errbuf_set(err, errlen, "%s: the port is empty (expected 1-65535)", name);
    long v = 0;
    for (; p < end; p++) {
        if (!isdigit((unsigned char)*p))
            return errbuf_set(err, errlen, "%s: the port is not a number (expected 1-65535)", name);
        v = v * 10 + (*p - '0');
        if (v > 65535)
            break;
    }
    if (v < 1 || v > 65535)
        return errbuf_set(err, errlen, "%s: the port is out of range (expected 1-65535)", name);
    *port = (int)v;
    return 0;
}

static int has_control_or_space(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

#define REDIS_FORM "redis://[user:password@]host[:port][/db]"

/* "user:password" or ":password" or "password" (redis-cli's forms). */
static int hex_digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Copies s[0..n) into out (cap bytes) with %XX decoded, as redis-cli does.
 * -1 when it does not fit, or a '%' is not followed by two hex digits, or
 * it decodes to NUL. */
static int copy_decoded(char *out, size_t cap, const char *s, size_t n)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int hi = i + 2 < n ? hex_digit(s[i + 1]) : -1;
            int lo = hi >= 0 ? hex_digit(s[i + 2]) : -1;
            if (lo < 0 || (hi == 0 && lo == 0))
                return -1;
            c = hi * 16 + lo;
            i += 2;
        }
        if (w + 1 >= cap)
            return -1;
        out[w++] = (char)c;
    }
    out[w] = '\0';
    return 0;
}

static int parse_redis_userinfo(const char *name, const char *s, size_t n, cfg_redis_url *out,
                                char *err, size_t errlen)
{
    const char *colon = memchr(s, ':', n);
    size_t ulen = colon ? (size_t)(colon - s) : 0;
    const char *pw = colon ? colon + 1 : s;
    size_t plen = (size_t)(s + n - pw);
    if (copy_decoded(out->user, sizeof out->user, s, ulen) < 0 ||
        copy_decoded(out->password, sizeof out->password, pw, plen) < 0)
        return errbuf_set(err, errlen, "%s: the user or password is too long or has a bad %%-escape "
                                 "(expected %%XX with two hex digits)", name);
    return 0;
}

int cfg_parse_redis_url(const char *name, const char *value, cfg_redis_url *out,
                        char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    static const char scheme[] = "redis://";
    if (strncmp(value, scheme, sizeof scheme - 1) != 0)
        return errbuf_set(err, errlen, "%s: must start with redis:// (expected %s)", name, REDIS_FORM);
    if (has_control_or_space(value))
        return errbuf_set(err, errlen, "%s: contains spaces or control characters (expected %s)", name, REDIS_FORM);
    const char *auth = value + sizeof scheme - 1;
    /* The last '@' separates userinfo, so passwords may contain '@' and
     * '/' (the database part after the host never has an '@'). */
    const char *at = strrchr(auth, '@');
    const char *slash = strchr(at ? at + 1 : auth, '/');
    const char *end = slash ? slash : auth + strlen(auth);
    const char *hostpart = auth;
    if (at) {
        if (parse_redis_userinfo(name, auth, (size_t)(at - auth), out, err, errlen) < 0)
            return -1;
        hostpart = at + 1;
    }
    if (parse_authority(name, hostpart, (size_t)(end - hostpart), 6379, out->host,
                        sizeof out->host, &out->port, err, errlen) < 0)
        return -1;
    if (slash == NULL || slash[1] == '\0')
        return 0;
    char *dbend;
    long db = strtol(slash + 1, &dbend, 10);
    if (!isdigit((unsigned char)slash[1]) || *dbend != '\0' || db < 0 || db > 15)
        return errbuf_set(err, errlen, "%s: the database must be a number from 0 to 15 (expected %s)",
                    name, REDIS_FORM);
    out->db = (int)db;
    return 0;
}

#define HTTP_FORM "http[s]://host[:port][/path]"

int cfg_parse_http_url(const char *name, const char *value, cfg_http_url *out,
                       char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const char *rest;
    if (strncmp(value, "http://", 7) == 0) {
        rest = value + 7;
    } else if (strncmp(value, "https://", 8) == 0) {
        rest = value + 8;
        out->tls = 1;
    } else {
        return errbuf_set(err, errlen, "%s: must start with http:// or https:// (expected %s)", name, HTTP_FORM);
    }
    if (has_control_or_space(value))
        return errbuf_set(err, errlen, "%s: contains spaces or control characters (expected %s)", name, HTTP_FORM);
    size_t alen = strcspn(rest, "/?#");
    if (memchr(rest, '@', alen))
        return errbuf_set(err, errlen, "%s: credentials do not belong in the URL (expected %s)", name, HTTP_FORM);
    if (strpbrk(rest, "?#"))
        return errbuf_set(err, errlen, "%s: a query or fragment is not allowed (expected %s)", name, HTTP_FORM);
    if (parse_authority(name, rest, alen, out->tls ? 443 : 80, out->host, sizeof out->host,
                        &out->port, err, errlen) < 0)
        return -1;
    size_t len = strlen(value);
    while (len > 0 && value[len - 1] == '/')
        len--;
    if (len >= sizeof out->base)
        return errbuf_set(err, errlen, "%s: too long (at most %zu bytes)", name, sizeof out->base - 1);
    memcpy(out->base, value, len);
    out->base[len] = '\0';
    return 0;
}

int cfg_parse_hostport(const char *name, const char *value, cfg_hostport *out,
                       char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (strchr(value, ':') == NULL)
        return errbuf_set(err, errlen, "%s: '%.64s' has no port (expected host:port)", name, value);
    if (parse_authority(name, value, strlen(value), 0, out->host, sizeof out->host,
                        &out->port, err, errlen) < 0)
        return -1;
    return 0;
}

/* ---- the whole configuration -------------------------------------------- */

#define URL_BUF 1024

/* buf[URL_BUF] is scratch space; it holds URLs with passwords (wiped by the caller). */
static int load_urls_with(cfg *c, const cfg_env *env, char *buf, char *err, size_t errlen)
{
    if (cfg_get_str(env, "REDIS_URL", 0, "redis://127.0.0.1:6379/0", buf, URL_BUF, err, errlen) < 0 ||
        cfg_parse_redis_url("REDIS_URL", buf, &c->redis, err, errlen) < 0)
        return -1;
    if (cfg_get_str(env, "AD_PLATFORM_URL", 0, "http://127.0.0.1:3001", buf, URL_BUF, err, errlen) < 0 ||
        cfg_parse_http_url("AD_PLATFORM_URL", buf, &c->platform, err, errlen) < 0)
        return -1;
    if (cfg_get_str(env, "ADSYNC_PG_URL", 0, "", c->pg_url, sizeof c->pg_url, err, errlen) < 0)
        return -1;
    if (c->pg_url[0] && strncmp(c->pg_url, "postgresql://", 13) != 0 &&
        strncmp(c->pg_url, "postgres://", 11) != 0)
        return errbuf_set(err, errlen, "ADSYNC_PG_URL: must start with postgresql:// or postgres:// "
                                 "(expected a libpq URI postgresql://[user[:password]@]host[:port]/dbname)");
    if (c->pg_url[0] && pg_conninfo_check(c->pg_url, buf, URL_BUF) < 0)   /* the value may hold a password: never echoed */
        return errbuf_set(err, errlen, "ADSYNC_PG_URL: libpq cannot parse it (expected a libpq URI "
                                       "postgresql://[user[:password]@]host[:port]/dbname[?param=value&...])");
    buf[0] = '\0';
    if (cfg_get_str(env, "ADSYNC_METRICS_ADDR", 0, "", buf, URL_BUF, err, errlen) < 0)
        return -1;
    c->metrics_enabled = buf[0] != '\0';
    if (c->metrics_enabled && cfg_parse_hostport("ADSYNC_METRICS_ADDR", buf, &c->metrics, err, errlen) < 0)
        return -1;
    return 0;
}

static int load_urls(cfg *c, const cfg_env *env, char *err, size_t errlen)
{
    char buf[URL_BUF];
    int rc = load_urls_with(c, env, buf, err, errlen);
    explicit_bzero(buf, sizeof buf);
    return rc;
}

void cfg_forget_env_secrets(void)
{
    static const char *const names[] = { "REDIS_URL", "ADSYNC_PG_URL" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *value = getenv(names[i]);
        if (value)
            explicit_bzero(value, strlen(value));
    }
}

static int load_prefix(cfg *c, const cfg_env *env, char *err, size_t errlen)
{
    if (cfg_get_str(env, "ADSYNC_PREFIX", 0, "adsync", c->prefix, sizeof c->prefix, err, errlen) < 0)
        return -1;
    for (const char *p = c->prefix; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("_.-:", *p))
            return errbuf_set(err, errlen, "ADSYNC_PREFIX: '%s' has an invalid character "
                                     "(expected letters, digits and _ . - :)", c->prefix);
    return 0;
}

static int load_logging(cfg *c, const cfg_env *env, char *err, size_t errlen)
{
    char buf[16];
    if (cfg_get_str(env, "ADSYNC_LOG_LEVEL", 0, "info", buf, sizeof buf, err, errlen) < 0)
        return -1;
    if (log_level_parse(buf, &c->log_level) < 0)
        return errbuf_set(err, errlen, "ADSYNC_LOG_LEVEL: '%s' is not a level (expected debug, info, warn or error)", buf);
    const char *tty_default = isatty(2) ? "text" : "json";
    if (cfg_get_str(env, "ADSYNC_LOG_FORMAT", 0, tty_default, buf, sizeof buf, err, errlen) < 0)
        return -1;
    if (strcmp(buf, "json") == 0)
        c->log_format = LOG_FORMAT_JSON;
    else if (strcmp(buf, "text") == 0)
        c->log_format = LOG_FORMAT_TEXT;
    else
        return errbuf_set(err, errlen, "ADSYNC_LOG_FORMAT: '%s' is not a format (expected json or text)", buf);
    return 0;
}

#define U(name, def, min, max, field) \
    { name, def, min, max, offsetof(cfg, field), sizeof(((cfg *)0)->field) }

struct numeric_setting {
    const char *name;
    uint64_t def, min, max;
    size_t offset, size;      /* where in cfg, and whether unsigned or uint64_t */
};

static const struct numeric_setting numeric_settings[] = {
    U("ADSYNC_CONCURRENCY", 256, 1, 4096, concurrency),
    U("ADSYNC_CLIENT_CONCURRENCY", 4, 1, 1024, client_concurrency),
    U("ADSYNC_MAX_JOBS", 1024, 1, 65536, max_jobs),
    U("ADSYNC_PAGE_SIZE", 10, 1, 1000, page_size),
    U("ADSYNC_MAX_PAGES", 10000, 1, 1000000, max_pages),
    U("ADSYNC_MAX_PAGE_ITEMS", 1000, 1, 1000000, max_page_items),
    U("ADSYNC_HTTP_TIMEOUT_MS", 30000, 100, 600000, http_timeout_ms),
    U("ADSYNC_CONNECT_TIMEOUT_MS", 5000, 50, 600000, connect_timeout_ms),
    U("ADSYNC_MAX_BODY_BYTES", 8u << 20, 1024, 1u << 30, max_body_bytes),
    U("ADSYNC_BODY_BUDGET_BYTES", 64u << 20, 1024, 1ull << 34, body_budget_bytes),
    U("ADSYNC_MAX_ATTEMPTS", 8, 1, 1000, max_attempts),
    U("ADSYNC_BACKOFF_BASE_MS", 1000, 1, 3600000, backoff_base_ms),
    U("ADSYNC_BACKOFF_MAX_MS", 300000, 1, 86400000, backoff_max_ms),
    U("ADSYNC_LEASE_MS", 30000, 300, 3600000, lease_ms),
    U("ADSYNC_MAX_DELIVERIES", 5, 1, 1000, max_deliveries),
    U("ADSYNC_SHUTDOWN_GRACE_MS", 25000, 0, 3600000, shutdown_grace_ms),
    U("ADSYNC_RATE_LIMIT", 10, 0, 1000000, rate_limit),
    U("ADSYNC_RATE_WINDOW_MS", 60000, 10, 86400000, rate_window_ms),
    U("ADSYNC_RETENTION_MS", 604800000, 1000, 31536000000ull, retention_ms),
    U("ADSYNC_DEAD_MAX", 10000, 1, 100000000, dead_max),
    U("ADSYNC_ALLOW_PLAINTEXT_CREDENTIALS", 0, 0, 1, allow_plaintext_credentials),
    U("ADSYNC_PG_BATCH_ROWS", 500, 1, PGROW_MAX_ROWS, pg_batch_rows),
    U("ADSYNC_PG_BATCH_MS", 50, 1, 60000, pg_batch_ms),
};

/* ADSYNC_RATE_LIMIT_PER_MIN is the old name of ADSYNC_RATE_LIMIT (it always
 * counted per ADSYNC_RATE_WINDOW_MS, not per minute). It is still taken
 * alone; set beside the new name with another value it is an error, since
 * one of the two would be silently ignored. */
static int load_rate_alias(cfg *c, const cfg_env *env, char *err, size_t errlen)
{
    static const char old[] = "ADSYNC_RATE_LIMIT_PER_MIN";
    uint64_t v;
    if (env_get(env, old) == NULL)
        return 0;
    if (cfg_get_u64(env, old, 0, 0, 0, 1000000, &v, err, errlen) < 0)
        return -1;
    if (env_get(env, "ADSYNC_RATE_LIMIT") != NULL && v != c->rate_limit)
        return errbuf_set(err, errlen, "%s: %llu disagrees with ADSYNC_RATE_LIMIT %u "
                                 "(expected only ADSYNC_RATE_LIMIT, requests per window)",
                    old, (unsigned long long)v, c->rate_limit);
    c->rate_limit = (unsigned)v;
    c->deprecated = "ADSYNC_RATE_LIMIT_PER_MIN is deprecated: it means requests per "
                    "ADSYNC_RATE_WINDOW_MS; set ADSYNC_RATE_LIMIT instead";
    return 0;
}

static int load_numbers(cfg *c, const cfg_env *env, char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof numeric_settings / sizeof numeric_settings[0]; i++) {
        const struct numeric_setting *s = &numeric_settings[i];
        uint64_t v;
        if (cfg_get_u64(env, s->name, 0, s->def, s->min, s->max, &v, err, errlen) < 0)
            return -1;
        char *field = (char *)c + s->offset;
        if (s->size == sizeof(uint64_t)) {
            memcpy(field, &v, sizeof v);
        } else {
            unsigned u = (unsigned)v;
            memcpy(field, &u, sizeof u);
        }
    }
    if (c->backoff_max_ms < c->backoff_base_ms)
        return errbuf_set(err, errlen, "ADSYNC_BACKOFF_MAX_MS: %llu is below ADSYNC_BACKOFF_BASE_MS %llu "
                                 "(expected max >= base)",
                    (unsigned long long)c->backoff_max_ms, (unsigned long long)c->backoff_base_ms);
    if (c->body_budget_bytes < c->max_body_bytes)
        return errbuf_set(err, errlen, "ADSYNC_BODY_BUDGET_BYTES: %llu is below ADSYNC_MAX_BODY_BYTES %llu "
                                 "(expected budget >= the largest body)",
                    (unsigned long long)c->body_budget_bytes, (unsigned long long)c->max_body_bytes);
    return load_rate_alias(c, env, err, errlen);
}

int cfg_load(cfg *c, const cfg_env *env, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    if (load_urls(c, env, err, errlen) < 0 || load_prefix(c, env, err, errlen) < 0 ||
        load_logging(c, env, err, errlen) < 0 || load_numbers(c, env, err, errlen) < 0)
        return -1;
    return 0;
}
