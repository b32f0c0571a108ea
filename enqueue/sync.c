/* sync: "adsync-enqueue sync ID... | sync --all [--force] [--wait] [--json]".
 *
 * Per client one enqueue_run script call (common/lua/enqueue_run.lua)
 * creates the run hash, claims active_run and LPUSHes the client job in one
 * step, so concurrent schedulers queue one run per client; the calls are
 * pipelined (10,000 clients take a few round trips). --wait hands the runs to
 * wait.c. Output: one line per client, or one JSON object with --json. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "job.h"
#include "ops.h"
#include "scripts.h"
#include "sync.h"

typedef enum {
    SYNC_QUEUED,       /* a new run was created */
    SYNC_SKIPPED,      /* a run was already active */
    SYNC_UNKNOWN,      /* not a registered client */
    SYNC_INVALID,      /* not a valid client id: never sent */
    SYNC_FAILED,       /* Redis answered with an error */
    SYNC_PENDING,      /* valid id, not sent (yet) */
} sync_status;

static const char *const status_names[] = {
    [SYNC_QUEUED] = "queued",   [SYNC_SKIPPED] = "skipped", [SYNC_UNKNOWN] = "unknown",
    [SYNC_INVALID] = "invalid", [SYNC_FAILED] = "error",    [SYNC_PENDING] = "error",
};

typedef struct sync_target {
    const char *client;            /* borrowed: argv or the SMEMBERS reply */
    sync_status status;
    char run[KEYS_TOKEN_MAX + 1];  /* queued: the new run; skipped: the active one */
    char error[160];               /* SYNC_FAILED: the server's reply */
    wait_run *follow;              /* with --wait: this run's progress (shared by duplicates) */
    char *job_json;                /* the job to push, built before the pipeline; owned */
    char now_ms[24];               /* its enqueued_at */
} sync_target;

typedef struct sync_opts {
    int all, force, wait, json;
} sync_opts;

/* ---- enqueueing ---------------------------------------------------------- */

typedef struct enqueue_state {
    app *a;
    rdsync_script script;
    sync_target **todo;            /* the targets to send, in order */
    const char *force;             /* "1" or "0" */
    char clients[KEYS_MAX_LEN], jobs[KEYS_MAX_LEN];
    char active[KEYS_MAX_LEN], run_key[KEYS_MAX_LEN], last_run[KEYS_MAX_LEN];
    char ttl_ms[24], retention_ms[24];
} enqueue_state;

/* Run ids are "<ms since epoch>-<16 hex>": unique, sortable by creation
 * time, and valid tokens (keys_valid_token). */
static void make_run_id(char *out, size_t outlen, uint64_t now_ms)
{
    char rnd[JOB_ID_LEN + 1];
    job_make_id(rnd);
    snprintf(out, outlen, "%llu-%.16s", (unsigned long long)now_ms, rnd);
}

static char *make_client_job(const char *client, const char *run, uint64_t now_ms)
{
    job j = { 0 };
    j.type = JOB_CLIENT;
    job_make_id(j.id);
    snprintf(j.client, sizeof j.client, "%s", client);
    snprintf(j.run, sizeof j.run, "%s", run);
    j.attempt = 0;
    j.enqueued_at = now_ms;
    return job_serialize(&j);
}

static void enqueue_build(void *ud, size_t i, rdsync_cmd *cmd)
{
    enqueue_state *st = ud;
    sync_target *t = st->todo[i];
    keys_client_key(&st->a->keys, t->client, KEYS_CLIENT_ACTIVE_RUN, st->active, sizeof st->active);
    keys_run_key(&st->a->keys, t->run, st->run_key, sizeof st->run_key);
    keys_client_key(&st->a->keys, t->client, KEYS_CLIENT_LAST_RUN, st->last_run, sizeof st->last_run);

    rdsync_cmd_evalsha(cmd, &st->script, 5);
    rdsync_cmd_add(cmd, st->clients);
    rdsync_cmd_add(cmd, st->active);
    rdsync_cmd_add(cmd, st->run_key);
    rdsync_cmd_add(cmd, st->last_run);
    rdsync_cmd_add(cmd, st->jobs);
    rdsync_cmd_add(cmd, t->client);
    rdsync_cmd_add(cmd, t->run);
    rdsync_cmd_add(cmd, t->job_json);
    rdsync_cmd_add(cmd, t->now_ms);
    rdsync_cmd_add(cmd, st->ttl_ms);
    rdsync_cmd_add(cmd, st->force);
    rdsync_cmd_add(cmd, st->retention_ms);
}

