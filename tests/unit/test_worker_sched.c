/* Unit tests of worker/scheduler without HTTP or Redis: a sched_io that
 * records what the scheduler sends and lets the test answer, clients made
 * ready by hand (the registry's Redis calls fail harmlessly on a context
 * without connections). Round-robin fairness, the worker's and a client's
 * concurrency, the shared limiter's answers, 401 and 429, a failed client
 * and shutdown. */
#include "test_common.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "client.h"
#include "ctx.h"
#include "scheduler.h"

#define MAX_SENT 64

typedef struct sent {
    http_done_fn *done;
    op *o;
} sent;

typedef struct bench {
    uv_loop_t loop;
    wctx x;
    sched *s;
    cl_set *clients;
    sent sent[MAX_SENT];        /* requests in flight, oldest first */
    size_t nsent;
    op *rate_asked[MAX_SENT];   /* rate checks waiting for the test's answer */
    size_t nrate;
    unsigned long cooled_ms;    /* the last cool_down */
    const client *cooled;
    char order[128];            /* owners ('A', 'B', ...) of the ops done, in order */
    size_t norder;
    op_result last;             /* the last result an owner saw */
    int send_fails;
} bench;

static bench *B;   /* the io's callbacks get ud, the op callbacks only the op */

static int fake_send(void *ud, const http_request_spec *spec, http_done_fn *done, void *arg)
{
    bench *b = ud;
    assert_non_null(spec->url);
    if (b->send_fails)
        return -1;
    assert_true(b->nsent < MAX_SENT);
    b->sent[b->nsent++] = (sent){ done, arg };
    return 0;
}

static int fake_check_rate(void *ud, op *o, uint64_t window_ms, const char *member)
{
    bench *b = ud;
    assert_true(window_ms >= o->client->rate_window_ms);
    assert_non_null(strstr(member, b->x.id));
    b->rate_asked[b->nrate++] = o;
    return 0;
}

static void fake_cool_down(void *ud, const client *c, unsigned long ms)
{
    bench *b = ud;
    b->cooled = c;
    b->cooled_ms = ms;
}

static void on_done(op *o, const op_result *res)
{
    B->order[B->norder++] = *(const char *)o->owner;
    B->last = *res;
    free(o);
}

static int setup(void **state)
{
    bench *b = calloc(1, sizeof *b);
    B = b;
    uv_loop_init(&b->loop);
    cfg c;
    memset(&c, 0, sizeof c);
    snprintf(c.prefix, sizeof c.prefix, "adsync");
    snprintf(c.platform.base, sizeof c.platform.base, "http://127.0.0.1:9");
    c.concurrency = 4;
    c.client_concurrency = 2;
    c.page_size = 100;
    c.max_attempts = 3;
    c.backoff_base_ms = 10;
    c.backoff_max_ms = 100;
    ctx_init(&b->x, &b->loop, &c, NULL, "w1");
    b->x.phase = WK_RUNNING;
    sched_io io = { fake_send, fake_check_rate, fake_cool_down, b };
    static sched_io kept;   /* the scheduler borrows it */
    kept = io;
    b->s = sched_new(&b->x, &kept);
    b->clients = cl_set_new(&b->x, sched_on_client_event, b->s);
    assert_non_null(b->s);
    assert_non_null(b->clients);
    *state = b;
    return 0;
}

static int teardown(void **state)
{
    bench *b = *state;
    cl_set_free(b->clients);
    sched_free(b->s);
    uv_run(&b->loop, UV_RUN_DEFAULT);   /* the clients' timers close */
    assert_int_equal(uv_loop_close(&b->loop), 0);
    free(b);
    return 0;
}

/* A client as if its credentials and token had loaded. */
static client *ready_client(bench *b, const char *id, unsigned rate_limit)
{
    client *c = cl_acquire(b->clients, id);
    assert_non_null(c);
    uv_timer_stop(&c->timer);   /* the credentials reload the missing Redis asked for */
    c->timer_armed = 0;
    c->state = CL_READY;
    c->token_recheck_at = UINT64_MAX;
    c->rate_limit = rate_limit;
    c->rate_window_ms = 60000;
    snprintf(c->token, sizeof c->token, "tok-%s", id);
    sched_on_client_event(c, CL_EV_LIMITS, b->s);
    return c;
}

static const char *owner_tag(const char *tag)
{
    return tag;   /* string literals outlive the ops */
}

static void submit(bench *b, client *c, const char *tag, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        op *o = calloc(1, sizeof *o);
        o->ep = API_EP_LIST;
        o->client = c;
        o->owner = (void *)owner_tag(tag);
        o->page = i + 1;
        o->done = on_done;
        sched_submit(b->s, o);
    }
}

