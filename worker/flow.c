/* flow: what a held job does, from pop to its recorded outcome (DESIGN.md §4).
 *
 * A client job lists pages from its run's cursor and syncs every campaign a
 * page brings; a campaign job (a retry) syncs one campaign. Every outcome is
 * recorded by progress.lua through the store, which also moves the run's
 * counters, so a job delivered twice, or a write replayed after an outage,
 * cannot count anything twice.
 *
 * The cursor written with each step is the oldest page that still has a
 * campaign whose outcome is not in the store: a job recovered after a crash
 * or handed back starts there, and progress.lua tells it which campaigns of
 * that page still need a sync. Listing runs a couple of pages' campaigns
 * ahead of syncing.
 *
 * A job's state is one jobstate.h enum, changed only through event(); each
 * callback updates what the job has open (a list request, syncs, ops,
 * writes) and ends in advance(), the one place that decides what comes
 * next: list more, write the end, bury, or hand an aborted job back. */
#include "flow.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "clock.h"
#include "ilist.h"
#include "log.h"
#include "policy.h"
#include "jobstate.h"
#include "progress.h"

#define MAX_ARGS (PR_KEYS + 2 * PR_ARGS)   /* every key and every pair progress.lua knows */

typedef struct held held;
struct batch_call;

struct flow {
    wctx *x;
    sched *sched;
    cl_set *clients;
    il_node jobs;            /* every job held (x->jobs_held of them), newest first */
    size_t starting;         /* held jobs that have not asked for an HTTP slot yet */
    int lists_waiting;       /* a list waits for x->page_bytes to fall under the budget */
    unsigned lists_out;      /* list requests submitted, not yet answered */
    uint64_t page_est;       /* what a page's body is expected to take (recent pages) */
    uv_timer_t batch_timer;  /* sends the batches of synced outcomes */
    il_node dirty;           /* held jobs with synced outcomes not yet sent, oldest first */
    size_t waiting;          /* those outcomes */
    uint64_t first_waiting_ms;   /* loop time the oldest of them came */
    il_node calls;           /* synced.lua calls sent, not yet confirmed (owned) */
};

/* A job popped from the queue and held until its outcome is written. */
struct held {
    il_node link;            /* f->jobs */
    flow *f;
    job job;
    char *elem;              /* the element exactly as popped (for LREM) */
    size_t elem_len;
    client *client;

    js_state state;          /* jobstate.h */

    /* client jobs */
    unsigned next_page;      /* next page to request */
    int list_pending;        /* a list op queued or in flight, or its page's write */
    struct page_ctx *page_write;  /* a listed page whose write is queued (owned: freed on release) */
    unsigned list_streak;    /* page fetches failed in a row, each retried in place */
    char list_error[512];    /* why it failed or is given up (the first reason) */
    unsigned long retry_after_ms;
    unsigned pages_seen;
    struct page_left { unsigned page; size_t left; } *pages;   /* outstanding pages, oldest first */
    size_t npages, pages_cap;
    size_t syncs_open;       /* sync ops not yet recorded */
    unsigned ops_out;        /* its HTTP ops not yet freed */
    unsigned writes_out;     /* its store writes not yet answered */
    int starting;            /* counted in f->starting until its first request is queued */
    struct synced_item { char *id; size_t id_len; char *stored; unsigned page; } *batch;   /* synced, not yet sent */
    size_t nbatch, batch_cap;
    il_node dirty_link;      /* in f->dirty while outcomes wait in its batch */
};

static void release(held *h);
static void advance(held *h);

/* Every change of a job's state goes through here (jobstate.h). */
static void event(held *h, js_event e)
{
    int ignored;
    js_state to = js_next(h->state, e, &ignored);
    if (ignored) {
        log_error("bug: job event does not apply to its state", LOG_STR("job", h->job.id),
                  LOG_STR("state", js_state_names[h->state]), LOG_STR("event", js_event_names[e]));
        return;
    }
    h->state = to;
}

/* A step could not be carried out for want of memory: the job is handed
 * back once nothing of it is in flight (advance). */
static void no_memory(held *h)
{
    event(h, JE_NO_MEMORY);
}

/* ---- keys and arguments for progress.lua -------------------------------- */

/* The keys progress.lua declares, in its order (progress.h): the shared
 * ones are the worker's, built at start; the job's are built here. */
typedef struct progress_keys {
    const char *k[PR_KEYS];
    char run[KEYS_MAX_LEN], items[KEYS_MAX_LEN], campaigns[KEYS_MAX_LEN], active[KEYS_MAX_LEN];
    char last_run[KEYS_MAX_LEN];
} progress_keys;

static void progress_keys_for(flow *f, const job *j, progress_keys *pk)
{
    keys_run_key(&f->x->keys, j->run, pk->run, sizeof pk->run);
    keys_run_items_key(&f->x->keys, j->run, pk->items, sizeof pk->items);
    keys_client_key(&f->x->keys, j->client, KEYS_CLIENT_CAMPAIGNS, pk->campaigns, sizeof pk->campaigns);
    keys_client_key(&f->x->keys, j->client, KEYS_CLIENT_ACTIVE_RUN, pk->active, sizeof pk->active);
    keys_client_key(&f->x->keys, j->client, KEYS_CLIENT_LAST_RUN, pk->last_run, sizeof pk->last_run);
    pk->k[PR_RUN] = pk->run;
    pk->k[PR_ITEMS] = pk->items;
    pk->k[PR_CAMPAIGNS] = pk->campaigns;
    pk->k[PR_STATS] = ctx_key(f->x, KEYS_STATS);
    pk->k[PR_RETRY] = ctx_key(f->x, KEYS_RETRY);
    pk->k[PR_DEAD] = ctx_key(f->x, KEYS_DEAD);
    pk->k[PR_PROCESSING] = f->x->processing_key;
    pk->k[PR_DELIVERIES] = ctx_key(f->x, KEYS_DELIVERIES);
    pk->k[PR_ACTIVE_RUN] = pk->active;
    pk->k[PR_OUTBOX] = ctx_key(f->x, KEYS_OUTBOX);
    pk->k[PR_LAST_RUN] = pk->last_run;
}

/* A progress.lua call being assembled: keys, then name/value pairs. */
typedef struct progress_call {
    progress_keys keys;
    const char *argv[MAX_ARGS];
    size_t lens[MAX_ARGS];
    int argc;
    char now[24], cursor[16], due[24];
} progress_call;

static void arg(progress_call *pc, const char *s, size_t len)
{
    pc->argv[pc->argc] = s;
    pc->lens[pc->argc] = len;
    pc->argc++;
}

/* One ARGV pair of progress.lua, by its name in progress.h; pair_n for a
 * value that is not a C string (a job element, a campaign id). */
static void pair_n(progress_call *pc, pr_arg name, const char *value, size_t len)
{
    arg(pc, pr_arg_names[name], strlen(pr_arg_names[name]));
    arg(pc, value, len);
}

static void pair(progress_call *pc, pr_arg name, const char *value)
{
    pair_n(pc, name, value, strlen(value));
}

static unsigned cursor_of(const held *h)
{
    for (size_t i = 0; i < h->npages; i++)
        if (h->pages[i].left > 0)
            return h->pages[i].page;
    return h->next_page;
}

