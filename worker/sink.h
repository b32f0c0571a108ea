/* sink: the worker's optional PostgreSQL sink (DESIGN.md §10; see sink.c):
 * drains <prefix>:outbox into table campaigns on the worker's loop, with
 * connections of its own. The process starts it after registration (when
 * cfg.pg_url is set) and stops it in the second stage of its shutdown.
 * Every call takes a NULL sink as "no sink". */
#ifndef ADSYNC_WORKER_SINK_H
#define ADSYNC_WORKER_SINK_H

#include "ctx.h"
#include "sinkwriter.h"

typedef struct sink sink;

/* Connects the writer and Redis and drains the outbox through the writer
 * (sinkwriter.h: sink_pg_writer for PostgreSQL). x and writer are borrowed
 * and must outlive the sink. NULL when out of memory. */
sink *sink_start(wctx *x, const sink_writer_ops *writer);
/* Shutdown: claim no more batches; the one in progress may still finish. */
void sink_stop(sink *s);
/* A batch is on its way and can make progress (PostgreSQL connected). */
int sink_busy(const sink *s);
/* --drain: nothing of ours is left to deliver, or PostgreSQL is unusable
 * (then what is left stays in the outbox for later). */
int sink_idle(const sink *s);
/* A job was popped: its results may reach the outbox, so the sink is not
 * idle until a later claim finds the outbox empty. */
void sink_touch(sink *s);
/* Drops the connections; an unacknowledged batch stays in the claim list.
 * The memory goes once libuv closed the timer. */
void sink_free(sink *s);

#endif
