/* worker: the life of one adsync-worker process (DESIGN.md §5).
 *
 * Two Redis connections: `pop` only ever carries BLMOVE (a blocking command
 * stalls everything behind it), `redis` carries everything else. Jobs are
 * popped while we hold fewer than ADSYNC_MAX_JOBS. Timers keep the heartbeat
 * alive, reap workers whose heartbeat expired, promote due retries and,
 * with --drain, notice when there is nothing left to do.
 *
 * Shutdown (SIGTERM/SIGINT, or --drain finding no work) goes in two steps:
 * stop taking work and let requests in flight finish within
 * ADSYNC_SHUTDOWN_GRACE_MS (a second signal cuts that to 0), then, once every
 * recorded result is confirmed by Redis, hand whatever is still held back to
 * the queue (reap.lua "graceful"), deregister and close. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "scripts.h"
#include "worker.h"

#define POP_TIMEOUT_S 1
#define POP_PIPELINE 8
#define POP_BACKLOG_LIMIT 1000   /* unconfirmed writes: take no new job past this, finish the held ones */
#define PROMOTE_MS 250
#define PROMOTE_BATCH 200
#define HOUSEKEEPING_MS 200
#define FINAL_WRITE_WAIT_MS 3000
#define INITIAL_LATENCY_MS 1000  /* request time assumed until one is measured */
#define ACTIVITY_TTL_MS 7200000  /* per-minute counters: the console shows the last hour */

static const char *const script_table[SCRIPT_COUNT] = {
    [SCRIPT_PROGRESS] = script_progress, [SCRIPT_RATELIMIT] = script_ratelimit,
    [SCRIPT_PROMOTE] = script_promote,   [SCRIPT_REAP] = script_reap,
    [SCRIPT_BURY] = script_bury,         [SCRIPT_CAD] = script_cad,
    [SCRIPT_UNPOP] = script_unpop,       [SCRIPT_SYNCED] = script_synced,
};

static void pop_more(worker *w);
static void stop_step(worker *w);

/* ---- counters -------------------------------------------------------------- */

const uint64_t wk_duration_bounds_ms[WK_DURATION_BOUNDS] = { 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000 };

static int http_class(const http_result *res)
{
    if (res->error == HTTP_ERR_TIMEOUT)
        return WK_HTTP_TIMEOUT;
    if (res->error != HTTP_OK || res->status < 100 || res->status > 599)
        return WK_HTTP_ERROR;
    return (int)(res->status / 100) - 1;
}

void wk_count_http(worker *w, wk_endpoint ep, const http_result *res)
{
    wk_counters *n = &w->n;
    n->http_requests++;
    n->http_by[ep][http_class(res)]++;
    if (res->error == HTTP_ERR_TIMEOUT)
        n->http_timeouts++;
    else if (res->error == HTTP_OK && res->status == 429)
        n->http_429++;
    else if (res->error == HTTP_OK && res->status >= 500)
        n->http_5xx++;
    n->http_ms_sum[ep] += res->duration_ms;
    size_t b = 0;
    while (b < WK_DURATION_BOUNDS && res->duration_ms > wk_duration_bounds_ms[b])
        b++;
    n->http_ms_buckets[ep][b]++;
}

/* A counter of wk_counters flushed to a Redis hash field. */
typedef struct flushed_field {
    const char *name;
    size_t off;
} flushed_field;

/* HINCRBY key by what each field gained since its last flush. 1 if
 * anything was sent. */
static int flush_deltas(worker *w, const char *key, const flushed_field *fields, size_t n)
{
    int sent = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t *now = (uint64_t *)((char *)&w->n + fields[i].off);
        uint64_t *done = (uint64_t *)((char *)&w->flushed + fields[i].off);
        if (*now == *done)
            continue;
        if (rds_commandf(w->redis, NULL, NULL, "HINCRBY %s %s %llu", key, fields[i].name,
                         (unsigned long long)(*now - *done)) == 0) {
            *done = *now;
            sent = 1;
        }
    }
    return sent;
}