static void progress_begin(progress_call *pc, held *h)
{
    flow *f = h->f;
    memset(pc, 0, sizeof *pc);
    progress_keys_for(f, &h->job, &pc->keys);
    for (int i = 0; i < PR_KEYS; i++)
        arg(pc, pc->keys.k[i], strlen(pc->keys.k[i]));
    snprintf(pc->now, sizeof pc->now, "%llu", (unsigned long long)clock_wall_ms());
    pair(pc, PR_NOW, pc->now);
    pair(pc, PR_RUN_ID, h->job.run);
    pair(pc, PR_RETENTION, f->x->retention);
    pair(pc, PR_DEAD_CAP, f->x->dead_max);
    if (h->job.type == JOB_CLIENT) {
        snprintf(pc->cursor, sizeof pc->cursor, "%u", cursor_of(h));
        pair(pc, PR_CURSOR, pc->cursor);
    }
    if (f->x->cfg.pg_url[0]) {   /* stored campaigns also go to the PostgreSQL sink's outbox */
        pair(pc, PR_OUTBOX_ON, "1");
        pair(pc, PR_CLIENT, h->job.client);
    }
}

/* Adds "elem"/"job_id": this write also ends the job. */
static void progress_ends_job(progress_call *pc, held *h)
{
    pair_n(pc, PR_ELEM, h->elem, h->elem_len);
    pair(pc, PR_JOB_ID, h->job.id);
}

/* Every store write made for h goes through here, so h->writes_out says
 * whether an answer is still to come; each callback starts with written(). */
static int job_write(held *h, int script, int nkeys, int argc, const char **argv, const size_t *lens,
                     st_done_fn *done, void *ud)
{
    if (st_script(h->f->x->store, script, nkeys, argc, argv, lens, done, ud) < 0)
        return -1;
    h->writes_out++;
    return 0;
}

static void written(held *h)
{
    h->writes_out--;
}

static int progress_send(progress_call *pc, held *h, st_done_fn *done, void *ud)
{
    return job_write(h, SCRIPT_PROGRESS, PR_KEYS, pc->argc, pc->argv, pc->lens, done, ud);
}

/* ---- outcomes of one campaign ---------------------------------------------- */

/* ---- keys of the wrong type (common/lua/lib/keycall.lua) ----------------- */

static void bury(held *h, const char *dead_letter, const char *reason);

/* Dead with reason: its dead letter is the job carrying it (bury). */
static void bury_job(held *h, const char *reason)
{
    job_set_error(&h->job, reason);
    char *json = job_serialize(&h->job);
    bury(h, json ? json : h->elem, reason);
    free(json);
}

/* The key a progress.lua or synced.lua answer names as holding another
 * type, or NULL. */
static const char *wrongtype_key(const redisReply *r)
{
    static const char mark[] = "wrongtype:";
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING &&
        strcmp(r->element[0]->str, "wrongtype") == 0 && r->element[1]->type == REDIS_REPLY_STRING)
        return r->element[1]->str;
    if (r->type == REDIS_REPLY_STRING && strncmp(r->str, mark, sizeof mark - 1) == 0)
        return r->str + sizeof mark - 1;
    return NULL;
}

/* The job is dead for reason (kept when it is the first), its dead letter
 * still to be written: by advance, once what it started is answered. */
static void give_up(held *h, const char *reason)
{
    if (h->state != JS_GIVEN_UP)
        snprintf(h->list_error, sizeof h->list_error, "%s", reason);
    event(h, JE_GIVE_UP);
}

/* A key of the job's client or run holds another type, so nothing of this
 * job can be recorded: it ends dead naming the key, never retried in a
 * loop. */
static void wrongtype_reason(const char *key, char *out, size_t outlen)
{
    snprintf(out, outlen, "Redis key %s holds the wrong type", key);
}

static void fail_wrongtype(held *h, const char *key)
{
    char reason[sizeof h->list_error];
    wrongtype_reason(key, reason, sizeof reason);
    give_up(h, reason);
}

/* The job's last write was answered: released, or (a key of the wrong type,
 * nothing written) given up, its dead letter next. */
static void end_answered(held *h, const char *bad_key)
{
    if (bad_key == NULL) {
        event(h, JE_END_LANDED);
        release(h);
        return;
    }
    wrongtype_reason(bad_key, h->list_error, sizeof h->list_error);
    event(h, JE_END_REFUSED);
    advance(h);
}

static void on_outcome_recorded(redisReply *reply, void *ud)
{
    held *h = ud;
    written(h);
    const char *bad = wrongtype_key(reply);
    if (h->job.type == JOB_CAMPAIGN) {   /* its one outcome was its last write */
        end_answered(h, bad);
        return;
    }
    if (bad)
        fail_wrongtype(h, bad);
    h->syncs_open--;
    advance(h);
}

/* The cursor a write carries may count only outcomes that are in the store
 * (which never drops a write): one that waits in a batch, or whose write
 * could not be queued, would otherwise be skipped by the job that resumes
 * from that cursor after a hand-back. So a page's count moves by
 * page_mark(-1) just before a write is built, back by page_mark(+1) if it
 * could not be queued, and finished pages go only once it was
 * (pages_compact). */
static void page_mark(held *h, unsigned page, int delta)
{
    for (size_t i = 0; i < h->npages; i++) {
        if (h->pages[i].page == page && (delta > 0 || h->pages[i].left > 0)) {
            h->pages[i].left = delta > 0 ? h->pages[i].left + 1 : h->pages[i].left - 1;
            return;
        }
    }
}

static void pages_compact(held *h)
{
    size_t done = 0;
    while (done < h->npages && h->pages[done].left == 0)
        done++;
    memmove(h->pages, h->pages + done, (h->npages - done) * sizeof *h->pages);
    h->npages -= done;
}

/* The job JSON for the retry zset or the dead list. Campaign ids that failed
 * validation cannot go through job_set_campaign, so the campaign is set raw. */
static char *campaign_job_json(held *h, const api_campaign *c, unsigned attempt, const char *error)
{
    job j;
    memset(&j, 0, sizeof j);
    j.type = JOB_CAMPAIGN;
    job_make_id(j.id);
    snprintf(j.client, sizeof j.client, "%s", h->job.client);
    snprintf(j.run, sizeof j.run, "%s", h->job.run);
    j.attempt = attempt;
    j.enqueued_at = clock_wall_ms();
    j.campaign = c->json;
    job_set_error(&j, error);
    char *text = job_serialize(&j);
    j.campaign = NULL;
    job_clear(&j);
    return text;
}

/* Records what happened to one campaign. outcome: synced | retry | dead. */
static void record_outcome(held *h, unsigned page, const api_campaign *c, pr_outcome outcome,
                           const char *payload, uint64_t due_ms)
{
    progress_call pc;
    int paged = h->job.type == JOB_CLIENT;
    if (paged)
        page_mark(h, page, -1);
    progress_begin(&pc, h);
    pair_n(&pc, PR_CAMPAIGN, c->id, c->id_len);
    pair(&pc, PR_OUTCOME, pr_outcome_names[outcome]);
    pair(&pc, outcome == PR_SYNCED ? PR_STORED : PR_JOB, payload);
    if (due_ms) {
        snprintf(pc.due, sizeof pc.due, "%llu", (unsigned long long)due_ms);
        pair(&pc, PR_DUE, pc.due);
    }
    if (h->job.type == JOB_CAMPAIGN) {
        progress_ends_job(&pc, h);
        h->f->x->n.jobs_by[JOB_CAMPAIGN][outcome == PR_SYNCED    ? WK_JOB_DONE
                                      : outcome == PR_RETRIED ? WK_JOB_RETRIED
                                                              : WK_JOB_DEAD]++;
    }
    if (progress_send(&pc, h, on_outcome_recorded, h) < 0) {
        log_error("out of memory recording an outcome", LOG_STR("client", h->job.client));
        if (paged)
            page_mark(h, page, +1);
        no_memory(h);
    } else if (paged) {
        pages_compact(h);
    } else {
        event(h, JE_END_SENT);
    }
}

