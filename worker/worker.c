/* worker: the life of one adsync-worker process (DESIGN.md §5).
 *
 * Two Redis connections: `pop` only ever carries BLMOVE (a blocking command
 * stalls everything behind it), `redis` carries everything else. Jobs are
 * popped while we hold fewer than ADSYNC_MAX_JOBS. Timers keep the heartbeat
 * alive, reap workers whose heartbeat expired, promote due retries and,
 * with --drain, notice when there is nothing left to do.
 *
 * Shutdown (SIGTERM/SIGINT, --drain finding no work, a shared key of the
 * wrong type) walks the phases of ctx.h: DRAINING stops taking work and lets
 * requests in flight finish within ADSYNC_SHUTDOWN_GRACE_MS (a second signal
 * cuts that to 0); STOPPING waits until every recorded result is confirmed
 * by Redis; CLOSING hands whatever is still held back to the queue (reap.lua
 * "graceful") and deregisters; CLOSED closes the handles.
 *
 * The parts are set up bottom-up in open_parts (scheduler, client registry,
 * flow) and freed top-down once the last handle closed. */
#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "clock.h"
#include "flow.h"
#include "log.h"
#include "scheduler.h"
#include "scripts.h"
#include "sink.h"

#define POP_TIMEOUT_S 1
#define POP_PIPELINE 8
#define POP_BACKLOG_LIMIT 1000   /* unconfirmed writes: take no new job past this, finish the held ones */
#define PROMOTE_MS 250
#define PROMOTE_BATCH 200
#define HOUSEKEEPING_MS 200
#define FINAL_WRITE_WAIT_MS 3000
#define ACTIVITY_TTL_MS 7200000  /* per-minute counters: the console shows the last hour */

static const char *const script_table[SCRIPT_COUNT] = {
    [SCRIPT_PROGRESS] = script_progress, [SCRIPT_RATELIMIT] = script_ratelimit,
    [SCRIPT_PROMOTE] = script_promote,   [SCRIPT_REAP] = script_reap,
    [SCRIPT_BURY] = script_bury,         [SCRIPT_CAD] = script_cad,
    [SCRIPT_UNPOP] = script_unpop,       [SCRIPT_SYNCED] = script_synced,
};

struct worker {
    wctx x;                  /* what the parts share (ctx.h) */
    char host[128];
    int drain;
    uint64_t started_at;
    rds *pop;                /* BLMOVE only */
    cl_set *clients;
    sched *sched;
    flow *flow;
    sink *sink;              /* NULL unless ADSYNC_PG_URL is set */
    unsigned pops_pending;
    int orphan_check;        /* new pop connection: 1 = check our list before popping, 2 = asked */
    uv_timer_t heartbeat_timer, reaper_timer, promote_timer, housekeeping_timer, grace_timer;
    uv_signal_t sigterm, sigint;
    int exit_code;
    int promote_failing;     /* promote.lua answered an error; logged once */
    wk_counters flushed;     /* part of x.n already added to <prefix>:stats */
    char heartbeat_key[KEYS_MAX_LEN];
};

static void pop_more(worker *w);
static void stop_step(worker *w);
static void begin_stop(worker *w, uint64_t grace_ms);

/* ---- counters -------------------------------------------------------------- */

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
        uint64_t *now = (uint64_t *)((char *)&w->x.n + fields[i].off);
        uint64_t *done = (uint64_t *)((char *)&w->flushed + fields[i].off);
        if (*now == *done)
            continue;
        if (rds_commandf(w->x.redis, NULL, NULL, "HINCRBY %s %s %llu", key, fields[i].name,
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
    flush_deltas(w, ctx_key(&w->x, KEYS_STATS), fields, sizeof fields / sizeof fields[0]);
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
    snprintf(key, sizeof key, "%s:minute:%llu", ctx_key(&w->x, KEYS_STATS),
             (unsigned long long)(clock_wall_ms() / 60000));
    if (flush_deltas(w, key, fields, sizeof fields / sizeof fields[0]))
        rds_commandf(w->x.redis, NULL, NULL, "PEXPIRE %s %d", key, ACTIVITY_TTL_MS);
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
    if (w->x.phase >= WK_CLOSING)
        return;   /* deregistering: do not come back */
    char json[512], ttl[24];
    snprintf(json, sizeof json,
             "{\"host\":\"%s\",\"pid\":%d,\"started_at\":%llu,\"heartbeat_at\":%llu,\"inflight\":%u,\"jobs\":%zu}",
             w->host, (int)getpid(), (unsigned long long)w->started_at,
             (unsigned long long)clock_wall_ms(), sched_inflight(w->sched), w->x.jobs_held);
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)w->x.cfg.lease_ms);
    const char *argv[] = { "SET", w->heartbeat_key, json, "PX", ttl };
    rds_command(w->x.redis, NULL, NULL, 5, argv, NULL);
    rds_commandf(w->x.redis, NULL, NULL, "SADD %s %s", ctx_key(&w->x, KEYS_WORKERS), w->x.id);
}

