/* status: "adsync-enqueue status [--json]": queue depths, workers and each
 * client's last run, read in three pipelined round trips:
 *   1. LLEN jobs, ZCARD retry, ZCOUNT retry -inf now, LLEN dead, HGET stats
 *      dead_trimmed, LLEN outbox, SMEMBERS workers, SMEMBERS clients;
 *   2. per worker LLEN processing, GET and PTTL of its heartbeat; per client
 *      GET last_run;
 *   3. per client that has a last run, HMGET of the run hash.
 * Read-only: nothing here changes Redis. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "cli.h"
#include "clock.h"
#include "ops.h"

/* ---- what is read ---------------------------------------------------------- */

enum { Q_JOBS, Q_RETRY, Q_RETRY_DUE, Q_DEAD, Q_DEAD_TRIMMED, Q_OUTBOX, Q_WORKERS, Q_CLIENTS, Q_COUNT };

static const keys_global global_keys[Q_COUNT] = {
    [Q_JOBS] = KEYS_JOBS,     [Q_RETRY] = KEYS_RETRY,   [Q_RETRY_DUE] = KEYS_RETRY,
    [Q_DEAD] = KEYS_DEAD,     [Q_DEAD_TRIMMED] = KEYS_STATS,
    [Q_OUTBOX] = KEYS_OUTBOX, [Q_WORKERS] = KEYS_WORKERS,
    [Q_CLIENTS] = KEYS_CLIENTS,
};
static const char *const global_cmds[Q_COUNT] = {
    [Q_JOBS] = "LLEN",   [Q_RETRY] = "ZCARD",      [Q_RETRY_DUE] = "ZCOUNT", [Q_DEAD] = "LLEN",
    [Q_DEAD_TRIMMED] = "HGET",
    [Q_OUTBOX] = "LLEN", [Q_WORKERS] = "SMEMBERS", [Q_CLIENTS] = "SMEMBERS",
};

/* Per worker: these commands, in this order. */
enum { W_PROCESSING, W_HEARTBEAT, W_PTTL, W_COUNT };

typedef struct worker_info {
    const char *id;                /* points into the SMEMBERS reply */
    long long processing;
    long long pttl;                /* heartbeat TTL left in ms; < 0: no heartbeat key */
    cJSON *heartbeat;              /* parsed heartbeat JSON, or NULL */
    long long age_ms;              /* since the last heartbeat; -1 unknown */
} worker_info;


typedef struct client_info {
    const char *id;                /* points into the SMEMBERS reply */
    char run[KEYS_TOKEN_MAX + 1];  /* "" if it never ran */
    char state[16];                /* "" until read; "missing" if the run hash is gone */
    long long num[RUN_NFIELDS];        /* RUN_LISTED .. RUN_ENQUEUED_AT */
    char last_error[256];          /* the run's last_error, "" if none */
} client_info;

typedef struct status {
    app *a;
    redisReply *global[Q_COUNT];
    char **worker_ids, **client_ids;
    worker_info *workers;
    client_info *clients;
    client_info **with_run;        /* clients that have a last run */
    size_t nworkers, nclients, nwith_run;
    uint64_t now_ms;               /* wall clock */
    char key[KEYS_MAX_LEN];
} status;

/* ---- round trip 1 ---------------------------------------------------------- */

static int fetch_globals(status *st)
{
    char keybuf[Q_COUNT][KEYS_MAX_LEN];
    rdsync_cmd cmds[Q_COUNT];
    for (size_t i = 0; i < Q_COUNT; i++) {
        keys_global_key(&st->a->keys, global_keys[i], keybuf[i], sizeof keybuf[i]);
        rdsync_cmd_init(&cmds[i], global_cmds[i]);
        rdsync_cmd_add(&cmds[i], keybuf[i]);
    }
    rdsync_cmd_add(&cmds[Q_RETRY_DUE], "-inf");
    rdsync_cmd_addll(&cmds[Q_RETRY_DUE], (long long)st->now_ms);
    rdsync_cmd_add(&cmds[Q_DEAD_TRIMMED], "dead_trimmed");
    return app_run_all(st->a, cmds, Q_COUNT, st->global);
}