static void campaign_failed(held *h, unsigned page, const api_campaign *c, const char *error,
                            int permanent, unsigned long retry_after_ms)
{
    flow *f = h->f;
    unsigned attempt = (h->job.type == JOB_CAMPAIGN ? h->job.attempt : 0) + 1;
    pol_failure failure = permanent ? POL_PERMANENT : POL_TRANSIENT;
    char *json = campaign_job_json(h, c, attempt, error);
    char why[JOB_ERROR_MAX];
    if (json && strlen(json) > JOB_MAX_BYTES) {
        /* A retry job this large would be refused as unparseable when popped
         * and the campaign never counted: it is dead now, its letter keeps
         * only the id. */
        char stub[JOB_CAMPAIGN_ID_MAX * 6 + 16];
        snprintf(why, sizeof why, "campaign of %zu bytes is too large to retry (jobs hold at most %d): %s",
                 strlen(c->json), JOB_MAX_BYTES, error);
        cJSON *id = cJSON_CreateString(c->id);
        char *quoted = id ? cJSON_PrintUnformatted(id) : NULL;
        snprintf(stub, sizeof stub, "{\"id\":%s}", quoted ? quoted : "\"\"");
        cJSON_free(quoted);
        cJSON_Delete(id);
        api_campaign small = *c;
        small.json = stub;
        free(json);
        json = campaign_job_json(h, &small, attempt, why);
        error = why;
        failure = POL_TOO_LARGE;
    }
    if (json == NULL) {
        no_memory(h);
        return;
    }
    pol_decision d = pol_decide(&f->x->policy, failure, attempt, retry_after_ms, 0, backoff_unit_random());
    int dead = d.action == POL_DEAD;
    uint64_t due = 0;
    if (dead) {
        f->x->n.campaigns_dead++;
        log_warn("campaign dead", LOG_STR("client", h->job.client), LOG_STR("campaign", c->id),
                 LOG_STR("run", h->job.run), LOG_INT("attempt", attempt), LOG_STR("error", error));
    } else {
        due = clock_wall_ms() + d.delay_ms;
        f->x->n.campaigns_retried++;
        log_info("campaign will be retried", LOG_STR("client", h->job.client), LOG_STR("campaign", c->id),
                 LOG_INT("attempt", attempt), LOG_INT("in_ms", (long long)(due - clock_wall_ms())),
                 LOG_STR("error", error));
    }
    record_outcome(h, page, c, dead ? PR_DEAD_LETTERED : PR_RETRIED, json, due);
    free(json);
}

/* ---- batches of synced outcomes --------------------------------------------
 *
 * Synced campaigns of client jobs are not written one by one: each waits in
 * its job's batch (batch_timer), and then every job's batch goes to Redis in
 * one synced.lua call through the store (up to SYNCED_CALL_JOBS runs and
 * SYNCED_CALL_CAMPAIGNS campaigns a call). The outcomes of those
 * milliseconds thus cost one script call for the worker instead of one per
 * campaign. Each one's page is counted done at once (the cursor is computed
 * when the call is built), and syncs_open drops when the call is confirmed,
 * so a job ends only after every outcome landed.
 *
 * How long they wait: Redis's work is mostly per run in a call (six
 * commands) plus a little per campaign, so at high rates waiting longer
 * pays (a run synced at 500 campaigns/s costs Redis 9.6 us per campaign
 * with 20 ms batches, 7.7 with 50; tests/bench). At low rates it buys
 * little and costs what a crash repeats. So a trickle (fewer than
 * SYNCED_TRICKLE waiting after SYNCED_TRICKLE_MS) goes at once; a flood
 * waits until SYNCED_FLUSH_AT have gathered, at most SYNCED_WAIT_MAX_MS. */

#define SYNCED_TRICKLE_MS 5
#define SYNCED_TRICKLE 32
#define SYNCED_WAIT_MAX_MS 50
#define SYNCED_FLUSH_AT 1024
#define SYNCED_BATCH_MAX 128         /* a job with this many waiting sends at once */
#define SYNCED_CALL_JOBS 32
#define SYNCED_CALL_CAMPAIGNS 256
#define SYNCED_KEYS_PER_JOB 5
#define SYNCED_MAX_KEYS (2 + SYNCED_KEYS_PER_JOB * SYNCED_CALL_JOBS)
#define SYNCED_MAX_ARGS (SYNCED_MAX_KEYS + 3 + 4 * SYNCED_CALL_JOBS + 2 * SYNCED_CALL_CAMPAIGNS)
#define STORE_MAX_ARGS (2 + 2 * SYNCED_CALL_CAMPAIGNS)

/* One synced.lua call on its way: whose outcomes it carries. Listed in the
 * worker until Redis confirms it, so that a teardown with the write never
 * confirmed (the store drops it) frees it. */
typedef struct batch_call {
    il_node link;            /* f->calls */
    size_t njobs;
    struct { held *h; size_t n; } job[SYNCED_CALL_JOBS];
} batch_call;

static void on_batch_recorded(redisReply *reply, void *ud)
{
    batch_call *call = ud;
    il_unlink(&call->link);
    for (size_t i = 0; i < call->njobs; i++) {
        written(call->job[i].h);
        const char *bad = reply->type == REDIS_REPLY_ARRAY && i < reply->elements
                              ? wrongtype_key(reply->element[i]) : NULL;
        if (bad)
            fail_wrongtype(call->job[i].h, bad);
        call->job[i].h->syncs_open -= call->job[i].n;
    }
    for (size_t i = 0; i < call->njobs; i++)
        advance(call->job[i].h);
    free(call);
}

static void batch_clear(held *h)
{
    h->f->waiting -= h->nbatch;
    for (size_t i = 0; i < h->nbatch; i++) {
        free(h->batch[i].id);
        free(h->batch[i].stored);
    }
    h->nbatch = 0;
}

/* Takes dirty jobs off f->dirty into call while they fit. */
static void call_fill(flow *f, batch_call *call)
{
    size_t campaigns = 0;
    il_node *n;
    while ((n = il_first(&f->dirty)) != NULL && call->njobs < SYNCED_CALL_JOBS) {
        held *h = IL_ENTRY(n, held, dirty_link);
        if (call->njobs > 0 && campaigns + h->nbatch > SYNCED_CALL_CAMPAIGNS)
            break;
        il_unlink(n);
        if (h->nbatch == 0)
            continue;
        call->job[call->njobs].h = h;
        call->job[call->njobs++].n = h->nbatch;
        campaigns += h->nbatch;
    }
}

/* Queues the HSET that stores a job's waiting campaigns, ahead of the
 * synced.lua call that counts them: the campaigns' text goes to Redis once,
 * not through Lua (copied into the script's arguments and out again, that
 * was a large part of Redis's CPU per campaign). The store keeps the two in
 * order; a campaigns key of another type fails the HSET, which the store
 * takes as an answer, and the script finds it. */