static void on_heartbeat_timer(uv_timer_t *t)
{
    heartbeat(t->data);
}

/* 0, or -1 when the script could not be sent (cb never runs). */
static int reap_worker(worker *w, const char *wid, const char *mode, rds_reply_fn *cb)
{
    char hb[KEYS_MAX_LEN], proc[KEYS_MAX_LEN];
    char claim[KEYS_MAX_LEN];
    if (keys_worker_key(&w->x.keys, wid, hb, sizeof hb) < 0 ||
        keys_processing_key(&w->x.keys, wid, proc, sizeof proc) < 0 ||
        keys_outbox_claim_key(&w->x.keys, wid, claim, sizeof claim) < 0)
        return -1;   /* a malformed id in the set: not one of ours to touch */
    const char *args[] = { hb, proc, ctx_key(&w->x, KEYS_WORKERS), ctx_key(&w->x, KEYS_JOBS), ctx_key(&w->x, KEYS_STATS),
                           ctx_key(&w->x, KEYS_DELIVERIES), claim, ctx_key(&w->x, KEYS_OUTBOX), wid, mode };
    return rds_script(w->x.redis, SCRIPT_REAP, cb, w, 8, 10, args, NULL);
}

static void on_reaped(rds *r, redisReply *reply, void *privdata)
{
    (void)r;
    worker *w = privdata;
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0) {
        w->x.n.jobs_recovered += (uint64_t)reply->integer;
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
        if (e->type == REDIS_REPLY_STRING && strcmp(e->str, w->x.id) != 0)
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
    size_t n = strlen(w->x.processing_key) - strlen(w->x.id);
    snprintf(out, outlen, "%.*s", (int)n, w->x.processing_key);
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
        if (strcmp(wid, w->x.id) != 0 && keys_valid_token(wid))
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
    rds_commandf(w->x.redis, on_processing_lists, w, "SCAN %s MATCH %s COUNT 500", cursor, pattern);
}

static void on_reaper_timer(uv_timer_t *t)
{
    worker *w = t->data;
    rds_commandf(w->x.redis, on_workers, w, "SMEMBERS %s", ctx_key(&w->x, KEYS_WORKERS));
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
    const char *args[] = { ctx_key(&w->x, KEYS_RETRY), ctx_key(&w->x, KEYS_JOBS), batch };
    rds_script(w->x.redis, SCRIPT_PROMOTE, on_promoted, w, 2, 3, args, NULL);
}

static void on_promote_timer(uv_timer_t *t)
{
    promote(t->data);
}

/* Our own side of --drain: no job held, none popped but not held (the
 * orphan check hands such an element back first), no write or sink batch
 * on its way. */
static int nothing_held(const worker *w)
{
    return w->x.jobs_held == 0 && !w->orphan_check && st_backlog(w->x.store) == 0 && sink_idle(w->sink);
}

/* --drain: stop once the queue, the retry set and our own work are empty. */
static void on_drain_check(rds *r, redisReply *reply, void *privdata)
{
    (void)r;
    worker *w = privdata;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 || ctx_stopping(&w->x))
        return;
    /* Our own side is checked again: during the round trip a job may have
     * arrived, or the sink may have claimed a batch (another worker's
     * results) that a stop would hand back to the outbox unwritten. */
    if (reply->element[0]->integer == 0 && reply->element[1]->integer == 0 && nothing_held(w)) {
        log_info("drained: no jobs left, stopping");
        begin_stop(w, w->x.cfg.shutdown_grace_ms);   /* closes the pop connection: nothing lands after */
    }
}

