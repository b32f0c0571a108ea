/* scheduler (sched_): every API call of the worker goes through here (DESIGN.md §6).
 *
 * Each client has a FIFO of operations (list a page, sync a campaign).
 * Clients with queued work sit in a ring served round-robin, one operation
 * per turn, so a client with 10,000 campaigns and 20 clients with 50 each
 * share the worker's slots evenly. An operation starts only while the worker
 * is under ADSYNC_CONCURRENCY and its client under ADSYNC_CLIENT_CONCURRENCY,
 * and after the shared rate limiter (ratelimit.lua) said go. A client told to
 * wait leaves the ring with a timer and holds no slot meanwhile.
 *
 * 401 → the token is dropped and the call retried once with a new one; 429 →
 * the whole client cools down (shared through Redis) and the call is retried
 * later, not counted as a failure. Everything else is the owner's business.
 *
 * Every op the scheduler holds (queued, asking the limiter, in flight) pins
 * its client (cl_pin), so a client is never freed under a queued op; the pin
 * goes last in each callback, after the client was used for the last time. */
#include "scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ilist.h"
#include "log.h"
#include "ratepad.h"

#define RATE_RETRY_MS 500         /* limiter unreachable: try again */
#define ST_HIGH_WATER 20000       /* unconfirmed writes before we stop starting work */
#define INITIAL_LATENCY_MS 1000   /* request time assumed until one is measured */

/* What the scheduler keeps per client (client.sched). */
typedef struct sc_client {
    sched *s;
    client *c;
    il_node all;              /* s->clients */
    il_node turn;             /* s->ring while it has work it may start */
    op *head, *tail;
    size_t queued;
    unsigned inflight;        /* HTTP in flight + rate checks in flight */
    uint64_t parked_until;    /* mono ms: waiting for the rate window/cooldown */
    double demand_rate;       /* what it adds to held_rate; < 0: counted as unlimited */
    int in_demand;
} sc_client;

struct sched {
    wctx *x;
    sched_io io;
    il_node clients;          /* every sc_client */
    il_node ring;             /* clients with queued work, the first one's turn next */
    unsigned inflight;        /* HTTP requests + rate checks in flight */
    int pumping, pump_again;
    rl_pad rate_pad;          /* the limiter's window padding (ratepad.h) */
    double held_rate;         /* requests per ms the held rate-limited clients may make */
    unsigned held_unlimited;  /* held clients without a rate limit */
    double latency_ms;        /* moving average of API request durations */
    uint64_t rate_seq;        /* unique suffix for rate-limit log members */
};

static sc_client *sc(const client *c)
{
    return c->sched;
}

/* ---- the ring ------------------------------------------------------------- */

static void ring_add(sc_client *e)
{
    if (!il_linked(&e->turn))
        il_push_back(&e->s->ring, &e->turn);   /* served after everybody waiting */
}

static void ring_remove(sc_client *e)
{
    il_unlink(&e->turn);
}

static sc_client *ring_first(const sched *s)
{
    il_node *n = il_first(&s->ring);
    return n ? IL_ENTRY(n, sc_client, turn) : NULL;
}

/* ---- queues ------------------------------------------------------------- */

static void push_head(sc_client *e, op *o)
{
    o->next = e->head;
    e->head = o;
    if (e->tail == NULL)
        e->tail = o;
    e->queued++;
}

static void push_tail(sc_client *e, op *o)
{
    o->next = NULL;
    if (e->tail)
        e->tail->next = o;
    else
        e->head = o;
    e->tail = o;
    e->queued++;
}

static op *pop_head(sc_client *e)
{
    op *o = e->head;
    if (o == NULL)
        return NULL;
    e->head = o->next;
    if (e->head == NULL)
        e->tail = NULL;
    o->next = NULL;
    e->queued--;
    return o;
}

static void finish(op *o, api_verdict v, const http_result *http, const char *error, int aborted)
{
    op_result res = { .verdict = v, .aborted = aborted, .http = http };
    if (error)
        snprintf(res.error, sizeof res.error, "%s", error);
    o->done(o, &res);
}

