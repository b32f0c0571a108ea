/* metrics: a tiny HTTP/1.1 endpoint on a libuv loop for /metrics and
 * /healthz, and a text builder for the Prometheus exposition format.
 *
 * The server binds synchronously (so a bad address or a port in use is a
 * start-up error, not a later log line), then serves one request per
 * connection without ever blocking the loop: read until the end of the
 * headers (capped), route GET/HEAD by path through the owner's handler,
 * write the reply with Content-Length and "Connection: close", close. Slow
 * or garbage clients hit a deadline, a size cap or a connection cap; no
 * threads, no keep-alive, no request bodies. It does not know what a metric
 * is: the handler fills the body, usually with the mx_ builder below.
 *
 * Single-threaded; every callback runs on the loop. */
#ifndef ADSYNC_METRICS_H
#define ADSYNC_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cfg.h"

/* ---- growable text buffer ------------------------------------------------ */

/* Zero-initialise (or mx_buf_init). Appends never fail loudly: after an
 * allocation failure `failed` is set and further appends do nothing. */
typedef struct mx_buf {
    char *data;        /* NUL-terminated when len > 0; owned, mx_buf_free */
    size_t len, cap;
    int failed;
} mx_buf;

void mx_buf_init(mx_buf *b);
void mx_buf_free(mx_buf *b);
void mx_buf_append(mx_buf *b, const char *s, size_t n);
void mx_buf_puts(mx_buf *b, const char *s);
void mx_buf_printf(mx_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- Prometheus text exposition (version 0.0.4) -------------------------- */

#define MX_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef enum { MX_COUNTER, MX_GAUGE, MX_HISTOGRAM } mx_type;

/* One label; values are escaped as the format requires. */
typedef struct mx_label {
    const char *name;
    const char *value;
} mx_label;

/* "# HELP name help" and "# TYPE name type": once per family, before its
 * samples. name and help are borrowed. */
void mx_family(mx_buf *b, const char *name, mx_type type, const char *help);
/* One sample line: name{labels} value. nlabels may be 0 (labels NULL). */
void mx_sample_u64(mx_buf *b, const char *name, const mx_label *labels, size_t nlabels, uint64_t v);
void mx_sample(mx_buf *b, const char *name, const mx_label *labels, size_t nlabels, double v);
/* The samples of one histogram: name_bucket{…,le="…"} (cumulative, then
 * +Inf), name_sum and name_count. bounds: nbounds ascending upper bounds;
 * counts: nbounds + 1 per-bucket (not cumulative) counts, the last one for
 * values above every bound. The family line comes from mx_family. */
void mx_histogram(mx_buf *b, const char *name, const mx_label *labels, size_t nlabels,
                  const double *bounds, size_t nbounds, const uint64_t *counts, double sum);

/* ---- the server ---------------------------------------------------------- */

typedef struct mx_server mx_server;

/* What a handler answers. status defaults to 404 and content_type to
 * text/plain; body starts empty and is freed by the server. */
typedef struct mx_reply {
    int status;
    const char *content_type;   /* borrowed: a string literal */
    mx_buf body;
} mx_reply;

/* Called for every GET or HEAD (path without the query string, e.g.
 * "/metrics"); the server answers 400, 405 and 431 itself. Must not block. */
typedef void mx_handler_fn(void *ud, const char *path, mx_reply *reply);

#define MX_ERR_LEN 256

/* Resolves host (numeric, [IPv6] or a name: getaddrinfo, so call it before
 * the loop has work), binds and listens; port 0 picks a free port (see
 * mx_port). Returns the server, or NULL with err filled ("address already
 * in use", "cannot resolve host", ...). loop and ud are borrowed and must
 * outlive the server. */
mx_server *mx_listen(uv_loop_t *loop, const cfg_hostport *addr, mx_handler_fn *handler, void *ud,
                     char *err, size_t errlen);

int mx_port(const mx_server *s);   /* the bound port */

/* From now on the server and its connections do not keep uv_run going: the
 * owner stops its loop as if the server were not there, then calls
 * mx_close and runs the loop once more to finish closing. */
void mx_unref(mx_server *s);

/* Stops listening and drops every connection; memory is freed once libuv
 * has closed the handles (a later loop turn). NULL is a no-op. */
void mx_close(mx_server *s);

#endif