/* Answers the oldest request in flight. */
static void answer(bench *b, long status, const char *body)
{
    assert_true(b->nsent > 0);
    sent s = b->sent[0];
    memmove(b->sent, b->sent + 1, --b->nsent * sizeof *b->sent);
    http_result res = { .error = HTTP_OK, .status = status, .body = body, .body_len = strlen(body),
                        .duration_ms = 5, .detail = "" };
    s.done(&res, s.o);
}

static size_t in_flight_of(const bench *b, const client *c)
{
    size_t n = 0;
    for (size_t i = 0; i < b->nsent; i++)
        n += b->sent[i].o->client == c;
    return n;
}

static void clients_take_turns(void **state)
{
    bench *b = *state;
    b->x.cfg.concurrency = 1;   /* one at a time: the order is the ring's */
    client *a = ready_client(b, "a", 0), *bb = ready_client(b, "b", 0), *c = ready_client(b, "c", 0);
    submit(b, a, "A", 6);
    submit(b, bb, "B", 2);
    submit(b, c, "C", 2);
    while (b->nsent > 0)
        answer(b, 200, "{}");
    b->order[b->norder] = '\0';
    /* A's first call started alone; from then on one call per client per
     * turn, in the order they joined the ring, until only A has work. */
    assert_string_equal(b->order, "AABCABCAAA");
    assert_int_equal(b->last.verdict, API_OK);
    cl_release(a), cl_release(bb), cl_release(c);
}

static void worker_and_client_limits(void **state)
{
    bench *b = *state;
    client *a = ready_client(b, "a", 0), *c = ready_client(b, "c", 0);
    submit(b, a, "A", 5);
    assert_int_equal(b->nsent, 2);   /* ADSYNC_CLIENT_CONCURRENCY */
    assert_int_equal(sched_inflight(b->s), 2);
    submit(b, c, "C", 5);
    assert_int_equal(b->nsent, 4);   /* ADSYNC_CONCURRENCY */
    assert_int_equal(in_flight_of(b, a), 2);
    assert_int_equal(in_flight_of(b, c), 2);
    assert_int_equal(sched_idle_slots(b->s), 0);
    while (b->nsent > 0)
        answer(b, 200, "{}");
    assert_int_equal(b->norder, 10);
    assert_int_equal(sched_inflight(b->s), 0);
    assert_int_equal(sched_idle_slots(b->s), 4);
    cl_release(a), cl_release(c);
}

static void the_limiter_decides_when(void **state)
{
    bench *b = *state;
    client *a = ready_client(b, "a", 10);
    submit(b, a, "A", 1);
    assert_int_equal(b->nsent, 0);   /* asked first */
    assert_int_equal(b->nrate, 1);
    sched_rate_answered(b->rate_asked[--b->nrate], 30);   /* wait 30 ms */
    assert_int_equal(b->x.n.rate_waits, 1);
    assert_int_equal(b->nsent, 0);
    assert_int_equal(sched_inflight(b->s), 0);   /* waiting holds no slot */
    while (b->nrate == 0)
        uv_run(&b->loop, UV_RUN_ONCE);   /* the client's timer brings it back */
    sched_rate_answered(b->rate_asked[--b->nrate], 0);
    assert_int_equal(b->nsent, 1);
    answer(b, 200, "{}");
    assert_int_equal(b->norder, 1);
    assert_int_equal(b->last.verdict, API_OK);
    cl_release(a);
}

static void unauthorized_logs_in_again_once(void **state)
{
    bench *b = *state;
    client *a = ready_client(b, "a", 0);
    submit(b, a, "A", 1);
    answer(b, 401, "");
    assert_int_equal(b->norder, 0);          /* not failed: retried with a new token */
    assert_int_equal(b->x.n.token_refreshes, 0);   /* no token stored: already replaced */
    assert_int_equal(b->nsent, 1);           /* sent again at once, marked */
    assert_true(b->sent[0].o->reauthed);
    answer(b, 401, "");
    assert_int_equal(b->norder, 1);
    assert_int_equal(b->last.verdict, API_PERMANENT);
    assert_non_null(strstr(b->last.error, "401"));
    cl_release(a);
}