#define F(x) { #x, offsetof(wk_counters, x) }

/* Adds what changed since the last flush to <prefix>:stats. */
static void flush_stats(worker *w)
{
    static const flushed_field fields[] = {
        F(http_requests), F(http_429), F(http_5xx), F(http_timeouts), F(auth_requests),
        F(rate_waits), F(token_refreshes), F(redis_reconnects),
    };
    flush_deltas(w, wk_key(w, KEYS_STATS), fields, sizeof fields / sizeof fields[0]);
}

#undef F

/* Per-minute activity for the web console's chart: the campaigns this
 * worker synced, retried and buried since the last flush, added to
 * <prefix>:stats:minute:<minutes since the epoch>, which expires after
 * ACTIVITY_TTL_MS. */
static void flush_activity(worker *w)
{
    static const flushed_field fields[] = {
        { "synced", offsetof(wk_counters, campaigns_synced) },
        { "retried", offsetof(wk_counters, campaigns_retried) },
        { "dead", offsetof(wk_counters, campaigns_dead) },
    };
    char key[KEYS_MAX_LEN + 32];
    snprintf(key, sizeof key, "%s:minute:%llu", wk_key(w, KEYS_STATS),
             (unsigned long long)(clock_wall_ms() / 60000));
    if (flush_deltas(w, key, fields, sizeof fields / sizeof fields[0]))
        rds_commandf(w->redis, NULL, NULL, "PEXPIRE %s %d", key, ACTIVITY_TTL_MS);
}

/* ---- timers ------------------------------------------------------------- */

/* The heartbeat also rejoins <prefix>:workers: a reaper that took us for
 * dead (our key expired while Redis was away and we came back later than
 * it) removed us, and a worker missing from the set is never reaped, so
 * whatever it holds when it really dies would stay stuck. The key goes
 * first: a reaper running in between sees us alive. */
static void heartbeat(worker *w)
{
    flush_stats(w);
    flush_activity(w);
    if (w->stopping >= 3)
        return;   /* deregistering: do not come back */
    char json[512], ttl[24];
    snprintf(json, sizeof json,
             "{\"host\":\"%s\",\"pid\":%d,\"started_at\":%llu,\"heartbeat_at\":%llu,\"inflight\":%u,\"jobs\":%zu}",
             w->host, (int)getpid(), (unsigned long long)w->started_at,
             (unsigned long long)clock_wall_ms(), w->inflight, w->njobs);
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)w->cfg.lease_ms);
    const char *argv[] = { "SET", w->heartbeat_key, json, "PX", ttl };
    rds_command(w->redis, NULL, NULL, 5, argv, NULL);
    rds_commandf(w->redis, NULL, NULL, "SADD %s %s", wk_key(w, KEYS_WORKERS), w->id);
}

static void on_heartbeat_timer(uv_timer_t *t)
{
    heartbeat(t->data);
}

static void reap_worker(worker *w, const char *wid, const char *mode, rds_reply_fn *cb)
{
    char hb[KEYS_MAX_LEN], proc[KEYS_MAX_LEN];
    char claim[KEYS_MAX_LEN];
    if (keys_worker_key(&w->keys, wid, hb, sizeof hb) < 0 ||
        keys_processing_key(&w->keys, wid, proc, sizeof proc) < 0 ||
        keys_outbox_claim_key(&w->keys, wid, claim, sizeof claim) < 0)
        return;   /* a malformed id in the set: not one of ours to touch */
    const char *args[] = { hb, proc, wk_key(w, KEYS_WORKERS), wk_key(w, KEYS_JOBS), wk_key(w, KEYS_STATS),
                           wk_key(w, KEYS_DELIVERIES), claim, wk_key(w, KEYS_OUTBOX), wid, mode };
    rds_script(w->redis, SCRIPT_REAP, cb, w, 8, 10, args, NULL);
}

static void on_reaped(rds *r, redisReply *reply, void *privdata)
{
    (void)r;
    worker *w = privdata;
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0) {
        w->n.jobs_recovered += (uint64_t)reply->integer;
        log_warn("recovered jobs of a dead worker", LOG_INT("jobs", reply->integer));
    }
}