static int store_campaigns(flow *f, const held *h, const char *key)
{
    const char *argv[STORE_MAX_ARGS];
    size_t lens[STORE_MAX_ARGS];
    int argc = 0;
    argv[argc] = "HSET";
    lens[argc++] = 4;
    argv[argc] = key;
    lens[argc++] = strlen(key);
    for (size_t i = 0; i < h->nbatch; i++) {
        argv[argc] = h->batch[i].id;
        lens[argc++] = h->batch[i].id_len;
        argv[argc] = h->batch[i].stored;
        lens[argc++] = strlen(h->batch[i].stored);
    }
    return st_command(f->x->store, argc, argv, lens, NULL, NULL);
}

/* Sends the jobs of call as one synced.lua call, each job's campaigns
 * stored by an HSET just before it. */
static void call_send(flow *f, batch_call *call)
{
    const char *argv[SYNCED_MAX_ARGS];
    char key[SYNCED_MAX_KEYS][KEYS_MAX_LEN];   /* the store copies every argument */
    char now[24], runs[16], nums[SYNCED_CALL_JOBS][2][24];
    int nkeys = 2 + SYNCED_KEYS_PER_JOB * (int)call->njobs, argc = nkeys;
    int outbox = f->x->cfg.pg_url[0] != '\0', sent = 1;
    snprintf(now, sizeof now, "%llu", (unsigned long long)clock_wall_ms());
    snprintf(runs, sizeof runs, "%zu", call->njobs);
    argv[argc++] = now;
    argv[argc++] = runs;
    argv[argc++] = f->x->retention;
    for (size_t j = 0; j < call->njobs; j++) {
        held *h = call->job[j].h;
        char (*k)[KEYS_MAX_LEN] = key + 2 + SYNCED_KEYS_PER_JOB * j;
        keys_run_key(&f->x->keys, h->job.run, k[0], KEYS_MAX_LEN);
        keys_run_items_key(&f->x->keys, h->job.run, k[1], KEYS_MAX_LEN);
        keys_client_key(&f->x->keys, h->job.client, KEYS_CLIENT_CAMPAIGNS, k[2], KEYS_MAX_LEN);
        keys_client_key(&f->x->keys, h->job.client, KEYS_CLIENT_ACTIVE_RUN, k[3], KEYS_MAX_LEN);
        keys_client_key(&f->x->keys, h->job.client, KEYS_CLIENT_LAST_RUN, k[4], KEYS_MAX_LEN);
        sent = sent && store_campaigns(f, h, k[2]) == 0;
        for (size_t i = 0; i < h->nbatch; i++)
            page_mark(h, h->batch[i].page, -1);
        snprintf(nums[j][0], sizeof nums[j][0], "%u", cursor_of(h));
        snprintf(nums[j][1], sizeof nums[j][1], "%zu", h->nbatch);
        argv[argc++] = h->job.run;
        argv[argc++] = nums[j][0];
        argv[argc++] = outbox ? h->job.client : "";
        argv[argc++] = nums[j][1];
        for (size_t i = 0; i < h->nbatch; i++)
            argv[argc++] = h->batch[i].id;
        for (size_t i = 0; outbox && i < h->nbatch; i++)
            argv[argc++] = h->batch[i].stored;
    }
    argv[0] = ctx_key(f->x, KEYS_STATS);
    argv[1] = ctx_key(f->x, KEYS_OUTBOX);
    for (int i = 2; i < nkeys; i++)
        argv[i] = key[i];
    /* Not sent when an HSET could not be queued (out of memory): its
     * campaigns would count as synced without being stored. */
    sent = sent && st_script(f->x->store, SCRIPT_SYNCED, nkeys, argc, argv, NULL, on_batch_recorded, call) == 0;
    for (size_t j = 0; j < call->njobs; j++) {
        held *h = call->job[j].h;
        for (size_t i = 0; !sent && i < h->nbatch; i++)
            page_mark(h, h->batch[i].page, +1);
        pages_compact(h);
        batch_clear(h);
        if (sent)
            h->writes_out++;   /* one call, many jobs: not through job_write */
        else
            no_memory(h);      /* the outcomes are lost to Redis: handed back, synced again */
    }
    if (!sent) {
        free(call);
        return;
    }
    il_push_front(&f->calls, &call->link);
}

void fl_flush_batches(flow *f)
{
    uv_timer_stop(&f->batch_timer);
    while (!il_empty(&f->dirty)) {
        batch_call *call = malloc(sizeof *call);
        il_node *n;
        if (call == NULL) {   /* out of memory: the waiting outcomes are lost, their jobs handed back */
            while ((n = il_first(&f->dirty)) != NULL) {
                held *h = IL_ENTRY(n, held, dirty_link);
                il_unlink(n);
                batch_clear(h);
                no_memory(h);
            }
            return;
        }
        *call = (batch_call){ .njobs = 0 };
        call_fill(f, call);
        if (call->njobs > 0)
            call_send(f, call);
        else
            free(call);
    }
}

static void on_batch_timer(uv_timer_t *t)
{
    flow *f = t->data;
    uint64_t waited = uv_now(f->x->loop) - f->first_waiting_ms;
    if (f->waiting < SYNCED_TRICKLE || waited >= SYNCED_WAIT_MAX_MS)
        fl_flush_batches(f);
    else
        uv_timer_start(t, on_batch_timer, SYNCED_WAIT_MAX_MS - waited, 0);
}

/* Takes ownership of stored (malloc'd). */
static void add_synced(held *h, unsigned page, const api_campaign *c, char *stored)
{
    flow *f = h->f;
    if (h->nbatch == h->batch_cap) {
        size_t cap = h->batch_cap ? 2 * h->batch_cap : 16;
        struct synced_item *b = realloc(h->batch, cap * sizeof *b);
        if (b == NULL) {
            free(stored);
            no_memory(h);
            return;
        }
        h->batch = b;
        h->batch_cap = cap;
    }
    char *id = malloc(c->id_len + 1);
    if (id == NULL) {
        free(stored);
        no_memory(h);
        return;
    }
    memcpy(id, c->id, c->id_len);
    id[c->id_len] = '\0';
    h->batch[h->nbatch++] = (struct synced_item){ id, c->id_len, stored, page };
    f->waiting++;
    if (!il_linked(&h->dirty_link)) {
        if (il_empty(&f->dirty)) {   /* the first waiting */
            f->first_waiting_ms = uv_now(f->x->loop);
            uv_timer_start(&f->batch_timer, on_batch_timer, SYNCED_TRICKLE_MS, 0);
        }
        il_push_back(&f->dirty, &h->dirty_link);
    }
    if (h->nbatch >= SYNCED_BATCH_MAX || f->waiting >= SYNCED_FLUSH_AT)
        fl_flush_batches(f);
}

/* ---- sync --------------------------------------------------------------- */

/* ---- the page budget: listed campaigns held, in bytes of their text ----- */

static void page_bytes_add(flow *f, const api_page *p)
{
    for (size_t i = 0; i < p->n; i++)
        f->x->page_bytes += p->items[i].json_len;
}

/* Clears what is left of a page (items moved into ops count from there). */
static void drop_page(flow *f, api_page *p)
{
    for (size_t i = 0; i < p->n; i++)
        f->x->page_bytes -= p->items[i].json_len;
    api_page_clear(p);
}