/* finish, and the op's pin on its client goes: the caller holds a pin of
 * its own while it still uses the client. */
static void finish_unpin(op *o, api_verdict v, const http_result *http, const char *error, int aborted)
{
    client *c = o->client;
    finish(o, v, http, error, aborted);
    cl_unpin(c);
}

static void wake(sc_client *e)
{
    if (e->queued > 0)
        ring_add(e);
    sched_pump(e->s);
}

void sched_submit(sched *s, op *o)
{
    if (ctx_stopping(s->x)) {   /* e.g. a page whose write landed after the stop: nothing new starts */
        finish(o, API_RETRY, NULL, "shutdown", 1);
        return;
    }
    cl_pin(o->client);
    push_tail(sc(o->client), o);
    wake(sc(o->client));
}

/* ---- what the held clients ask of the slots ------------------------------ */

static void demand_remove(sc_client *e)
{
    if (!e->in_demand)
        return;
    if (e->demand_rate < 0)
        e->s->held_unlimited--;
    else
        e->s->held_rate -= e->demand_rate;
    e->in_demand = 0;
}

/* A client is held, or its rate limit became known: (re)counts what it may
 * ask of the slots. */
static void demand_count(sc_client *e)
{
    const client *c = e->c;
    demand_remove(e);
    if (c->rate_limit == 0) {
        e->demand_rate = -1;
        e->s->held_unlimited++;
    } else {
        e->demand_rate = (double)c->rate_limit / (double)(c->rate_window_ms ? c->rate_window_ms : 1);
        e->s->held_rate += e->demand_rate;
    }
    e->in_demand = 1;
}

double sched_expected_busy(const sched *s)
{
    return (double)s->held_unlimited * s->x->cfg.client_concurrency + s->held_rate * s->latency_ms;
}

static void note_latency(sched *s, const http_result *res)
{
    s->latency_ms += ((double)res->duration_ms - s->latency_ms) / 32;
}

/* ---- the registry's events ------------------------------------------------- */

static int client_new(sched *s, client *c)
{
    sc_client *e = calloc(1, sizeof *e);
    if (e == NULL)
        return -1;
    e->s = s;
    e->c = c;
    il_init(&e->turn);
    il_push_back(&s->clients, &e->all);
    c->sched = e;
    demand_count(e);
    return 0;
}

static void client_gone(sc_client *e)
{
    demand_remove(e);
    ring_remove(e);
    il_unlink(&e->all);
    e->c->sched = NULL;
    free(e);
}

int sched_on_client_event(client *c, cl_event ev, void *ud)
{
    switch (ev) {
    case CL_EV_NEW:
        return client_new(ud, c);
    case CL_EV_LIMITS:
        demand_count(sc(c));
        break;
    case CL_EV_TIMER:
        sc(c)->parked_until = 0;
        wake(sc(c));
        break;
    case CL_EV_CHANGED:
        wake(sc(c));
        break;
    case CL_EV_GONE:
        client_gone(sc(c));
        break;
    }
    return 0;
}

/* Fails everything a client has queued: its credentials or login failed.
 * Only what was queued when this started: an op a callback queues again
 * (a page retried after its backoff) waits for its own turn, or one failed
 * login would use up every attempt of a page in the same instant. Then the
 * client leaves the ring unless a failed op was queued again (a retry
 * waiting for its backoff), which parks it on its next turn. */
static void fail_queue(sc_client *e)
{
    client *c = e->c;
    api_verdict v = c->failed_permanent ? API_PERMANENT : API_RETRY;
    size_t n = e->queued;
    op *o;
    cl_pin(c);   /* the last op's unpin must not free it under us */
    while (n-- > 0 && (o = pop_head(e)) != NULL)
        finish_unpin(o, v, NULL, c->failure, 0);
    if (e->queued == 0)
        ring_remove(e);
    cl_unpin(c);
}

