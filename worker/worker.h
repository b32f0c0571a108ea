/* worker: one adsync-worker process (DESIGN.md §5, §6) — what main.c and
 * the metrics endpoint it opens need of it; the parts inside are described
 * in ctx.h. */
#ifndef ADSYNC_WORKER_H
#define ADSYNC_WORKER_H

#include <stdint.h>
#include <uv.h>

#include "cfg.h"
#include "ctx.h"
#include "seal.h"

typedef struct worker worker;

/* An empty worker, to be set up by wk_init (NULL on OOM); wk_free after
 * the loop has ended. */
worker *wk_new(void);
void wk_free(worker *w);
/* loop is borrowed; seal is borrowed and must outlive the worker (an empty
 * ring: no sealing); c is copied. 0, or -1 when out of memory. */
int wk_init(worker *w, uv_loop_t *loop, const cfg *c, const seal_keyring *seal, const char *id, int drain);
/* Signals, timers, and popping once Redis answers. The loop ends when the
 * worker has stopped. */
void wk_start(worker *w);
int wk_exit_code(const worker *w);

/* For /metrics and /healthz. */
const wctx *wk_ctx(const worker *w);
unsigned wk_inflight(const worker *w);
int wk_pop_connected(const worker *w);
uint64_t wk_started_at(const worker *w);

/* ---- metrics.c: /metrics and /healthz on ADSYNC_METRICS_ADDR -------------- */
typedef struct wm_endpoint wm_endpoint;

/* Binds addr before the loop runs (NULL with err filled when it cannot: the
 * caller exits 78). w is borrowed and read only from callbacks, so it may be
 * set up after this call. The endpoint never keeps uv_run going: once the
 * worker has stopped, call wm_close and run the loop once more. */
wm_endpoint *wm_open(uv_loop_t *loop, const worker *w, const cfg_hostport *addr, char *err, size_t errlen);
void wm_close(wm_endpoint *m);   /* NULL is a no-op */

#endif
