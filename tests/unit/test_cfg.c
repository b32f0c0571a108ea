/* Unit tests for cfg.c: defaults, every kind of bad value, URL parsing, and
 * that error lines name the variable but never echo a secret. */
#include "test_common.h"

#include <string.h>

#include "cfg.h"

/* A fake environment: NULL-terminated name/value pairs. */
static const char *fake_get(void *ud, const char *name)
{
    const char *const *kv = ud;
    for (; kv[0]; kv += 2)
        if (strcmp(kv[0], name) == 0)
            return kv[1];
    return NULL;
}

static int load(const char *const *kv, cfg *c, char *err)
{
    cfg_env env = { fake_get, (void *)kv };
    return cfg_load(c, &env, err, CFG_ERR_LEN);
}

static void defaults(void **state)
{
    (void)state;
    const char *kv[] = { NULL };
    cfg c;
    char err[CFG_ERR_LEN];
    assert_int_equal(load(kv, &c, err), 0);
    assert_string_equal(c.redis.host, "127.0.0.1");
    assert_int_equal(c.redis.port, 6379);
    assert_int_equal(c.redis.db, 0);
    assert_string_equal(c.prefix, "adsync");
    assert_string_equal(c.platform.base, "http://127.0.0.1:3001");
    assert_int_equal(c.concurrency, 256);
    assert_int_equal(c.client_concurrency, 4);
    assert_int_equal(c.max_jobs, 1024);
    assert_int_equal(c.page_size, 10);
    assert_int_equal(c.max_pages, 10000);
    assert_int_equal(c.http_timeout_ms, 30000);
    assert_int_equal(c.connect_timeout_ms, 5000);
    assert_int_equal(c.max_body_bytes, 8u << 20);
    assert_int_equal(c.max_attempts, 8);
    assert_int_equal(c.backoff_base_ms, 1000);
    assert_int_equal(c.backoff_max_ms, 300000);
    assert_int_equal(c.lease_ms, 30000);
    assert_int_equal(c.max_deliveries, 5);
    assert_int_equal(c.shutdown_grace_ms, 25000);
    assert_int_equal(c.rate_limit, 10);
    assert_int_equal(c.rate_window_ms, 60000);
    assert_int_equal(c.log_level, LOG_INFO);
    assert_false(c.metrics_enabled);
    assert_string_equal(c.pg_url, "");
    assert_int_equal(c.pg_batch_rows, 500);
    assert_int_equal(c.pg_batch_ms, 50);
}

/* ADSYNC_RATE_LIMIT_PER_MIN is the old name of ADSYNC_RATE_LIMIT: taken
 * alone with a note to log, refused when it contradicts the new name. */
/* Passwords as redis-cli takes them: '/' and '@' inside, %XX decoded. */
static void redis_url_passwords(void **state)
{
    (void)state;
    cfg_redis_url u;
    char err[CFG_ERR_LEN];
    assert_int_equal(cfg_parse_redis_url("REDIS_URL", "redis://:pa/ss@h:7000/2", &u, err, sizeof err), 0);
    assert_string_equal(u.password, "pa/ss");
    assert_string_equal(u.host, "h");
    assert_int_equal(u.port, 7000);
    assert_int_equal(u.db, 2);
    assert_int_equal(cfg_parse_redis_url("REDIS_URL", "redis://:pa%2Fss%40x%25@h", &u, err, sizeof err), 0);
    assert_string_equal(u.password, "pa/ss@x%");
    assert_int_equal(cfg_parse_redis_url("REDIS_URL", "redis://us%65r:a@b@h/1", &u, err, sizeof err), 0);
    assert_string_equal(u.user, "user");
    assert_string_equal(u.password, "a@b");
    assert_int_equal(u.db, 1);
    const char *bad[] = { "redis://:pa%2@h", "redis://:pa%zz@h", "redis://:pa%00x@h", "redis://:p%@h" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(cfg_parse_redis_url("REDIS_URL", bad[i], &u, err, sizeof err), -1);
        assert_non_null(strstr(err, "bad %-escape"));
        assert_null(strstr(err, bad[i] + 9));   /* never echoes the password */
    }
}