/* Allocates the worker and client tables from the SMEMBERS replies. */
static int make_tables(status *st)
{
    const redisReply *w = st->global[Q_WORKERS], *c = st->global[Q_CLIENTS];
    size_t wmax = w->type == REDIS_REPLY_ARRAY ? w->elements : 0;
    size_t cmax = c->type == REDIS_REPLY_ARRAY ? c->elements : 0;
    st->worker_ids = calloc(wmax + 1, sizeof *st->worker_ids);
    st->client_ids = calloc(cmax + 1, sizeof *st->client_ids);
    st->workers = calloc(wmax + 1, sizeof *st->workers);
    st->clients = calloc(cmax + 1, sizeof *st->clients);
    st->with_run = calloc(cmax + 1, sizeof *st->with_run);
    if (!st->worker_ids || !st->client_ids || !st->workers || !st->clients || !st->with_run) {
        snprintf(st->a->err, sizeof st->a->err, "out of memory");
        return -1;
    }
    st->nworkers = app_collect_ids(w, keys_valid_token, st->worker_ids);
    st->nclients = app_collect_ids(c, keys_valid_client_id, st->client_ids);
    for (size_t i = 0; i < st->nworkers; i++)
        st->workers[i] = (worker_info){ .id = st->worker_ids[i], .pttl = -2, .age_ms = -1 };
    for (size_t i = 0; i < st->nclients; i++)
        st->clients[i].id = st->client_ids[i];
    return 0;
}

/* ---- round trip 2: workers and last runs ----------------------------------- */

static void details_build(void *ud, size_t i, rdsync_cmd *cmd)
{
    status *st = ud;
    size_t wcmds = st->nworkers * W_COUNT;
    if (i >= wcmds) {
        keys_client_key(&st->a->keys, st->clients[i - wcmds].id, KEYS_CLIENT_LAST_RUN, st->key,
                        sizeof st->key);
        rdsync_cmd_init(cmd, "GET");
    } else if (i % W_COUNT == W_PROCESSING) {
        keys_processing_key(&st->a->keys, st->workers[i / W_COUNT].id, st->key, sizeof st->key);
        rdsync_cmd_init(cmd, "LLEN");
    } else {
        keys_worker_key(&st->a->keys, st->workers[i / W_COUNT].id, st->key, sizeof st->key);
        rdsync_cmd_init(cmd, i % W_COUNT == W_HEARTBEAT ? "GET" : "PTTL");
    }
    rdsync_cmd_add(cmd, st->key);
}

/* The heartbeat's own time stamp (ms since the epoch), if it carries one. */
static long long heartbeat_ts(const cJSON *hb)
{
    static const char *const names[] = { "ts", "heartbeat_at", "last_heartbeat", "updated_at", "at" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(hb, names[i]);
        if (cJSON_IsNumber(v) && v->valuedouble > 0)
            return (long long)v->valuedouble;
    }
    return -1;
}

static void worker_take(status *st, worker_info *w, size_t which, const redisReply *r)
{
    if (which == W_PROCESSING) {
        w->processing = app_reply_ll(r);
    } else if (which == W_HEARTBEAT) {
        const char *text = app_reply_str(r);
        w->heartbeat = text ? cJSON_Parse(text) : NULL;
        long long ts = w->heartbeat ? heartbeat_ts(w->heartbeat) : -1;
        if (ts > 0)
            w->age_ms = (long long)st->now_ms - ts;
    } else {
        w->pttl = r->type == REDIS_REPLY_INTEGER ? r->integer : -2;
        /* The heartbeat resets the TTL to the lease: what is gone of it is
         * the time since the last beat (a fallback when it has no ts). */
        if (w->age_ms < 0 && w->pttl >= 0 && (uint64_t)w->pttl <= st->a->cfg.lease_ms)
            w->age_ms = (long long)st->a->cfg.lease_ms - w->pttl;
    }
}

static void details_take(void *ud, size_t i, const redisReply *r)
{
    status *st = ud;
    size_t wcmds = st->nworkers * W_COUNT;
    if (i < wcmds) {
        worker_take(st, &st->workers[i / W_COUNT], i % W_COUNT, r);
        return;
    }
    client_info *c = &st->clients[i - wcmds];
    const char *run = app_reply_str(r);
    if (run && keys_valid_token(run)) {
        snprintf(c->run, sizeof c->run, "%s", run);
        st->with_run[st->nwith_run++] = c;
    }
}

/* ---- round trip 3: the runs ------------------------------------------------- */

static void runs_build(void *ud, size_t i, rdsync_cmd *cmd)
{
    status *st = ud;
    app_cmd_run_fields(st->a, cmd, st->with_run[i]->run, st->key);
    rdsync_cmd_add(cmd, "last_error");   /* element RUN_NFIELDS */
}