/* What the held campaigns and the pages asked for are expected to take:
 * each list out reserves a recent page's size (or what its body already
 * holds, when more). */
static uint64_t page_bytes_expected(const flow *f)
{
    uint64_t reserved = (uint64_t)f->lists_out * f->page_est;
    uint64_t receiving = http_budget_in_flight(f->x->http);
    return f->x->page_bytes + (receiving > reserved ? receiving : reserved);
}

/* Whether another page may be asked for: listed campaigns held plus pages
 * on their way stay under ADSYNC_BODY_BUDGET_BYTES, so memory follows the
 * configuration, not the platform (README "Memory"). The HTTP client
 * enforces the same budget on the bytes that actually arrive. */
static int page_fits(const flow *f)
{
    return page_bytes_expected(f) + f->page_est < f->x->cfg.body_budget_bytes;
}

static int page_budget_left(flow *f)
{
    if (page_fits(f))
        return 1;
    f->lists_waiting = 1;
    return 0;
}

/* A recent page's size: the largest at once, decaying by an eighth a page. */
static void page_est_update(flow *f, size_t body_len)
{
    f->page_est = body_len > f->page_est ? body_len : (f->page_est * 7 + body_len) / 8;
}

static void free_op(op *o)
{
    held *h = o->owner;
    h->ops_out--;
    h->f->x->page_bytes -= o->campaign.json_len;
    free(o->campaign.id);
    free(o->campaign.json);
    free(o);
}

static void on_sync_done(op *o, const op_result *res)
{
    held *h = o->owner;
    if (res->aborted) {
        event(h, JE_SHUTDOWN);
        if (h->job.type == JOB_CLIENT)
            h->syncs_open--;
        free_op(o);
        return;
    }
    char synced_at[64], err[256], why[512];
    int parsed = res->verdict == API_OK
                     ? api_parse_sync(res->http->body, res->http->body_len, synced_at, sizeof synced_at, err, sizeof err)
                     : -1;
    if (parsed == API_NOMEM) {
        no_memory(h);   /* the platform answered well: synced again after the hand-back */
    } else if (parsed == 0) {
        char *stored = api_stored_campaign(o->campaign.json, synced_at, h->job.run);
        if (stored && h->job.type == JOB_CLIENT) {
            h->f->x->n.campaigns_synced++;
            add_synced(h, o->page, &o->campaign, stored);
        } else if (stored) {
            h->f->x->n.campaigns_synced++;
            record_outcome(h, o->page, &o->campaign, PR_SYNCED, stored, 0);
            free(stored);
        } else {
            no_memory(h);
        }
    } else if (res->verdict == API_OK) {
        api_describe_failure(res->http, err, why, sizeof why);
        campaign_failed(h, o->page, &o->campaign, why, 0, 0);
    } else {
        campaign_failed(h, o->page, &o->campaign, res->error, res->verdict == API_PERMANENT,
                        res->retry_after_ms);
    }
    free_op(o);
    advance(h);
}

/* The job has asked for its first HTTP slot, or ended: it no longer holds
 * back popping (see wants_job in worker.c). */
static void started(held *h)
{
    if (h->starting) {
        h->starting = 0;
        h->f->starting--;
    }
}

static op *new_op(held *h, api_endpoint ep, unsigned page)
{
    started(h);
    op *o = calloc(1, sizeof *o);
    if (o == NULL)
        return NULL;
    o->ep = ep;
    o->client = h->client;
    o->owner = h;
    o->page = page;
    h->ops_out++;
    return o;
}

/* Takes ownership of c's strings. */
static void submit_sync(held *h, unsigned page, api_campaign *c)
{
    op *o = new_op(h, API_EP_SYNC, page);
    if (o == NULL) {
        no_memory(h);
        return;
    }
    o->campaign = *c;
    memset(c, 0, sizeof *c);
    o->done = on_sync_done;
    sched_submit(h->f->sched, o);
}

/* ---- listing ----------------------------------------------------------- */

typedef struct page_ctx {
    held *h;
    unsigned page;
    api_page items;
    int last;
} page_ctx;

/* -1 when out of memory. */
static int add_page(held *h, unsigned page, size_t left)
{
    if (h->npages == h->pages_cap) {
        size_t cap = h->pages_cap ? h->pages_cap * 2 : 4;
        struct page_left *p = realloc(h->pages, cap * sizeof *p);
        if (p == NULL)
            return -1;
        h->pages = p;
        h->pages_cap = cap;
    }
    h->pages[h->npages].page = page;
    h->pages[h->npages].left = left;
    h->npages++;
    return 0;
}

/* The i-th position progress.lua answered as needing a sync (1..n), or 0
 * for anything else: a reply is input, and a position not counted is
 * never waited for. */
static size_t sync_position(const redisReply *reply, size_t i, size_t n)
{
    const redisReply *e = reply->element[i + 1];
    if (e->type != REDIS_REPLY_INTEGER || e->integer < 1 || (unsigned long long)e->integer > n)
        return 0;
    return (size_t)e->integer;
}

/* progress.lua answered {state, positions needing a sync…}. */
static void on_page_recorded(redisReply *reply, void *ud)
{
    page_ctx *pc = ud;
    held *h = pc->h;
    written(h);
    h->page_write = NULL;
    h->list_pending = 0;
    const char *bad = wrongtype_key(reply);
    if (bad)
        fail_wrongtype(h, bad);
    if (bad || h->state == JS_ABORTED) {   /* aborted: its page is listed again after the hand-back */
        drop_page(h->f, &pc->items);
        free(pc);
        advance(h);
        return;
    }
    h->list_streak = 0;
    h->pages_seen++;
    if (pc->last)
        event(h, JE_LAST_PAGE);
    else
        h->next_page = pc->page + 1;
    size_t answered = reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 ? reply->elements - 1 : 0;
    size_t need = 0;
    for (size_t i = 0; i < answered; i++)
        need += sync_position(reply, i, pc->items.n) > 0;
    if (add_page(h, pc->page, need) < 0)
        no_memory(h);
    else
        h->syncs_open += need;
    for (size_t i = 0; i < answered && h->state != JS_ABORTED; i++) {
        size_t pos = sync_position(reply, i, pc->items.n);
        if (pos == 0)
            continue;
        api_campaign *c = &pc->items.items[pos - 1];
        if (c->problem) {
            h->f->x->n.campaigns_invalid++;
            campaign_failed(h, pc->page, c, c->problem, 1, 0);
        } else {
            submit_sync(h, pc->page, c);
        }
    }
    drop_page(h->f, &pc->items);
    free(pc);
    advance(h);
}

