/* Unit tests of worker/store without Redis: an st_conn that records what
 * the store sends and lets the test answer, lose the connection or refuse.
 * Writes go out in order, wait while the connection is down, are replayed
 * in their order after an outage, retried after a refusal or a failed send
 * (but for a plain command's WRONGTYPE, which is its answer), and each
 * one's done runs exactly once. */
#include "test_common.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "store.h"

#define MAX_OUT 1024

typedef struct out {
    rds_reply_fn *cb;
    void *arg;
    char tag[16];   /* argv[0] of the write */
} out;

typedef struct bench {
    uv_loop_t loop;
    store *st;
    int connected, send_fails;
    out out[MAX_OUT];       /* sent, not answered, oldest first */
    size_t nout;
    char sent_log[256];     /* tags in the order they were sent, space separated */
    char done_log[256];     /* tags in the order their done ran */
    unsigned landed;
} bench;

static int fake_send(void *ud, int script, int nkeys, int argc, const char **argv, const size_t *lens,
                     rds_reply_fn *cb, void *arg)
{
    bench *b = ud;
    assert_true(script == 7 || script == ST_COMMAND);
    assert_int_equal(nkeys, script == ST_COMMAND ? 0 : 1);
    assert_int_equal(argc, 2);
    assert_int_equal(lens[0], strlen(argv[0]));
    if (b->send_fails)
        return -1;
    assert_true(b->nout < MAX_OUT);
    out *o = &b->out[b->nout++];
    o->cb = cb;
    o->arg = arg;
    snprintf(o->tag, sizeof o->tag, "%s", argv[0]);
    if (strlen(b->sent_log) + strlen(argv[0]) + 2 < sizeof b->sent_log) {
        strcat(b->sent_log, argv[0]);
        strcat(b->sent_log, " ");
    }
    return 0;
}

static int fake_connected(void *ud)
{
    return ((bench *)ud)->connected;
}

static void on_landed(void *ud)
{
    ((bench *)ud)->landed++;
}

static void on_done(redisReply *reply, void *ud)
{
    bench *b = ud;
    assert_non_null(reply);
    char tag[16];
    if (reply->type == REDIS_REPLY_ERROR)
        snprintf(tag, sizeof tag, "error ");
    else
        snprintf(tag, sizeof tag, "w%lld ", reply->integer);
    if (strlen(b->done_log) + strlen(tag) < sizeof b->done_log)
        strcat(b->done_log, tag);
}

static int setup(void **state)
{
    bench *b = calloc(1, sizeof *b);
    uv_loop_init(&b->loop);
    b->connected = 1;
    st_conn conn = { fake_send, fake_connected, b };
    b->st = st_new_on(&b->loop, &conn, on_landed, b);
    assert_non_null(b->st);
    *state = b;
    return 0;
}

static int teardown(void **state)
{
    bench *b = *state;
    st_free(b->st);
    uv_run(&b->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&b->loop), 0);
    free(b);
    return 0;
}

static void write_n(bench *b, int from, int to)
{
    for (int i = from; i <= to; i++) {
        char tag[16];
        snprintf(tag, sizeof tag, "w%d", i);
        const char *argv[] = { tag, "value" };
        assert_int_equal(st_script(b->st, 7, 1, 2, argv, NULL, on_done, b), 0);
    }
}

/* Answers the oldest write out with its number, or loses it (NULL), or
 * refuses it (an error reply: 'e' out of memory, 'w' WRONGTYPE). */
static void answer(bench *b, int how)
{
    assert_true(b->nout > 0);
    out o = b->out[0];
    memmove(b->out, b->out + 1, --b->nout * sizeof *b->out);
    redisReply r;
    memset(&r, 0, sizeof r);
    if (how == 'n') {
        o.cb(NULL, NULL, o.arg);
        return;
    }
    if (how == 'e' || how == 'w') {
        r.type = REDIS_REPLY_ERROR;
        r.str = how == 'e' ? (char *)"OOM command not allowed"
                           : (char *)"WRONGTYPE Operation against a key holding the wrong kind of value";
        r.len = strlen(r.str);
    } else {
        r.type = REDIS_REPLY_INTEGER;
        r.integer = atoll(o.tag + 1);
    }
    o.cb(NULL, &r, o.arg);
}

static void in_order_and_each_done_once(void **state)
{
    bench *b = *state;
    write_n(b, 1, 3);
    assert_string_equal(b->sent_log, "w1 w2 w3 ");
    assert_int_equal(st_backlog(b->st), 3);
    while (b->nout > 0)
        answer(b, 'y');
    assert_string_equal(b->done_log, "w1 w2 w3 ");
    assert_int_equal(b->landed, 3);
    assert_int_equal(st_backlog(b->st), 0);
}