void sched_cancel_queued(sched *s)
{
    il_node *n, *tmp;
    IL_FOREACH_SAFE(n, tmp, &s->clients) {
        sc_client *e = IL_ENTRY(n, sc_client, all);
        client *c = e->c;
        op *o;
        cl_pin(c);
        ring_remove(e);
        while ((o = pop_head(e)) != NULL)
            finish_unpin(o, API_RETRY, NULL, "shutdown", 1);
        tmp = n->next;   /* another client may have gone meanwhile; this one has not */
        cl_unpin(c);
    }
}

/* ---- one operation ------------------------------------------------------- */

static void slot_take(sc_client *e)
{
    e->inflight++;
    e->s->inflight++;
}

static void slot_release(sc_client *e)
{
    e->inflight--;
    e->s->inflight--;
}

/* The client leaves the ring until its timer brings it back. */
static void park_client(sc_client *e, uint64_t ms)
{
    e->parked_until = clock_mono_ms() + ms;
    ring_remove(e);
    cl_arm_timer(e->c, ms);
}

static void park(sc_client *e, op *o, uint64_t ms)
{
    push_head(e, o);
    park_client(e, ms);
}

static void on_http_done(const http_result *res, void *ud);

/* 0: in flight; -1: o could not be sent and is done (its pin is the
 * caller's to drop, once it no longer uses the client). */
static int send_request(sched *s, op *o)
{
    client *c = o->client;
    const api_endpoint_def *d = &api_endpoints[o->ep];
    api_call call = { .page = o->page, .limit = c->page_size, .id = o->campaign.id, .id_len = o->campaign.id_len };
    char url[2048];
    char *body;
    int rc = api_request(o->ep, c->base_url, &call, url, sizeof url, &body);
    http_request_spec spec = {
        .method = d->method, .url = url, .headers = c->headers,
        .body = body, .body_len = body ? strlen(body) : 0,
        .budgeted = d->budgeted,   /* pages are what can be large (README "Memory") */
    };
    o->token_gen = c->token_gen;
    o->submitted_ns = uv_hrtime();
    if (rc == 0)
        rc = s->io.send(s->io.ud, &spec, on_http_done, o);
    free(body);
    if (rc == 0)
        return 0;
    slot_release(sc(c));
    finish(o, API_RETRY, NULL, "could not start the request", 0);
    return -1;
}

void sched_rate_answered(op *o, long long wait_ms)
{
    client *c = o->client;
    sc_client *e = sc(c);
    sched *s = e->s;
    int kept = 1;   /* o stays the scheduler's (and pins c) */
    slot_release(e);
    if (ctx_stopping(s->x)) {
        finish(o, API_RETRY, NULL, "shutdown", 1);
        kept = 0;
    } else if (wait_ms == SCHED_RATE_UNKNOWN) {
        park(e, o, RATE_RETRY_MS);
    } else if (wait_ms < 0) {
        log_warn("rate-limit log held the wrong type, replaced by an empty one", LOG_STR("client", c->id));
        park(e, o, 1);
    } else if (wait_ms > 0) {
        s->x->n.rate_waits++;
        park(e, o, (uint64_t)wait_ms);
    } else {
        slot_take(e);
        kept = send_request(s, o) == 0;
    }
    wake(e);
    if (!kept)
        cl_unpin(c);
}

/* ---- padding of the shared window (ratepad.h) ------------------------------- */

static uint64_t rate_pad_ms(sched *s, uint64_t window_ms)
{
    return rl_pad_ms(&s->rate_pad, clock_mono_ms(), window_ms);
}

static void note_rate_lag(sched *s, const op *o, const http_result *res)
{
    if (o->rate_asked_ns == 0 || res->wait_us == 0)
        return;   /* not rate-limited, or never written */
    uint64_t client_lag_us = (o->submitted_ns - o->rate_asked_ns) / 1000 + res->wait_us;
    rl_pad_note(&s->rate_pad, clock_mono_ms(), o->client->rate_window_ms, o->ep, client_lag_us,
                res->server_us);
}

