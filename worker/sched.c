/* sched: every API call of the worker goes through here (DESIGN.md §6).
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
 * later, not counted as a failure. Everything else is the flow's business. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "policy.h"
#include "worker.h"

#define RATE_RETRY_MS 500         /* limiter unreachable: try again */
#define ST_HIGH_WATER 20000       /* unconfirmed writes before we stop starting work */

/* ---- the ring ------------------------------------------------------------- */

static void ring_add(worker *w, client *c)
{
    if (c->in_ring)
        return;
    if (w->ring == NULL) {
        c->ring_next = c->ring_prev = c;
        w->ring = c;
    } else {   /* insert before the current head: served last */
        c->ring_next = w->ring;
        c->ring_prev = w->ring->ring_prev;
        c->ring_prev->ring_next = c;
        w->ring->ring_prev = c;
    }
    c->in_ring = 1;
}

static void ring_remove(worker *w, client *c)
{
    if (!c->in_ring)
        return;
    if (c->ring_next == c) {
        w->ring = NULL;
    } else {
        c->ring_prev->ring_next = c->ring_next;
        c->ring_next->ring_prev = c->ring_prev;
        if (w->ring == c)
            w->ring = c->ring_next;
    }
    c->ring_next = c->ring_prev = NULL;
    c->in_ring = 0;
}

/* ---- queues ------------------------------------------------------------- */

static void push_head(client *c, op *o)
{
    o->next = c->queue_head;
    c->queue_head = o;
    if (c->queue_tail == NULL)
        c->queue_tail = o;
    c->queued++;
}

static op *pop_head(client *c)
{
    op *o = c->queue_head;
    if (o == NULL)
        return NULL;
    c->queue_head = o->next;
    if (c->queue_head == NULL)
        c->queue_tail = NULL;
    o->next = NULL;
    c->queued--;
    return o;
}

static void finish(op *o, api_verdict v, const http_result *http, const char *error, int aborted);

void sched_submit(worker *w, op *o)
{
    client *c = o->client;
    if (w->stopping) {   /* e.g. a page whose write landed after the stop: nothing new starts */
        finish(o, API_RETRY, NULL, "shutdown", 1);
        return;
    }
    o->next = NULL;
    if (c->queue_tail)
        c->queue_tail->next = o;
    else
        c->queue_head = o;
    c->queue_tail = o;
    c->queued++;
    sched_wake(w, c);
}

void sched_wake(worker *w, client *c)
{
    if (c->queued > 0)
        ring_add(w, c);
    sched_pump(w);
}

/* ---- what the held clients ask of the slots ------------------------------ */

static void demand_remove(worker *w, client *c)
{
    if (!c->in_demand)
        return;
    if (c->demand_rate < 0)
        w->held_unlimited--;
    else
        w->held_rate -= c->demand_rate;
    c->in_demand = 0;
}

void sched_client_counted(worker *w, client *c)
{
    demand_remove(w, c);
    if (c->rate_limit == 0) {
        c->demand_rate = -1;
        w->held_unlimited++;
    } else {
        c->demand_rate = (double)c->rate_limit / (double)(c->rate_window_ms ? c->rate_window_ms : 1);
        w->held_rate += c->demand_rate;
    }
    c->in_demand = 1;
}

void sched_client_gone(worker *w, client *c)
{
    demand_remove(w, c);
    ring_remove(w, c);
}

double sched_expected_busy(const worker *w)
{
    return (double)w->held_unlimited * w->cfg.client_concurrency + w->held_rate * w->latency_ms;
}

static void note_latency(worker *w, const http_result *res)
{
    w->latency_ms += ((double)res->duration_ms - w->latency_ms) / 32;
}

static void finish(op *o, api_verdict v, const http_result *http, const char *error, int aborted)
{
    op_result res = { .verdict = v, .aborted = aborted, .http = http };
    if (error)
        snprintf(res.error, sizeof res.error, "%s", error);
    o->done(o, &res);
}

/* Fails everything a client has queued: its credentials or login failed.
 * Only what was queued when this started: an op a callback queues again
 * (a page retried after its backoff) waits for its own turn, or one failed
 * login would use up every attempt of a page in the same instant. */
static void fail_queue(client *c)
{
    api_verdict v = c->failed_permanent ? API_PERMANENT : API_RETRY;
    unsigned n = c->queued;
    op *o;
    while (n-- > 0 && (o = pop_head(c)) != NULL)
        finish(o, v, NULL, c->failure, 0);
}

/* fail_queue, then the client leaves the ring unless a failed op was queued
 * again (a retry waiting for its backoff), which parks it on its next turn. */
static void fail_queue_and_rest(worker *w, client *c)
{
    fail_queue(c);
    if (c->queued == 0)
        ring_remove(w, c);
}

