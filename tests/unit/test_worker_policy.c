/* Unit tests of worker/policy: the failure table, case by case. */
#include "test_common.h"

#include "policy.h"

static const pol_limits limits = { .max_attempts = 4, .backoff_base_ms = 1000, .backoff_max_ms = 5000 };

typedef struct pol_case {
    const char *what;
    pol_failure failure;
    unsigned attempt;
    uint64_t retry_after_ms;
    int relogged;
    pol_action action;
    uint64_t delay_ms;    /* with unit01 = 1: the full backoff */
} pol_case;

static const pol_case cases[] = {
    { "first transient failure: base backoff", POL_TRANSIENT, 1, 0, 0, POL_RETRY, 1000 },
    { "third: doubled twice", POL_TRANSIENT, 3, 0, 0, POL_RETRY, 4000 },
    { "the platform asks for longer", POL_TRANSIENT, 1, 30000, 0, POL_RETRY, 30000 },
    { "last attempt spent", POL_TRANSIENT, 4, 0, 0, POL_DEAD, 0 },
    { "beyond the last", POL_TRANSIENT, 9, 0, 0, POL_DEAD, 0 },
    { "permanent on the first try", POL_PERMANENT, 1, 0, 0, POL_DEAD, 0 },
    { "too large to retry", POL_TOO_LARGE, 1, 0, 0, POL_DEAD, 0 },
    { "poison", POL_POISON, 1, 0, 0, POL_DEAD, 0 },
    { "a key of the wrong type", POL_WRONGTYPE, 1, 0, 0, POL_DEAD, 0 },
    { "429: cooldown, no attempt spent", POL_RATE_LIMITED, 4, 60000, 0, POL_COOLDOWN, 60000 },
    { "first 401: log in again", POL_AUTH_REJECTED, 1, 0, 0, POL_RELOGIN, 0 },
    { "401 after logging in again", POL_AUTH_REJECTED, 1, 0, 1, POL_DEAD, 0 },
};

static void the_failure_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const pol_case *c = &cases[i];
        pol_decision d = pol_decide(&limits, c->failure, c->attempt, c->retry_after_ms, c->relogged, 1.0);
        if (d.action != c->action || d.delay_ms != c->delay_ms)
            fail_msg("%s: action %d delay %llu, expected %d %llu", c->what, d.action,
                     (unsigned long long)d.delay_ms, c->action, (unsigned long long)c->delay_ms);
    }
}

static void backoff_is_jittered_and_capped(void **state)
{
    (void)state;
    pol_limits many = { .max_attempts = 100, .backoff_base_ms = 1000, .backoff_max_ms = 5000 };
    assert_int_equal(pol_decide(&many, POL_TRANSIENT, 1, 0, 0, 0.0).delay_ms, 500);
    assert_int_equal(pol_decide(&many, POL_TRANSIENT, 50, 0, 0, 1.0).delay_ms, 5000);
    assert_int_equal(pol_decide(&many, POL_TRANSIENT, 50, 0, 0, 0.0).delay_ms, 2500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_failure_table),
        cmocka_unit_test(backoff_is_jittered_and_capped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
