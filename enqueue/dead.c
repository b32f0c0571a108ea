/* dead: "adsync-enqueue dead list | retry (--all | JOB_ID) | purge": the
 * dead letters of <p>:dead (DESIGN.md §3, §4).
 *
 * A dead letter is normally a job JSON with last_error and attempt, but it
 * may be anything (a job that was dead-lettered because it was not JSON):
 * such elements are listed as unparseable and left in place, never crash.
 * Retrying goes through common/lua/dead_retry.lua, one atomic call per job
 * (pipelined), which also reopens the job's run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "cli.h"
#include "job.h"
#include "ops.h"
#include "scripts.h"

#define REASON_SHOWN 120
#define RAW_SHOWN 200

/* ---- reading dead letters --------------------------------------------------- */

/* One element of <p>:dead as far as it could be read. Strings are borrowed
 * from root (or NULL when absent or not strings). */
typedef struct dead_letter {
    size_t index;
    const char *raw;               /* borrowed from the LRANGE reply */
    size_t len;
    cJSON *root;                   /* the parsed object, or NULL: unparseable */
    const char *id, *type, *client, *run, *campaign, *reason;
    double attempt, dead_at;       /* -1 when absent */
} dead_letter;

typedef struct dead_list {
    redisReply *reply;             /* LRANGE <p>:dead 0 -1 */
    dead_letter *items;
    size_t n;
} dead_list;

static const char *member_str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double member_num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static void describe(dead_letter *d)
{
    cJSON *root = cJSON_ParseWithLength(d->raw, d->len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return;
    }
    d->root = root;
    d->id = member_str(root, "id");
    d->type = member_str(root, "type");
    d->client = member_str(root, "client");
    d->run = member_str(root, "run");
    d->reason = member_str(root, "last_error");
    d->attempt = member_num(root, "attempt");
    d->dead_at = member_num(root, "dead_at");
    const cJSON *campaign = cJSON_GetObjectItemCaseSensitive(root, "campaign");
    d->campaign = cJSON_IsObject(campaign) ? member_str(campaign, "id") : member_str(root, "campaign");
}

static void dead_list_free(dead_list *l)
{
    for (size_t i = 0; l->items && i < l->n; i++)
        cJSON_Delete(l->items[i].root);
    free(l->items);
    if (l->reply)
        freeReplyObject(l->reply);
}

/* LRANGE the whole list and describe each element. 0, or -1 with a->err. */
static int dead_list_read(app *a, dead_list *l)
{
    char key[KEYS_MAX_LEN];
    keys_global_key(&a->keys, KEYS_DEAD, key, sizeof key);
    rdsync_cmd cmd;
    rdsync_cmd_init(&cmd, "LRANGE");
    rdsync_cmd_add(&cmd, key);
    rdsync_cmd_add(&cmd, "0");
    rdsync_cmd_add(&cmd, "-1");
    *l = (dead_list){ 0 };
    if ((l->reply = app_run(a, &cmd)) == NULL)
        return -1;
    if (l->reply->type != REDIS_REPLY_ARRAY) {
        snprintf(a->err, sizeof a->err, "LRANGE %.100s: %.120s", key,
                 l->reply->type == REDIS_REPLY_ERROR ? l->reply->str : "unexpected reply");
        return -1;
    }
    l->items = calloc(l->reply->elements + 1, sizeof *l->items);
    if (l->items == NULL) {
        snprintf(a->err, sizeof a->err, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < l->reply->elements; i++) {
        const redisReply *e = l->reply->element[i];
        if (e->type != REDIS_REPLY_STRING)
            continue;
        dead_letter *d = &l->items[l->n++];
        *d = (dead_letter){ .index = i, .raw = e->str, .len = e->len, .attempt = -1, .dead_at = -1 };
        describe(d);
    }
    return 0;
}

/* ---- dead list -------------------------------------------------------------- */

static void shown(const char *s, char *out, size_t outlen)
{
    app_printable(s ? s : "-", s ? strlen(s) : 1, out, outlen);
}

static void print_letter_text(const dead_letter *d)
{
    if (d->root == NULL) {
        char raw[RAW_SHOWN + 1];
        app_printable(d->raw, d->len, raw, sizeof raw);
        printf("%-5zu %-34s unparseable: %s\n", d->index, "-", raw);
        return;
    }
    char id[KEYS_TOKEN_MAX + 1], type[16], client[KEYS_ID_MAX + 1], campaign[64], reason[REASON_SHOWN + 1];
    shown(d->id, id, sizeof id);
    shown(d->type, type, sizeof type);
    shown(d->client, client, sizeof client);
    shown(d->campaign, campaign, sizeof campaign);
    shown(d->reason, reason, sizeof reason);
    char attempts[24] = "-";
    if (d->attempt >= 0)
        snprintf(attempts, sizeof attempts, "%.0f", d->attempt);
    printf("%-5zu %-34s %-9s %-20s %-20s %-8s %s\n", d->index, id, type, client, campaign, attempts, reason);
}

static void add_str_or_null(cJSON *o, const char *name, const char *v)
{
    if (v)
        cJSON_AddStringToObject(o, name, v);
    else
        cJSON_AddNullToObject(o, name);
}

static cJSON *letter_json(const dead_letter *d)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "index", (double)d->index);
    if (d->root == NULL) {
        char raw[RAW_SHOWN + 1];
        app_printable(d->raw, d->len, raw, sizeof raw);
        cJSON_AddBoolToObject(o, "unparseable", 1);
        cJSON_AddStringToObject(o, "raw", raw);
        return o;
    }
    add_str_or_null(o, "id", d->id);
    add_str_or_null(o, "type", d->type);
    add_str_or_null(o, "client", d->client);
    add_str_or_null(o, "run", d->run);
    add_str_or_null(o, "campaign", d->campaign);
    if (d->attempt >= 0)
        cJSON_AddNumberToObject(o, "attempt", d->attempt);
    else
        cJSON_AddNullToObject(o, "attempt");
    add_str_or_null(o, "last_error", d->reason);
    if (d->dead_at >= 0)
        cJSON_AddNumberToObject(o, "dead_at", d->dead_at);
    return o;
}

