/* sync: "adsync-enqueue sync": queue one run per client (sync.c) and, with
 * --wait, follow the runs until they end (wait.c). This header is the
 * interface between the two. */
#ifndef ADSYNC_ENQUEUE_SYNC_H
#define ADSYNC_ENQUEUE_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "app.h"

/* One run followed by --wait, as read from its <p>:run:<id> hash. */
typedef struct wait_run {
    const char *client;            /* borrowed */
    const char *run;               /* borrowed */
    char state[16];                /* queued, running, done, failed; "missing" if the hash is gone */
    long long listed, synced, retrying, dead;
    int finished;                  /* done, failed or missing: no longer polled */
    int changed;                   /* counters or state changed in the last poll */
    int seen;                      /* polled at least once */
    long long first_synced;        /* synced when first seen, and when: for the rate */
    uint64_t first_ms;
} wait_run;

typedef enum {
    WAIT_BAR,                      /* stdout is a terminal: one redrawn progress line */
    WAIT_LINES,                    /* otherwise: one line per run whenever it changes */
    WAIT_QUIET,                    /* --json: no progress, the caller prints the result */
} wait_mode;

/* Polls runs[0..n) every WAIT_POLL_MS (one pipelined round trip) until every
 * run is done or failed, showing progress as mode says. Returns 0 when every
 * run is done with no dead campaign, APP_EXIT_DEAD when some campaign ended
 * dead or a run failed or vanished, EX_UNAVAILABLE when Redis went away and
 * a short reconnect attempt failed (the line is printed). */
#define WAIT_POLL_MS 250
int wait_follow(app *a, wait_run *runs, size_t n, wait_mode mode);

#endif
