/* webdata: views and one action of the web console that the CLI has no
 * command for (webdata.c). JSON results are the caller's to cJSON_Delete;
 * NULL / -1 mean Redis is unavailable (a->err says why). */
#ifndef ADSYNC_ENQUEUE_WEBDATA_H
#define ADSYNC_ENQUEUE_WEBDATA_H

#include <stddef.h>

#include "app.h"

/* {"total","offset","limit","clients":[status --json's client objects]}:
 * the clients whose id contains query (all when NULL or ""), one page. */
cJSON *web_clients(app *a, const char *query, size_t offset, size_t limit);

/* {"minutes":[{"minute","synced","retried","dead"}]}: the last hour, oldest
 * first, from <prefix>:stats:minute:<m> (the workers' per-minute counters). */
cJSON *web_activity(app *a);

/* {"retry":[{"id","type","client","run","campaign","attempt","last_error",
 * "due_at"}]}: the next 1000 due entries of the retry queue. */
cJSON *web_retry(app *a);

/* Makes the retry entry with job_id (every listed one when NULL) due now;
 * *moved counts them. 0 or -1. */
int web_retry_now(app *a, const char *job_id, size_t *moved);

/* {"run","fields":{...the run hash},"campaigns":[{"id","state","error":
 * {"last_error","attempt","where"}?}]}; JSON null for an invalid run id. */
cJSON *web_run(app *a, const char *run);

#endif