void sched_cancel_queued(worker *w)
{
    for (client *c = w->clients; c; c = c->next) {
        op *o;
        while ((o = pop_head(c)) != NULL)
            finish(o, API_RETRY, NULL, "shutdown", 1);
        ring_remove(w, c);
    }
}

/* ---- one operation ------------------------------------------------------- */

static void slot_release(worker *w, client *c)
{
    c->inflight--;
    w->inflight--;
}

/* The client leaves the ring until its timer brings it back. */
static void park_client(client *c, uint64_t ms)
{
    c->parked_until = clock_mono_ms() + ms;
    ring_remove(c->w, c);
    cl_arm_timer(c, ms);
}

static void park(client *c, op *o, uint64_t ms)
{
    push_head(c, o);
    park_client(c, ms);
}

static void on_http_done(const http_result *res, void *ud);

static void send_request(worker *w, op *o)
{
    client *c = o->client;
    char url[2048];
    char *body = NULL;
    int rc;
    if (o->kind == OP_LIST)
        rc = api_list_url(c->base_url, o->page, c->page_size, url, sizeof url);
    else
        rc = api_sync_url(c->base_url, o->campaign.id, o->campaign.id_len, url, sizeof url);
    if (rc == 0 && o->kind == OP_SYNC && (body = api_sync_body(o->campaign.id)) == NULL)
        rc = -1;
    http_request_spec spec = {
        .method = o->kind == OP_LIST ? "GET" : "POST", .url = url, .headers = c->headers,
        .body = body, .body_len = body ? strlen(body) : 0,
        .budgeted = o->kind == OP_LIST,   /* pages are what can be large (README "Memory") */
    };
    snprintf(o->token_used, sizeof o->token_used, "%s", c->token);
    o->submitted_ns = uv_hrtime();
    if (rc == 0 && w->http)
        rc = http_submit(w->http, &spec, on_http_done, o);
    free(body);
    if (rc < 0) {
        slot_release(w, c);
        finish(o, API_RETRY, NULL, "could not start the request", 0);
    }
}

static void on_rate_checked(rds *r, redisReply *reply, void *privdata)
{
    (void)r;
    op *o = privdata;
    client *c = o->client;
    worker *w = c->w;
    c->pending_io--;
    slot_release(w, c);
    if (w->stopping) {
        finish(o, API_RETRY, NULL, "shutdown", 1);
    } else if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        park(c, o, RATE_RETRY_MS);
    } else if (reply->integer < 0) {
        log_warn("rate-limit log held the wrong type, replaced by an empty one", LOG_STR("client", c->id));
        park(c, o, 1);
    } else if (reply->integer > 0) {
        w->n.rate_waits++;
        park(c, o, (uint64_t)reply->integer);
    } else {
        c->inflight++;
        w->inflight++;
        send_request(w, o);
    }
    sched_wake(w, c);
}

/* ---- padding of the shared window (ratepad.h) ------------------------------- */

uint64_t sched_rate_pad_ms(worker *w, uint64_t window_ms)
{
    return rl_pad_ms(&w->rate_pad, clock_mono_ms(), window_ms);
}

static void note_rate_lag(worker *w, const op *o, const http_result *res)
{
    if (o->rate_asked_ns == 0 || res->wait_us == 0)
        return;   /* not rate-limited, or never written */
    uint64_t client_lag_us = (o->submitted_ns - o->rate_asked_ns) / 1000 + res->wait_us;
    rl_pad_note(&w->rate_pad, clock_mono_ms(), o->client->rate_window_ms, o->kind, client_lag_us,
                res->server_us);
}

static void check_rate(worker *w, op *o)
{
    client *c = o->client;
    char rl_key[KEYS_MAX_LEN], cd_key[KEYS_MAX_LEN], limit[24], window[24], member[KEYS_TOKEN_MAX + 24];
    keys_client_key(&w->keys, c->id, KEYS_CLIENT_RATELIMIT, rl_key, sizeof rl_key);
    keys_client_key(&w->keys, c->id, KEYS_CLIENT_COOLDOWN, cd_key, sizeof cd_key);
    snprintf(limit, sizeof limit, "%u", c->rate_limit);
    snprintf(window, sizeof window, "%llu",
             (unsigned long long)(c->rate_window_ms + sched_rate_pad_ms(w, c->rate_window_ms)));
    snprintf(member, sizeof member, "%s:%llu", w->id, (unsigned long long)++w->rate_seq);
    const char *args[] = { rl_key, cd_key, limit, window, member };
    o->rate_asked_ns = uv_hrtime();
    if (rds_script(w->redis, SCRIPT_RATELIMIT, on_rate_checked, o, 2, 5, args, NULL) < 0) {
        slot_release(w, c);
        park(c, o, RATE_RETRY_MS);
        return;
    }
    c->pending_io++;
}

