/* progress: the name tables of progress.h. */
#include "progress.h"

const char *const pr_key_names[PR_KEYS] = {
    [PR_RUN] = "run hash",
    [PR_ITEMS] = "run items hash",
    [PR_CAMPAIGNS] = "client campaigns hash",
    [PR_STATS] = "stats hash",
    [PR_RETRY] = "retry zset",
    [PR_DEAD] = "dead list",
    [PR_PROCESSING] = "processing list",
    [PR_DELIVERIES] = "deliveries hash",
    [PR_ACTIVE_RUN] = "client active_run",
    [PR_OUTBOX] = "outbox list",
    [PR_LAST_RUN] = "client last_run",
};

const char *const pr_arg_names[PR_ARGS] = {
    [PR_NOW] = "now",           [PR_RUN_ID] = "run",        [PR_RETENTION] = "retention",
    [PR_DEAD_CAP] = "dead_cap", [PR_CURSOR] = "cursor",     [PR_LISTING_DONE] = "listing_done",
    [PR_CAMPAIGN] = "campaign", [PR_OUTCOME] = "outcome",   [PR_STORED] = "stored",
    [PR_JOB] = "job",           [PR_DUE] = "due",           [PR_ELEM] = "elem",
    [PR_JOB_ID] = "job_id",     [PR_DISPOSITION] = "disposition",
    [PR_OUTBOX_ON] = "outbox",  [PR_CLIENT] = "client",
};

const char *const pr_outcome_names[PR_OUTCOMES] = {
    [PR_SYNCED] = "synced", [PR_RETRIED] = "retry", [PR_DEAD_LETTERED] = "dead",
};
