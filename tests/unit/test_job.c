/* Unit tests for job.c: round trips and every kind of malformed job. */
#include "test_common.h"

#include <stdlib.h>
#include <string.h>

#include "job.h"

#define CLIENT_JOB "{\"v\":1,\"id\":\"j1\",\"type\":\"client\",\"client\":\"acme\",\"run\":\"r1\"," \
                   "\"attempt\":0,\"enqueued_at\":1735800000123}"
#define CAMPAIGN_JOB "{\"v\":1,\"id\":\"j2\",\"type\":\"campaign\",\"client\":\"acme\",\"run\":\"r1\"," \
                     "\"campaign\":{\"id\":\"campaign_1\",\"name\":\"C \\\"1\\\"\",\"budget\":1100}," \
                     "\"attempt\":3,\"last_error\":\"timeout after 30000 ms\"}"

static void parse_client_job(void **state)
{
    (void)state;
    job j;
    char err[128];
    assert_int_equal(job_parse(CLIENT_JOB, strlen(CLIENT_JOB), &j, err, sizeof err), 0);
    assert_int_equal(j.type, JOB_CLIENT);
    assert_string_equal(j.id, "j1");
    assert_string_equal(j.client, "acme");
    assert_string_equal(j.run, "r1");
    assert_int_equal(j.attempt, 0);
    assert_int_equal(j.enqueued_at, 1735800000123ull);
    assert_null(j.last_error);
    assert_null(j.campaign);
    job_clear(&j);
}

static void campaign_round_trip(void **state)
{
    (void)state;
    job j, k;
    char err[128];
    assert_int_equal(job_parse(CAMPAIGN_JOB, strlen(CAMPAIGN_JOB), &j, err, sizeof err), 0);
    assert_int_equal(j.type, JOB_CAMPAIGN);
    assert_string_equal(j.campaign_id, "campaign_1");
    assert_int_equal(j.attempt, 3);
    assert_string_equal(j.last_error, "timeout after 30000 ms");
    char *text = job_serialize(&j);
    assert_non_null(text);
    assert_int_equal(job_parse(text, strlen(text), &k, err, sizeof err), 0);
    assert_string_equal(k.campaign, j.campaign);
    assert_string_equal(k.last_error, j.last_error);
    assert_int_equal(k.attempt, 3);
    assert_non_null(strstr(text, "\"name\":\"C \\\"1\\\"\""));
    free(text);
    job_clear(&j);
    job_clear(&k);
}

static void expect_bad(const char *text, const char *reason)
{
    job j;
    char err[128] = "";
    assert_int_equal(job_parse(text, strlen(text), &j, err, sizeof err), -1);
    if (strstr(err, reason) == NULL)
        fail_msg("for %s expected '%s', got '%s'", text, reason, err);
    assert_null(j.campaign);
    assert_null(j.last_error);
}

static void malformed_jobs(void **state)
{
    (void)state;
    expect_bad("", "not valid JSON");
    expect_bad("{", "not valid JSON");
    expect_bad("[1,2]", "not a JSON object");
    expect_bad(CLIENT_JOB " x", "trailing data");
    expect_bad("{\"v\":2,\"id\":\"j\",\"type\":\"client\",\"client\":\"a\",\"run\":\"r\"}", "version");
    expect_bad("{\"v\":1,\"id\":\"j\",\"type\":\"cron\",\"client\":\"a\",\"run\":\"r\"}", "\"type\"");
    expect_bad("{\"v\":1,\"type\":\"client\",\"client\":\"a\",\"run\":\"r\"}", "\"id\"");
    expect_bad("{\"v\":1,\"id\":\"j\",\"type\":\"client\",\"client\":\"a:b\",\"run\":\"r\"}", "invalid \"client\"");
    expect_bad("{\"v\":1,\"id\":\"j\",\"type\":\"client\",\"client\":7,\"run\":\"r\"}", "\"client\"");
    expect_bad("{\"v\":1,\"id\":\"j\",\"type\":\"client\",\"client\":\"a\",\"run\":\"r r\"}", "invalid \"run\"");
    /* ids become one segment of a key: "victim:items" would name run
     * victim's items hash */
    expect_bad("{\"v\":1,\"id\":\"j\",\"type\":\"client\",\"client\":\"a\",\"run\":\"victim:items\"}",
               "invalid \"run\"");
    expect_bad("{\"v\":1,\"id\":\"j:x\",\"type\":\"client\",\"client\":\"a\",\"run\":\"r\"}", "invalid \"id\"");
    expect_bad("{\"v\":1,\"id\":\"j\",\"type\":\"client\",\"client\":\"a\",\"run\":\"r\",\"attempt\":-1}", "attempt");
    expect_bad("{\"v\":1,\"id\":\"j\",\"type\":\"client\",\"client\":\"a\",\"run\":\"r\",\"attempt\":1.5}", "attempt");
    expect_bad("{\"v\":1,\"id\":\"j\",\"type\":\"client\",\"client\":\"a\",\"run\":\"r\",\"attempt\":\"3\"}", "attempt");
    expect_bad("{\"v\":1,\"id\":\"j\",\"type\":\"client\",\"client\":\"a\",\"run\":\"r\",\"last_error\":5}", "last_error");
    expect_bad("{\"v\":1,\"id\":\"j\",\"type\":\"campaign\",\"client\":\"a\",\"run\":\"r\"}", "not an object");
    expect_bad("{\"v\":1,\"id\":\"j\",\"type\":\"campaign\",\"client\":\"a\",\"run\":\"r\",\"campaign\":{}}", "\"id\"");
    expect_bad("{\"v\":1,\"id\":\"j\",\"type\":\"campaign\",\"client\":\"a\",\"run\":\"r\",\"campaign\":{\"id\":\"\"}}", "empty");
    expect_bad("{\"v\":1,\"id\":\"j\",\"type\":\"campaign\",\"client\":\"a\",\"run\":\"r\",\"campaign\":{\"id\":\"a\\u0001\"}}", "control");
    expect_bad("{\"v\":1,\"id\":\"j\",\"type\":\"client\",\"client\":\"a\",\"run\":\"r\",\"campaign\":{\"id\":\"x\"}}", "client job");
}