static void rate_limit_alias(void **state)
{
    (void)state;
    cfg c;
    char err[CFG_ERR_LEN];
    const char *neu[] = { "ADSYNC_RATE_LIMIT", "7", NULL };
    assert_int_equal(load(neu, &c, err), 0);
    assert_int_equal(c.rate_limit, 7);
    assert_null(c.deprecated);
    const char *old[] = { "ADSYNC_RATE_LIMIT_PER_MIN", "300", NULL };
    assert_int_equal(load(old, &c, err), 0);
    assert_int_equal(c.rate_limit, 300);
    assert_non_null(c.deprecated);
    assert_non_null(strstr(c.deprecated, "ADSYNC_RATE_LIMIT instead"));
    const char *same[] = { "ADSYNC_RATE_LIMIT", "5", "ADSYNC_RATE_LIMIT_PER_MIN", "5", NULL };
    assert_int_equal(load(same, &c, err), 0);
    assert_int_equal(c.rate_limit, 5);
    const char *both[] = { "ADSYNC_RATE_LIMIT", "5", "ADSYNC_RATE_LIMIT_PER_MIN", "300", NULL };
    assert_int_equal(load(both, &c, err), -1);
    assert_non_null(strstr(err, "ADSYNC_RATE_LIMIT_PER_MIN: 300 disagrees with ADSYNC_RATE_LIMIT 5"));
    const char *bad[] = { "ADSYNC_RATE_LIMIT_PER_MIN", "ten", NULL };
    assert_int_equal(load(bad, &c, err), -1);
    assert_non_null(strstr(err, "ADSYNC_RATE_LIMIT_PER_MIN: 'ten' is not a number"));
}

static void overrides(void **state)
{
    (void)state;
    const char *kv[] = { "REDIS_URL", "redis://u:p@w@redis.local:7000/3",
                         "AD_PLATFORM_URL", "https://api.example.test/v2/",
                         "ADSYNC_CONCURRENCY", "128", "ADSYNC_PREFIX", "t1",
                         "ADSYNC_LOG_FORMAT", "text", "ADSYNC_LOG_LEVEL", "DEBUG",
                         "ADSYNC_METRICS_ADDR", "127.0.0.1:9100", NULL };
    cfg c;
    char err[CFG_ERR_LEN];
    assert_int_equal(load(kv, &c, err), 0);
    assert_string_equal(c.redis.host, "redis.local");
    assert_int_equal(c.redis.port, 7000);
    assert_int_equal(c.redis.db, 3);
    assert_string_equal(c.redis.user, "u");
    assert_string_equal(c.redis.password, "p@w");
    assert_string_equal(c.platform.base, "https://api.example.test/v2");
    assert_int_equal(c.platform.port, 443);
    assert_true(c.platform.tls);
    assert_int_equal(c.concurrency, 128);
    assert_string_equal(c.prefix, "t1");
    assert_int_equal(c.log_format, LOG_FORMAT_TEXT);
    assert_int_equal(c.log_level, LOG_DEBUG);
    assert_true(c.metrics_enabled);
    assert_int_equal(c.metrics.port, 9100);
}

/* Each bad setting must fail and the message must start with its name. */
static void expect_rejected(const char *name, const char *value, const char *phrase)
{
    const char *kv[] = { name, value, NULL };
    cfg c;
    char err[CFG_ERR_LEN] = "";
    assert_int_equal(load(kv, &c, err), -1);
    assert_true(strncmp(err, name, strlen(name)) == 0);
    assert_non_null(strstr(err, phrase));
    assert_null(strchr(err, '\n'));
}