static cJSON *list_json(const dead_list *l)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "count", (double)l->n);
    cJSON *arr = cJSON_AddArrayToObject(root, "dead");
    for (size_t i = 0; i < l->n; i++)
        cJSON_AddItemToArray(arr, letter_json(&l->items[i]));
    return root;
}

cJSON *dead_snapshot(app *a)
{
    dead_list l;
    cJSON *root = dead_list_read(a, &l) < 0 ? NULL : list_json(&l);
    dead_list_free(&l);
    return root;
}

static int print_list(const dead_list *l, int json)
{
    if (json)
        return app_print_json(list_json(l)) < 0 ? EX_UNAVAILABLE : 0;
    printf("%-5s %-34s %-9s %-20s %-20s %-8s %s\n", "#", "JOB_ID", "TYPE", "CLIENT", "CAMPAIGN",
           "ATTEMPTS", "REASON");
    for (size_t i = 0; i < l->n; i++)
        print_letter_text(&l->items[i]);
    return 0;
}

static const app_cmd_spec list_spec = {
    "dead list [--json]",
    "Lists the dead letters, oldest last: position, job id, type, client,\n"
    "campaign, attempts and the reason (last_error). Elements that are not a\n"
    "JSON object are shown as \"unparseable\" with their first bytes.\n"
    "  --json    {\"count\":N,\"dead\":[{\"index\",\"id\",\"type\",\"client\",\"campaign\",\n"
    "            \"attempt\",\"last_error\",\"dead_at\"} or {\"index\",\"unparseable\",\"raw\"}]}\n",
    app_json_longopts, "",
};

static int dead_list_run(app *a, int json)
{
    dead_list l;
    int rc = dead_list_read(a, &l) < 0 ? app_unavailable(a) : print_list(&l, json);
    dead_list_free(&l);
    return rc;
}

static int dead_list_cmd(int argc, char **argv)
{
    return app_simple_cmd(&list_spec, argc, argv, dead_list_run);
}

/* ---- dead retry ------------------------------------------------------------- */

/* A dead letter on its way back: the parsed job, reset, and its new text. */
typedef struct retry_item {
    const dead_letter *from;
    job job;
    char *text;                    /* job_serialize of the reset job */
    int moved;                     /* script result: 1 moved, 0 gone, -1 error */
} retry_item;

typedef struct retry_state {
    app *a;
    rdsync_script script;          /* dead_retry.lua */
    retry_item *items;
    size_t n;
    char dead[KEYS_MAX_LEN], jobs[KEYS_MAX_LEN], deliveries[KEYS_MAX_LEN];
    char run_key[KEYS_MAX_LEN], active[KEYS_MAX_LEN], items_key[KEYS_MAX_LEN];
    char ttl_ms[24];
} retry_state;

/* Parses and resets one dead letter: attempt 0, no last_error. 0, or -1
 * with the reason in err (the letter stays where it is). */
static int prepare(const dead_letter *d, retry_item *it, char *err, size_t errlen)
{
    it->from = d;
    if (job_parse(d->raw, d->len, &it->job, err, errlen) < 0)
        return -1;
    it->job.attempt = 0;
    free(it->job.last_error);
    it->job.last_error = NULL;
    if ((it->text = job_serialize(&it->job)) == NULL) {
        snprintf(err, errlen, "out of memory");
        job_clear(&it->job);
        return -1;
    }
    return 0;
}

