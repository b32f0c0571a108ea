/* Unit tests for clock.c. */
#include "test_common.h"

#include <string.h>

#include "clock.h"

static void monotonic_never_goes_back(void **state)
{
    (void)state;
    uint64_t prev = clock_mono_ms();
    for (int i = 0; i < 100000; i++) {
        uint64_t now = clock_mono_ms();
        assert_true(now >= prev);
        prev = now;
    }
}

static void wall_is_epoch_ms(void **state)
{
    (void)state;
    uint64_t now = clock_wall_ms();
    assert_true(now > 1700000000000ull);      /* after 2023 */
    assert_true(now < 4102444800000ull);      /* before 2100 */
}

static void iso8601_format(void **state)
{
    (void)state;
    char buf[32];
    assert_string_equal(clock_iso8601(1735639200123ull, buf, sizeof buf), "2024-12-31T10:00:00.123Z");
    assert_string_equal(clock_iso8601(0, buf, sizeof buf), "1970-01-01T00:00:00.000Z");
    assert_int_equal(strlen(clock_iso8601(clock_wall_ms(), buf, sizeof buf)), 24);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(monotonic_never_goes_back),
        cmocka_unit_test(wall_is_epoch_ms),
        cmocka_unit_test(iso8601_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