static void on_workers(rds *r, redisReply *reply, void *privdata)
{
    (void)r;
    worker *w = privdata;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *e = reply->element[i];
        if (e->type == REDIS_REPLY_STRING && strcmp(e->str, w->id) != 0)
            reap_worker(w, e->str, "dead", on_reaped);
    }
}

/* Processing lists are also found by name, not only through the workers
 * set: a job that lands in the list of a worker no longer registered (a
 * pop still queued on its connection when it deregistered at shutdown)
 * would otherwise wait there forever. reap.lua leaves a list alone while
 * its worker's heartbeat lives. */
static void scan_processing(worker *w, const char *cursor);

/* "<prefix>:processing:" into out; its length. */
static size_t processing_prefix(const worker *w, char *out, size_t outlen)
{
    size_t n = strlen(w->processing_key) - strlen(w->id);
    snprintf(out, outlen, "%.*s", (int)n, w->processing_key);
    return n;
}

static void on_processing_lists(rds *r, redisReply *reply, void *privdata)
{
    (void)r;
    worker *w = privdata;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING || reply->element[1]->type != REDIS_REPLY_ARRAY)
        return;
    char prefix[KEYS_MAX_LEN];
    size_t plen = processing_prefix(w, prefix, sizeof prefix);
    const redisReply *found = reply->element[1];
    for (size_t i = 0; i < found->elements; i++) {
        const redisReply *k = found->element[i];
        if (k->type != REDIS_REPLY_STRING || k->len <= plen)
            continue;
        const char *wid = k->str + plen;
        if (strcmp(wid, w->id) != 0 && keys_valid_token(wid))
            reap_worker(w, wid, "dead", on_reaped);
    }
    if (strcmp(reply->element[0]->str, "0") != 0)
        scan_processing(w, reply->element[0]->str);
}

static void scan_processing(worker *w, const char *cursor)
{
    char pattern[KEYS_MAX_LEN + 2];
    size_t n = processing_prefix(w, pattern, sizeof pattern - 1);
    pattern[n] = '*';   /* the prefix holds no glob characters (cfg) */
    pattern[n + 1] = '\0';
    rds_commandf(w->redis, on_processing_lists, w, "SCAN %s MATCH %s COUNT 500", cursor, pattern);
}

static void on_reaper_timer(uv_timer_t *t)
{
    worker *w = t->data;
    rds_commandf(w->redis, on_workers, w, "SMEMBERS %s", wk_key(w, KEYS_WORKERS));
    scan_processing(w, "0");
}

static void promote(worker *w);

static void on_promoted(rds *r, redisReply *reply, void *privdata)
{
    (void)r;
    worker *w = privdata;
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        /* e.g. the retry set overwritten by another type while we run:
         * said once, tried again every tick until somebody fixes it */
        if (!w->promote_failing)
            log_error("cannot promote due retries", LOG_STR("error", reply->str));
        w->promote_failing = 1;
        return;
    }
    if (reply && w->promote_failing)
        log_info("promoting due retries again");
    if (reply)
        w->promote_failing = 0;
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer >= PROMOTE_BATCH)
        promote(w);   /* more are due: keep going */
}

static void promote(worker *w)
{
    char batch[16];
    snprintf(batch, sizeof batch, "%d", PROMOTE_BATCH);
    const char *args[] = { wk_key(w, KEYS_RETRY), wk_key(w, KEYS_JOBS), batch };
    rds_script(w->redis, SCRIPT_PROMOTE, on_promoted, w, 2, 3, args, NULL);
}

static void on_promote_timer(uv_timer_t *t)
{
    promote(t->data);
}

