/* Unit tests for ratepad.c: the limiter's window padding grows with the
 * measured lag and platform queueing, holds it for a window, doubles its
 * extra on unexpected 429s (once per burst), calms down, and stays capped. */
#include "test_common.h"

#include "ratepad.h"

enum { LIST, SYNC };
#define WINDOW 6000

static void floor_alone_when_nothing_is_late(void **state)
{
    (void)state;
    rl_pad p;
    rl_pad_init(&p);
    assert_int_equal(rl_pad_ms(&p, 1000, WINDOW), RL_PAD_FLOOR_MS);
    rl_pad_note(&p, 1000, WINDOW, SYNC, 0, 200000);   /* the platform's own 200 ms */
    rl_pad_note(&p, 1001, WINDOW, SYNC, 0, 200000);
    assert_int_equal(rl_pad_ms(&p, 1002, WINDOW), RL_PAD_FLOOR_MS);
}

static void client_lag_is_doubled(void **state)
{
    (void)state;
    rl_pad p;
    rl_pad_init(&p);
    rl_pad_note(&p, 1000, WINDOW, LIST, 7000, 100);
    assert_int_equal(rl_pad_ms(&p, 1001, WINDOW), RL_PAD_FLOOR_MS + 14);
}

/* Queueing in front of the platform's handler shows as time to first byte
 * above the endpoint's floor; each endpoint has its own floor. */
static void platform_queueing_counts_above_the_floor(void **state)
{
    (void)state;
    rl_pad p;
    rl_pad_init(&p);
    rl_pad_note(&p, 1000, WINDOW, SYNC, 0, 200000);
    rl_pad_note(&p, 1000, WINDOW, LIST, 0, 1000);
    rl_pad_note(&p, 1001, WINDOW, SYNC, 0, 240000);   /* 40 ms queued */
    assert_int_equal(rl_pad_ms(&p, 1002, WINDOW), RL_PAD_FLOOR_MS + 80);
}

/* The worst lag is held through the next window (the request `limit` later
 * is sent then), and forgotten after two calm ones. */
static void lag_is_held_for_a_window(void **state)
{
    (void)state;
    rl_pad p;
    rl_pad_init(&p);
    rl_pad_note(&p, 1000, WINDOW, LIST, 30000, 0);
    rl_pad_note(&p, 1000 + WINDOW, WINDOW, LIST, 0, 0);           /* next bucket */
    assert_int_equal(rl_pad_ms(&p, 1000 + WINDOW + 5000, WINDOW), RL_PAD_FLOOR_MS + 60);
    rl_pad_note(&p, 1000 + 2 * WINDOW, WINDOW, LIST, 0, 0);       /* and the one after */
    assert_int_equal(rl_pad_ms(&p, 1000 + 2 * WINDOW, WINDOW), RL_PAD_FLOOR_MS);
}

static void unexpected_429s_double_the_extra_once_per_burst(void **state)
{
    (void)state;
    rl_pad p;
    rl_pad_init(&p);
    rl_pad_on_429(&p, 1000, WINDOW);
    rl_pad_on_429(&p, 1005, WINDOW);   /* same burst */
    assert_int_equal(rl_pad_ms(&p, 1010, WINDOW), RL_PAD_FLOOR_MS + RL_PAD_EXTRA_MIN_MS);
    rl_pad_on_429(&p, 2100, WINDOW);
    assert_int_equal(rl_pad_ms(&p, 2110, WINDOW), RL_PAD_FLOOR_MS + 2 * RL_PAD_EXTRA_MIN_MS);
    /* a calm window halves it, another halves it again */
    assert_int_equal(rl_pad_ms(&p, 2100 + WINDOW, WINDOW), RL_PAD_FLOOR_MS + RL_PAD_EXTRA_MIN_MS);
    assert_int_equal(rl_pad_ms(&p, 2100 + 2 * WINDOW, WINDOW), RL_PAD_FLOOR_MS + RL_PAD_EXTRA_MIN_MS / 2);
}

static void never_more_than_a_tenth_of_the_window(void **state)
{
    (void)state;
    rl_pad p;
    rl_pad_init(&p);
    rl_pad_note(&p, 1000, WINDOW, LIST, 5000000, 0);   /* a 5 s stall */
    assert_int_equal(rl_pad_ms(&p, 1001, WINDOW), WINDOW / 10);
    for (uint64_t t = 2000; t < 200000; t += 1100)
        rl_pad_on_429(&p, t, WINDOW);
    assert_int_equal(rl_pad_ms(&p, 200000, WINDOW), WINDOW / 10);
    assert_int_equal(rl_pad_ms(&p, 200000, 50), RL_PAD_FLOOR_MS);   /* tiny windows keep the floor */
}

/* A platform that became slower for good stops counting as queueing. */
static void floor_follows_a_slower_platform(void **state)
{
    (void)state;
    rl_pad p;
    rl_pad_init(&p);
    rl_pad_note(&p, 0, WINDOW, SYNC, 0, 100000);
    for (int i = 0; i < 2000; i++)
        rl_pad_note(&p, 1, WINDOW, SYNC, 0, 300000);
    rl_pad_note(&p, 2 * WINDOW + 1, WINDOW, SYNC, 0, 300000);   /* new buckets: old worst gone */
    rl_pad_note(&p, 3 * WINDOW + 1, WINDOW, SYNC, 0, 300000);
    assert_true(rl_pad_ms(&p, 3 * WINDOW + 2, WINDOW) <= RL_PAD_FLOOR_MS + 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(floor_alone_when_nothing_is_late),
        cmocka_unit_test(client_lag_is_doubled),
        cmocka_unit_test(platform_queueing_counts_above_the_floor),
        cmocka_unit_test(lag_is_held_for_a_window),
        cmocka_unit_test(unexpected_429s_double_the_extra_once_per_burst),
        cmocka_unit_test(never_more_than_a_tenth_of_the_window),
        cmocka_unit_test(floor_follows_a_slower_platform),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