static void rejects_non_numbers(void **state)
{
    (void)state;
    expect_rejected("ADSYNC_CONCURRENCY", "abc", "not a number");
    expect_rejected("ADSYNC_CONCURRENCY", "12x", "not a number");
    expect_rejected("ADSYNC_CONCURRENCY", "-3", "not a number");
    expect_rejected("ADSYNC_CONCURRENCY", " 5", "not a number");
    expect_rejected("ADSYNC_MAX_ATTEMPTS", "1.5", "not a number");
}

static void rejects_out_of_range(void **state)
{
    (void)state;
    expect_rejected("ADSYNC_CONCURRENCY", "0", "out of range");
    expect_rejected("ADSYNC_CONCURRENCY", "100000", "out of range");
    expect_rejected("ADSYNC_PAGE_SIZE", "99999999999999999999999", "out of range");
    expect_rejected("ADSYNC_LEASE_MS", "10", "out of range");
    expect_rejected("ADSYNC_CONCURRENCY", "0", "from 1 to 4096");
}

static void rejects_empty(void **state)
{
    (void)state;
    expect_rejected("ADSYNC_CONCURRENCY", "", "empty");
    expect_rejected("REDIS_URL", "", "empty");
}

static void rejects_bad_urls(void **state)
{
    (void)state;
    expect_rejected("REDIS_URL", "http://127.0.0.1:6379", "redis://");
    expect_rejected("REDIS_URL", "redis://", "host is empty");
    expect_rejected("REDIS_URL", "redis://h:0", "port");
    expect_rejected("REDIS_URL", "redis://h:99999", "port");
    expect_rejected("REDIS_URL", "redis://h:12ab", "port");
    expect_rejected("REDIS_URL", "redis://h:6379/xyz", "database");
    expect_rejected("REDIS_URL", "redis://h:6379/16", "database");
    expect_rejected("REDIS_URL", "redis://h o:6379", "spaces");
    expect_rejected("AD_PLATFORM_URL", "ftp://x", "http://");
    expect_rejected("AD_PLATFORM_URL", "http://", "host is empty");
    expect_rejected("AD_PLATFORM_URL", "http://u:p@x", "credentials");
    expect_rejected("AD_PLATFORM_URL", "http://x/?a=1", "query");
    expect_rejected("ADSYNC_METRICS_ADDR", "9100", "host:port");
    expect_rejected("ADSYNC_METRICS_ADDR", "localhost:http", "port");
    expect_rejected("ADSYNC_PG_URL", "mysql://x", "postgresql://");
    expect_rejected("ADSYNC_PG_URL", "postgresql://h/db?bogus_option=1", "libpq cannot parse");
    expect_rejected("ADSYNC_PG_BATCH_ROWS", "5001", "out of range");
}

static void other_bad_values(void **state)
{
    (void)state;
    expect_rejected("ADSYNC_LOG_LEVEL", "loud", "debug, info, warn or error");
    expect_rejected("ADSYNC_LOG_FORMAT", "xml", "json or text");
    /* longer than the 16-byte buffer these are read into: refused, never written past it */
    expect_rejected("ADSYNC_LOG_LEVEL", "debugdebugdebugdebugdebugdebug", "ADSYNC_LOG_LEVEL");
    expect_rejected("ADSYNC_LOG_FORMAT", "jsonjsonjsonjsonjsonjsonjson", "ADSYNC_LOG_FORMAT");
    expect_rejected("ADSYNC_PREFIX", "a b", "invalid character");
    const char *kv[] = { "ADSYNC_BACKOFF_BASE_MS", "5000", "ADSYNC_BACKOFF_MAX_MS", "1000", NULL };
    cfg c;
    char err[CFG_ERR_LEN];
    assert_int_equal(load(kv, &c, err), -1);
    assert_non_null(strstr(err, "ADSYNC_BACKOFF_MAX_MS"));
}