static void check_drained(worker *w)
{
    if (!w->drain || w->x.phase != WK_RUNNING || !nothing_held(w) || !rds_is_connected(w->x.redis))
        return;
    /* One script-free round trip: EVAL would do, but a MULTI keeps it plain. */
    rds_commandf(w->x.redis, NULL, NULL, "MULTI");
    rds_commandf(w->x.redis, NULL, NULL, "LLEN %s", ctx_key(&w->x, KEYS_JOBS));
    rds_commandf(w->x.redis, NULL, NULL, "ZCARD %s", ctx_key(&w->x, KEYS_RETRY));
    rds_commandf(w->x.redis, on_drain_check, w, "EXEC");
}

static void on_housekeeping(uv_timer_t *t)
{
    worker *w = t->data;
    if (ctx_stopping(&w->x))
        stop_step(w);
    else
        check_drained(w);
    fl_housekeeping(w->flow);
    pop_more(w);
}

/* ---- popping ----------------------------------------------------------------- */

/* A BLMOVE that Redis ran but whose reply was lost with the connection (or
 * the server) leaves a job in our processing list that we do not hold, and
 * nobody would run it while we live. So once the pop connection is back,
 * before it pops again, whatever in that list no held job accounts for goes
 * back to the queue. Held jobs are matched by their exact bytes, each one
 * accounting for one element. */
static int unpop(worker *w, const redisReply *e)
{
    const char *args[] = { w->x.processing_key, ctx_key(&w->x, KEYS_JOBS), e->str };
    size_t lens[] = { strlen(w->x.processing_key), strlen(ctx_key(&w->x, KEYS_JOBS)), e->len };
    return rds_script(w->x.redis, SCRIPT_UNPOP, NULL, NULL, 2, 3, args, lens);
}

static void on_own_list(rds *r, redisReply *reply, void *privdata)
{
    (void)r;
    worker *w = privdata;
    unsigned char *claimed = calloc(w->x.jobs_held + 1, 1);
    w->orphan_check = 1;   /* asked again by pop_more unless all goes well */
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || claimed == NULL) {
        free(claimed);
        return;
    }
    long long orphans = 0;
    int failed = 0;
    for (size_t i = 0; i < reply->elements && !failed; i++) {
        const redisReply *e = reply->element[i];
        if (e->type != REDIS_REPLY_STRING || fl_match_held(w->flow, e->str, e->len, claimed))
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
    if (rds_commandf(w->x.redis, on_own_list, w, "LRANGE %s 0 -1", w->x.processing_key) == 0)
        w->orphan_check = 2;
}

static void on_popped(rds *r, redisReply *reply, void *privdata)
{
    (void)r;
    worker *w = privdata;
    w->pops_pending--;
    if (reply && reply->type == REDIS_REPLY_STRING && !ctx_stopping(&w->x)) {
        sink_touch(w->sink);
        char *elem = malloc(reply->len + 1);
        if (elem) {
            memcpy(elem, reply->str, reply->len);
            elem[reply->len] = '\0';
        }
        if (elem == NULL || fl_start(w->flow, elem, reply->len) < 0)
            w->orphan_check = 1;   /* popped but not held: handed back by check_orphans */
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
    size_t holding = w->x.jobs_held + w->pops_pending;
    size_t claimed = (fl_starting(w->flow) + w->pops_pending) * w->x.cfg.client_concurrency;
    if (holding >= w->x.cfg.max_jobs || st_backlog(w->x.store) >= POP_BACKLOG_LIMIT)
        return 0;
    return sched_expected_busy(w->sched) + (double)claimed < (double)w->x.cfg.concurrency ||
           sched_idle_slots(w->sched) > claimed;
}

static void pop_more(worker *w)
{
    if (w->x.phase != WK_RUNNING || w->pop == NULL || !rds_is_connected(w->pop))
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
        const char *argv[] = { "BLMOVE", ctx_key(&w->x, KEYS_JOBS), w->x.processing_key, "RIGHT", "LEFT", timeout };
        if (rds_command(w->pop, on_popped, w, 6, argv, NULL) < 0)
            return;
        w->pops_pending++;
    }
}

