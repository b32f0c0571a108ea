/* progress: the C side of common/lua/progress.lua's layout — the order of
 * its KEYS, the names of its ARGV pairs and its campaign outcomes — in one
 * place, so flow.c builds calls from names instead of positions and strings
 * typed twice. unit_worker_progress reads the script and fails when the
 * script and these tables disagree (a key added on one side only, a pair
 * the script reads that C never sends). */
#ifndef ADSYNC_WORKER_PROGRESS_H
#define ADSYNC_WORKER_PROGRESS_H

/* KEYS, in the script's order. */
typedef enum pr_key {
    PR_RUN,          /* run hash */
    PR_ITEMS,        /* run items hash */
    PR_CAMPAIGNS,    /* client campaigns hash */
    PR_STATS,        /* stats hash */
    PR_RETRY,        /* retry zset */
    PR_DEAD,         /* dead list */
    PR_PROCESSING,   /* processing list */
    PR_DELIVERIES,   /* deliveries hash */
    PR_ACTIVE_RUN,   /* client active_run */
    PR_OUTBOX,       /* outbox list */
    PR_LAST_RUN,     /* client last_run */
    PR_KEYS
} pr_key;

/* How the script's header names each key ("run hash", ...). */
extern const char *const pr_key_names[PR_KEYS];

/* The ARGV pair names the script reads (a.<name>). */
typedef enum pr_arg {
    PR_NOW, PR_RUN_ID, PR_RETENTION, PR_DEAD_CAP, PR_CURSOR, PR_LISTING_DONE, PR_CAMPAIGN,
    PR_OUTCOME, PR_STORED, PR_JOB, PR_DUE, PR_ELEM, PR_JOB_ID, PR_DISPOSITION, PR_OUTBOX_ON,
    PR_CLIENT, PR_ARGS
} pr_arg;
extern const char *const pr_arg_names[PR_ARGS];

/* One campaign's outcome, as the script compares a.outcome. */
typedef enum pr_outcome { PR_SYNCED, PR_RETRIED, PR_DEAD_LETTERED, PR_OUTCOMES } pr_outcome;
extern const char *const pr_outcome_names[PR_OUTCOMES];

#endif