static void record_page(held *h, unsigned page, api_page *items)
{
    flow *f = h->f;
    page_ctx *ctx = calloc(1, sizeof *ctx);
    size_t argc_max = MAX_ARGS + 1 + items->n;   /* the pairs, "ids", the ids */
    progress_call *pc = malloc(sizeof *pc);
    const char **argv = malloc(argc_max * sizeof *argv);
    size_t *lens = malloc(argc_max * sizeof *lens);
    if (!ctx || !pc || !argv || !lens) {
        free(ctx), free(pc), free(argv), free(lens);
        drop_page(f, items);
        no_memory(h);
        h->list_pending = 0;
        return;
    }
    ctx->h = h;
    ctx->page = page;
    ctx->items = *items;
    ctx->last = api_page_is_last(items, page, h->client->page_size) || page >= f->x->cfg.max_pages;
    memset(items, 0, sizeof *items);

    progress_begin(pc, h);
    if (ctx->last)
        pair(pc, PR_LISTING_DONE, "1");
    memcpy(argv, pc->argv, (size_t)pc->argc * sizeof *argv);
    memcpy(lens, pc->lens, (size_t)pc->argc * sizeof *lens);
    int argc = pc->argc;
    argv[argc] = "ids";
    lens[argc++] = 3;
    for (size_t i = 0; i < ctx->items.n; i++) {
        argv[argc] = ctx->items.items[i].id;
        lens[argc++] = ctx->items.items[i].id_len;
    }
    if (job_write(h, SCRIPT_PROGRESS, PR_KEYS, argc, argv, lens, on_page_recorded, ctx) < 0) {
        drop_page(f, &ctx->items);
        free(ctx);
        no_memory(h);
        h->list_pending = 0;
    } else {
        h->page_write = ctx;
    }
    free(pc);
    free(argv);
    free(lens);
}

static void submit_list(held *h, uint64_t not_before_ms);

/* A page could not be fetched (h->list_error says why). A retryable failure
 * is retried in place after a backoff: the job keeps its place, its syncs
 * go on meanwhile and, waiting, it holds no HTTP slot. A permanent one, or
 * ADSYNC_MAX_ATTEMPTS failures in a row (progress resets the count; a
 * retried job brings its attempts), gives the job up: buried once its
 * syncs are recorded. While stopping, the job is retried later instead. */
static void list_failed(held *h, unsigned page, int permanent, unsigned long retry_after_ms)
{
    flow *f = h->f;
    unsigned attempt = (h->pages_seen > 0 ? 0 : h->job.attempt) + ++h->list_streak;
    log_warn("page fetch failed", LOG_STR("client", h->job.client), LOG_STR("run", h->job.run),
             LOG_INT("page", page), LOG_INT("attempt", attempt), LOG_STR("error", h->list_error));
    pol_decision d = pol_decide(&f->x->policy, permanent ? POL_PERMANENT : POL_TRANSIENT, attempt,
                                retry_after_ms, 0, backoff_unit_random());
    if (d.action == POL_RETRY && h->state == JS_LISTING && !ctx_stopping(f->x)) {
        submit_list(h, clock_mono_ms() + d.delay_ms);   /* in place, holding no slot meanwhile */
        return;
    }
    h->list_pending = 0;
    h->retry_after_ms = retry_after_ms;
    event(h, d.action == POL_DEAD ? JE_GIVE_UP : JE_LIST_RETRY);
}

/* More items than this make a page malformed: ADSYNC_MAX_PAGE_ITEMS, or the
 * page size asked for when a client asks for more. */
static size_t max_page_items(const held *h)
{
    unsigned asked = h->client->page_size > 0 ? h->client->page_size : h->f->x->cfg.page_size;
    return asked > h->f->x->cfg.max_page_items ? asked : h->f->x->cfg.max_page_items;
}

static void on_list_done(op *o, const op_result *res)
{
    held *h = o->owner;
    unsigned page = o->page;
    free_op(o);
    h->f->lists_out--;
    if (res->http && res->http->error == HTTP_OK)
        page_est_update(h->f, res->http->body_len);
    if (res->aborted) {
        event(h, JE_SHUTDOWN);
        h->list_pending = 0;
        advance(h);
        return;
    }
    if (res->http && res->http->error == HTTP_ERR_BUDGET) {
        /* Not the platform's fault and no attempt spent: the page is asked
         * for again once the campaigns held have made room. */
        h->list_pending = 0;
        h->f->lists_waiting = 1;
        advance(h);
        return;
    }
    api_page items;
    char err[256];
    int parsed = res->verdict == API_OK ? api_parse_page(res->http->body, res->http->body_len, max_page_items(h),
                                                         &items, err, sizeof err)
                                        : -1;
    if (parsed == API_NOMEM) {   /* not the platform's failure: no attempt spent */
        h->list_pending = 0;
        no_memory(h);
        advance(h);
        return;
    }
    if (parsed == 0) {
        log_debug("page listed", LOG_STR("client", h->job.client), LOG_INT("page", page),
                  LOG_INT("campaigns", (long long)items.n));
        page_bytes_add(h->f, &items);
        record_page(h, page, &items);
        return;
    }
    if (res->verdict == API_OK)
        api_describe_failure(res->http, err, h->list_error, sizeof h->list_error);
    else
        snprintf(h->list_error, sizeof h->list_error, "%s", res->error);
    list_failed(h, page, res->verdict == API_PERMANENT, res->retry_after_ms);
    advance(h);
}

/* LISTING: the next page, while listing runs at most a couple of pages'
 * campaigns ahead of syncing and the page budget has room. */
static void list_more(held *h)
{
    flow *f = h->f;
    size_t ahead = 2 * (size_t)(h->client->page_size > 0 ? h->client->page_size : f->x->cfg.page_size);
    if (ahead < 2 * (size_t)f->x->cfg.client_concurrency)
        ahead = 2 * (size_t)f->x->cfg.client_concurrency;
    if (h->list_pending || ctx_stopping(f->x) || h->syncs_open >= ahead || !page_budget_left(f))
        return;
    submit_list(h, 0);
}

static void resume_lists(flow *f)
{
    if (!f->lists_waiting || !page_fits(f))
        return;
    f->lists_waiting = 0;
    il_node *n, *next;
    IL_FOREACH_SAFE(n, next, &f->jobs) {
        held *h = IL_ENTRY(n, held, link);
        if (h->state == JS_LISTING)
            list_more(h);
    }
}

static void submit_list(held *h, uint64_t not_before_ms)
{
    op *o = new_op(h, API_EP_LIST, h->next_page);
    if (o == NULL) {
        h->list_pending = 0;
        no_memory(h);
        return;
    }
    o->done = on_list_done;
    o->not_before_ms = not_before_ms;
    h->list_pending = 1;
    h->f->lists_out++;
    sched_submit(h->f->sched, o);
}

/* ---- the end of a job ----------------------------------------------------- */

static void on_job_recorded(redisReply *reply, void *ud)
{
    held *h = ud;
    written(h);
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
        reply->element[0]->type == REDIS_REPLY_STRING && strcmp(reply->element[0]->str, "done") == 0)
        log_info("run done", LOG_STR("client", h->job.client), LOG_STR("run", h->job.run));
    end_answered(h, wrongtype_key(reply));   /* wrong type: nothing was written, the job is buried */
}

/* The write that ends a client job; it is released when Redis confirms. */
static void send_job_end(held *h, progress_call *pc)
{
    if (progress_send(pc, h, on_job_recorded, h) < 0)
        no_memory(h);
    else
        event(h, JE_END_SENT);
}

/* FAILED or GIVEN_UP, nothing open: the job goes to the retry set, or dead
 * as the policy says (a client job), or dead (a campaign job whose outcome
 * Redis refused). */
