/* Unit tests for backoff.c: the DESIGN.md §4 formula, caps and jitter. */
#include "test_common.h"

#include "backoff.h"

static void doubles_from_base(void **state)
{
    (void)state;
    assert_int_equal(backoff_ms(1, 1000, 300000, 1.0), 1000);
    assert_int_equal(backoff_ms(2, 1000, 300000, 1.0), 2000);
    assert_int_equal(backoff_ms(3, 1000, 300000, 1.0), 4000);
    assert_int_equal(backoff_ms(0, 1000, 300000, 1.0), 1000);
}

static void capped_at_max(void **state)
{
    (void)state;
    assert_int_equal(backoff_ms(20, 1000, 300000, 1.0), 300000);
    assert_int_equal(backoff_ms(4000000000u, 1000, 300000, 1.0), 300000);
}

static void jitter_halves_at_most(void **state)
{
    (void)state;
    assert_int_equal(backoff_ms(3, 1000, 300000, 0.0), 2000);
    assert_int_equal(backoff_ms(3, 1000, 300000, -5.0), 2000);
    assert_int_equal(backoff_ms(3, 1000, 300000, 7.0), 4000);
    for (int i = 0; i < 1000; i++) {
        uint64_t d = backoff_ms(5, 100, 100000, backoff_unit_random());
        assert_in_range(d, 800, 1600);
    }
}

static void retry_after_is_a_floor(void **state)
{
    (void)state;
    assert_int_equal(backoff_due_ms(1000, 500, 60000), 61000);
    assert_int_equal(backoff_due_ms(1000, 90000, 60000), 91000);
    assert_int_equal(backoff_due_ms(1000, 500, 0), 1500);
}

static void random_is_in_unit_interval(void **state)
{
    (void)state;
    double lo = 1, hi = 0;
    for (int i = 0; i < 10000; i++) {
        double r = backoff_unit_random();
        assert_true(r >= 0.0 && r < 1.0);
        lo = r < lo ? r : lo;
        hi = r > hi ? r : hi;
    }
    assert_true(lo < 0.01 && hi > 0.99);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(doubles_from_base),
        cmocka_unit_test(capped_at_max),
        cmocka_unit_test(jitter_halves_at_most),
        cmocka_unit_test(retry_after_is_a_floor),
        cmocka_unit_test(random_is_in_unit_interval),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