/* --drain: stop once the queue, the retry set and our own work are empty. */
static void on_drain_check(rds *r, redisReply *reply, void *privdata)
{
    (void)r;
    worker *w = privdata;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 || w->stopping)
        return;
    /* Our own side is checked again: during the round trip a job may have
     * arrived, or the sink may have claimed a batch (another worker's
     * results) that a stop would hand back to the outbox unwritten. */
    if (reply->element[0]->integer == 0 && reply->element[1]->integer == 0 && w->njobs == 0 &&
        st_backlog(w->store) == 0 && sink_idle(w)) {
        log_info("drained: no jobs left, stopping");
        w->stopping = 1;
        stop_step(w);
    }
}

static void check_drained(worker *w)
{
    if (!w->drain || w->stopping || w->njobs > 0 || st_backlog(w->store) > 0 || !rds_is_connected(w->redis) ||
        !sink_idle(w))
        return;
    /* One script-free round trip: EVAL would do, but a MULTI keeps it plain. */
    rds_commandf(w->redis, NULL, NULL, "MULTI");
    rds_commandf(w->redis, NULL, NULL, "LLEN %s", wk_key(w, KEYS_JOBS));
    rds_commandf(w->redis, NULL, NULL, "ZCARD %s", wk_key(w, KEYS_RETRY));
    rds_commandf(w->redis, on_drain_check, w, "EXEC");
}

static void on_housekeeping(uv_timer_t *t)
{
    worker *w = t->data;
    if (w->stopping)
        stop_step(w);
    else
        check_drained(w);
    fl_resume_lists(w);
    fl_hand_back_aborted(w);
    pop_more(w);
}

/* ---- popping ----------------------------------------------------------------- */

/* A BLMOVE that Redis ran but whose reply was lost with the connection (or
 * the server) leaves a job in our processing list that we do not hold, and
 * nobody would run it while we live. So once the pop connection is back,
 * before it pops again, whatever in that list no held job accounts for goes
 * back to the queue. Held jobs are matched by their exact bytes, each one
 * accounting for one element. */
static int is_held(worker *w, const redisReply *e, unsigned char *claimed)
{
    size_t i = 0;
    for (held *h = w->jobs; h; h = h->next, i++) {
        if (!claimed[i] && h->elem_len == e->len && memcmp(h->elem, e->str, e->len) == 0) {
            claimed[i] = 1;
            return 1;
        }
    }
    return 0;
}

static int unpop(worker *w, const redisReply *e)
{
    const char *args[] = { w->processing_key, wk_key(w, KEYS_JOBS), e->str };
    size_t lens[] = { strlen(w->processing_key), strlen(wk_key(w, KEYS_JOBS)), e->len };
    return rds_script(w->redis, SCRIPT_UNPOP, NULL, NULL, 2, 3, args, lens);
}

static void on_own_list(rds *r, redisReply *reply, void *privdata)
{
    (void)r;
    worker *w = privdata;
    unsigned char *claimed = calloc(w->njobs + 1, 1);
    w->orphan_check = 1;   /* asked again by pop_more unless all goes well */
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || claimed == NULL) {
        free(claimed);
        return;
    }
    long long orphans = 0;
    int failed = 0;
    for (size_t i = 0; i < reply->elements && !failed; i++) {
        const redisReply *e = reply->element[i];
        if (e->type != REDIS_REPLY_STRING || is_held(w, e, claimed))
            continue;
        failed = unpop(w, e) < 0;
        orphans += !failed;
    }
    free(claimed);
    if (orphans > 0)
        log_warn("handed back jobs whose pop reply was lost", LOG_INT("jobs", orphans));
    if (failed)
        return;
    w->orphan_check = 0;
    pop_more(w);
}

static void check_orphans(worker *w)
{
    if (w->orphan_check == 2)
        return;   /* asked already */
    if (rds_commandf(w->redis, on_own_list, w, "LRANGE %s 0 -1", w->processing_key) == 0)
        w->orphan_check = 2;
}

