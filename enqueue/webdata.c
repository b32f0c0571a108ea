/* webdata: the web console's views that the CLI has no command for — the
 * clients page (searched and paged), per-minute activity, one run's
 * campaigns, the retry queue — and the "retry now" action. Everything else
 * the console shows comes from ops.h, the same code as the CLI.
 * Never reads a password or a token: only the keys named below. */
#include "webdata.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "job.h"
#include "ops.h"

#define ACTIVITY_MINUTES 60
#define RETRY_SHOWN 1000          /* the retry page lists the next 1000 due */

/* ---- clients ------------------------------------------------------------------ */

cJSON *web_clients(app *a, const char *query, size_t offset, size_t limit)
{
    cJSON *status = status_snapshot(a);
    if (status == NULL)
        return NULL;
    cJSON *all = cJSON_DetachItemFromObjectCaseSensitive(status, "clients");
    cJSON_Delete(status);
    cJSON *page = cJSON_CreateArray();
    size_t matched = 0;
    for (cJSON *c = all ? all->child : NULL, *next; c; c = next) {
        next = c->next;
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(c, "id");
        if (query && *query && !(cJSON_IsString(id) && strstr(id->valuestring, query)))
            continue;
        if (matched++ >= offset && cJSON_GetArraySize(page) < (int)limit)
            cJSON_AddItemToArray(page, cJSON_Duplicate(c, 1));
    }
    cJSON_Delete(all);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "total", (double)matched);
    cJSON_AddNumberToObject(root, "offset", (double)offset);
    cJSON_AddNumberToObject(root, "limit", (double)limit);
    cJSON_AddItemToObject(root, "clients", page);
    return root;
}

/* ---- activity ----------------------------------------------------------------- */

cJSON *web_activity(app *a)
{
    char stats[KEYS_MAX_LEN], keybuf[ACTIVITY_MINUTES][KEYS_MAX_LEN + 32];
    rdsync_cmd cmds[ACTIVITY_MINUTES];
    redisReply *out[ACTIVITY_MINUTES];
    unsigned long long now_min = clock_wall_ms() / 60000;
    keys_global_key(&a->keys, KEYS_STATS, stats, sizeof stats);
    for (size_t i = 0; i < ACTIVITY_MINUTES; i++) {
        snprintf(keybuf[i], sizeof keybuf[i], "%s:minute:%llu", stats, now_min - (ACTIVITY_MINUTES - 1) + i);
        rdsync_cmd_init(&cmds[i], "HMGET");
        rdsync_cmd_add(&cmds[i], keybuf[i]);
        rdsync_cmd_add(&cmds[i], "synced");
        rdsync_cmd_add(&cmds[i], "retried");
        rdsync_cmd_add(&cmds[i], "dead");
    }
    if (app_run_all(a, cmds, ACTIVITY_MINUTES, out) < 0)
        return NULL;
    cJSON *root = cJSON_CreateObject();
    cJSON *minutes = cJSON_AddArrayToObject(root, "minutes");
    for (size_t i = 0; i < ACTIVITY_MINUTES; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddNumberToObject(m, "minute", (double)(now_min - (ACTIVITY_MINUTES - 1) + i));
        static const char *const names[] = { "synced", "retried", "dead" };
        for (size_t f = 0; f < 3; f++) {
            const char *v = app_reply_elem_str(out[i], f);
            cJSON_AddNumberToObject(m, names[f], v ? strtod(v, NULL) : 0);
        }
        cJSON_AddItemToArray(minutes, m);
    }
    rdsync_free_n(out, ACTIVITY_MINUTES);
    return root;
}

/* ---- the retry queue ---------------------------------------------------------- */

/* One retry or dead entry as the console shows it; NULL if not a job. */
static cJSON *job_view(const char *text, size_t len)
{
    job j;
    char err[128];
    if (job_parse(text, len, &j, err, sizeof err) < 0)
        return NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j.id);
    cJSON_AddStringToObject(o, "type", j.type == JOB_CAMPAIGN ? "campaign" : "client");
    cJSON_AddStringToObject(o, "client", j.client);
    cJSON_AddStringToObject(o, "run", j.run);
    if (j.type == JOB_CAMPAIGN)
        cJSON_AddStringToObject(o, "campaign", j.campaign_id);
    cJSON_AddNumberToObject(o, "attempt", j.attempt);
    cJSON_AddStringToObject(o, "last_error", j.last_error ? j.last_error : "");
    job_clear(&j);
    return o;
}

/* ZRANGE retry 0 N-1 WITHSCORES; NULL when Redis is unavailable. */
static redisReply *retry_entries(app *a, long long n)
{
    char key[KEYS_MAX_LEN];
    keys_global_key(&a->keys, KEYS_RETRY, key, sizeof key);
    rdsync_cmd cmd;
    rdsync_cmd_init(&cmd, "ZRANGE");
    rdsync_cmd_add(&cmd, key);
    rdsync_cmd_add(&cmd, "0");
    rdsync_cmd_addll(&cmd, n - 1);
    rdsync_cmd_add(&cmd, "WITHSCORES");
    return app_run(a, &cmd);
}