static void end_failed(held *h)
{
    flow *f = h->f;
    if (h->job.type == JOB_CAMPAIGN) {
        f->x->n.jobs_dead++;
        bury_job(h, h->list_error);
        return;
    }
    /* Progress resets the count: a long listing that meets an occasional
     * 503 is not one failure away from dead (list_failed counted this one). */
    unsigned attempt = (h->pages_seen > 0 ? 0 : h->job.attempt) + h->list_streak;
    job_set_error(&h->job, h->list_error);
    pol_decision d = pol_decide(&f->x->policy, h->state == JS_GIVEN_UP ? POL_PERMANENT : POL_TRANSIENT, attempt,
                                h->retry_after_ms, 0, backoff_unit_random());
    if (d.action == POL_DEAD) {
        unsigned saved = h->job.attempt;
        h->job.attempt = attempt;
        char *json = job_serialize(&h->job);
        h->job.attempt = saved;
        f->x->n.jobs_dead++;
        f->x->n.jobs_by[JOB_CLIENT][WK_JOB_DEAD]++;
        bury(h, json ? json : h->elem, h->list_error);
        free(json);
        return;
    }
    job next = h->job;
    next.attempt = attempt;
    char *json = job_serialize(&next);
    if (json == NULL) {
        no_memory(h);
        return;
    }
    uint64_t due = clock_wall_ms() + d.delay_ms;
    progress_call pc;
    progress_begin(&pc, h);
    snprintf(pc.due, sizeof pc.due, "%llu", (unsigned long long)due);
    pair(&pc, PR_DISPOSITION, "retry");
    pair(&pc, PR_JOB, json);
    pair(&pc, PR_DUE, pc.due);
    progress_ends_job(&pc, h);
    f->x->n.jobs_retried++;
    f->x->n.jobs_by[JOB_CLIENT][WK_JOB_RETRIED]++;
    log_info("client job will be retried", LOG_STR("client", h->job.client), LOG_STR("run", h->job.run),
             LOG_INT("attempt", attempt), LOG_INT("page", cursor_of(h)));
    send_job_end(h, &pc);
    free(json);
}

/* SYNCING, nothing open: a client job's run is done. */
static void end_done(held *h)
{
    progress_call pc;
    progress_begin(&pc, h);
    pair(&pc, PR_LISTING_DONE, "1");
    progress_ends_job(&pc, h);
    h->f->x->n.jobs_done++;
    h->f->x->n.jobs_by[JOB_CLIENT][WK_JOB_DONE]++;
    send_job_end(h, &pc);
}

static void hand_back(held *h);

/* Nothing of it is on its way: no HTTP op, no store write, no outcome
 * waiting for its batch, no page write. */
static int idle(const held *h)
{
    return h->ops_out == 0 && h->writes_out == 0 && !il_linked(&h->dirty_link) && h->nbatch == 0 &&
           h->page_write == NULL;
}

/* The one place that decides what a job does next, from its state and what
 * it still has open; every callback ends here. */
static void advance(held *h)
{
    int settled = h->list_pending == 0 && h->syncs_open == 0;   /* every outcome recorded */
    switch (h->state) {
    case JS_LISTING:
        list_more(h);
        break;
    case JS_SYNCING:
        if (settled && h->job.type == JOB_CLIENT)
            end_done(h);   /* a campaign job's outcome write was its end */
        break;
    case JS_FAILED:
    case JS_GIVEN_UP:
        if (settled)
            end_failed(h);
        break;
    case JS_ABORTED:
        if (idle(h) && !ctx_stopping(h->f->x))
            hand_back(h);   /* at shutdown the stop hands every job back */
        break;
    case JS_STARTING:
    case JS_ENDING:
    case JS_ENDED:
    case JS_COUNT:
        break;
    }
}

/* ---- start ---------------------------------------------------------------- */

/* The answer to a last write no key can refuse (bury.lua writes around keys
 * of the wrong type; unpop.lua only moves the element): the job is done. */
static void on_final_write(redisReply *reply, void *ud)
{
    (void)reply;
    written(ud);
    end_answered(ud, NULL);
}

/* Moves the held job to the dead letters; the run fails with reason. */
static void bury(held *h, const char *dead_letter, const char *reason)
{
    flow *f = h->f;
    char run[KEYS_MAX_LEN] = "", active[KEYS_MAX_LEN] = "", now[24];
    char items[KEYS_MAX_LEN] = "", last_run[KEYS_MAX_LEN] = "";
    int has_run = h->job.run[0] != '\0';
    if (has_run) {
        keys_run_key(&f->x->keys, h->job.run, run, sizeof run);
        keys_client_key(&f->x->keys, h->job.client, KEYS_CLIENT_ACTIVE_RUN, active, sizeof active);
        keys_run_items_key(&f->x->keys, h->job.run, items, sizeof items);
        keys_client_key(&f->x->keys, h->job.client, KEYS_CLIENT_LAST_RUN, last_run, sizeof last_run);
    } else {   /* the script only touches these when given a run id */
        snprintf(run, sizeof run, "%s", ctx_key(f->x, KEYS_STATS));
        snprintf(active, sizeof active, "%s", ctx_key(f->x, KEYS_STATS));
        snprintf(items, sizeof items, "%s", ctx_key(f->x, KEYS_STATS));
        snprintf(last_run, sizeof last_run, "%s", ctx_key(f->x, KEYS_STATS));
    }
    snprintf(now, sizeof now, "%llu", (unsigned long long)clock_wall_ms());
    const char *argv[] = { f->x->processing_key, ctx_key(f->x, KEYS_DEAD), ctx_key(f->x, KEYS_DELIVERIES),
                           ctx_key(f->x, KEYS_STATS), run, active, items, last_run, h->elem, dead_letter, h->job.id, h->job.run, reason, now,
                           f->x->retention, f->x->dead_max };
    size_t lens[16];
    for (int i = 0; i < 16; i++)
        lens[i] = strlen(argv[i]);
    lens[8] = h->elem_len;
    log_warn("job dead", LOG_STR("client", h->job.client), LOG_STR("run", h->job.run),
             LOG_STR("job", h->job.id), LOG_STR("error", reason));
    if (job_write(h, SCRIPT_BURY, 8, 16, argv, lens, on_final_write, h) < 0)
        no_memory(h);
    else
        event(h, JE_END_SENT);
}

/* ---- aborted jobs --------------------------------------------------------- */

/* Back to the jobs list, where it is popped next (unpop.lua): its runs
 * resume from their cursor, and a job that cannot be carried out time and
 * again ends dead as poison. */
static void hand_back(held *h)
{
    flow *f = h->f;
    const char *argv[] = { f->x->processing_key, ctx_key(f->x, KEYS_JOBS), h->elem };
    const size_t lens[] = { strlen(f->x->processing_key), strlen(ctx_key(f->x, KEYS_JOBS)), h->elem_len };
    if (job_write(h, SCRIPT_UNPOP, 2, 3, argv, lens, on_final_write, h) < 0)
        return;   /* out of memory again: the next sweep tries again */
    event(h, JE_END_SENT);
    f->x->n.jobs_handed_back++;
    log_warn("job handed back: a step could not be carried out", LOG_STR("client", h->job.client),
             LOG_STR("run", h->job.run), LOG_STR("job", h->job.id));
}

/* Aborted jobs whose hand-back could not be queued (out of memory) try
 * again. */
static void hand_back_aborted(flow *f)
{
    il_node *n, *next;
    IL_FOREACH_SAFE(n, next, &f->jobs) {
        held *h = IL_ENTRY(n, held, link);
        if (h->state == JS_ABORTED)
            advance(h);
    }
}

/* A dead letter for a job that could not even be parsed keeps the raw text,
 * up to UNPARSED_KEEP bytes: a 1 MB element of junk does not become a 1 MB
 * dead letter. bury() logs it, once. */