static void on_popped(rds *r, redisReply *reply, void *privdata)
{
    (void)r;
    worker *w = privdata;
    w->pops_pending--;
    if (reply && reply->type == REDIS_REPLY_STRING && !w->stopping) {
        sink_touch(w);
        char *elem = malloc(reply->len + 1);
        if (elem) {
            memcpy(elem, reply->str, reply->len);
            elem[reply->len] = '\0';
            fl_start(w, elem, reply->len);
        } else {
            w->orphan_check = 1;   /* popped but not held: handed back by check_orphans */
        }
    }
    /* While stopping, an element that still arrived sits in our processing
     * list and is handed back with the rest. */
    pop_more(w);
}

/* Room for another job: under the memory cap (ADSYNC_MAX_JOBS) with the
 * write backlog small, and the HTTP slots not spoken for. The slots, not a
 * job count, bound the work in progress: a client held to 10 requests a
 * minute keeps a fraction of a slot busy on average (its rate times the
 * measured request time) and, waiting for its window, a cooldown or a token,
 * none. So the worker holds as many clients as the slots can serve at the
 * platform's pace, and takes more whenever slots sit idle anyway. Jobs still
 * starting or being popped count as ADSYNC_CLIENT_CONCURRENCY each. */
static int wants_job(const worker *w)
{
    size_t holding = w->njobs + w->pops_pending;
    size_t claimed = (w->starting + w->pops_pending) * w->cfg.client_concurrency;
    if (holding >= w->cfg.max_jobs || st_backlog(w->store) >= POP_BACKLOG_LIMIT)
        return 0;
    return sched_expected_busy(w) + (double)claimed < (double)w->cfg.concurrency ||
           sched_idle_slots(w) > claimed;
}

static void pop_more(worker *w)
{
    if (w->stopping || !w->registered || w->pop == NULL || !rds_is_connected(w->pop))
        return;
    if (w->orphan_check) {
        /* Only with no pop in flight: an element a pending BLMOVE moved is
         * ours a moment later, not an orphan. Popping resumes afterwards. */
        if (w->pops_pending == 0)
            check_orphans(w);
        return;
    }
    char timeout[8];
    snprintf(timeout, sizeof timeout, "%d", POP_TIMEOUT_S);
    while (w->pops_pending < POP_PIPELINE && wants_job(w)) {
        const char *argv[] = { "BLMOVE", wk_key(w, KEYS_JOBS), w->processing_key, "RIGHT", "LEFT", timeout };
        if (rds_command(w->pop, on_popped, w, 6, argv, NULL) < 0)
            return;
        w->pops_pending++;
    }
}

void wk_kick(worker *w)
{
    if (w->closed)
        return;
    if (w->stopping)
        stop_step(w);
    else
        pop_more(w);
}

/* A store write landed: a job may have ended, or the backlog shrunk. */
static void on_write_landed(void *ud)
{
    wk_kick(ud);
}

static void begin_stop(worker *w, uint64_t grace_ms);

/* ---- Redis connection state ------------------------------------------------- */

static void on_registered(rds *r, redisReply *reply, void *privdata)
{
    (void)r;
    worker *w = privdata;
    if (reply == NULL)
        return;   /* the connection dropped first: on_redis_state registers again */
    heartbeat(w);
    uint64_t lease = w->cfg.lease_ms;
    uv_timer_start(&w->heartbeat_timer, on_heartbeat_timer, lease / 3, lease / 3);
    uv_timer_start(&w->reaper_timer, on_reaper_timer, lease / 2, lease / 2);
    uv_timer_start(&w->promote_timer, on_promote_timer, 0, PROMOTE_MS);
    log_info("worker registered", LOG_STR("worker", w->id));
    w->registered = 1;
    if (w->cfg.pg_url[0] && w->sink == NULL && sink_start(w) < 0)
        log_error("could not start the postgres sink (out of memory?); results stay in the outbox");
    pop_more(w);
}

/* At first connect: take back what a crashed process with our id held,
 * then register. */
static void register_worker(worker *w)
{
    reap_worker(w, w->id, "own", NULL);
    rds_commandf(w->redis, on_registered, w, "SADD %s %s", wk_key(w, KEYS_WORKERS), w->id);
}