static void runs_take(void *ud, size_t i, const redisReply *r)
{
    status *st = ud;
    client_info *c = st->with_run[i];
    const char *state = app_reply_elem_str(r, RUN_STATE);
    snprintf(c->state, sizeof c->state, "%s", state ? state : "missing");
    for (size_t f = RUN_LISTED; f < RUN_NFIELDS; f++)
        c->num[f] = app_run_field_ll(r, f);
    const char *err = app_reply_elem_str(r, RUN_NFIELDS);
    snprintf(c->last_error, sizeof c->last_error, "%s", err ? err : "");
}

static int fetch_all(status *st)
{
    if (fetch_globals(st) < 0 || make_tables(st) < 0)
        return -1;
    if (app_pipeline(st->a, st->nworkers * W_COUNT + st->nclients, details_build, details_take, st) < 0)
        return -1;
    return app_pipeline(st->a, st->nwith_run, runs_build, runs_take, st);
}

static void status_free(status *st)
{
    for (size_t i = 0; st->workers && i < st->nworkers; i++)
        cJSON_Delete(st->workers[i].heartbeat);
    free(st->workers);
    free(st->clients);
    free(st->with_run);
    free(st->worker_ids);
    free(st->client_ids);
    for (size_t i = 0; i < Q_COUNT; i++)
        if (st->global[i])
            freeReplyObject(st->global[i]);
}

/* ---- text output ---------------------------------------------------------- */

static long long q(const status *st, int which)
{
    return app_reply_ll(st->global[which]);
}

static size_t alive_workers(const status *st)
{
    size_t n = 0;
    for (size_t i = 0; i < st->nworkers; i++)
        n += st->workers[i].pttl >= -1;  /* -1: key without TTL, still a heartbeat */
    return n;
}

/* "host h pid 12 inflight 3" from the heartbeat's known members. */
static void heartbeat_summary(const cJSON *hb, char *out, size_t outlen)
{
    static const char *const names[] = { "host", "pid", "inflight", "started_at" };
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; hb && i < sizeof names / sizeof names[0] && used < outlen; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(hb, names[i]);
        char val[80];
        if (cJSON_IsString(v))
            app_printable(v->valuestring, strlen(v->valuestring), val, sizeof val);
        else if (cJSON_IsNumber(v))
            snprintf(val, sizeof val, "%.0f", v->valuedouble);
        else
            continue;
        int n = snprintf(out + used, outlen - used, " %s %s", names[i], val);
        used += n > 0 ? (size_t)n : 0;
    }
}

static void print_worker(const worker_info *w)
{
    char age[32] = "?", summary[256];
    if (w->pttl < -1) {
        printf("  %-24s missing heartbeat, processing %lld\n", w->id, w->processing);
        return;
    }
    if (w->age_ms >= 0)
        app_format_age(w->age_ms, age, sizeof age);
    heartbeat_summary(w->heartbeat, summary, sizeof summary);
    printf("  %-24s alive, last heartbeat %s ago,%s processing %lld\n", w->id, age, summary,
           w->processing);
}

static void print_client(const status *st, const client_info *c)
{
    if (c->run[0] == '\0') {
        printf("  %-24s never synced\n", c->id);
        return;
    }
    char state[sizeof c->state], age[32];
    app_printable(c->state, strlen(c->state), state, sizeof state);
    app_format_age((long long)st->now_ms - c->num[RUN_ENQUEUED_AT], age, sizeof age);
    printf("  %-24s %-8s listed %lld synced %lld retrying %lld dead %lld  age %s  run %s\n", c->id,
           state, c->num[RUN_LISTED], c->num[RUN_SYNCED], c->num[RUN_RETRYING], c->num[RUN_DEAD],
           c->num[RUN_ENQUEUED_AT] ? age : "?", c->run);
}

static void print_text(const status *st)
{
    printf("queues\n");
    printf("  %-24s %lld\n", "jobs", q(st, Q_JOBS));
    printf("  %-24s %lld (%lld due)\n", "retry", q(st, Q_RETRY), q(st, Q_RETRY_DUE));
    if (q(st, Q_DEAD_TRIMMED) > 0)
        printf("  %-24s %lld (%lld older ones trimmed)\n", "dead", q(st, Q_DEAD), q(st, Q_DEAD_TRIMMED));
    else
        printf("  %-24s %lld\n", "dead", q(st, Q_DEAD));
    printf("  %-24s %lld\n", "outbox", q(st, Q_OUTBOX));
    printf("workers (%zu registered, %zu alive)\n", st->nworkers, alive_workers(st));
    for (size_t i = 0; i < st->nworkers; i++)
        print_worker(&st->workers[i]);
    printf("clients (%zu)\n", st->nclients);
    for (size_t i = 0; i < st->nclients; i++)
        print_client(st, &st->clients[i]);
}