static void enqueue_take(void *ud, size_t i, const redisReply *r)
{
    enqueue_state *st = ud;
    sync_target *t = st->todo[i];
    const char *what = app_reply_elem_str(r, 0);
    const char *run = app_reply_elem_str(r, 1);
    if (r->type == REDIS_REPLY_ERROR) {
        t->status = SYNC_FAILED;
        snprintf(t->error, sizeof t->error, "%s", r->str);
    } else if (what && strcmp(what, "queued") == 0) {
        t->status = SYNC_QUEUED;
    } else if (what && strcmp(what, "unknown") == 0) {
        t->status = SYNC_UNKNOWN;
    } else if (what && strcmp(what, "skipped") == 0 && run && keys_valid_token(run)) {
        t->status = SYNC_SKIPPED;
        snprintf(t->run, sizeof t->run, "%s", run);
    } else {
        t->status = SYNC_FAILED;
        snprintf(t->error, sizeof t->error, "unexpected reply from enqueue_run");
    }
}

/* A new run id and its client job, made before anything is sent so that
 * running out of memory stops the command before a half-built pipeline.
 * 0, or -1 with a->err. */
static int prepare_job(sync_target *t, app *a)
{
    uint64_t now = clock_wall_ms();
    make_run_id(t->run, sizeof t->run, now);
    snprintf(t->now_ms, sizeof t->now_ms, "%llu", (unsigned long long)now);
    t->job_json = make_client_job(t->client, t->run, now);
    if (t->job_json != NULL)
        return 0;
    snprintf(a->err, sizeof a->err, "out of memory");
    return -1;
}

/* Sends every target with a valid id (status SYNC_PENDING), pipelined.
 * 0, or -1 with a->err. */
static int enqueue_all(app *a, sync_target *targets, size_t n, int force)
{
    enqueue_state st = { .a = a, .force = force ? "1" : "0" };
    rdsync_script_init(&st.script, script_enqueue_run);
    keys_global_key(&a->keys, KEYS_CLIENTS, st.clients, sizeof st.clients);
    keys_global_key(&a->keys, KEYS_JOBS, st.jobs, sizeof st.jobs);
    snprintf(st.ttl_ms, sizeof st.ttl_ms, "%lld", APP_ACTIVE_RUN_TTL_MS);
    snprintf(st.retention_ms, sizeof st.retention_ms, "%llu", (unsigned long long)a->cfg.retention_ms);
    st.todo = malloc((n ? n : 1) * sizeof *st.todo);
    if (st.todo == NULL) {
        snprintf(a->err, sizeof a->err, "out of memory");
        return -1;
    }
    size_t m = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (targets[i].status == SYNC_PENDING) {
            st.todo[m++] = &targets[i];
            rc = prepare_job(&targets[i], a);
        }
    }
    if (rc == 0)
        rc = app_eval_pipeline(a, &st.script, m, enqueue_build, enqueue_take, &st);
    for (size_t i = 0; i < m; i++) {
        free(st.todo[i]->job_json);
        st.todo[i]->job_json = NULL;
    }
    free(st.todo);
    return rc;
}

/* ---- reporting ----------------------------------------------------------- */

static void report_text(const sync_target *t)
{
    char shown[KEYS_ID_MAX + 1];
    app_printable(t->client, strlen(t->client), shown, sizeof shown);
    switch (t->status) {
    case SYNC_QUEUED: printf("%s: queued run %s\n", t->client, t->run); break;
    case SYNC_SKIPPED: printf("%s: skipped: run %s already active\n", t->client, t->run); break;
    case SYNC_UNKNOWN: app_error("sync: unknown client '%s'", shown); break;
    case SYNC_INVALID: app_error("sync: invalid client id '%s'", shown); break;
    case SYNC_FAILED: app_error("sync: %s: %s", shown, t->error); break;
    case SYNC_PENDING: app_error("sync: %s: not sent", shown); break;
    }
}

static void add_progress_json(cJSON *o, const wait_run *w)
{
    cJSON_AddStringToObject(o, "state", w->state);
    cJSON_AddNumberToObject(o, "listed", (double)w->listed);
    cJSON_AddNumberToObject(o, "synced", (double)w->synced);
    cJSON_AddNumberToObject(o, "retrying", (double)w->retrying);
    cJSON_AddNumberToObject(o, "dead", (double)w->dead);
}