static void retry_build(void *ud, size_t i, rdsync_cmd *cmd)
{
    retry_state *st = ud;
    retry_item *it = &st->items[i];
    keys_run_key(&st->a->keys, it->job.run, st->run_key, sizeof st->run_key);
    keys_client_key(&st->a->keys, it->job.client, KEYS_CLIENT_ACTIVE_RUN, st->active, sizeof st->active);
    keys_run_items_key(&st->a->keys, it->job.run, st->items_key, sizeof st->items_key);
    rdsync_cmd_evalsha(cmd, &st->script, 6);
    rdsync_cmd_add(cmd, st->dead);
    rdsync_cmd_add(cmd, st->jobs);
    rdsync_cmd_add(cmd, st->run_key);
    rdsync_cmd_add(cmd, st->active);
    rdsync_cmd_add(cmd, st->deliveries);
    rdsync_cmd_add(cmd, st->items_key);
    rdsync_cmd_addn(cmd, it->from->raw, it->from->len);
    rdsync_cmd_add(cmd, it->text);
    rdsync_cmd_add(cmd, it->job.type == JOB_CLIENT ? "client" : "campaign");
    rdsync_cmd_add(cmd, it->job.run);
    rdsync_cmd_add(cmd, st->ttl_ms);
    rdsync_cmd_add(cmd, it->job.id);
    rdsync_cmd_add(cmd, it->job.type == JOB_CAMPAIGN ? it->job.campaign_id : "");
}

