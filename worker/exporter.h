/* exporter: /metrics and /healthz of one worker on ADSYNC_METRICS_ADDR
 * (DESIGN.md §9; see exporter.c). It knows the worker only through a view
 * function that main.c wires to the worker (wk_view), so it sits beside the
 * process module, not on top of it. */
#ifndef ADSYNC_WORKER_EXPORTER_H
#define ADSYNC_WORKER_EXPORTER_H

#include <stdint.h>
#include <uv.h>

#include "cfg.h"
#include "ctx.h"

typedef struct wm_endpoint wm_endpoint;

/* What a scrape or a queue sample reads of the worker, at that moment. */
typedef struct wm_view {
    const wctx *x;           /* counters, jobs held, store, phase, Redis, keys */
    unsigned inflight;       /* requests and rate checks in flight */
    int pop_connected;
    uint64_t started_at;     /* wall ms */
} wm_view;

typedef void wm_view_fn(const void *source, wm_view *out);

/* Binds addr before the loop runs (NULL with err filled when it cannot: the
 * caller exits 78). view(source) is called only from callbacks, so source
 * may be set up after this call. The endpoint never keeps uv_run going:
 * once the worker has stopped, call wm_close and run the loop once more. */
wm_endpoint *wm_open(uv_loop_t *loop, wm_view_fn *view, const void *source, const cfg_hostport *addr, char *err,
                     size_t errlen);
void wm_close(wm_endpoint *m);   /* NULL is a no-op */

#endif