static cJSON *target_json(const sync_target *t)
{
    cJSON *o = cJSON_CreateObject();
    char shown[KEYS_ID_MAX + 1];
    app_printable(t->client, strlen(t->client), shown, sizeof shown);
    cJSON_AddStringToObject(o, "client", shown);
    cJSON_AddStringToObject(o, "status", status_names[t->status]);
    if (t->status == SYNC_QUEUED || t->status == SYNC_SKIPPED)
        cJSON_AddStringToObject(o, "run", t->run);
    if (t->status == SYNC_FAILED)
        cJSON_AddStringToObject(o, "error", t->error);
    if (t->follow)
        add_progress_json(o, t->follow);
    return o;
}

static int report_json(const sync_target *targets, size_t n, int waited, int wait_rc)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *runs = cJSON_AddArrayToObject(root, "runs");
    size_t count[SYNC_PENDING + 1] = { 0 };
    for (size_t i = 0; i < n; i++) {
        cJSON_AddItemToArray(runs, target_json(&targets[i]));
        count[targets[i].status]++;
    }
    cJSON_AddNumberToObject(root, "queued", (double)count[SYNC_QUEUED]);
    cJSON_AddNumberToObject(root, "skipped", (double)count[SYNC_SKIPPED]);
    cJSON_AddNumberToObject(root, "errors", (double)(n - count[SYNC_QUEUED] - count[SYNC_SKIPPED]));
    if (waited)
        cJSON_AddBoolToObject(root, "all_synced", wait_rc == 0);
    return app_print_json(root);
}

/* The worst outcome decides the exit code: 69 > 65 > 0. */
static int enqueue_exit_code(const sync_target *targets, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (targets[i].status == SYNC_FAILED || targets[i].status == SYNC_PENDING)
            return EX_UNAVAILABLE;
        if (targets[i].status == SYNC_UNKNOWN || targets[i].status == SYNC_INVALID)
            rc = EX_DATAERR;
    }
    return rc;
}

/* ---- --wait ---------------------------------------------------------------- */

static int cmp_wait_run(const void *x, const void *y)
{
    return strcmp(((const wait_run *)x)->run, ((const wait_run *)y)->run);
}

/* Follows every queued or skipped target's run, each run once even if two
 * targets name it, and points each target's follow at its run. The runs
 * array is returned in *out (free it after the report). Returns
 * wait_follow's code. */