static void retry_take(void *ud, size_t i, const redisReply *r)
{
    retry_state *st = ud;
    retry_item *it = &st->items[i];
    if (r->type == REDIS_REPLY_INTEGER) {
        it->moved = r->integer == 1;
        return;
    }
    it->moved = -1;
    char id[KEYS_TOKEN_MAX + 1];
    shown(it->job.id, id, sizeof id);
    app_error("dead retry: job %s: %.160s", id, r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
}

static int selected(const dead_letter *d, const char *job_id)
{
    return job_id == NULL || (d->id && strcmp(d->id, job_id) == 0);
}

/* Prepares every selected letter; the ones that cannot be retried are
 * reported and left. Returns how many were selected (prepared or not). */
static size_t prepare_all(const dead_list *l, const char *job_id, retry_state *st)
{
    size_t matched = 0;
    for (size_t i = 0; i < l->n; i++) {
        const dead_letter *d = &l->items[i];
        if (!selected(d, job_id))
            continue;
        matched++;
        char err[JOB_ERROR_MAX], id[KEYS_TOKEN_MAX + 1];
        if (prepare(d, &st->items[st->n], err, sizeof err) == 0) {
            st->n++;
            continue;
        }
        shown(d->id, id, sizeof id);
        app_error("dead retry: #%zu (job %s) cannot be retried, left in place: %s", d->index, id, err);
    }
    return matched;
}

static void retry_free(retry_state *st)
{
    for (size_t i = 0; st->items && i < st->n; i++) {
        job_clear(&st->items[i].job);
        free(st->items[i].text);
    }
    free(st->items);
}

int dead_retry(app *a, const char *job_id, dead_retry_result *out)
{
    dead_list l;
    retry_state st = { .a = a };
    int rc = -1;
    *out = (dead_retry_result){ 0 };
    if (dead_list_read(a, &l) < 0)
        goto out;
    if ((st.items = calloc(l.n + 1, sizeof *st.items)) == NULL) {
        snprintf(a->err, sizeof a->err, "out of memory");
        goto out;
    }
    rdsync_script_init(&st.script, script_dead_retry);
    keys_global_key(&a->keys, KEYS_DEAD, st.dead, sizeof st.dead);
    keys_global_key(&a->keys, KEYS_JOBS, st.jobs, sizeof st.jobs);
    keys_global_key(&a->keys, KEYS_DELIVERIES, st.deliveries, sizeof st.deliveries);
    snprintf(st.ttl_ms, sizeof st.ttl_ms, "%lld", APP_ACTIVE_RUN_TTL_MS);
    out->matched = prepare_all(&l, job_id, &st);
    if (app_eval_pipeline(a, &st.script, st.n, retry_build, retry_take, &st) < 0)
        goto out;
    for (size_t i = 0; i < st.n; i++) {
        out->moved += st.items[i].moved == 1;
        out->failed += st.items[i].moved < 0;
    }
    rc = 0;
out:
    retry_free(&st);
    dead_list_free(&l);
    return rc;
}

/* Moves the selected letters (all when job_id is NULL) back. Exit code. */
static int retry_letters(app *a, const char *job_id)
{
    dead_retry_result r;
    if (dead_retry(a, job_id, &r) < 0)
        return app_unavailable(a);
    printf("moved %zu dead letter%s back to the jobs list\n", r.moved, r.moved == 1 ? "" : "s");
    if (job_id && r.matched == 0)
        app_error("dead retry: no dead letter with job id '%s'", job_id);
    if (r.failed)
        return EX_UNAVAILABLE;
    return job_id && r.moved == 0 ? EX_DATAERR : 0;
}

static const struct option retry_longopts[] = {
    { "all", no_argument, NULL, 'a' },
    { 0 },
};

static const app_cmd_spec retry_spec = {
    "dead retry (--all | JOB_ID)",
    "Moves dead letters back onto the jobs list with attempt reset to 0 and\n"
    "last_error removed, each atomically, and reopens their runs: a campaign\n"
    "job counts as retrying again instead of dead (a done run becomes running\n"
    "and claims active_run again); a client job's run goes back to queued.\n"
    "Letters that are not valid jobs are reported and left in place.\n"
    "  --all     every dead letter\n"
    "  JOB_ID    the dead letter(s) with this job id\n"
    "exit codes: 0 ok, 64 usage, 65 no such job id (or it cannot be retried),\n"
    "69 Redis unavailable, 78 bad configuration.\n",
    retry_longopts, "",
};

static int dead_retry_cmd(int argc, char **argv)
{
    int all = 0, first;
    int rc = app_parse_opts(&retry_spec, argc, argv, app_flag_opt, &all, &first);
    if (rc)
        return rc == APP_HELP ? 0 : rc;
    if (all == (first < argc))
        return app_usage_error(retry_spec.usage, all ? "give --all or a JOB_ID, not both"
                                                     : "missing JOB_ID (or --all)");
    if (argc - first > 1)
        return app_usage_error(retry_spec.usage, "expected one JOB_ID");
    const char *job_id = all ? NULL : argv[first];
    if (job_id && !keys_valid_token(job_id)) {
        app_error("dead retry: invalid job id (expected 1-128 of [A-Za-z0-9_.:-])");
        return EX_DATAERR;
    }
    app a;
    if ((rc = app_open(&a)) != 0)
        return rc;
    rc = retry_letters(&a, job_id);
    app_close(&a);
    return rc;
}

/* ---- dead purge ------------------------------------------------------------- */

static const app_cmd_spec purge_spec = {
    "dead purge",
    "Deletes every dead letter (LLEN and DEL in one transaction) and says how\n"
    "many there were. There is no undo.\n",
    NULL, "",
};

static int dead_purge_cmd(int argc, char **argv)
{
    int unused = 0, first;
    int rc = app_parse_opts(&purge_spec, argc, argv, app_flag_opt, &unused, &first);
    if (rc)
        return rc == APP_HELP ? 0 : rc;
    if (first < argc)
        return app_usage_error(purge_spec.usage, "unexpected argument '%s'", argv[first]);
    app a;
    if ((rc = app_open(&a)) != 0)
        return rc;
    long long n;
    if (dead_purge(&a, &n) < 0)
        rc = app_unavailable(&a);
    else
        printf("purged %lld dead letter%s\n", n, n == 1 ? "" : "s");
    app_close(&a);
    return rc;
}

int dead_purge(app *a, long long *purged)
{
    char key[KEYS_MAX_LEN];
    keys_global_key(&a->keys, KEYS_DEAD, key, sizeof key);
    rdsync_cmd cmds[2];
    rdsync_cmd_init(&cmds[0], "LLEN");
    rdsync_cmd_add(&cmds[0], key);
    rdsync_cmd_init(&cmds[1], "DEL");
    rdsync_cmd_add(&cmds[1], key);
    redisReply *r = app_multi(a, cmds, 2);
    if (r == NULL)
        return -1;
    *purged = app_reply_ll(r->element[0]);
    freeReplyObject(r);
    return 0;
}

/* ---- the group ------------------------------------------------------------- */

static const app_subcmd dead_cmds[] = {
    { "list", dead_list_cmd },
    { "retry", dead_retry_cmd },
    { "purge", dead_purge_cmd },
};

int cli_dead(int argc, char **argv)
{
    static const app_group group = {
        "dead (list | retry | purge) ...",
        "  dead list [--json]            show the dead letters\n"
        "  dead retry (--all | JOB_ID)   put them back onto the jobs list\n"
        "  dead purge                    delete them all\n"
        "\"adsync-enqueue dead COMMAND --help\" explains each.\n",
        dead_cmds, sizeof dead_cmds / sizeof dead_cmds[0],
    };
    return app_dispatch(&group, argc, argv);
}