/* ctx_kick: work ended somewhere, so popping or the shutdown can move on. */
static void kick(void *ud)
{
    worker *w = ud;
    if (w->x.phase == WK_CLOSED)
        return;
    if (ctx_stopping(&w->x))
        stop_step(w);
    else
        pop_more(w);
}

/* A store write landed: a job may have ended, or the backlog shrunk. */
static void on_write_landed(void *ud)
{
    kick(ud);
}

/* ---- Redis connection state ------------------------------------------------- */

static void on_registered(rds *r, redisReply *reply, void *privdata)
{
    (void)r;
    worker *w = privdata;
    if (reply == NULL || w->x.phase != WK_STARTING)
        return;   /* the connection dropped first (on_redis_state registers again), or a stop began */
    heartbeat(w);
    uint64_t lease = w->x.cfg.lease_ms;
    uv_timer_start(&w->heartbeat_timer, on_heartbeat_timer, lease / 3, lease / 3);
    uv_timer_start(&w->reaper_timer, on_reaper_timer, lease / 2, lease / 2);
    uv_timer_start(&w->promote_timer, on_promote_timer, 0, PROMOTE_MS);
    log_info("worker registered", LOG_STR("worker", w->x.id));
    w->x.phase = WK_RUNNING;
    if (w->x.cfg.pg_url[0] && w->sink == NULL && (w->sink = sink_start(&w->x, &sink_pg_writer)) == NULL)
        log_error("could not start the postgres sink (out of memory?); results stay in the outbox");
    pop_more(w);
}

/* At first connect: take back what a crashed process with our id held,
 * then register. */
static void register_worker(worker *w)
{
    if (reap_worker(w, w->x.id, "own", NULL) < 0)
        w->orphan_check = 1;   /* what a crashed namesake left goes back before we pop */
    rds_commandf(w->x.redis, on_registered, w, "SADD %s %s", ctx_key(&w->x, KEYS_WORKERS), w->x.id);
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
        const char *key = ctx_key(&w->x, shared_keys[i].key);
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
    rds_commandf(w->x.redis, NULL, NULL, "MULTI");
    for (size_t i = 0; i < SHARED_KEYS; i++)
        rds_commandf(w->x.redis, NULL, NULL, "TYPE %s", ctx_key(&w->x, shared_keys[i].key));
    rds_commandf(w->x.redis, on_key_types, w, "EXEC");
}

/* Back after an outage: every heartbeat may have expired meanwhile through
 * no fault of its worker, and our peers reconnect a little before or after
 * us. Reaping them now would only duplicate their work: give them a lease
 * to beat again first. */
static void hold_off_reaper(worker *w)
{
    uint64_t lease = w->x.cfg.lease_ms;
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
        w->x.n.redis_reconnects++;
    if (w->x.phase == WK_STARTING) {
        check_key_types(w);   /* first connect, or the first one dropped before it registered */
    } else {
        heartbeat(w);
        hold_off_reaper(w);
    }
    st_on_connected(w->x.store);
    sched_pump(w->sched);
}

/* ---- shutdown ---------------------------------------------------------------- */

/* Frees what callbacks may still point at, once libuv closes the last
 * handle: by then every Redis callback has run (with NULL) and every HTTP
 * request has been aborted. Jobs go before clients (they release them),
 * clients before the scheduler (it forgets each one as it goes). */
static void on_final_close(uv_handle_t *h)
{
    worker *w = h->data;
    fl_free(w->flow);
    w->flow = NULL;
    cl_set_free(w->clients);
    w->clients = NULL;
    sched_free(w->sched);
    w->sched = NULL;
    st_free(w->x.store);
    w->x.store = NULL;
}

static void close_all(worker *w)
{
    if (w->x.phase == WK_CLOSED)
        return;
    w->x.phase = WK_CLOSED;
    uv_handle_t *handles[] = {
        (uv_handle_t *)&w->heartbeat_timer, (uv_handle_t *)&w->reaper_timer,
        (uv_handle_t *)&w->promote_timer,   (uv_handle_t *)&w->housekeeping_timer,
        (uv_handle_t *)&w->sigterm,         (uv_handle_t *)&w->sigint,
    };
    for (size_t i = 0; i < sizeof handles / sizeof handles[0]; i++)
        if (!uv_is_closing(handles[i]))
            uv_close(handles[i], NULL);
    http_client_free(w->x.http);
    w->x.http = NULL;
    sink_free(w->sink);
    w->sink = NULL;
    rds_close(w->pop);
    w->pop = NULL;
    rds_close(w->x.redis);
    w->x.redis = NULL;
    uv_close((uv_handle_t *)&w->grace_timer, on_final_close);
}