static void check_rate(sched *s, op *o)
{
    const client *c = o->client;
    char member[KEYS_TOKEN_MAX + 24];
    snprintf(member, sizeof member, "%s:%llu", s->x->id, (unsigned long long)++s->rate_seq);
    o->rate_asked_ns = uv_hrtime();
    if (s->io.check_rate(s->io.ud, o, c->rate_window_ms + rate_pad_ms(s, c->rate_window_ms), member) < 0)
        sched_rate_answered(o, SCHED_RATE_UNKNOWN);
}

/* As send_request: -1 when o is done already and its pin still held. */
static int start(sched *s, sc_client *e, op *o)
{
    slot_take(e);
    if (e->c->rate_limit == 0)
        return send_request(s, o);
    check_rate(s, o);
    return 0;
}

/* ---- completion ---------------------------------------------------------- */

static void start_cooldown(sched *s, const client *c, unsigned long ms)
{
    s->io.cool_down(s->io.ud, c, ms);
    log_warn("rate limited by the platform, cooling down", LOG_STR("client", c->id),
             LOG_INT("ms", (long long)ms), LOG_INT("pad_ms", (long long)rate_pad_ms(s, c->rate_window_ms)));
}

/* 429: the client cools down and o goes first once it is over. */
static void on_rate_limited(sched *s, sc_client *e, op *o, const http_result *res)
{
    const client *c = e->c;
    if (c->rate_limit > 0)
        rl_pad_on_429(&s->rate_pad, clock_mono_ms(), c->rate_window_ms);
    unsigned long asked = api_retry_after_ms(res->retry_after_s, res->body, res->body_len);
    uint64_t ms = pol_decide(&s->x->policy, POL_RATE_LIMITED, 0, asked, 0, 0).delay_ms;
    start_cooldown(s, c, (unsigned long)ms);
    park(e, o, ms);
}

static void on_http_done(const http_result *res, void *ud)
{
    op *o = ud;
    client *c = o->client;
    sc_client *e = sc(c);
    sched *s = e->s;
    slot_release(e);
    ctx_count_http(s->x, o->ep, res);
    if (res->error == HTTP_ERR_ABORTED) {
        finish(o, API_RETRY, res, "shutdown", 1);
        wake(e);
        cl_unpin(c);
        return;
    }
    note_rate_lag(s, o, res);
    note_latency(s, res);
    api_verdict v = api_classify(res->error, res->status);
    int kept = 1;   /* o stays queued (and pinned) */
    if (v == API_REAUTH &&
        pol_decide(&s->x->policy, POL_AUTH_REJECTED, 0, 0, o->reauthed, 0).action == POL_RELOGIN) {
        o->reauthed = 1;
        push_head(e, o);
        cl_token_rejected(c, o->token_gen);
    } else if (v == API_REAUTH) {
        finish(o, API_PERMANENT, res, "HTTP 401 after logging in again", 0);
        kept = 0;
    } else if (v == API_RATE_LIMITED) {
        on_rate_limited(s, e, o, res);
    } else {
        char why[512];
        api_describe_failure(res, NULL, why, sizeof why);
        finish(o, v, res, v == API_OK ? NULL : why, 0);
        kept = 0;
    }
    wake(e);
    if (!kept)
        cl_unpin(c);
}

/* ---- the pump ------------------------------------------------------------ */

/* 1 if e may start an operation now; otherwise takes it out of the ring and
 * sets in motion whatever will bring it back. */
static int ready(sched *s, sc_client *e)
{
    client *c = e->c;
    uint64_t now = clock_mono_ms();
    if (e->queued == 0 || e->parked_until > now) {
        ring_remove(e);
        return 0;
    }
    if (e->head->not_before_ms > now) {   /* a retry waiting for its backoff */
        park_client(e, e->head->not_before_ms - now);
        return 0;
    }
    if (c->state == CL_FAILED && c->failed_permanent) {
        fail_queue(e);
        return 0;
    }
    cl_prepare(c);
    if (c->state == CL_FAILED) {
        fail_queue(e);
        return 0;
    }
    if (c->state != CL_READY || e->inflight >= s->x->cfg.client_concurrency) {
        ring_remove(e);   /* back via an event when that changes */
        return 0;
    }
    return 1;
}

