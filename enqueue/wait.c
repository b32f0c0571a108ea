/* wait: "sync --wait": follows run hashes until every run is done or failed
 * (see sync.h).
 *
 * Every WAIT_POLL_MS one pipelined round trip reads state and counters of
 * the runs still going. Progress is a redrawn bar on a terminal, one line
 * per changed run otherwise. If Redis goes away, a few reconnects are tried
 * over about 2 s before giving up with EX_UNAVAILABLE: waiting must never
 * hang a scheduler. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "sync.h"

#define WAIT_RECONNECT_TRIES 4
#define WAIT_RECONNECT_PAUSE_MS 500
#define WAIT_BAR_WIDTH 30


typedef struct poll_state {
    app *a;
    wait_run **live;               /* runs not finished yet */
    uint64_t now_ms;               /* monotonic */
    char key[KEYS_MAX_LEN];
} poll_state;

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* ---- polling ------------------------------------------------------------- */

static void poll_build(void *ud, size_t i, rdsync_cmd *cmd)
{
    poll_state *st = ud;
    app_cmd_run_fields(st->a, cmd, st->live[i]->run, st->key);
}

static int is_final_state(const char *state)
{
    return strcmp(state, "done") == 0 || strcmp(state, "failed") == 0 || strcmp(state, "missing") == 0;
}

static void poll_take(void *ud, size_t i, const redisReply *r)
{
    poll_state *st = ud;
    wait_run *w = st->live[i];
    const char *state = app_reply_elem_str(r, RUN_STATE);
    wait_run before = *w;
    snprintf(w->state, sizeof w->state, "%s", state ? state : "missing");
    w->listed = app_run_field_ll(r, RUN_LISTED);
    w->synced = app_run_field_ll(r, RUN_SYNCED);
    w->retrying = app_run_field_ll(r, RUN_RETRYING);
    w->dead = app_run_field_ll(r, RUN_DEAD);
    if (!w->seen) {
        w->seen = 1;
        w->first_synced = w->synced;
        w->first_ms = st->now_ms;
        w->changed = 1;
    } else {
        w->changed = strcmp(before.state, w->state) != 0 || before.listed != w->listed ||
                     before.synced != w->synced || before.retrying != w->retrying ||
                     before.dead != w->dead;
    }
    w->finished = is_final_state(w->state);
}

/* One round trip over the live runs; on a lost connection, reconnects a few
 * times. 0, or -1 when Redis stayed away (a->err). */
static int poll_runs(app *a, wait_run **live, size_t n)
{
    poll_state st = { .a = a, .live = live };
    for (int attempt = 0;; attempt++) {
        st.now_ms = clock_mono_ms();
        if (a->rc && app_pipeline(a, n, poll_build, poll_take, &st) == 0)
            return 0;
        if (attempt >= WAIT_RECONNECT_TRIES)
            return -1;
        sleep_ms(WAIT_RECONNECT_PAUSE_MS);
        app_reconnect(a);          /* on failure a->rc is NULL and a->err says why */
    }
}

/* ---- progress ------------------------------------------------------------- */

typedef struct totals {
    long long listed, synced, retrying, dead, first_synced;
    size_t finished, done_clean;
} totals;

static totals sum_runs(const wait_run *runs, size_t n)
{
    totals t = { 0 };
    for (size_t i = 0; i < n; i++) {
        t.listed += runs[i].listed;
        t.synced += runs[i].synced;
        t.retrying += runs[i].retrying;
        t.dead += runs[i].dead;
        t.first_synced += runs[i].first_synced;
        t.finished += runs[i].finished != 0;
        t.done_clean += strcmp(runs[i].state, "done") == 0 && runs[i].dead == 0;
    }
    return t;
}

static double rate_per_s(long long synced_delta, uint64_t elapsed_ms)
{
    return elapsed_ms ? (double)synced_delta * 1000.0 / (double)elapsed_ms : 0.0;
}

static void draw_bar(const wait_run *runs, size_t n, uint64_t elapsed_ms)
{
    totals t = sum_runs(runs, n);
    long long ended = t.synced + t.dead;
    size_t filled = t.listed > 0 ? (size_t)(WAIT_BAR_WIDTH * (ended > t.listed ? t.listed : ended) / t.listed) : 0;
    char bar[WAIT_BAR_WIDTH + 1];
    for (size_t i = 0; i < WAIT_BAR_WIDTH; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[WAIT_BAR_WIDTH] = '\0';
    printf("\r[%s] %lld/%lld synced  %lld retrying  %lld dead  %.1f/s  %zu/%zu runs done\033[K",
           bar, t.synced, t.listed, t.retrying, t.dead,
           rate_per_s(t.synced - t.first_synced, elapsed_ms), t.finished, n);
    fflush(stdout);
}

static void print_changes(const wait_run *runs, size_t n, uint64_t now_ms)
{
    for (size_t i = 0; i < n; i++) {
        const wait_run *w = &runs[i];
        if (!w->changed)
            continue;
        printf("%s run %s: %s  %lld/%lld synced  %lld retrying  %lld dead  %.1f/s\n", w->client, w->run,
               w->state, w->synced, w->listed, w->retrying, w->dead,
               rate_per_s(w->synced - w->first_synced, now_ms - w->first_ms));
    }
    fflush(stdout);
}

static void print_summary(const wait_run *runs, size_t n, uint64_t elapsed_ms)
{
    totals t = sum_runs(runs, n);
    printf("finished: %zu runs, %zu clean, %lld/%lld synced, %lld dead, %.1f s\n", n, t.done_clean,
           t.synced, t.listed, t.dead, (double)elapsed_ms / 1000.0);
    fflush(stdout);
}

/* ---- the loop ------------------------------------------------------------- */

int wait_follow(app *a, wait_run *runs, size_t n, wait_mode mode)
{
    wait_run **live = malloc((n ? n : 1) * sizeof *live);
    if (live == NULL) {
        app_error("out of memory");
        return EX_UNAVAILABLE;
    }
    uint64_t start = clock_mono_ms();
    int rc = 0;
    for (;;) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            runs[i].changed = 0;
            if (!runs[i].finished)
                live[m++] = &runs[i];
        }
        if (m == 0)
            break;
        if (poll_runs(a, live, m) < 0) {
            if (mode == WAIT_BAR)
                putchar('\n');
            rc = app_unavailable(a);
            break;
        }
        uint64_t now = clock_mono_ms();
        if (mode == WAIT_BAR)
            draw_bar(runs, n, now - start);
        else if (mode == WAIT_LINES)
            print_changes(runs, n, now);
        if (sum_runs(runs, n).finished < n)
            sleep_ms(WAIT_POLL_MS);
    }
    free(live);
    if (rc != 0)
        return rc;
    if (mode == WAIT_BAR)
        putchar('\n');
    if (mode != WAIT_QUIET)
        print_summary(runs, n, clock_mono_ms() - start);
    return sum_runs(runs, n).done_clean == n ? 0 : APP_EXIT_DEAD;
}