static int follow_targets(app *a, sync_target *targets, size_t n, wait_mode mode, wait_run **out)
{
    wait_run *runs = *out = calloc(n ? n : 1, sizeof *runs);
    if (runs == NULL) {
        app_error("out of memory");
        return EX_UNAVAILABLE;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (targets[i].status == SYNC_QUEUED || targets[i].status == SYNC_SKIPPED)
            runs[m++] = (wait_run){ .client = targets[i].client, .run = targets[i].run };
    qsort(runs, m, sizeof *runs, cmp_wait_run);
    size_t uniq = 0;
    for (size_t i = 0; i < m; i++)
        if (uniq == 0 || strcmp(runs[uniq - 1].run, runs[i].run) != 0)
            runs[uniq++] = runs[i];
    int rc = wait_follow(a, runs, uniq, mode);
    for (size_t i = 0; i < n; i++) {
        wait_run key = { .run = targets[i].run };
        if (targets[i].status == SYNC_QUEUED || targets[i].status == SYNC_SKIPPED)
            targets[i].follow = bsearch(&key, runs, uniq, sizeof *runs, cmp_wait_run);
    }
    return rc;
}

/* ---- the command ------------------------------------------------------------ */

static const struct option sync_longopts[] = {
    { "all", no_argument, NULL, 'a' },
    { "force", no_argument, NULL, 'f' },
    { "wait", no_argument, NULL, 'w' },
    { "json", no_argument, NULL, 'j' },
    { 0 },
};

static int sync_on_opt(void *ud, int opt, const char *value)
{
    sync_opts *o = ud;
    (void)value;
    switch (opt) {
    case 'a': o->all = 1; break;
    case 'f': o->force = 1; break;
    case 'w': o->wait = 1; break;
    case 'j': o->json = 1; break;
    }
    return 0;
}

static const app_cmd_spec sync_spec = {
    "sync ID... | sync --all  [--force] [--wait] [--json]",
    "Queues one sync run per client: creates <prefix>:run:<run id> (state\n"
    "queued), claims <prefix>:client:<id>:active_run and pushes one client job,\n"
    "atomically. A client whose run is still queued or running is skipped, so\n"
    "schedulers that fire together queue one run. Run ids are <ms>-<16 hex>.\n"
    "active_run carries a 24 h TTL as a safety valve; the worker deletes it when\n"
    "the run ends.\n"
    "\n"
    "  ID...      the clients to sync (registered with \"client add\")\n"
    "  --all      every registered client\n"
    "  --force    queue a new run even if one is active (it takes over active_run)\n"
    "  --wait     follow the runs (new and already active) until they are done:\n"
    "             a progress bar on a terminal, else one line per change\n"
    "  --json     print one JSON object instead of one line per client; with\n"
    "             --wait, printed at the end with each run's final counters\n"
    "\n"
    "Output: \"ID: queued run RUN\" or \"ID: skipped: run RUN already active\";\n"
    "unknown or invalid ids are reported on stderr and the others still go.\n"
    "exit codes: 0 ok, 1 (--wait) some campaign ended dead or a run failed,\n"
    "64 usage, 65 unknown or invalid client id, 69 Redis unavailable,\n"
    "78 bad configuration.\n",
    sync_longopts, "",
};

/* Builds the target list: every registered client, or the given ids (an
 * invalid id is marked and never sent). */
static sync_target *make_targets(char **ids, size_t n)
{
    sync_target *targets = calloc(n ? n : 1, sizeof *targets);
    for (size_t i = 0; targets && i < n; i++) {
        targets[i].client = ids[i];
        targets[i].status = keys_valid_client_id(ids[i]) ? SYNC_PENDING : SYNC_INVALID;
    }
    return targets;
}

static int sync_run(app *a, const sync_opts *o, char **ids, size_t n)
{
    sync_target *targets = make_targets(ids, n);
    if (targets == NULL) {
        app_error("out of memory");
        return EX_UNAVAILABLE;
    }
    if (enqueue_all(a, targets, n, o->force) < 0) {
        free(targets);
        return app_unavailable(a);
    }
    if (!o->json) {
        for (size_t i = 0; i < n; i++)
            report_text(&targets[i]);
        fflush(stdout);
    }
    int rc = enqueue_exit_code(targets, n), wait_rc = 0;
    wait_run *runs = NULL;
    if (o->wait && rc != EX_UNAVAILABLE) {
        wait_mode mode = o->json ? WAIT_QUIET : isatty(STDOUT_FILENO) ? WAIT_BAR : WAIT_LINES;
        wait_rc = follow_targets(a, targets, n, mode, &runs);
    }
    if (o->json && report_json(targets, n, o->wait, wait_rc) < 0)
        rc = EX_UNAVAILABLE;
    free(runs);
    free(targets);
    /* Redis gone beats bad input, which beats "some campaign dead". */
    if (wait_rc == EX_UNAVAILABLE || rc == EX_UNAVAILABLE)
        return EX_UNAVAILABLE;
    return rc ? rc : wait_rc;
}

int sync_one(app *a, const char *client, int force, char *state, size_t statelen, char *run, size_t runlen)
{
    char *ids[] = { (char *)client };
    sync_target *t = make_targets(ids, 1);
    if (t == NULL) {
        snprintf(a->err, sizeof a->err, "out of memory");
        return -1;
    }
    int rc = enqueue_all(a, t, 1, force);
    if (rc == 0) {
        snprintf(state, statelen, "%s", status_names[t->status]);
        snprintf(run, runlen, "%s", t->status == SYNC_QUEUED || t->status == SYNC_SKIPPED ? t->run : "");
    }
    free(t);
    return rc;
}

int cli_sync(int argc, char **argv)
{
    sync_opts o = { 0 };
    int first;
    int rc = app_parse_opts(&sync_spec, argc, argv, sync_on_opt, &o, &first);
    if (rc)
        return rc == APP_HELP ? 0 : rc;
    if (o.all && first < argc)
        return app_usage_error(sync_spec.usage, "give client ids or --all, not both");
    if (!o.all && first == argc)
        return app_usage_error(sync_spec.usage, "missing client ids (or --all)");
    app a;
    if ((rc = app_open(&a)) != 0)
        return rc;
    char **ids = argv + first;
    size_t n = (size_t)(argc - first);
    redisReply *members = NULL;
    if (o.all && (members = app_client_ids(&a, &ids, &n)) == NULL) {
        rc = app_unavailable(&a);
    } else {
        if (o.all && n == 0)
            app_error("sync: no clients are registered");
        rc = sync_run(&a, &o, ids, n);
    }
    if (members) {
        free(ids);
        freeReplyObject(members);
    }
    app_close(&a);
    return rc;
}