/* Keys every job shares, and the type each must have. */
static const struct shared_key {
    keys_global key;
    const char *type;
} shared_keys[] = {
    { KEYS_JOBS, "list" },  { KEYS_RETRY, "zset" },   { KEYS_DEAD, "list" },    { KEYS_DELIVERIES, "hash" },
    { KEYS_STATS, "hash" }, { KEYS_WORKERS, "set" }, { KEYS_CLIENTS, "set" }, { KEYS_OUTBOX, "list" },
};
#define SHARED_KEYS (sizeof shared_keys / sizeof shared_keys[0])

/* A shared key of another type means the prefix holds another program's
 * data (or somebody's SET): nothing could be recorded safely, so the worker
 * names the key once and exits 78 before it takes any job. A key of one
 * client or run is checked where it is used (lib/keycall.lua). */
static void on_key_types(rds *r, redisReply *reply, void *privdata)
{
    (void)r;
    worker *w = privdata;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != SHARED_KEYS)
        return;   /* the connection dropped: on_redis_state checks again */
    for (size_t i = 0; i < SHARED_KEYS; i++) {
        const redisReply *t = reply->element[i];
        if (t->type != REDIS_REPLY_STATUS || strcmp(t->str, "none") == 0 || strcmp(t->str, shared_keys[i].type) == 0)
            continue;
        const char *key = wk_key(w, shared_keys[i].key);
        log_error("a shared Redis key holds the wrong type (is ADSYNC_PREFIX used by other data?)",
                  LOG_STR("key", key), LOG_STR("type", t->str), LOG_STR("expected", shared_keys[i].type));
        w->exit_code = CFG_EXIT_CONFIG;
        begin_stop(w, 0);
        return;
    }
    register_worker(w);
}

static void check_key_types(worker *w)
{
    rds_commandf(w->redis, NULL, NULL, "MULTI");
    for (size_t i = 0; i < SHARED_KEYS; i++)
        rds_commandf(w->redis, NULL, NULL, "TYPE %s", wk_key(w, shared_keys[i].key));
    rds_commandf(w->redis, on_key_types, w, "EXEC");
}

/* Back after an outage: every heartbeat may have expired meanwhile through
 * no fault of its worker, and our peers reconnect a little before or after
 * us. Reaping them now would only duplicate their work: give them a lease
 * to beat again first. */
static void hold_off_reaper(worker *w)
{
    uint64_t lease = w->cfg.lease_ms;
    uv_timer_start(&w->reaper_timer, on_reaper_timer, lease, lease / 2);
}

static void on_redis_state(rds *r, int connected, const char *reason, void *ud)
{
    worker *w = ud;
    const char *which = r == w->pop ? "pop" : "main";
    if (!connected) {
        log_warn("redis connection lost", LOG_STR("connection", which), LOG_STR("reason", reason));
        return;
    }
    log_info("redis connected", LOG_STR("connection", which));
    if (r == w->pop) {
        if (rds_reconnects(r) > 0)
            w->orphan_check = 1;   /* see check_orphans */
        pop_more(w);
        return;
    }
    if (rds_reconnects(r) > 0)
        w->n.redis_reconnects++;
    if (!w->registered) {
        check_key_types(w);   /* first connect, or the first one dropped before it registered */
    } else {
        heartbeat(w);
        hold_off_reaper(w);
    }
    st_on_connected(w->store);
    sched_pump(w);
}

/* ---- shutdown ---------------------------------------------------------------- */

/* Frees what callbacks may still point at, once libuv closes the last
 * handle: by then every Redis callback has run (with NULL) and every HTTP
 * request has been aborted. */
static void on_final_close(uv_handle_t *h)
{
    worker *w = h->data;
    fl_free_all(w);
    cl_free_all(w);
    st_free(w->store);
    w->store = NULL;
}

