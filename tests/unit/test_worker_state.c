/* Unit tests of worker/jobstate: the held job's state machine. Every
 * (state, event) pair is checked against the table written out here, so a
 * change to jobstate.c that this file does not repeat fails; out of memory
 * and shutdown are checked in every state on their own. */
#include "test_common.h"

#include "jobstate.h"

typedef struct move {
    js_state from;
    js_event on;
    js_state to;
} move;

/* Every transition there is; any other pair leaves the state alone. */
static const move moves[] = {
    { JS_STARTING, JE_BEGIN_CLIENT, JS_LISTING },   { JS_STARTING, JE_BEGIN_CAMPAIGN, JS_SYNCING },
    { JS_STARTING, JE_NO_MEMORY, JS_ABORTED },      { JS_STARTING, JE_SHUTDOWN, JS_ABORTED },
    { JS_STARTING, JE_END_SENT, JS_ENDING },

    { JS_LISTING, JE_LAST_PAGE, JS_SYNCING },       { JS_LISTING, JE_LIST_RETRY, JS_FAILED },
    { JS_LISTING, JE_GIVE_UP, JS_GIVEN_UP },        { JS_LISTING, JE_NO_MEMORY, JS_ABORTED },
    { JS_LISTING, JE_SHUTDOWN, JS_ABORTED },        { JS_LISTING, JE_END_SENT, JS_ENDING },

    { JS_SYNCING, JE_GIVE_UP, JS_GIVEN_UP },        { JS_SYNCING, JE_NO_MEMORY, JS_ABORTED },
    { JS_SYNCING, JE_SHUTDOWN, JS_ABORTED },        { JS_SYNCING, JE_END_SENT, JS_ENDING },

    { JS_FAILED, JE_LIST_RETRY, JS_FAILED },        { JS_FAILED, JE_GIVE_UP, JS_GIVEN_UP },
    { JS_FAILED, JE_NO_MEMORY, JS_ABORTED },        { JS_FAILED, JE_SHUTDOWN, JS_ABORTED },
    { JS_FAILED, JE_END_SENT, JS_ENDING },

    { JS_GIVEN_UP, JE_GIVE_UP, JS_GIVEN_UP },       { JS_GIVEN_UP, JE_LIST_RETRY, JS_GIVEN_UP },
    { JS_GIVEN_UP, JE_LAST_PAGE, JS_GIVEN_UP },     { JS_GIVEN_UP, JE_NO_MEMORY, JS_ABORTED },
    { JS_GIVEN_UP, JE_SHUTDOWN, JS_ABORTED },       { JS_GIVEN_UP, JE_END_SENT, JS_ENDING },

    { JS_ABORTED, JE_NO_MEMORY, JS_ABORTED },       { JS_ABORTED, JE_SHUTDOWN, JS_ABORTED },
    { JS_ABORTED, JE_LIST_RETRY, JS_ABORTED },      { JS_ABORTED, JE_GIVE_UP, JS_ABORTED },
    { JS_ABORTED, JE_LAST_PAGE, JS_ABORTED },       { JS_ABORTED, JE_END_SENT, JS_ENDING },

    { JS_ENDING, JE_END_LANDED, JS_ENDED },         { JS_ENDING, JE_END_REFUSED, JS_GIVEN_UP },
};

static const move *find(js_state s, js_event e)
{
    for (size_t i = 0; i < sizeof moves / sizeof moves[0]; i++)
        if (moves[i].from == s && moves[i].on == e)
            return &moves[i];
    return NULL;
}

static void every_pair_as_the_table_says(void **state)
{
    (void)state;
    for (int s = 0; s < JS_COUNT; s++) {
        for (int e = 0; e < JE_COUNT; e++) {
            const move *m = find((js_state)s, (js_event)e);
            int ignored = -1;
            js_state to = js_next((js_state)s, (js_event)e, &ignored);
            if (m && (ignored || to != m->to))
                fail_msg("%s on %s: got %s (ignored %d), expected %s", js_state_names[s], js_event_names[e],
                         js_state_names[to], ignored, js_state_names[m->to]);
            if (!m && (!ignored || to != (js_state)s))
                fail_msg("%s on %s: moved to %s, expected to be ignored", js_state_names[s], js_event_names[e],
                         js_state_names[to]);
        }
    }
}

/* The promise behind the OOM-injection check: a step that cannot be carried
 * out, or a shutdown, never parks a job. Before its last write it is aborted
 * (handed back when quiet); once the last write is on its way, that write
 * decides. */
static void no_memory_and_shutdown_in_every_state(void **state)
{
    (void)state;
    const js_event hits[] = { JE_NO_MEMORY, JE_SHUTDOWN };
    for (size_t i = 0; i < 2; i++) {
        for (int s = 0; s < JS_COUNT; s++) {
            int ignored;
            js_state to = js_next((js_state)s, hits[i], &ignored);
            if (s == JS_ENDING || s == JS_ENDED) {
                assert_true(ignored);
                assert_int_equal(to, s);
            } else {
                assert_false(ignored);
                assert_int_equal(to, JS_ABORTED);
            }
        }
    }
}

/* From every state but ENDED some sequence of events reaches ENDED, and an
 * aborted job's only way out is its hand-back (END_SENT). */
static void every_state_can_end(void **state)
{
    (void)state;
    for (int s = 0; s < JS_ENDED; s++) {
        js_state at = (js_state)s;
        int ignored;
        at = js_next(at, JE_END_SENT, &ignored);
        if (at != JS_ENDING)
            fail_msg("%s: END_SENT leads to %s", js_state_names[s], js_state_names[at]);
        assert_int_equal(js_next(at, JE_END_LANDED, &ignored), JS_ENDED);
    }
    for (int e = 0; e < JE_COUNT; e++) {
        js_state to = js_next(JS_ABORTED, (js_event)e, NULL);
        assert_int_equal(to, e == JE_END_SENT ? JS_ENDING : JS_ABORTED);
    }
}

static void refused_end_write_gives_up_then_buries(void **state)
{
    (void)state;
    js_state s = js_next(JS_STARTING, JE_BEGIN_CLIENT, NULL);
    s = js_next(s, JE_LAST_PAGE, NULL);
    s = js_next(s, JE_END_SENT, NULL);
    s = js_next(s, JE_END_REFUSED, NULL);   /* a key of the wrong type: nothing written */
    assert_int_equal(s, JS_GIVEN_UP);
    s = js_next(s, JE_END_SENT, NULL);      /* the dead letter */
    assert_int_equal(js_next(s, JE_END_LANDED, NULL), JS_ENDED);
}

static void names_for_every_state_and_event(void **state)
{
    (void)state;
    for (int s = 0; s < JS_COUNT; s++)
        assert_non_null(js_state_names[s]);
    for (int e = 0; e < JE_COUNT; e++)
        assert_non_null(js_event_names[e]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_pair_as_the_table_says),
        cmocka_unit_test(no_memory_and_shutdown_in_every_state),
        cmocka_unit_test(every_state_can_end),
        cmocka_unit_test(refused_end_write_gives_up_then_buries),
        cmocka_unit_test(names_for_every_state_and_event),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
