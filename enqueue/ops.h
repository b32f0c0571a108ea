/* ops: the reads and actions behind "status", "dead" and "sync" that the
 * web console (web.c) serves too, so both show and do exactly the same.
 * Each returns -1 when Redis is unavailable (a->err says why); JSON results
 * are the caller's to cJSON_Delete, in the shapes of the CLI's --json. */
#ifndef ADSYNC_ENQUEUE_OPS_H
#define ADSYNC_ENQUEUE_OPS_H

#include <stddef.h>

#include "app.h"

/* status --json (status.c), or NULL. */
cJSON *status_snapshot(app *a);

/* dead list --json (dead.c), or NULL. */
cJSON *dead_snapshot(app *a);

typedef struct dead_retry_result {
    size_t matched;                /* letters selected */
    size_t moved;                  /* moved back to the jobs list */
    size_t failed;                 /* refused by Redis */
} dead_retry_result;

/* dead retry JOB_ID, or --all when job_id is NULL (dead.c). Letters that
 * are not valid jobs are reported on stderr and left. 0 or -1. */
int dead_retry(app *a, const char *job_id, dead_retry_result *out);

/* dead purge (dead.c): how many there were in *purged. 0 or -1. */
int dead_purge(app *a, long long *purged);

/* sync CLIENT [--force] (sync.c): state is queued, skipped, unknown,
 * invalid or error; run the new (or the active) run id. 0 or -1. */
int sync_one(app *a, const char *client, int force, char *state, size_t statelen, char *run, size_t runlen);

#endif
