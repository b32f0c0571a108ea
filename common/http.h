/* http: HTTP requests on a libuv loop through one libcurl multi handle
 * (CURLMOPT_SOCKETFUNCTION/TIMERFUNCTION → uv_poll/uv_timer, the shape of
 * curl's docs/examples/multi-uv.c).
 *
 * Built for many small keep-alive requests to one host: easy handles and
 * request objects (with their response buffers) are pooled and reused, the
 * connection cache is sized to the concurrency, a socket's poll handle is
 * only re-armed when the events curl wants change. Every request has a
 * connect timeout, a total timeout and a body-size cap, so a hung server is a
 * timeout, never a stall.
 *
 * Completion contract: http_submit returns 0 and the done callback then runs
 * exactly once, on a later loop turn, with the outcome (transport error or
 * HTTP status); or it returns -1 and the callback never runs.
 * Never logs; verbose mode is never enabled (it would print Authorization). */
#ifndef ADSYNC_HTTP_H
#define ADSYNC_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct http_client http_client;
typedef struct http_headers http_headers;

typedef struct http_options {
    long connect_timeout_ms;
    long timeout_ms;               /* total, including time queued for a connection */
    size_t max_body_bytes;         /* larger responses fail with HTTP_ERR_TOO_LARGE */
    size_t body_budget_bytes;      /* what the responses of budgeted requests in flight,
                                      plus *budget_held, may take together; a budgeted
                                      response that would go over fails with
                                      HTTP_ERR_BUDGET. 0: no budget */
    const uint64_t *budget_held;   /* bytes the caller keeps from earlier responses
                                      (borrowed; may be NULL) */
    long max_connections;          /* connection cache and total cap; >= concurrency */
} http_options;

typedef enum {
    HTTP_OK = 0,          /* a response arrived: look at status */
    HTTP_ERR_TIMEOUT,     /* connect or total timeout (a hung request) */
    HTTP_ERR_CONNECT,     /* refused, unreachable, DNS */
    HTTP_ERR_CLOSED,      /* connection closed / reset / empty reply mid-request */
    HTTP_ERR_TOO_LARGE,   /* body over max_body_bytes */
    HTTP_ERR_BUDGET,      /* a budgeted body did not fit the body budget (try later) */
    HTTP_ERR_ABORTED,     /* http_client_free while in flight */
    HTTP_ERR_OTHER,
} http_error;

typedef struct http_result {
    http_error error;
    long status;                   /* HTTP status when error == HTTP_OK, else 0 */
    const char *body;              /* borrowed for the callback; NUL-terminated; "" if none */
    size_t body_len;
    long retry_after_s;            /* Retry-After header in seconds; 0 if absent */
    uint64_t duration_ms;
    uint64_t wait_us;              /* submit -> request about to be written (connection
                                      wait, connect); 0 if it was never written */
    uint64_t server_us;            /* request written -> first byte of the answer; 0 if none */
    const char *detail;            /* short text for logs ("timeout after 1000 ms"); borrowed */
} http_result;
/* detail is never NULL ("" when error == HTTP_OK) and never contains request
 * or response headers, the body or the URL. */

typedef void http_done_fn(const http_result *res, void *ud);

typedef struct http_request_spec {
    const char *method;            /* "GET" or "POST" */
    const char *url;               /* copied */
    const http_headers *headers;   /* referenced until completion; may be NULL */
    const char *body;              /* copied; NULL for none */
    size_t body_len;
    int budgeted;                  /* 1: the response counts against body_budget_bytes */
} http_request_spec;

/* NULL on failure (including a timeout or max_connections <= 0). loop is
 * borrowed and must outlive the client.
 * curl_global_init must have been called once (main does it). */
http_client *http_client_new(uv_loop_t *loop, const http_options *opt);

/* -1 (callback never runs) for a method other than GET/POST, a GET with a
 * body, a client being freed, or out of memory. A URL curl cannot use is not
 * checked here: it fails through the callback (HTTP_ERR_OTHER). */
int http_submit(http_client *c, const http_request_spec *spec, http_done_fn *done, void *ud);

size_t http_inflight(const http_client *c);

/* Response bytes budgeted requests in flight hold now. */
uint64_t http_budget_in_flight(const http_client *c);

/* Aborts everything in flight (their callbacks run with HTTP_ERR_ABORTED
 * before this returns), releases curl, and frees the client once libuv has
 * closed its handles (a later loop turn). NULL is a no-op. */
void http_client_free(http_client *c);

/* An immutable, reference-counted header set ("Name: value" lines, copied).
 * The creator holds one reference. Requests hold one while in flight, so the
 * owner may drop its reference (e.g. after a token refresh) at any time. */
http_headers *http_headers_new(const char *const *lines, size_t n);   /* NULL if a line has CR/LF */
void http_headers_unref(http_headers *h);   /* NULL is a no-op */

/* Percent-encodes s[0..len) for use as one URL path segment (everything but
 * A-Z a-z 0-9 - . _ ~; the dots too when the segment is "." or ".."). Returns the length written (excluding NUL), or -1 if
 * out (outlen bytes) is too small. Pure. */
int http_escape_segment(const char *s, size_t len, char *out, size_t outlen);

#endif