static void close_all(worker *w)
{
    if (w->closed)
        return;
    w->closed = 1;
    uv_handle_t *handles[] = {
        (uv_handle_t *)&w->heartbeat_timer, (uv_handle_t *)&w->reaper_timer,
        (uv_handle_t *)&w->promote_timer,   (uv_handle_t *)&w->housekeeping_timer,
        (uv_handle_t *)&w->sigterm,         (uv_handle_t *)&w->sigint,
        (uv_handle_t *)&w->batch_timer,
    };
    for (size_t i = 0; i < sizeof handles / sizeof handles[0]; i++)
        if (!uv_is_closing(handles[i]))
            uv_close(handles[i], NULL);
    http_client_free(w->http);
    w->http = NULL;
    sink_free(w);
    rds_close(w->pop);
    w->pop = NULL;
    rds_close(w->redis);
    w->redis = NULL;
    uv_close((uv_handle_t *)&w->grace_timer, on_final_close);
}

static void on_handed_back(rds *r, redisReply *reply, void *privdata)
{
    (void)r;
    worker *w = privdata;
    if (reply && reply->type == REDIS_REPLY_INTEGER)
        log_info("stopped", LOG_STR("worker", w->id), LOG_INT("jobs_handed_back", reply->integer));
    else
        log_warn("stopped without handing jobs back; another worker's reaper will",
                 LOG_STR("worker", w->id));
    close_all(w);
}

static void on_grace_over(uv_timer_t *t)
{
    worker *w = t->data;
    if (w->stopping == 1 && w->inflight > 0) {
        log_warn("shutdown grace over, aborting requests in flight", LOG_INT("inflight", w->inflight));
        http_client_free(w->http);   /* aborted callbacks run before it returns */
        w->http = NULL;
    }
    stop_step(w);
}

/* Advances the shutdown as far as it can go now; called whenever work ends. */
static void stop_step(worker *w)
{
    if (w->closed)
        return;
    if (w->stopping == 1) {
        if (w->inflight > 0)
            return;
        w->stopping = 2;
        sched_cancel_queued(w);   /* calls requeued during the grace (401, 429) */
        sink_stop(w);
        uv_timer_start(&w->grace_timer, on_grace_over, FINAL_WRITE_WAIT_MS, 0);
    }
    if (w->stopping == 2) {
        fl_flush_batches(w);   /* results of the last turn go to the store first */
        int writes_pending = (w->store && st_backlog(w->store) > 0) || sink_busy(w);
        int redis_up = w->redis && rds_is_connected(w->redis);
        if (writes_pending && redis_up && uv_timer_get_due_in(&w->grace_timer) > 0)
            return;   /* let recorded results land first */
        w->stopping = 3;
        uv_timer_stop(&w->grace_timer);
        if (redis_up) {
            reap_worker(w, w->id, "graceful", on_handed_back);
            return;
        }
        on_handed_back(NULL, NULL, w);
    }
}

static void begin_stop(worker *w, uint64_t grace_ms)
{
    if (w->stopping == 0) {
        w->stopping = 1;
        log_info("stopping: finishing requests in flight", LOG_INT("grace_ms", (long long)grace_ms),
                 LOG_INT("inflight", w->inflight), LOG_INT("jobs", (long long)w->njobs));
        rds_close(w->pop);
        w->pop = NULL;
        sched_cancel_queued(w);
    }
    if (w->stopping == 1)
        uv_timer_start(&w->grace_timer, on_grace_over, grace_ms, 0);
    stop_step(w);
}

static void on_signal(uv_signal_t *s, int signum)
{
    worker *w = s->data;
    int again = w->stopping != 0;
    log_info(again ? "second signal: no more grace" : "signal received", LOG_INT("signal", signum));
    begin_stop(w, again ? 0 : w->cfg.shutdown_grace_ms);
}

/* ---- setup -------------------------------------------------------------------- */