cJSON *web_retry(app *a)
{
    redisReply *r = retry_entries(a, RETRY_SHOWN);
    if (r == NULL)
        return NULL;
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(root, "retry");
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        cJSON *o = job_view(r->element[i]->str, r->element[i]->len);
        if (o == NULL)
            continue;
        cJSON_AddNumberToObject(o, "due_at", (double)app_reply_ll(r->element[i + 1]));
        cJSON_AddItemToArray(arr, o);
    }
    freeReplyObject(r);
    return root;
}

int web_retry_now(app *a, const char *job_id, size_t *moved)
{
    redisReply *r = retry_entries(a, RETRY_SHOWN);
    if (r == NULL)
        return -1;
    char key[KEYS_MAX_LEN];
    keys_global_key(&a->keys, KEYS_RETRY, key, sizeof key);
    *moved = 0;
    int rc = 0;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements && rc == 0; i += 2) {
        const redisReply *e = r->element[i];
        job j;
        char err[128];
        if (job_parse(e->str, e->len, &j, err, sizeof err) < 0)
            continue;
        int wanted = job_id == NULL || strcmp(j.id, job_id) == 0;
        job_clear(&j);
        if (!wanted)
            continue;
        /* Due now: the workers' promotion moves it to the jobs list. XX: a
         * worker that promoted it meanwhile wins, nothing is re-added. */
        rdsync_cmd cmd;
        rdsync_cmd_init(&cmd, "ZADD");
        rdsync_cmd_add(&cmd, key);
        rdsync_cmd_add(&cmd, "XX");
        rdsync_cmd_add(&cmd, "CH");
        rdsync_cmd_addll(&cmd, (long long)clock_wall_ms());
        rdsync_cmd_addn(&cmd, e->str, e->len);
        redisReply *z = app_run(a, &cmd);
        if (z == NULL) {
            rc = -1;
            break;
        }
        *moved += app_reply_ll(z) > 0;
        freeReplyObject(z);
    }
    freeReplyObject(r);
    return rc;
}

/* ---- one run -------------------------------------------------------------------- */

/* Adds {campaign: {last_error, attempt, where}} for the run's jobs in a list
 * of job views (the dead letters' or the retry queue's). */
static void index_errors(cJSON *errors, const cJSON *views, const char *run, const char *where)
{
    const cJSON *v;
    cJSON_ArrayForEach(v, views) {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(v, "run");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "campaign");
        if (!cJSON_IsString(r) || strcmp(r->valuestring, run) != 0 || !cJSON_IsString(c))
            continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddItemToObject(e, "last_error",
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(v, "last_error"), 1));
        cJSON_AddItemToObject(e, "attempt", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(v, "attempt"), 1));
        cJSON_AddStringToObject(e, "where", where);
        cJSON_DeleteItemFromObjectCaseSensitive(errors, c->valuestring);
        cJSON_AddItemToObject(errors, c->valuestring, e);
    }
}

cJSON *web_run(app *a, const char *run)
{
    if (!keys_valid_segment(run))
        return cJSON_CreateNull();
    char run_key[KEYS_MAX_LEN], items_key[KEYS_MAX_LEN];
    keys_run_key(&a->keys, run, run_key, sizeof run_key);
    keys_run_items_key(&a->keys, run, items_key, sizeof items_key);
    rdsync_cmd cmds[2];
    redisReply *out[2];
    rdsync_cmd_init(&cmds[0], "HGETALL");
    rdsync_cmd_add(&cmds[0], run_key);
    rdsync_cmd_init(&cmds[1], "HGETALL");
    rdsync_cmd_add(&cmds[1], items_key);
    if (app_run_all(a, cmds, 2, out) < 0)
        return NULL;
    cJSON *dead = dead_snapshot(a), *retry = dead ? web_retry(a) : NULL;
    if (retry == NULL) {
        cJSON_Delete(dead);
        rdsync_free_n(out, 2);
        return NULL;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "run", run);
    cJSON *fields = cJSON_AddObjectToObject(root, "fields");
    for (size_t i = 0; out[0]->type == REDIS_REPLY_ARRAY && i + 1 < out[0]->elements; i += 2)
        cJSON_AddStringToObject(fields, out[0]->element[i]->str, out[0]->element[i + 1]->str);
    cJSON *errors = cJSON_CreateObject();
    index_errors(errors, cJSON_GetObjectItemCaseSensitive(dead, "dead"), run, "dead");
    index_errors(errors, cJSON_GetObjectItemCaseSensitive(retry, "retry"), run, "retry");
    cJSON *campaigns = cJSON_AddArrayToObject(root, "campaigns");
    for (size_t i = 0; out[1]->type == REDIS_REPLY_ARRAY && i + 1 < out[1]->elements; i += 2) {
        const char *id = out[1]->element[i]->str;
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "id", id);
        cJSON_AddStringToObject(c, "state", out[1]->element[i + 1]->str);
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(errors, id);
        if (e)
            cJSON_AddItemToObject(c, "error", cJSON_Duplicate(e, 1));
        cJSON_AddItemToArray(campaigns, c);
    }
    cJSON_Delete(errors);
    cJSON_Delete(dead);
    cJSON_Delete(retry);
    rdsync_free_n(out, 2);
    return root;
}