static void start(worker *w, client *c, op *o)
{
    c->inflight++;
    w->inflight++;
    if (c->rate_limit > 0)
        check_rate(w, o);
    else
        send_request(w, o);
}

/* ---- completion ---------------------------------------------------------- */

static void start_cooldown(worker *w, client *c, unsigned long ms)
{
    char key[KEYS_MAX_LEN], px[24];
    keys_client_key(&w->keys, c->id, KEYS_CLIENT_COOLDOWN, key, sizeof key);
    snprintf(px, sizeof px, "%lu", ms);
    const char *argv[] = { "SET", key, "1", "PX", px };
    rds_command(w->redis, NULL, NULL, 5, argv, NULL);
    log_warn("rate limited by the platform, cooling down", LOG_STR("client", c->id),
             LOG_INT("ms", (long long)ms), LOG_INT("pad_ms", (long long)sched_rate_pad_ms(w, c->rate_window_ms)));
}

static void on_http_done(const http_result *res, void *ud)
{
    op *o = ud;
    client *c = o->client;
    worker *w = c->w;
    slot_release(w, c);
    wk_count_http(w, o->kind == OP_LIST ? WK_EP_LIST : WK_EP_SYNC, res);
    if (res->error == HTTP_ERR_ABORTED) {
        finish(o, API_RETRY, res, "shutdown", 1);
        sched_wake(w, c);
        return;
    }
    note_rate_lag(w, o, res);
    note_latency(w, res);
    api_verdict v = api_classify(res->error, res->status);
    char why[512];
    api_describe_failure(res, NULL, why, sizeof why);
    if (v == API_REAUTH &&
        pol_decide(&w->policy, POL_AUTH_REJECTED, 0, 0, o->reauthed, 0).action == POL_RELOGIN) {
        o->reauthed = 1;
        push_head(c, o);
        cl_token_rejected(c, o->token_used);
    } else if (v == API_REAUTH) {
        finish(o, API_PERMANENT, res, "HTTP 401 after logging in again", 0);
    } else if (v == API_RATE_LIMITED) {
        if (c->rate_limit > 0)
            rl_pad_on_429(&w->rate_pad, clock_mono_ms(), c->rate_window_ms);
        unsigned long asked = api_retry_after_ms(res->retry_after_s, res->body, res->body_len);
        uint64_t ms = pol_decide(&w->policy, POL_RATE_LIMITED, 0, asked, 0, 0).delay_ms;
        start_cooldown(w, c, (unsigned long)ms);
        park(c, o, ms);
    } else {
        finish(o, v, res, v == API_OK ? NULL : why, 0);
    }
    sched_wake(w, c);
}

/* ---- the pump ------------------------------------------------------------ */

/* 1 if c may start an operation now; otherwise takes it out of the ring and
 * sets in motion whatever will bring it back. */
static int ready(worker *w, client *c)
{
    uint64_t now = clock_mono_ms();
    if (c->queued == 0 || c->parked_until > now) {
        ring_remove(w, c);
        return 0;
    }
    if (c->queue_head->not_before_ms > now) {   /* a retry waiting for its backoff */
        park_client(c, c->queue_head->not_before_ms - now);
        return 0;
    }
    if (c->state == CL_FAILED && c->failed_permanent) {
        fail_queue_and_rest(w, c);
        return 0;
    }
    cl_prepare(c);
    if (c->state == CL_FAILED) {
        fail_queue_and_rest(w, c);
        return 0;
    }
    if (c->state != CL_READY || c->inflight >= w->cfg.client_concurrency) {
        ring_remove(w, c);   /* back via sched_wake when that changes */
        return 0;
    }
    return 1;
}

unsigned sched_idle_slots(const worker *w)
{
    if (w->stopping || w->ring != NULL || w->inflight >= w->cfg.concurrency)
        return 0;
    return w->cfg.concurrency - w->inflight;
}

static int may_start(worker *w)
{
    return !w->stopping && w->inflight < w->cfg.concurrency && st_backlog(w->store) < ST_HIGH_WATER;
}

void sched_pump(worker *w)
{
    if (w->pumping) {        /* a completion inside start(): loop once more */
        w->pump_again = 1;
        return;
    }
    w->pumping = 1;
    do {
        w->pump_again = 0;
        while (w->ring && may_start(w)) {
            client *c = w->ring;
            if (!ready(w, c))
                continue;
            start(w, c, pop_head(c));
            if (c->in_ring)
                w->ring = c->ring_next;   /* next client's turn */
        }
    } while (w->pump_again);
    w->pumping = 0;
    if (sched_idle_slots(w) > 0)
        wk_kick(w);   /* the held jobs leave slots idle: take more */
}