/* ---- JSON output ------------------------------------------------------------ */

static cJSON *worker_json(worker_info *w)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", w->id);
    cJSON_AddBoolToObject(o, "alive", w->pttl >= -1);
    cJSON_AddNumberToObject(o, "processing", (double)w->processing);
    if (w->age_ms >= 0)
        cJSON_AddNumberToObject(o, "heartbeat_age_ms", (double)w->age_ms);
    else
        cJSON_AddNullToObject(o, "heartbeat_age_ms");
    if (w->heartbeat) {
        cJSON_AddItemToObject(o, "heartbeat", w->heartbeat);
        w->heartbeat = NULL;       /* now owned by o */
    } else {
        cJSON_AddNullToObject(o, "heartbeat");
    }
    return o;
}

static cJSON *client_json(const status *st, const client_info *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", c->id);
    if (c->run[0] == '\0') {
        cJSON_AddNullToObject(o, "last_run");
        return o;
    }
    cJSON *run = cJSON_AddObjectToObject(o, "last_run");
    cJSON_AddStringToObject(run, "run", c->run);
    cJSON_AddStringToObject(run, "state", c->state);
    for (size_t f = RUN_LISTED; f < RUN_NFIELDS; f++)
        cJSON_AddNumberToObject(run, app_run_fields[f], (double)c->num[f]);
    if (c->num[RUN_ENQUEUED_AT])
        cJSON_AddNumberToObject(run, "age_ms", (double)((long long)st->now_ms - c->num[RUN_ENQUEUED_AT]));
    if (c->last_error[0])
        cJSON_AddStringToObject(run, "last_error", c->last_error);
    return o;
}

static cJSON *status_json(status *st)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "jobs", (double)q(st, Q_JOBS));
    cJSON_AddNumberToObject(root, "retry", (double)q(st, Q_RETRY));
    cJSON_AddNumberToObject(root, "retry_due", (double)q(st, Q_RETRY_DUE));
    cJSON_AddNumberToObject(root, "dead", (double)q(st, Q_DEAD));
    cJSON_AddNumberToObject(root, "dead_trimmed", (double)q(st, Q_DEAD_TRIMMED));
    cJSON_AddNumberToObject(root, "outbox", (double)q(st, Q_OUTBOX));
    cJSON_AddNumberToObject(root, "workers_alive", (double)alive_workers(st));
    cJSON *workers = cJSON_AddArrayToObject(root, "workers");
    for (size_t i = 0; i < st->nworkers; i++)
        cJSON_AddItemToArray(workers, worker_json(&st->workers[i]));
    cJSON *clients = cJSON_AddArrayToObject(root, "clients");
    for (size_t i = 0; i < st->nclients; i++)
        cJSON_AddItemToArray(clients, client_json(st, &st->clients[i]));
    return root;
}

/* ---- the command ------------------------------------------------------------ */

static const app_cmd_spec status_spec = {
    "status [--json]",
    "Shows the queues (jobs; retry and how many are due; dead; outbox), every\n"
    "registered worker (alive with its last heartbeat, or \"missing heartbeat\",\n"
    "and how many jobs it holds) and each client's last run (state, listed,\n"
    "synced, retrying, dead, age since it was queued).\n"
    "  --json    one JSON object: {\"jobs\",\"retry\",\"retry_due\",\"dead\",\"dead_trimmed\",\"outbox\",\n"
    "            \"workers_alive\",\"workers\":[...],\"clients\":[{\"id\",\"last_run\"}]}\n",
    app_json_longopts, "",
};

cJSON *status_snapshot(app *a)
{
    status st = { .a = a, .now_ms = clock_wall_ms() };
    cJSON *root = fetch_all(&st) < 0 ? NULL : status_json(&st);
    status_free(&st);
    return root;
}

static int status_run(app *a, int json)
{
    if (json) {
        cJSON *root = status_snapshot(a);
        return root == NULL ? app_unavailable(a) : app_print_json(root) < 0 ? EX_UNAVAILABLE : 0;
    }
    status st = { .a = a, .now_ms = clock_wall_ms() };
    int rc = 0;
    if (fetch_all(&st) < 0)
        rc = app_unavailable(a);
    else
        print_text(&st);
    status_free(&st);
    return rc;
}

int cli_status(int argc, char **argv)
{
    return app_simple_cmd(&status_spec, argc, argv, status_run);
}