static void on_handed_back(rds *r, redisReply *reply, void *privdata)
{
    (void)r;
    worker *w = privdata;
    if (reply && reply->type == REDIS_REPLY_INTEGER)
        log_info("stopped", LOG_STR("worker", w->x.id), LOG_INT("jobs_handed_back", reply->integer));
    else
        log_warn("stopped without handing jobs back; another worker's reaper will",
                 LOG_STR("worker", w->x.id));
    close_all(w);
}

static void on_grace_over(uv_timer_t *t)
{
    worker *w = t->data;
    if (w->x.phase == WK_DRAINING && sched_inflight(w->sched) > 0) {
        log_warn("shutdown grace over, aborting requests in flight", LOG_INT("inflight", sched_inflight(w->sched)));
        http_client_free(w->x.http);   /* aborted callbacks run before it returns */
        w->x.http = NULL;
    }
    stop_step(w);
}

/* DRAINING -> STOPPING once no request is in flight. */
static void drained(worker *w)
{
    w->x.phase = WK_STOPPING;
    sched_cancel_queued(w->sched);   /* calls requeued during the grace (401, 429) */
    sink_stop(w->sink);
    uv_timer_start(&w->grace_timer, on_grace_over, FINAL_WRITE_WAIT_MS, 0);
}

/* STOPPING -> CLOSING once recorded results landed (or the wait is over):
 * whatever is still held goes back to the queue as we deregister. */
static void hand_back_and_close(worker *w)
{
    w->x.phase = WK_CLOSING;
    uv_timer_stop(&w->grace_timer);
    if (w->x.redis && rds_is_connected(w->x.redis)) {
        if (reap_worker(w, w->x.id, "graceful", on_handed_back) == 0)
            return;
    }
    on_handed_back(NULL, NULL, w);
}

/* Advances the shutdown as far as it can go now; called whenever work ends. */
static void stop_step(worker *w)
{
    if (w->x.phase == WK_DRAINING) {
        if (sched_inflight(w->sched) > 0)
            return;
        drained(w);
    }
    if (w->x.phase == WK_STOPPING) {
        fl_flush_batches(w->flow);   /* results of the last turn go to the store first */
        int writes_pending = (w->x.store && st_backlog(w->x.store) > 0) || sink_busy(w->sink);
        int redis_up = w->x.redis && rds_is_connected(w->x.redis);
        if (writes_pending && redis_up && uv_timer_get_due_in(&w->grace_timer) > 0)
            return;   /* let recorded results land first */
        hand_back_and_close(w);
    }
}

static void begin_stop(worker *w, uint64_t grace_ms)
{
    if (w->x.phase < WK_DRAINING) {
        w->x.phase = WK_DRAINING;
        log_info("stopping: finishing requests in flight", LOG_INT("grace_ms", (long long)grace_ms),
                 LOG_INT("inflight", sched_inflight(w->sched)), LOG_INT("jobs", (long long)w->x.jobs_held));
        rds_close(w->pop);
        w->pop = NULL;
        sched_cancel_queued(w->sched);
    }
    if (w->x.phase == WK_DRAINING)
        uv_timer_start(&w->grace_timer, on_grace_over, grace_ms, 0);
    stop_step(w);
}

static void on_signal(uv_signal_t *s, int signum)
{
    worker *w = s->data;
    int again = ctx_stopping(&w->x);
    log_info(again ? "second signal: no more grace" : "signal received", LOG_INT("signal", signum));
    begin_stop(w, again ? 0 : w->x.cfg.shutdown_grace_ms);
}

/* ---- setup -------------------------------------------------------------------- */