static void unauthorized_drops_the_token(void **state)
{
    bench *b = *state;
    client *a = ready_client(b, "a", 0);
    a->token_stored = strdup("tok-a");
    submit(b, a, "A", 1);
    uint64_t rejected = b->sent[0].o->token_gen;
    answer(b, 401, "");
    assert_int_equal(b->x.n.token_refreshes, 1);
    assert_string_equal(a->token, "");
    assert_int_not_equal(a->state, CL_READY);   /* fetching a token: nothing sent meanwhile */
    assert_int_equal(b->nsent, 0);
    uv_timer_stop(&a->timer);                   /* as if the new token had come */
    a->timer_armed = 0;
    snprintf(a->token, sizeof a->token, "tok-a2");
    a->state = CL_READY;
    sched_on_client_event(a, CL_EV_CHANGED, b->s);
    assert_int_equal(b->nsent, 1);
    assert_true(b->sent[0].o->token_gen != rejected);   /* not with the token that got the 401 */
    answer(b, 200, "{}");
    assert_int_equal(b->last.verdict, API_OK);
    cl_release(a);
}

static void too_many_requests_cools_the_client_down(void **state)
{
    bench *b = *state;
    client *a = ready_client(b, "a", 0), *c = ready_client(b, "c", 0);
    b->x.cfg.client_concurrency = 1;
    submit(b, a, "A", 2);
    answer(b, 429, "{\"retry_after\":0.05}");
    assert_ptr_equal(b->cooled, a);
    assert_int_equal(b->cooled_ms, 50);
    assert_int_equal(b->norder, 0);          /* not a failure */
    assert_int_equal(in_flight_of(b, a), 0); /* the whole client waits */
    submit(b, c, "C", 1);
    assert_int_equal(in_flight_of(b, c), 1); /* others do not */
    answer(b, 200, "{}");
    while (b->nsent == 0)
        uv_run(&b->loop, UV_RUN_ONCE);
    assert_int_equal(in_flight_of(b, a), 1);
    assert_int_equal(b->sent[0].o->page, 1); /* the rate-limited call goes first */
    while (b->nsent > 0)
        answer(b, 200, "{}");
    b->order[b->norder] = '\0';
    assert_string_equal(b->order, "CAA");
    cl_release(a), cl_release(c);
}

static void a_failed_client_fails_its_queue(void **state)
{
    bench *b = *state;
    client *a = ready_client(b, "a", 0);
    a->state = CL_FAILED;
    a->failed_permanent = 1;
    snprintf(a->failure, sizeof a->failure, "no credentials");
    submit(b, a, "A", 3);
    assert_int_equal(b->nsent, 0);
    assert_int_equal(b->norder, 3);
    assert_int_equal(b->last.verdict, API_PERMANENT);
    assert_string_equal(b->last.error, "no credentials");
    cl_release(a);
}

static void a_request_that_cannot_start_is_retryable(void **state)
{
    bench *b = *state;
    client *a = ready_client(b, "a", 0);
    b->send_fails = 1;
    submit(b, a, "A", 1);
    assert_int_equal(b->norder, 1);
    assert_int_equal(b->last.verdict, API_RETRY);
    assert_int_equal(sched_inflight(b->s), 0);
    cl_release(a);
}

static void shutdown_aborts_what_is_queued(void **state)
{
    bench *b = *state;
    client *a = ready_client(b, "a", 0);
    submit(b, a, "A", 5);
    assert_int_equal(b->nsent, 2);
    b->x.phase = WK_DRAINING;
    sched_cancel_queued(b->s);
    assert_int_equal(b->norder, 3);          /* the queued ones, at once */
    assert_true(b->last.aborted);
    submit(b, a, "A", 1);                    /* nothing new starts */
    assert_int_equal(b->norder, 4);
    assert_true(b->last.aborted);
    while (b->nsent > 0)
        answer(b, 200, "{}");                /* those in flight finish */
    assert_int_equal(b->norder, 6);
    assert_int_equal(b->last.verdict, API_OK);
    cl_release(a);
}

static void an_idle_client_is_freed_only_after_its_calls(void **state)
{
    bench *b = *state;
    client *a = ready_client(b, "a", 0);
    submit(b, a, "A", 3);
    cl_release(a);           /* its job let go: its calls still point at it */
    assert_int_equal(b->nsent, 2);
    while (b->nsent > 0)
        answer(b, 200, "{}");   /* under ASan, a freed client would show here */
    assert_int_equal(b->norder, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(clients_take_turns, setup, teardown),
        cmocka_unit_test_setup_teardown(worker_and_client_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(the_limiter_decides_when, setup, teardown),
        cmocka_unit_test_setup_teardown(unauthorized_logs_in_again_once, setup, teardown),
        cmocka_unit_test_setup_teardown(unauthorized_drops_the_token, setup, teardown),
        cmocka_unit_test_setup_teardown(too_many_requests_cools_the_client_down, setup, teardown),
        cmocka_unit_test_setup_teardown(a_failed_client_fails_its_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(a_request_that_cannot_start_is_retryable, setup, teardown),
        cmocka_unit_test_setup_teardown(shutdown_aborts_what_is_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(an_idle_client_is_freed_only_after_its_calls, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