unsigned sched_inflight(const sched *s)
{
    return s->inflight;
}

unsigned sched_idle_slots(const sched *s)
{
    if (ctx_stopping(s->x) || !il_empty(&s->ring) || s->inflight >= s->x->cfg.concurrency)
        return 0;
    return s->x->cfg.concurrency - s->inflight;
}

static int may_start(const sched *s)
{
    const wctx *x = s->x;
    return !ctx_stopping(x) && s->inflight < x->cfg.concurrency && (x->store == NULL || st_backlog(x->store) < ST_HIGH_WATER);
}

void sched_pump(sched *s)
{
    if (s->pumping) {        /* a completion inside start(): loop once more */
        s->pump_again = 1;
        return;
    }
    s->pumping = 1;
    do {
        s->pump_again = 0;
        sc_client *e;
        while ((e = ring_first(s)) != NULL && may_start(s)) {
            if (!ready(s, e))
                continue;
            client *c = e->c;
            ring_remove(e);   /* its turn is over: to the back, if it still has work */
            int sent = start(s, e, pop_head(e)) == 0;
            if (e->queued > 0)
                ring_add(e);
            if (!sent)
                cl_unpin(c);
        }
    } while (s->pump_again);
    s->pumping = 0;
    if (sched_idle_slots(s) > 0)
        ctx_kick(s->x);   /* the held jobs leave slots idle: take more */
}

/* ---- the worker's io: HTTP client and ratelimit.lua ------------------------ */

static int http_send(void *ud, const http_request_spec *spec, http_done_fn *done, void *arg)
{
    wctx *x = ud;
    return x->http ? http_submit(x->http, spec, done, arg) : -1;
}

static void on_rate_checked(rds *r, redisReply *reply, void *privdata)
{
    (void)r;
    long long wait = SCHED_RATE_UNKNOWN;
    if (reply && reply->type == REDIS_REPLY_INTEGER)
        wait = reply->integer < 0 ? SCHED_RATE_RESET : reply->integer;
    sched_rate_answered(privdata, wait);
}

static int redis_check_rate(void *ud, op *o, uint64_t window_ms, const char *member)
{
    wctx *x = ud;
    const client *c = o->client;
    char rl_key[KEYS_MAX_LEN], cd_key[KEYS_MAX_LEN], limit[24], window[24];
    keys_client_key(&x->keys, c->id, KEYS_CLIENT_RATELIMIT, rl_key, sizeof rl_key);
    keys_client_key(&x->keys, c->id, KEYS_CLIENT_COOLDOWN, cd_key, sizeof cd_key);
    snprintf(limit, sizeof limit, "%u", c->rate_limit);
    snprintf(window, sizeof window, "%llu", (unsigned long long)window_ms);
    const char *args[] = { rl_key, cd_key, limit, window, member };
    return rds_script(x->redis, SCRIPT_RATELIMIT, on_rate_checked, o, 2, 5, args, NULL);
}

static void redis_cool_down(void *ud, const client *c, unsigned long ms)
{
    wctx *x = ud;
    char key[KEYS_MAX_LEN], px[24];
    keys_client_key(&x->keys, c->id, KEYS_CLIENT_COOLDOWN, key, sizeof key);
    snprintf(px, sizeof px, "%lu", ms);
    const char *argv[] = { "SET", key, "1", "PX", px };
    rds_command(x->redis, NULL, NULL, 5, argv, NULL);
}

/* ---- lifetime -------------------------------------------------------------- */

sched *sched_new(wctx *x, const sched_io *io)
{
    sched *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->x = x;
    s->io = io ? *io : (sched_io){ http_send, redis_check_rate, redis_cool_down, x };
    il_init(&s->clients);
    il_init(&s->ring);
    rl_pad_init(&s->rate_pad);
    s->latency_ms = INITIAL_LATENCY_MS;
    return s;
}

void sched_free(sched *s)
{
    free(s);
}
