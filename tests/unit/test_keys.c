/* Unit tests for keys.c: the DESIGN.md §3 names and id validation. */
#include "test_common.h"

#include <string.h>

#include "keys.h"

static keys k;

static int setup(void **state)
{
    (void)state;
    keys_init(&k, "adsync");
    return 0;
}

static void global_keys(void **state)
{
    (void)state;
    char buf[KEYS_MAX_LEN];
    assert_int_equal(keys_global_key(&k, KEYS_JOBS, buf, sizeof buf), 11);
    assert_string_equal(buf, "adsync:jobs");
    keys_global_key(&k, KEYS_RETRY, buf, sizeof buf);
    assert_string_equal(buf, "adsync:retry");
    keys_global_key(&k, KEYS_DEAD, buf, sizeof buf);
    assert_string_equal(buf, "adsync:dead");
    keys_global_key(&k, KEYS_DELIVERIES, buf, sizeof buf);
    assert_string_equal(buf, "adsync:deliveries");
    keys_global_key(&k, KEYS_STATS, buf, sizeof buf);
    assert_string_equal(buf, "adsync:stats");
    assert_int_equal(keys_global_key(&k, (keys_global)99, buf, sizeof buf), -1);
}

static void client_keys(void **state)
{
    (void)state;
    char buf[KEYS_MAX_LEN];
    assert_true(keys_client_key(&k, "acme", KEYS_CLIENT, buf, sizeof buf) > 0);
    assert_string_equal(buf, "adsync:client:acme");
    keys_client_key(&k, "acme", KEYS_CLIENT_TOKEN, buf, sizeof buf);
    assert_string_equal(buf, "adsync:client:acme:token");
    keys_client_key(&k, "acme", KEYS_CLIENT_CAMPAIGNS, buf, sizeof buf);
    assert_string_equal(buf, "adsync:client:acme:campaigns");
    keys_client_key(&k, "acme", KEYS_CLIENT_ACTIVE_RUN, buf, sizeof buf);
    assert_string_equal(buf, "adsync:client:acme:active_run");
    keys_client_key(&k, "acme", KEYS_CLIENT_COOLDOWN, buf, sizeof buf);
    assert_string_equal(buf, "adsync:client:acme:cooldown");
    keys_client_key(&k, "acme", KEYS_CLIENT_RATELIMIT, buf, sizeof buf);
    assert_string_equal(buf, "adsync:client:acme:ratelimit");
}

static void hostile_client_ids_are_refused(void **state)
{
    (void)state;
    char buf[KEYS_MAX_LEN] = "x";
    const char *bad[] = { "", "acme:token", "a b", "-lead", "_lead", ".lead", "a/b", "a\nb", "ünï",
                          "a*", "0123456789012345678901234567890123456789012345678901234567890123x" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(keys_valid_client_id(bad[i]));
        assert_int_equal(keys_client_key(&k, bad[i], KEYS_CLIENT, buf, sizeof buf), -1);
        assert_string_equal(buf, "");
    }
    assert_false(keys_valid_client_id(NULL));
    assert_true(keys_valid_client_id("client_1"));
    assert_true(keys_valid_client_id("A.b-c_9"));
    assert_true(keys_valid_client_id("0123456789012345678901234567890123456789012345678901234567890123"));
}

static void run_worker_processing_keys(void **state)
{
    (void)state;
    char buf[KEYS_MAX_LEN];
    keys_run_key(&k, "1735800000123-abcdef", buf, sizeof buf);
    assert_string_equal(buf, "adsync:run:1735800000123-abcdef");
    keys_processing_key(&k, "host-1:42", buf, sizeof buf);
    assert_string_equal(buf, "adsync:processing:host-1:42");
    keys_worker_key(&k, "host-1:42", buf, sizeof buf);
    assert_string_equal(buf, "adsync:worker:host-1:42");
    keys_outbox_claim_key(&k, "host-1:42", buf, sizeof buf);
    assert_string_equal(buf, "adsync:outbox:host-1:42");
    assert_int_equal(keys_outbox_claim_key(&k, "a b", buf, sizeof buf), -1);
    assert_int_equal(keys_run_key(&k, "bad id", buf, sizeof buf), -1);
    assert_int_equal(keys_worker_key(&k, "", buf, sizeof buf), -1);
}

static void small_buffer_fails_cleanly(void **state)
{
    (void)state;
    char buf[8];
    assert_int_equal(keys_client_key(&k, "acme", KEYS_CLIENT_TOKEN, buf, sizeof buf), -1);
    assert_string_equal(buf, "");
}

static void custom_prefix(void **state)
{
    (void)state;
    keys other;
    char buf[KEYS_MAX_LEN];
    keys_init(&other, "test42");
    keys_client_key(&other, "c", KEYS_CLIENT_CAMPAIGNS, buf, sizeof buf);
    assert_string_equal(buf, "test42:client:c:campaigns");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(global_keys),
        cmocka_unit_test(client_keys),
        cmocka_unit_test(hostile_client_ids_are_refused),
        cmocka_unit_test(run_worker_processing_keys),
        cmocka_unit_test(small_buffer_fails_cleanly),
        cmocka_unit_test(custom_prefix),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