static void make_id(worker *w, const char *id)
{
    if (gethostname(w->host, sizeof w->host) != 0)
        snprintf(w->host, sizeof w->host, "unknown");
    w->host[sizeof w->host - 1] = '\0';
    if (id) {
        snprintf(w->id, sizeof w->id, "%s", id);
        return;
    }
    char rnd[JOB_ID_LEN + 1], host[64];
    job_make_id(rnd);
    size_t n = 0;
    for (const char *p = w->host; *p && n < sizeof host - 1; p++)   /* keep it a valid token */
        host[n++] = keys_valid_token((char[]){ *p, 0 }) ? *p : '-';
    host[n] = '\0';
    snprintf(w->id, sizeof w->id, "%s-%d-%.6s", n ? host : "host", (int)getpid(), rnd);
}

static int open_connections(worker *w)
{
    rds_options main_opt = {
        .url = &w->cfg.redis, .name = "main", .command_timeout_ms = 10000,
        .scripts = script_table, .nscripts = SCRIPT_COUNT, .on_state = on_redis_state, .ud = w,
    };
    rds_options pop_opt = {
        .url = &w->cfg.redis, .name = "pop", .command_timeout_ms = POP_TIMEOUT_S * 1000 * (POP_PIPELINE + 1) + 5000,
        .on_state = on_redis_state, .ud = w,
    };
    http_options hopt = {
        .connect_timeout_ms = w->cfg.connect_timeout_ms, .timeout_ms = w->cfg.http_timeout_ms,
        .max_body_bytes = w->cfg.max_body_bytes,
        .body_budget_bytes = w->cfg.body_budget_bytes, .budget_held = &w->page_bytes, .max_connections = (long)w->cfg.concurrency,
    };
    w->redis = rds_new(w->loop, &main_opt);
    w->pop = rds_new(w->loop, &pop_opt);
    w->http = http_client_new(w->loop, &hopt);
    w->store = st_new(w->loop, w->redis, on_write_landed, w);
    return w->redis && w->pop && w->http && w->store ? 0 : -1;
}

int wk_init(worker *w, uv_loop_t *loop, const cfg *c, const seal_keyring *seal, const char *id, int drain)
{
    memset(w, 0, sizeof *w);
    rl_pad_init(&w->rate_pad);
    w->latency_ms = INITIAL_LATENCY_MS;
    w->loop = loop;
    w->cfg = *c;
    w->seal = seal;
    w->drain = drain;
    w->started_at = clock_wall_ms();
    keys_init(&w->keys, c->prefix);
    make_id(w, id);
    keys_processing_key(&w->keys, w->id, w->processing_key, sizeof w->processing_key);
    keys_worker_key(&w->keys, w->id, w->heartbeat_key, sizeof w->heartbeat_key);
    for (int k = 0; k < KEYS_GLOBAL_COUNT; k++)
        keys_global_key(&w->keys, (keys_global)k, w->global_keys[k], sizeof w->global_keys[k]);
    snprintf(w->retention, sizeof w->retention, "%llu", (unsigned long long)c->retention_ms);
    snprintf(w->dead_max, sizeof w->dead_max, "%u", c->dead_max);
    w->policy = (pol_limits){ c->max_attempts, c->backoff_base_ms, c->backoff_max_ms };

    uv_timer_t *timers[] = { &w->heartbeat_timer, &w->reaper_timer, &w->promote_timer,
                             &w->housekeeping_timer, &w->grace_timer };
    for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++) {
        uv_timer_init(loop, timers[i]);
        timers[i]->data = w;
    }
    uv_timer_init(loop, &w->batch_timer);
    w->batch_timer.data = w;
    uv_signal_init(loop, &w->sigterm);
    uv_signal_init(loop, &w->sigint);
    w->sigterm.data = w->sigint.data = w;
    return open_connections(w);
}

void wk_start(worker *w)
{
    uv_signal_start(&w->sigterm, on_signal, SIGTERM);
    uv_signal_start(&w->sigint, on_signal, SIGINT);
    uv_timer_start(&w->housekeeping_timer, on_housekeeping, HOUSEKEEPING_MS, HOUSEKEEPING_MS);
    log_info("worker starting", LOG_STR("worker", w->id), LOG_INT("concurrency", w->cfg.concurrency),
             LOG_INT("max_jobs", w->cfg.max_jobs), LOG_INT("drain", w->drain));
}