static void waits_while_disconnected(void **state)
{
    bench *b = *state;
    b->connected = 0;
    write_n(b, 1, 3);
    assert_int_equal(b->nout, 0);
    assert_int_equal(st_backlog(b->st), 3);
    b->connected = 1;
    st_on_connected(b->st);
    assert_string_equal(b->sent_log, "w1 w2 w3 ");
}

static void replayed_in_order_after_an_outage(void **state)
{
    bench *b = *state;
    write_n(b, 1, 4);
    answer(b, 'y');   /* w1 landed */
    b->connected = 0;
    answer(b, 'n');   /* w2..w4 lost with the connection: may or may not have run */
    answer(b, 'n');
    answer(b, 'n');
    write_n(b, 5, 5); /* during the outage */
    assert_int_equal(st_backlog(b->st), 4);
    assert_string_equal(b->done_log, "w1 ");
    b->sent_log[0] = '\0';
    b->connected = 1;
    st_on_connected(b->st);
    assert_string_equal(b->sent_log, "w2 w3 w4 w5 ");   /* again, in their order */
    while (b->nout > 0)
        answer(b, 'y');
    assert_string_equal(b->done_log, "w1 w2 w3 w4 w5 ");
    assert_int_equal(b->landed, 5);
    assert_int_equal(st_backlog(b->st), 0);
}

static void a_refused_write_is_retried(void **state)
{
    bench *b = *state;
    write_n(b, 1, 1);
    answer(b, 'e');   /* refused (Redis out of memory) */
    assert_int_equal(b->nout, 0);   /* not again at once, in a tight loop */
    assert_int_equal(st_backlog(b->st), 1);
    assert_string_equal(b->done_log, "");
    while (b->nout == 0)
        uv_run(&b->loop, UV_RUN_ONCE);   /* the retry timer */
    assert_string_equal(b->sent_log, "w1 w1 ");
    answer(b, 'y');
    assert_string_equal(b->done_log, "w1 ");
    assert_int_equal(st_backlog(b->st), 0);
}

/* A plain command (the HSET of stored campaigns) is retried when refused
 * like a script, but its WRONGTYPE is final: done gets it, nothing is sent
 * again, and the writes behind it go on. */
static void a_plain_commands_wrongtype_is_its_answer(void **state)
{
    bench *b = *state;
    const char *w1[] = { "w1", "value" };
    assert_int_equal(st_command(b->st, 2, w1, NULL, on_done, b), 0);
    write_n(b, 2, 2);
    answer(b, 'w');
    assert_string_equal(b->done_log, "error ");
    assert_int_equal(st_backlog(b->st), 1);
    answer(b, 'y');
    assert_string_equal(b->done_log, "error w2 ");
    assert_string_equal(b->sent_log, "w1 w2 ");

    const char *w3[] = { "w3", "value" };
    assert_int_equal(st_command(b->st, 2, w3, NULL, on_done, b), 0);
    answer(b, 'e');
    while (b->nout == 0)
        uv_run(&b->loop, UV_RUN_ONCE);   /* the retry timer */
    answer(b, 'y');
    assert_string_equal(b->sent_log, "w1 w2 w3 w3 ");
    assert_string_equal(b->done_log, "error w2 w3 ");
    assert_int_equal(st_backlog(b->st), 0);
}

static void a_failed_send_is_retried_by_timer(void **state)
{
    bench *b = *state;
    b->send_fails = 1;
    write_n(b, 1, 2);
    assert_int_equal(b->nout, 0);
    b->send_fails = 0;
    while (b->nout < 2)
        uv_run(&b->loop, UV_RUN_ONCE);
    assert_string_equal(b->sent_log, "w1 w2 ");
    while (b->nout > 0)
        answer(b, 'y');
    assert_string_equal(b->done_log, "w1 w2 ");
}

static void a_bounded_window_in_flight(void **state)
{
    bench *b = *state;
    write_n(b, 1, 600);
    assert_int_equal(b->nout, 512);
    assert_int_equal(st_backlog(b->st), 600);
    answer(b, 'y');
    assert_int_equal(b->nout, 512);   /* one landed, the next one went */
    while (b->nout > 0)
        answer(b, 'y');
    assert_int_equal(b->landed, 600);
    assert_int_equal(st_backlog(b->st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(in_order_and_each_done_once, setup, teardown),
        cmocka_unit_test_setup_teardown(waits_while_disconnected, setup, teardown),
        cmocka_unit_test_setup_teardown(replayed_in_order_after_an_outage, setup, teardown),
        cmocka_unit_test_setup_teardown(a_refused_write_is_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(a_plain_commands_wrongtype_is_its_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(a_failed_send_is_retried_by_timer, setup, teardown),
        cmocka_unit_test_setup_teardown(a_bounded_window_in_flight, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
