/* Unit tests for api.c: classification and hostile response bodies. */
#include "test_common.h"

#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "job.h"

static void classification(void **state)
{
    (void)state;
    assert_int_equal(api_classify(HTTP_OK, 200), API_OK);
    assert_int_equal(api_classify(HTTP_OK, 401), API_REAUTH);
    assert_int_equal(api_classify(HTTP_OK, 429), API_RATE_LIMITED);
    assert_int_equal(api_classify(HTTP_OK, 400), API_PERMANENT);
    assert_int_equal(api_classify(HTTP_OK, 404), API_PERMANENT);
    assert_int_equal(api_classify(HTTP_OK, 500), API_RETRY);
    assert_int_equal(api_classify(HTTP_OK, 503), API_RETRY);
    assert_int_equal(api_classify(HTTP_ERR_TIMEOUT, 0), API_RETRY);
    assert_int_equal(api_classify(HTTP_ERR_CONNECT, 0), API_RETRY);
    assert_int_equal(api_classify(HTTP_ERR_CLOSED, 0), API_RETRY);
    assert_int_equal(api_classify(HTTP_ERR_TOO_LARGE, 0), API_RETRY);
}

static void token_bodies(void **state)
{
    (void)state;
    char tok[API_TOKEN_MAX], err[128];
    long exp = 0;
    const char *good = "{\"access_token\":\"abc123\",\"token_type\":\"Bearer\",\"expires_in\":3600,\"issued_at\":1}";
    assert_int_equal(api_parse_token(good, strlen(good), tok, sizeof tok, &exp, err, sizeof err), 0);
    assert_string_equal(tok, "abc123");
    assert_int_equal(exp, 3600);
    const char *bad[] = { "", "nope", "[]", "{\"access_token\":5,\"expires_in\":3600}",
                          "{\"access_token\":\"\",\"expires_in\":3600}", "{\"access_token\":\"a\"}",
                          "{\"access_token\":\"a\",\"expires_in\":\"3600\"}",
                          "{\"access_token\":\"a\\r\\nX-Evil: 1\",\"expires_in\":3600}",
                          "{\"access_token\":\"a\",\"expires_in\":-5}" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(api_parse_token(bad[i], strlen(bad[i]), tok, sizeof tok, &exp, err, sizeof err), -1);
}

static void page_bodies(void **state)
{
    (void)state;
    api_page p;
    char err[128];
    const char *good = "{\"data\":[{\"id\":\"campaign_1\",\"name\":\"C 1\",\"budget\":1100},"
                       "{\"id\":\"\"},{\"id\":\"a\\u0001b\"}],"
                       "\"pagination\":{\"page\":1,\"limit\":10,\"total\":3,\"has_more\":true}}";
    assert_int_equal(api_parse_page(good, strlen(good), 10, &p, err, sizeof err), 0);
    assert_int_equal(p.n, 3);
    assert_true(p.has_more);
    assert_string_equal(p.items[0].id, "campaign_1");
    assert_null(p.items[0].problem);
    assert_non_null(strstr(p.items[0].json, "\"budget\":1100"));
    assert_non_null(p.items[1].problem);
    assert_non_null(p.items[2].problem);
    api_page_clear(&p);

    const char *bad[] = { "", "{", "{\"data\":{},\"pagination\":{\"has_more\":false}}",
                          "{\"data\":[],\"pagination\":{\"has_more\":\"no\"}}",
                          "{\"data\":[{\"id\":7}],\"pagination\":{\"has_more\":false}}",
                          "{\"data\":[1],\"pagination\":{\"has_more\":false}}",
                          "{\"data\":[]}", "<html>oops</html>" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(api_parse_page(bad[i], strlen(bad[i]), 10, &p, err, sizeof err), -1);
        assert_int_equal(p.n, 0);
        assert_null(p.items);
    }
    /* every truncation of a good page is rejected without crashing */
    for (size_t n = 0; n < strlen(good); n++) {
        char *copy = malloc(n + 1);
        memcpy(copy, good, n);
        assert_int_equal(api_parse_page(copy, n, 10, &p, err, sizeof err), -1);
        free(copy);
    }
}

/* DESIGN.md §2: pagination fields that disagree; the tightest bound wins. */
static void last_page_takes_the_tightest_bound(void **state)
{
    (void)state;
    api_page p;
    char err[128];
#define PAGE(items, more, total) \
    "{\"data\":[" items "],\"pagination\":{\"page\":1,\"limit\":2,\"total\":" total ",\"has_more\":" more "}}"
    struct { const char *body; unsigned page; int last; } cases[] = {
        { PAGE("{\"id\":\"a\"},{\"id\":\"b\"}", "true", "10"), 1, 0 },    /* agreeing: more to come */
        { PAGE("{\"id\":\"a\"},{\"id\":\"b\"}", "false", "10"), 1, 1 },   /* has_more says stop */
        { PAGE("{\"id\":\"a\"}", "true", "10"), 1, 1 },                     /* a short page */
        { PAGE("", "true", "10"), 1, 1 },                                      /* an empty page */
        { PAGE("{\"id\":\"a\"},{\"id\":\"b\"}", "true", "4"), 2, 1 },     /* total reached */
        { PAGE("{\"id\":\"a\"},{\"id\":\"b\"}", "true", "5"), 2, 0 },
        { PAGE("{\"id\":\"a\"},{\"id\":\"b\"}", "true", "\"x\""), 3, 0 },  /* a total that is no count */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(api_parse_page(cases[i].body, strlen(cases[i].body), 10, &p, err, sizeof err), 0);
        assert_int_equal(api_page_is_last(&p, cases[i].page, 2), cases[i].last);
        api_page_clear(&p);
    }
#undef PAGE
}

static void sync_bodies(void **state)
{
    (void)state;
    char at[64], err[128];
    const char *good = "{\"success\":true,\"campaign_id\":\"c\",\"synced_at\":\"2026-01-01T00:00:00.000Z\"}";
    assert_int_equal(api_parse_sync(good, strlen(good), at, sizeof at, err, sizeof err), 0);
    assert_string_equal(at, "2026-01-01T00:00:00.000Z");
    const char *bad[] = { "{\"success\":false,\"synced_at\":\"x\"}", "{\"success\":true}",
                          "{\"success\":\"true\",\"synced_at\":\"x\"}", "{\"success\":true,\"synced_at\":3}", "x" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(api_parse_sync(bad[i], strlen(bad[i]), at, sizeof at, err, sizeof err), -1);
}

static void urls_and_bodies(void **state)
{
    (void)state;
    char url[512], *body;
    const char *odd = "a b/c?d#é";
    api_call sync = { .id = odd, .id_len = strlen(odd) }, list = { .page = 3, .limit = 10 };
    assert_int_equal(api_request(API_EP_SYNC, "http://h:1", &sync, url, sizeof url, &body), 0);
    assert_string_equal(url, "http://h:1/api/campaigns/a%20b%2Fc%3Fd%23%C3%A9/sync");
    assert_string_equal(body, "{\"campaign_id\":\"a b/c?d#é\"}");
    free(body);
    assert_int_equal(api_request(API_EP_SYNC, "http://h:1", &sync, url, 20, &body), -1);
    assert_null(body);
    assert_int_equal(api_request(API_EP_LIST, "http://h:1", &list, url, sizeof url, &body), 0);
    assert_string_equal(url, "http://h:1/api/campaigns?page=3&limit=10");
    assert_null(body);   /* a GET */
    assert_int_equal(api_request(API_EP_AUTH, "http://h:1", &list, url, sizeof url, &body), 0);
    assert_string_equal(url, "http://h:1/auth/token");
    assert_null(body);
    api_call quote = { .id = "q\"uote", .id_len = 6 };
    assert_int_equal(api_request(API_EP_SYNC, "http://h:1", &quote, url, sizeof url, &body), 0);
    assert_string_equal(body, "{\"campaign_id\":\"q\\\"uote\"}");
    free(body);
    for (int e = 0; e < API_EP_COUNT; e++) {   /* every row complete */
        assert_non_null(api_endpoints[e].name);
        assert_non_null(api_endpoints[e].method);
        assert_non_null(api_endpoints[e].url);
    }
    assert_string_equal(api_endpoints[API_EP_LIST].method, "GET");
    assert_true(api_endpoints[API_EP_LIST].budgeted);
    char *stored = api_stored_campaign("{\"id\":\"c1\",\"run\":\"old\",\"n\":1}", "2026", "r1");
    assert_string_equal(stored, "{\"id\":\"c1\",\"n\":1,\"synced_at\":\"2026\",\"run\":\"r1\"}");
    free(stored);
    assert_null(api_stored_campaign("[1]", "a", "b"));
}

static void basic_auth(void **state)
{
    (void)state;
    char h[256];
    assert_int_equal(api_basic_auth_header("user", "pass", h, sizeof h), 0);
    assert_string_equal(h, "Authorization: Basic dXNlcjpwYXNz");
    assert_int_equal(api_basic_auth_header("a@example.test", "secret-client_1", h, sizeof h), 0);
    assert_string_equal(h, "Authorization: Basic YUBleGFtcGxlLnRlc3Q6c2VjcmV0LWNsaWVudF8x");
    assert_int_equal(api_basic_auth_header("user", "pass", h, 20), -1);
}

static void retry_after(void **state)
{
    (void)state;
    const char *body = "{\"error\":\"Rate limit exceeded\",\"retry_after\":12}";
    assert_int_equal(api_retry_after_ms(7, body, strlen(body)), 7000);
    assert_int_equal(api_retry_after_ms(0, body, strlen(body)), 12000);
    assert_int_equal(api_retry_after_ms(0, "junk", 4), 60000);
    assert_int_equal(api_retry_after_ms(0, NULL, 0), 60000);
    assert_int_equal(api_retry_after_ms(999999, NULL, 0), 3600000);
}

static void failure_text(void **state)
{
    (void)state;
    char out[128];
    http_result r = { .error = HTTP_OK, .status = 503 };
    api_describe_failure(&r, NULL, out, sizeof out);
    assert_string_equal(out, "HTTP 503");
    api_describe_failure(&r, "not JSON", out, sizeof out);
    assert_string_equal(out, "malformed body (HTTP 503): not JSON");
    http_result t = { .error = HTTP_ERR_TIMEOUT, .detail = "timeout after 1000 ms" };
    api_describe_failure(&t, NULL, out, sizeof out);
    assert_string_equal(out, "timeout after 1000 ms");
}

/* Hardening row 7: a campaign is stored as the platform wrote it. */
static void numbers_survive_listing_storing_and_retries(void **state)
{
    (void)state;
    api_page p;
    char err[128];
    const char *body = "{\"data\":[{\"id\":\"c\",\"big\":9007199254740993,\"huge\":1e400,"
                       "\"exact\":0.1000000000000000055511151231257827}],"
                       "\"pagination\":{\"has_more\":false}}";
    assert_int_equal(api_parse_page(body, strlen(body), 10, &p, err, sizeof err), 0);
    assert_string_equal(p.items[0].json, "{\"id\":\"c\",\"big\":9007199254740993,\"huge\":1e400,"
                                         "\"exact\":0.1000000000000000055511151231257827}");
    char *stored = api_stored_campaign(p.items[0].json, "at\"1\n", "r1");
    assert_string_equal(stored, "{\"id\":\"c\",\"big\":9007199254740993,\"huge\":1e400,"
                                "\"exact\":0.1000000000000000055511151231257827,"
                                "\"synced_at\":\"at\\\"1\\u000a\",\"run\":\"r1\"}");
    free(stored);

    /* through a retry job and back */
    job j = { .type = JOB_CAMPAIGN, .id = "j1", .client = "acme", .run = "r1" };
    assert_int_equal(job_set_campaign(&j, p.items[0].json, strlen(p.items[0].json), err, sizeof err), 0);
    char *text = job_serialize(&j);
    job back;
    assert_int_equal(job_parse(text, strlen(text), &back, err, sizeof err), 0);
    assert_string_equal(back.campaign, p.items[0].json);
    free(text);
    job_clear(&j);
    job_clear(&back);
    api_page_clear(&p);

    stored = api_stored_campaign("{ }", "a", "r");
    assert_string_equal(stored, "{ \"synced_at\":\"a\",\"run\":\"r\"}");
    free(stored);
}

/* Hardening row 3: items are counted before any is parsed. */
static void pages_over_the_item_cap_are_refused(void **state)
{
    (void)state;
    api_page p;
    char err[128];
    const char *three = "{\"data\":[{\"id\":\"a\"},{\"id\":\"b\"},{\"id\":\"c\"}],"
                        "\"pagination\":{\"has_more\":false}}";
    assert_int_equal(api_parse_page(three, strlen(three), 2, &p, err, sizeof err), -1);
    assert_string_equal(err, "page has more than 2 items");
    assert_null(p.items);
    assert_int_equal(api_parse_page(three, strlen(three), 3, &p, err, sizeof err), 0);
    assert_int_equal(p.n, 3);
    api_page_clear(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(classification), cmocka_unit_test(token_bodies),
        cmocka_unit_test(page_bodies),    cmocka_unit_test(sync_bodies),
        cmocka_unit_test(urls_and_bodies), cmocka_unit_test(basic_auth),
        cmocka_unit_test(retry_after),    cmocka_unit_test(failure_text),
        cmocka_unit_test(last_page_takes_the_tightest_bound),
        cmocka_unit_test(numbers_survive_listing_storing_and_retries),
        cmocka_unit_test(pages_over_the_item_cap_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