#define UNPARSED_KEEP 4096

static void bury_unparseable(held *h, const char *why)
{
    char reason[400];
    int cut = h->elem_len > UNPARSED_KEEP;
    snprintf(reason, sizeof reason, "unparseable job: %s", why);
    cJSON *o = cJSON_CreateObject();
    char *raw = strndup(h->elem, cut ? UNPARSED_KEEP : h->elem_len);
    char *json = NULL;
    if (o && raw && cJSON_AddNumberToObject(o, "v", 1) && cJSON_AddStringToObject(o, "raw", raw) &&
        cJSON_AddStringToObject(o, "last_error", reason) &&
        (!cut || cJSON_AddNumberToObject(o, "raw_bytes", (double)h->elem_len)))
        json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    free(raw);
    h->f->x->n.jobs_dead++;
    h->f->x->n.jobs_by[WK_JOB_UNPARSED][WK_JOB_DEAD]++;
    bury(h, json ? json : "{\"v\":1,\"last_error\":\"unparseable job\"}", reason);
    free(json);
}

static void begin_client_job(held *h, unsigned next_page)
{
    h->next_page = next_page > 0 ? next_page : 1;
    log_info("job started", LOG_STR("client", h->job.client), LOG_STR("run", h->job.run),
             LOG_STR("job", h->job.id), LOG_INT("page", h->next_page), LOG_INT("attempt", h->job.attempt));
    event(h, JE_BEGIN_CLIENT);
    advance(h);
}

static void on_cursor(rds *r, redisReply *reply, void *privdata)
{
    (void)r;
    held *h = privdata;
    unsigned page = 1;
    if (reply && reply->type == REDIS_REPLY_STRING)
        page = (unsigned)strtoul(reply->str, NULL, 10);
    begin_client_job(h, page);   /* no answer: page 1 is safe, just slower */
}

static void begin_campaign_job(held *h)
{
    api_campaign c = { 0 };
    c.id = strdup(h->job.campaign_id);
    c.id_len = strlen(h->job.campaign_id);
    c.json = strdup(h->job.campaign);
    if (c.id == NULL || c.json == NULL) {
        free(c.id), free(c.json);
        no_memory(h);
        advance(h);
        return;
    }
    event(h, JE_BEGIN_CAMPAIGN);
    submit_sync(h, 0, &c);
    advance(h);
}

static void begin(held *h)
{
    flow *f = h->f;
    h->client = cl_acquire(f->clients, h->job.client);
    if (h->client == NULL) {
        no_memory(h);
        advance(h);
        return;
    }
    if (h->job.type == JOB_CAMPAIGN) {
        begin_campaign_job(h);
        return;
    }
    char run[KEYS_MAX_LEN];
    keys_run_key(&f->x->keys, h->job.run, run, sizeof run);
    if (rds_commandf(f->x->redis, on_cursor, h, "HGET %s next_page", run) < 0)
        begin_client_job(h, 1);
}

static void on_delivery_counted(rds *r, redisReply *reply, void *privdata)
{
    (void)r;
    held *h = privdata;
    flow *f = h->f;
    long long n = reply && reply->type == REDIS_REPLY_INTEGER ? reply->integer : 1;
    if (n <= (long long)f->x->cfg.max_deliveries) {
        begin(h);
        return;
    }
    char reason[64];
    snprintf(reason, sizeof reason, "poison: delivered %lld times", n);
    job_set_error(&h->job, reason);
    f->x->n.jobs_dead++;
    if (h->job.type == JOB_CAMPAIGN) {
        api_campaign c = { .id = h->job.campaign_id, .id_len = strlen(h->job.campaign_id),
                           .json = h->job.campaign };
        char *json = job_serialize(&h->job);
        log_warn("job dead", LOG_STR("client", h->job.client), LOG_STR("job", h->job.id),
                 LOG_STR("error", reason));
        record_outcome(h, 0, &c, PR_DEAD_LETTERED, json ? json : h->elem, 0);
        free(json);
        return;
    }
    f->x->n.jobs_by[JOB_CLIENT][WK_JOB_DEAD]++;   /* a campaign job was counted by record_outcome */
    bury_job(h, reason);
}

int fl_start(flow *f, char *elem, size_t len)
{
    held *h = calloc(1, sizeof *h);
    if (h == NULL) {
        free(elem);
        return -1;
    }
    h->f = f;
    h->elem = elem;
    h->elem_len = len;
    h->starting = 1;
    f->starting++;
    il_push_front(&f->jobs, &h->link);
    il_init(&h->dirty_link);
    f->x->jobs_held++;
    f->x->n.jobs_popped++;

    char err[256];
    if (job_parse(elem, len, &h->job, err, sizeof err) < 0) {
        bury_unparseable(h, err);
        return 0;
    }
    if (rds_commandf(f->x->redis, on_delivery_counted, h, "HINCRBY %s %s 1", ctx_key(f->x, KEYS_DELIVERIES),
                     h->job.id) < 0)
        begin(h);
    return 0;
}

/* ---- release -------------------------------------------------------------- */

static void release(held *h)
{
    flow *f = h->f;
    il_unlink(&h->link);
    il_unlink(&h->dirty_link);
    f->x->jobs_held--;
    started(h);
    cl_release(h->client);
    job_clear(&h->job);
    free(h->elem);
    free(h->pages);
    batch_clear(h);
    free(h->batch);

    if (h->page_write) {   /* teardown with the page's write never confirmed: the store drops it */
        api_page_clear(&h->page_write->items);
        free(h->page_write);
    }
    free(h);
    ctx_kick(f->x);
}

size_t fl_starting(const flow *f)
{
    return f->starting;
}

int fl_match_held(const flow *f, const char *elem, size_t len, unsigned char *claimed)
{
    size_t i = 0;
    for (const il_node *n = f->jobs.next; n != &f->jobs; n = n->next, i++) {
        const held *h = IL_ENTRY(n, held, link);
        if (!claimed[i] && h->elem_len == len && memcmp(h->elem, elem, len) == 0) {
            claimed[i] = 1;
            return 1;
        }
    }
    return 0;
}

void fl_housekeeping(flow *f)
{
    resume_lists(f);
    hand_back_aborted(f);
}

flow *fl_new(wctx *x, sched *s, cl_set *clients)
{
    flow *f = calloc(1, sizeof *f);
    if (f == NULL)
        return NULL;
    f->x = x;
    f->sched = s;
    f->clients = clients;
    il_init(&f->jobs);
    il_init(&f->calls);
    il_init(&f->dirty);
    uv_timer_init(x->loop, &f->batch_timer);
    f->batch_timer.data = f;
    return f;
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void fl_free(flow *f)
{
    if (f == NULL)
        return;
    il_node *n;
    while ((n = il_first(&f->dirty)) != NULL)   /* teardown: unsent batches go with their jobs */
        il_unlink(n);                           /* (synced again after the hand-back) */
    while ((n = il_first(&f->calls)) != NULL) {   /* and calls the store drops unconfirmed */
        il_unlink(n);
        free(IL_ENTRY(n, batch_call, link));
    }
    while ((n = il_first(&f->jobs)) != NULL) {
        held *h = IL_ENTRY(n, held, link);
        h->client = NULL;   /* clients are freed wholesale by cl_set_free */
        release(h);
    }
    uv_close((uv_handle_t *)&f->batch_timer, on_timer_closed);
}