static void url_passwords_never_echoed(void **state)
{
    (void)state;
    const char *bad[] = { "redis://user:hunter2secret@h:99999", "redis://user:hunter2secret@:1",
                          "redis://user:hunter2secret@h:1/77" };
    for (size_t i = 0; i < 3; i++) {
        const char *kv[] = { "REDIS_URL", bad[i], NULL };
        cfg c;
        char err[CFG_ERR_LEN];
        assert_int_equal(load(kv, &c, err), -1);
        assert_null(strstr(err, "hunter2"));
    }
    const char *pg[] = { "pg://me:hunter2secret@db/x", "postgresql://me:hunter2secret@db/x?bogus=1",
                         "postgresql://me:hunter2secret@[::1/x" };
    for (size_t i = 0; i < 3; i++) {
        const char *kv[] = { "ADSYNC_PG_URL", pg[i], NULL };
        cfg c;
        char err[CFG_ERR_LEN];
        assert_int_equal(load(kv, &c, err), -1);
        assert_null(strstr(err, "hunter2"));
    }
}

static void required_and_typed_getters(void **state)
{
    (void)state;
    const char *kv[] = { "N", "42", NULL };
    cfg_env env = { fake_get, (void *)kv };
    char err[CFG_ERR_LEN];
    unsigned u;
    char s[8];
    assert_int_equal(cfg_get_unsigned(&env, "N", 1, 0, 1, 100, &u, err, sizeof err), 0);
    assert_int_equal(u, 42);
    assert_int_equal(cfg_get_unsigned(&env, "MISSING", 0, 7, 1, 100, &u, err, sizeof err), 0);
    assert_int_equal(u, 7);
    assert_int_equal(cfg_get_unsigned(&env, "MISSING", 1, 7, 1, 100, &u, err, sizeof err), -1);
    assert_string_equal(err, "MISSING: missing, this variable is required");
    assert_int_equal(cfg_get_str(&env, "MISSING", 1, NULL, s, sizeof s, err, sizeof err), -1);
    assert_non_null(strstr(err, "MISSING"));
    assert_int_equal(cfg_get_str(&env, "N", 1, NULL, s, sizeof s, err, sizeof err), 0);
    assert_string_equal(s, "42");
    assert_int_equal(cfg_get_str(&env, "X", 0, "0123456789", s, sizeof s, err, sizeof err), -1);
    assert_non_null(strstr(err, "too long"));
}

static void url_forms(void **state)
{
    (void)state;
    cfg_redis_url r;
    cfg_http_url h;
    char err[CFG_ERR_LEN];
    assert_int_equal(cfg_parse_redis_url("R", "redis://localhost", &r, err, sizeof err), 0);
    assert_int_equal(r.port, 6379);
    assert_int_equal(cfg_parse_redis_url("R", "redis://:pw@[::1]:7001/2", &r, err, sizeof err), 0);
    assert_string_equal(r.host, "::1");
    assert_string_equal(r.password, "pw");
    assert_string_equal(r.user, "");
    assert_int_equal(r.port, 7001);
    assert_int_equal(r.db, 2);
    assert_int_equal(cfg_parse_http_url("H", "http://127.0.0.1:3001", &h, err, sizeof err), 0);
    assert_int_equal(h.port, 3001);
    assert_false(h.tls);
    assert_int_equal(cfg_parse_http_url("H", "http://api.test", &h, err, sizeof err), 0);
    assert_int_equal(h.port, 80);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults),
        cmocka_unit_test(overrides),
        cmocka_unit_test(rejects_non_numbers),
        cmocka_unit_test(rejects_out_of_range),
        cmocka_unit_test(rejects_empty),
        cmocka_unit_test(rejects_bad_urls),
        cmocka_unit_test(other_bad_values),
        cmocka_unit_test(url_passwords_never_echoed),
        cmocka_unit_test(required_and_typed_getters),
        cmocka_unit_test(url_forms),
        cmocka_unit_test(rate_limit_alias),
        cmocka_unit_test(redis_url_passwords),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