static void oversized_job(void **state)
{
    (void)state;
    size_t n = JOB_MAX_BYTES + 1;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    memcpy(big, CLIENT_JOB, strlen(CLIENT_JOB));
    big[n] = '\0';
    job j;
    char err[128];
    assert_int_equal(job_parse(big, n, &j, err, sizeof err), -1);
    assert_non_null(strstr(err, "limit"));
    free(big);
}

static void campaign_id_rules(void **state)
{
    (void)state;
    char long_id[300];
    memset(long_id, 'a', sizeof long_id);
    assert_null(job_campaign_id_problem("campaign_1", 10));
    assert_null(job_campaign_id_problem("a b/c?d#é", strlen("a b/c?d#é")));
    assert_non_null(job_campaign_id_problem("", 0));
    assert_non_null(job_campaign_id_problem(long_id, 257));
    assert_null(job_campaign_id_problem(long_id, 256));
    assert_non_null(job_campaign_id_problem("a\tb", 3));
}

static void byte_at_a_time_truncations_fail(void **state)
{
    (void)state;
    /* Every strict prefix of a valid job is invalid and must not crash. */
    size_t n = strlen(CAMPAIGN_JOB);
    for (size_t i = 0; i < n; i++) {
        char *copy = malloc(i ? i : 1);
        memcpy(copy, CAMPAIGN_JOB, i);
        job j;
        char err[128];
        assert_int_equal(job_parse(copy, i, &j, err, sizeof err), -1);
        free(copy);
    }
}

static void setters_and_ids(void **state)
{
    (void)state;
    job j;
    memset(&j, 0, sizeof j);
    char err[128];
    char big[2000];
    memset(big, 'e', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(job_set_error(&j, big), 0);
    assert_int_equal(strlen(j.last_error), JOB_ERROR_MAX);
    assert_int_equal(job_set_campaign(&j, "{\"id\":\"c9\",\"n\":1}", 18, err, sizeof err), 0);
    assert_string_equal(j.campaign_id, "c9");
    assert_int_equal(job_set_campaign(&j, "{\"n\":1}", 7, err, sizeof err), -1);
    assert_string_equal(j.campaign_id, "c9");   /* failure keeps the old value */
    job_clear(&j);

    char a[JOB_ID_LEN + 1], b[JOB_ID_LEN + 1];
    job_make_id(a);
    job_make_id(b);
    assert_int_equal(strlen(a), JOB_ID_LEN);
    assert_string_not_equal(a, b);
    assert_true(keys_valid_token(a));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_client_job),
        cmocka_unit_test(campaign_round_trip),
        cmocka_unit_test(malformed_jobs),
        cmocka_unit_test(oversized_job),
        cmocka_unit_test(campaign_id_rules),
        cmocka_unit_test(byte_at_a_time_truncations_fail),
        cmocka_unit_test(setters_and_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
