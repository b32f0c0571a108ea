/* worker: one adsync-worker process (DESIGN.md §5, §6) — what main.c needs
 * of it; the parts inside are described in ctx.h. */
#ifndef ADSYNC_WORKER_H
#define ADSYNC_WORKER_H

#include <stdint.h>
#include <uv.h>

#include "cfg.h"
#include "ctx.h"
#include "exporter.h"
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

/* The metrics endpoint's view of the worker (exporter.h): main.c passes
 * it to wm_open with the worker as its source. */
void wk_view(const void *w, wm_view *out);

#endif