/* The worker's id: the one given, or host-pid-random. */
static void make_id(worker *w, const char *id, char *out, size_t outlen)
{
    if (gethostname(w->host, sizeof w->host) != 0)
        snprintf(w->host, sizeof w->host, "unknown");
    w->host[sizeof w->host - 1] = '\0';
    if (id) {
        snprintf(out, outlen, "%s", id);
        return;
    }
    char rnd[JOB_ID_LEN + 1], host[64];
    job_make_id(rnd);
    size_t n = 0;
    for (const char *p = w->host; *p && n < sizeof host - 1; p++)   /* keep it a valid token */
        host[n++] = keys_valid_token((char[]){ *p, 0 }) ? *p : '-';
    host[n] = '\0';
    snprintf(out, outlen, "%s-%d-%.6s", n ? host : "host", (int)getpid(), rnd);
}

/* Connections, then the parts from the bottom up: the scheduler hears the
 * client registry's events, the flow uses both. */
static int open_parts(worker *w)
{
    wctx *x = &w->x;
    rds_options main_opt = {
        .url = &x->cfg.redis, .name = "main", .command_timeout_ms = 10000,
        .scripts = script_table, .nscripts = SCRIPT_COUNT, .on_state = on_redis_state, .ud = w,
    };
    rds_options pop_opt = {
        .url = &x->cfg.redis, .name = "pop", .command_timeout_ms = POP_TIMEOUT_S * 1000 * (POP_PIPELINE + 1) + 5000,
        .on_state = on_redis_state, .ud = w,
    };
    http_options hopt = {
        .connect_timeout_ms = x->cfg.connect_timeout_ms, .timeout_ms = x->cfg.http_timeout_ms,
        .max_body_bytes = x->cfg.max_body_bytes, .body_budget_bytes = x->cfg.body_budget_bytes,
        .budget_held = &x->page_bytes, .max_connections = (long)x->cfg.concurrency,
    };
    x->redis = rds_new(x->loop, &main_opt);
    w->pop = rds_new(x->loop, &pop_opt);
    x->http = http_client_new(x->loop, &hopt);
    x->store = x->redis ? st_new(x->loop, x->redis, on_write_landed, w) : NULL;
    w->sched = sched_new(x, NULL);
    w->clients = w->sched ? cl_set_new(x, sched_on_client_event, w->sched) : NULL;
    w->flow = w->clients ? fl_new(x, w->sched, w->clients) : NULL;
    return x->redis && w->pop && x->http && x->store && w->flow ? 0 : -1;
}

worker *wk_new(void)
{
    return calloc(1, sizeof(worker));
}

void wk_free(worker *w)
{
    free(w);
}

int wk_init(worker *w, uv_loop_t *loop, const cfg *c, const seal_keyring *seal, const char *id, int drain)
{
    char wid[KEYS_TOKEN_MAX + 1];
    memset(w, 0, sizeof *w);
    make_id(w, id, wid, sizeof wid);
    ctx_init(&w->x, loop, c, seal, wid);
    w->x.kick = kick;
    w->x.kick_ud = w;
    w->drain = drain;
    w->started_at = clock_wall_ms();
    keys_worker_key(&w->x.keys, w->x.id, w->heartbeat_key, sizeof w->heartbeat_key);

    uv_timer_t *timers[] = { &w->heartbeat_timer, &w->reaper_timer, &w->promote_timer,
                             &w->housekeeping_timer, &w->grace_timer };
    for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++) {
        uv_timer_init(loop, timers[i]);
        timers[i]->data = w;
    }
    uv_signal_init(loop, &w->sigterm);
    uv_signal_init(loop, &w->sigint);
    w->sigterm.data = w->sigint.data = w;
    return open_parts(w);
}

void wk_start(worker *w)
{
    uv_signal_start(&w->sigterm, on_signal, SIGTERM);
    uv_signal_start(&w->sigint, on_signal, SIGINT);
    uv_timer_start(&w->housekeeping_timer, on_housekeeping, HOUSEKEEPING_MS, HOUSEKEEPING_MS);
    log_info("worker starting", LOG_STR("worker", w->x.id), LOG_INT("concurrency", w->x.cfg.concurrency),
             LOG_INT("max_jobs", w->x.cfg.max_jobs), LOG_INT("drain", w->drain));
}

int wk_exit_code(const worker *w)
{
    return w->exit_code;
}

void wk_view(const void *source, wm_view *out)
{
    const worker *w = source;
    *out = (wm_view){
        .x = &w->x,
        .inflight = w->sched ? sched_inflight(w->sched) : 0,
        .pop_connected = w->pop != NULL && rds_is_connected(w->pop),
        .started_at = w->started_at,
    };
}
