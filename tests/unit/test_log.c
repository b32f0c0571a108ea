/* Unit tests for log.c: both formats, levels, and above all that secrets
 * never reach the output, whichever way a caller passes them. */
#include "test_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static FILE *out;

static int setup(void **state)
{
    (void)state;
    out = tmpfile();
    return out ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    fclose(out);
    log_secret_clear();
    log_setup(LOG_INFO, LOG_FORMAT_TEXT, 2);
    return 0;
}

/* Returns everything logged since the last call (static buffer). */
static const char *captured(void)
{
    static char buf[65536];
    fflush(out);
    rewind(out);
    size_t n = fread(buf, 1, sizeof buf - 1, out);
    buf[n] = '\0';
    assert_int_equal(ftruncate(fileno(out), 0), 0);
    rewind(out);
    return buf;
}

static void use(log_format fmt)
{
    log_setup(LOG_DEBUG, fmt, fileno(out));
}

static void json_line_shape(void **state)
{
    (void)state;
    use(LOG_FORMAT_JSON);
    log_info("campaign synced", LOG_STR("client", "acme"), LOG_INT("ms", 42),
             LOG_STR("note", "say \"hi\"\n"));
    const char *s = captured();
    assert_non_null(strstr(s, "{\"ts\":\""));
    assert_non_null(strstr(s, "\"level\":\"info\",\"msg\":\"campaign synced\",\"client\":\"acme\",\"ms\":42"));
    assert_non_null(strstr(s, "\"note\":\"say \\\"hi\\\"\\u000a\"}\n"));
    assert_int_equal(strchr(s, '\n') - s + 1, (long)strlen(s));   /* exactly one line */
}

static void text_line_shape(void **state)
{
    (void)state;
    use(LOG_FORMAT_TEXT);
    log_warn("retrying", LOG_STR("client", "acme"), LOG_STR("reason", "HTTP 503 from platform"));
    const char *s = captured();
    assert_non_null(strstr(s, " warn  retrying client=acme reason=\"HTTP 503 from platform\"\n"));
}

static void no_fields(void **state)
{
    (void)state;
    use(LOG_FORMAT_JSON);
    log_error("bare");
    assert_non_null(strstr(captured(), "\"msg\":\"bare\"}\n"));
}

static void levels_filter(void **state)
{
    (void)state;
    log_setup(LOG_WARN, LOG_FORMAT_TEXT, fileno(out));
    log_debug("d");
    log_info("i");
    log_warn("w");
    const char *s = captured();
    assert_null(strstr(s, " d\n"));
    assert_null(strstr(s, " i\n"));
    assert_non_null(strstr(s, " w\n"));
    log_level l;
    assert_int_equal(log_level_parse("WARN", &l), 0);
    assert_int_equal(l, LOG_WARN);
    assert_int_equal(log_level_parse("verbose", &l), -1);
}

/* The core promise, in both formats: each way a secret can be handed to
 * the logger ends up masked. */
static void secrets_never_logged(log_format fmt)
{
    use(fmt);
    log_secret_add("s3cr3t-P@ssw0rd");
    log_secret_add("tok_9f8e7d6c5b4a");
    log_info("auth", LOG_STR("password", "plainpass-not-registered"));
    log_info("auth", LOG_STR("client_password", "plainpass-not-registered"));
    log_info("auth", LOG_STR("Authorization", "Basic dXNlcjpwYXNz"));
    log_info("auth", LOG_STR("access_token", "abc-not-registered"));
    log_info("upstream said: wrong s3cr3t-P@ssw0rd for user");
    log_info("request", LOG_STR("header", "Authorization: Bearer tok_9f8e7d6c5b4a"));
    log_info("request", LOG_STR("header", "authorization: bearer unregistered.jwt.value"));
    log_info("body", LOG_STR("body", "{\"access_token\": \"unregistered-token-xyz\",\"x\":1}"));
    log_info("body", LOG_STR("body", "{\"email\":\"a@b\",\"password\":\"unregistered-pw-q\"}"));
    log_info("embedded tok_9f8e7d6c5b4a twice tok_9f8e7d6c5b4a");
    const char *s = captured();
    const char *leaks[] = { "s3cr3t", "plainpass", "dXNlcjpwYXNz", "abc-not-registered", "tok_9f8e",
                            "unregistered.jwt", "unregistered-token", "unregistered-pw" };
    for (size_t i = 0; i < sizeof leaks / sizeof leaks[0]; i++) {
        if (strstr(s, leaks[i]))
            fail_msg("secret fragment '%s' leaked in:\n%s", leaks[i], s);
    }
    assert_non_null(strstr(s, "[REDACTED]"));
    assert_non_null(strstr(s, "upstream said: wrong [REDACTED] for user"));
}

static void secrets_json(void **state)
{
    (void)state;
    secrets_never_logged(LOG_FORMAT_JSON);
}

static void secrets_text(void **state)
{
    (void)state;
    secrets_never_logged(LOG_FORMAT_TEXT);
}

static void short_or_cleared_secrets(void **state)
{
    (void)state;
    use(LOG_FORMAT_TEXT);
    log_secret_add("abc");          /* too short to register: ignored */
    log_secret_add("longenough-1");
    log_info("abc longenough-1");
    const char *s = captured();
    assert_non_null(strstr(s, "abc [REDACTED]"));
    log_secret_clear();
    log_info("longenough-1");
    assert_non_null(strstr(captured(), "longenough-1"));
}

static void ring_keeps_newest(void **state)
{
    (void)state;
    use(LOG_FORMAT_TEXT);
    char name[32];
    for (int i = 0; i < LOG_MAX_SECRETS + 10; i++) {
        snprintf(name, sizeof name, "secret-%05d", i);
        log_secret_add(name);
    }
    snprintf(name, sizeof name, "secret-%05d", LOG_MAX_SECRETS + 9);
    log_info(name);
    assert_non_null(strstr(captured(), "[REDACTED]"));
}

static void long_lines_stay_one_valid_line(void **state)
{
    (void)state;
    use(LOG_FORMAT_JSON);
    char big[6000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    log_info("big", LOG_STR("a", big), LOG_STR("b", big), LOG_STR("c", big), LOG_STR("d", big),
             LOG_STR("e", big));
    const char *s = captured();
    size_t n = strlen(s);
    assert_true(n <= 8192);
    assert_int_equal(s[n - 1], '\n');
    assert_int_equal(s[n - 2], '}');
    assert_ptr_equal(strchr(s, '\n'), s + n - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(json_line_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(text_line_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(no_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(levels_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(secrets_json, setup, teardown),
        cmocka_unit_test_setup_teardown(secrets_text, setup, teardown),
        cmocka_unit_test_setup_teardown(short_or_cleared_secrets, setup, teardown),
        cmocka_unit_test_setup_teardown(ring_keeps_newest, setup, teardown),
        cmocka_unit_test_setup_teardown(long_lines_stay_one_valid_line, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
