/* http: HTTP/1.1 requests on a libuv loop through one libcurl multi handle
 * (see http.h for the contract).
 *
 * curl's multi_socket API does the protocol work; this file only tells it
 * when a socket is ready (one uv_poll_t per socket, linked with
 * curl_multi_assign) and when its timer is due (one uv_timer_t), then hands
 * finished transfers to their callbacks. Request objects own a reusable easy
 * handle plus request and response buffers and go back to a free list after
 * their callback, so a steady stream of requests allocates nothing.
 * Everything runs on the loop's thread, except that a header set's refcount
 * is atomic because its owner may share it. Never logs. */
#include "http.h"

#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    BUF_FIRST = 4096,        /* first allocation of a buffer */
    BUF_KEEP = 4096,         /* pooled buffers above this are freed on release: a sync
                                answer fits; a page's buffer would otherwise stay with
                                every pooled request that ever carried one (2 MB at
                                256 requests in flight) */
    RECV_BUFFER = 8 * 1024,  /* curl's receive buffer per handle (default 16 KiB) */
    POOL_MIN_IDLE = 64,      /* idle request objects kept at least (else max_connections) */
};

/* Intrusive doubly-linked list: requests in flight, idle requests, sockets. */
typedef struct list_node {
    struct list_node *prev, *next;
} list_node;

#define OWNER(node, type, member) ((type *)(void *)((char *)(node) - offsetof(type, member)))

struct http_headers {
    struct curl_slist *list;   /* the caller's lines, then "Expect:" */
    atomic_uint refs;
};

typedef struct http_buf {
    char *data;
    size_t len;
    size_t cap;
} http_buf;

/* Why a response write stopped short: curl reports both as CURLE_WRITE_ERROR. */
typedef enum { WRITE_OK, WRITE_TOO_LARGE, WRITE_OVER_BUDGET, WRITE_NOMEM } write_state;

typedef enum { METHOD_BAD, METHOD_GET, METHOD_POST } http_method;

typedef struct http_req {
    http_client *c;
    CURL *easy;                    /* CURLOPT_PRIVATE points back here */
    list_node node;                /* in c->inflight or c->idle */
    http_done_fn *done;
    void *ud;
    http_headers *headers;         /* our reference, held while in flight */
    http_buf resp;                 /* response body */
    http_buf body;                 /* request body; POSTFIELDS points into it */
    uint64_t started_ns;
    uint64_t sent_ns;              /* just before the request was written; 0 = not yet */
    write_state write;
    int budgeted;                  /* resp counts in c->budget_bytes */
    char detail[64];               /* formatted result detail, borrowed by the callback */
} http_req;

typedef struct http_sock {
    uv_poll_t poll;
    http_client *c;
    list_node node;                /* in c->socks, so teardown can close them */
    curl_socket_t fd;
    int events;                    /* what uv_poll watches now; 0 = stopped */
} http_sock;

struct http_client {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;              /* curl's single timeout */
    http_options opt;
    http_headers *no_headers;      /* just "Expect:", for spec->headers == NULL */
    list_node *inflight;           /* http_req */
    size_t n_inflight;
    uint64_t budget_bytes;         /* response bytes of budgeted requests in flight */
    list_node *idle;               /* http_req: the pool */
    size_t n_idle;
    size_t max_idle;
    list_node *socks;              /* http_sock */
    int busy;                      /* our frames on the stack that use curl */
    bool closing;                  /* http_client_free was called */
    bool released;                 /* curl is gone; its callbacks must do nothing */
};

/* ------------------------------------------------------------------------ */
/* Lists and buffers                                                        */

static void list_push(list_node **head, list_node *n)
{
    n->prev = NULL;
    n->next = *head;
    if (*head)
        (*head)->prev = n;
    *head = n;
}

static void list_remove(list_node **head, list_node *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        *head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    n->prev = n->next = NULL;
}

/* Makes room for need bytes; doubling keeps appends amortised O(1). */
static int buf_reserve(http_buf *b, size_t need)
{
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : BUF_FIRST;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

/* Pooled buffers keep their memory for the next request, unless one odd
 * response made them big: a few hundred idle requests holding megabytes each
 * would be a leak in all but name. */
static void buf_recycle(http_buf *b)
{
    b->len = 0;
    if (b->cap <= BUF_KEEP)
        return;
    free(b->data);
    *b = (http_buf){0};
}

static void buf_free(http_buf *b)
{
    free(b->data);
    *b = (http_buf){0};
}

/* ------------------------------------------------------------------------ */
/* Header sets                                                              */

static bool slist_add(struct curl_slist **list, const char *line)
{
    struct curl_slist *l = curl_slist_append(*list, line);
    if (!l)
        return false;
    *list = l;
    return true;
}

/* A CR or LF inside a line would let a value (say, a token) inject headers. */
static bool header_line_ok(const char *line)
{
    return line && strpbrk(line, "\r\n") == NULL;
}

http_headers *http_headers_new(const char *const *lines, size_t n)
{
    if (n > 0 && !lines)
        return NULL;
    http_headers *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    atomic_init(&h->refs, 1u);
    for (size_t i = 0; i < n; i++) {
        if (!header_line_ok(lines[i]) || !slist_add(&h->list, lines[i]))
            goto fail;
    }
    /* An empty "Expect:" stops curl from sending "Expect: 100-continue" with
     * larger POST bodies, which would cost a round trip; for GET it is a
     * no-op, so every set carries it and POST needs no per-request list. */
    if (!slist_add(&h->list, "Expect:"))
        goto fail;
    return h;
fail:
    curl_slist_free_all(h->list);
    free(h);
    return NULL;
}

/* The request only reads the set (hence const in the spec); the refcount is
 * bookkeeping outside that promise. */
static http_headers *headers_ref(const http_headers *h)
{
    http_headers *m = (http_headers *)(uintptr_t)h;
    atomic_fetch_add_explicit(&m->refs, 1u, memory_order_relaxed);
    return m;
}

void http_headers_unref(http_headers *h)
{
    if (!h)
        return;
    if (atomic_fetch_sub_explicit(&h->refs, 1u, memory_order_acq_rel) != 1u)
        return;
    /* Header sets carry credentials (Basic, Bearer): wiped, not just freed. */
    for (struct curl_slist *l = h->list; l; l = l->next)
        explicit_bzero(l->data, strlen(l->data));
    curl_slist_free_all(h->list);
    free(h);
}

/* ------------------------------------------------------------------------ */
/* Path segment escaping                                                    */

static bool unreserved(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
           (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

int http_escape_segment(const char *s, size_t len, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    if ((len > 0 && !s) || !out)
        return -1;
    /* "." and ".." are dot-segments: left as they are, a URL parser folds
     * them into the path around them (/api/campaigns/../sync). */
    int dots = (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.');
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        size_t need = unreserved(ch) && !dots ? 1 : 3;
        if (outlen - w <= need)          /* keep one byte for the NUL */
            return -1;
        if (need == 1) {
            out[w++] = (char)ch;
            continue;
        }
        out[w++] = '%';
        out[w++] = hex[ch >> 4];
        out[w++] = hex[ch & 15];
    }
    if (outlen == 0 || w > INT_MAX)
        return -1;
    out[w] = '\0';
    return (int)w;
}

/* ------------------------------------------------------------------------ */
/* Request objects and their pool                                           */

static int over_budget(const http_client *c, size_t n)
{
    uint64_t used = c->budget_bytes + (c->opt.budget_held ? *c->opt.budget_held : 0);
    return c->opt.body_budget_bytes && used + n > c->opt.body_budget_bytes;
}

/* curl appends the body here. The cap is checked before copying because
 * CURLOPT_MAXFILESIZE only works when a Content-Length came first. */
static size_t on_curl_write(char *data, size_t size, size_t nmemb, void *ud)
{
    http_req *r = ud;
    size_t n = size * nmemb;   /* size is always 1 */
    http_client *c = r->c;
    if (n > c->opt.max_body_bytes - r->resp.len) {
        r->write = WRITE_TOO_LARGE;
        return 0;              /* anything but n fails the transfer */
    }
    if (r->budgeted && over_budget(c, n)) {
        r->write = WRITE_OVER_BUDGET;
        return 0;
    }
    if (buf_reserve(&r->resp, r->resp.len + n + 1) != 0) {   /* +1: the NUL */
        r->write = WRITE_NOMEM;
        return 0;
    }
    memcpy(r->resp.data + r->resp.len, data, n);
    r->resp.len += n;
    if (r->budgeted)
        c->budget_bytes += n;
    return n;
}

_Static_assert(sizeof(curl_off_t) == sizeof(int64_t), "curl_off_t is 64-bit");

static curl_off_t off_from_size(size_t n)
{
    return n > (size_t)INT64_MAX ? (curl_off_t)INT64_MAX : (curl_off_t)n;
}

/* CURLOPT_PREREQFUNCTION: the connection is there and the request is about
 * to be written. The time from submit to here is what a caller that
 * counted the request beforehand (a rate limiter) needs to know. */
static int on_curl_prereq(void *clientp, char *remote_ip, char *local_ip, int remote_port, int local_port)
{
    (void)remote_ip, (void)local_ip, (void)remote_port, (void)local_port;
    http_req *r = clientp;
    r->sent_ns = uv_hrtime();
    return CURL_PREREQFUNC_OK;
}

/* Options that never change for this client, set once per easy handle: a
 * pooled handle keeps them across transfers, so requests only set the URL,
 * the method, the body and the header list. */
static int easy_setup(http_req *r)
{
    CURL *e = r->easy;
    const http_options *o = &r->c->opt;
    int bad = 0;
    bad |= curl_easy_setopt(e, CURLOPT_PRIVATE, r) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_curl_write) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, r) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_curl_prereq) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PREREQDATA, r) != CURLE_OK;
    /* No SIGALRM for DNS timeouts: signals and an event loop don't mix. */
    bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o->timeout_ms) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, off_from_size(o->max_body_bytes)) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L) != CURLE_OK;
    /* Every pooled handle keeps its receive buffer: 8 KiB instead of 16
     * holds a sync answer or a list page's first chunk, and halves what
     * idle handles cost. */
    bad |= curl_easy_setopt(e, CURLOPT_BUFFERSIZE, (long)RECV_BUFFER) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
    /* The path goes out as built: curl must not squash segments of it. */
    bad |= curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L) != CURLE_OK;
    /* Verbose output would print Authorization headers. */
    bad |= curl_easy_setopt(e, CURLOPT_VERBOSE, 0L) != CURLE_OK;
    return bad ? -1 : 0;
}

static void req_destroy(http_req *r)
{
    if (r->easy)
        curl_easy_cleanup(r->easy);
    buf_free(&r->resp);
    buf_free(&r->body);
    free(r);
}

static http_req *req_new(http_client *c)
{
    http_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->c = c;
    r->easy = curl_easy_init();
    if (!r->easy || easy_setup(r) != 0) {
        req_destroy(r);
        return NULL;
    }
    return r;
}

static http_req *req_acquire(http_client *c)
{
    list_node *n = c->idle;
    if (!n)
        return req_new(c);
    list_remove(&c->idle, n);
    c->n_idle--;
    return OWNER(n, http_req, node);
}

/* Back to the pool; a burst far above the usual concurrency is not kept. */
static void req_release(http_client *c, http_req *r)
{
    http_headers_unref(r->headers);
    r->headers = NULL;
    r->done = NULL;
    r->ud = NULL;
    r->write = WRITE_OK;
    if (r->budgeted)
        c->budget_bytes -= r->resp.len;
    r->budgeted = 0;
    buf_recycle(&r->resp);
    buf_recycle(&r->body);
    if (c->n_idle >= c->max_idle) {
        req_destroy(r);
        return;
    }
    list_push(&c->idle, &r->node);
    c->n_idle++;
}

/* ------------------------------------------------------------------------ */
/* Results                                                                  */

static uint64_t elapsed_ms(const http_req *r)
{
    return (uv_hrtime() - r->started_ns) / 1000000u;
}

static void result_fail(http_result *res, http_error err, const char *detail)
{
    res->error = err;
    res->detail = detail;
}

static void result_ok(http_req *r, http_result *res)
{
    long status = 0;
    curl_off_t retry_after = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(r->easy, CURLINFO_RETRY_AFTER, &retry_after);
    res->error = HTTP_OK;
    res->status = status;
    res->retry_after_s = retry_after < 0 ? 0 : retry_after > LONG_MAX ? LONG_MAX : (long)retry_after;
    if (r->resp.data) {
        r->resp.data[r->resp.len] = '\0';   /* on_curl_write reserved the byte */
        res->body = r->resp.data;
        res->body_len = r->resp.len;
    }
}

static const char *connect_detail(CURL *e)
{
    long os_errno = 0;
    curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &os_errno);
    switch (os_errno) {
    case ECONNREFUSED: return "connection refused";
    case ENETUNREACH: return "network unreachable";
    case EHOSTUNREACH: return "host unreachable";
    default: return "could not connect";
    }
}

/* The transport errors whose outcome and text need nothing from the handle. */
static const struct {
    CURLcode code;
    http_error error;
    const char *detail;
} plain_errors[] = {
    {CURLE_COULDNT_RESOLVE_HOST, HTTP_ERR_CONNECT, "could not resolve host"},
    {CURLE_COULDNT_RESOLVE_PROXY, HTTP_ERR_CONNECT, "could not resolve proxy"},
    {CURLE_GOT_NOTHING, HTTP_ERR_CLOSED, "connection closed without a reply"},
    {CURLE_RECV_ERROR, HTTP_ERR_CLOSED, "receive failed (connection reset)"},
    {CURLE_SEND_ERROR, HTTP_ERR_CLOSED, "send failed (connection reset)"},
    {CURLE_PARTIAL_FILE, HTTP_ERR_CLOSED, "connection closed mid-body"},
};

static void result_too_large(http_req *r, http_result *res)
{
    snprintf(r->detail, sizeof r->detail, "body over %zu bytes", r->c->opt.max_body_bytes);
    result_fail(res, HTTP_ERR_TOO_LARGE, r->detail);
}

/* Maps curl's outcome; details are fixed texts or numbers, never anything
 * from the request or response (no headers, no body, no URL). */
static void result_from_curl(http_req *r, CURLcode code, http_result *res)
{
    for (size_t i = 0; i < sizeof plain_errors / sizeof plain_errors[0]; i++) {
        if (plain_errors[i].code == code) {
            result_fail(res, plain_errors[i].error, plain_errors[i].detail);
            return;
        }
    }
    switch (code) {
    case CURLE_OK:
        result_ok(r, res);
        return;
    case CURLE_OPERATION_TIMEDOUT:
        snprintf(r->detail, sizeof r->detail, "timeout after %llu ms",
                 (unsigned long long)res->duration_ms);
        result_fail(res, HTTP_ERR_TIMEOUT, r->detail);
        return;
    case CURLE_COULDNT_CONNECT:
        result_fail(res, HTTP_ERR_CONNECT, connect_detail(r->easy));
        return;
    case CURLE_FILESIZE_EXCEEDED:
        result_too_large(r, res);
        return;
    case CURLE_WRITE_ERROR:
        if (r->write == WRITE_TOO_LARGE) {
            result_too_large(r, res);
            return;
        }
        if (r->write == WRITE_OVER_BUDGET) {
            snprintf(r->detail, sizeof r->detail, "over the %zu-byte body budget", r->c->opt.body_budget_bytes);
            result_fail(res, HTTP_ERR_BUDGET, r->detail);
            return;
        }
        result_fail(res, HTTP_ERR_OTHER, r->write == WRITE_NOMEM ? "out of memory" : curl_easy_strerror(code));
        return;
    default:
        result_fail(res, HTTP_ERR_OTHER, curl_easy_strerror(code));
        return;
    }
}

/* Runs the callback for a request that is already out of the multi handle,
 * then pools it. busy keeps a nested http_client_free from releasing curl
 * under our feet. */
static void deliver(http_client *c, http_req *r, const http_result *res)
{
    list_remove(&c->inflight, &r->node);
    c->n_inflight--;
    c->busy++;
    r->done(res, r->ud);
    c->busy--;
    req_release(c, r);
}

/* Request written -> first byte of the answer: the server's time, queueing
 * in front of its handler included. 0 when no answer began. */
static uint64_t server_us(const http_req *r)
{
    curl_off_t pre = 0, first = 0;
    if (curl_easy_getinfo(r->easy, CURLINFO_PRETRANSFER_TIME_T, &pre) != CURLE_OK ||
        curl_easy_getinfo(r->easy, CURLINFO_STARTTRANSFER_TIME_T, &first) != CURLE_OK || first <= pre)
        return 0;
    return (uint64_t)(first - pre);
}

static http_result result_start(const http_req *r)
{
    return (http_result){.error = HTTP_OK, .body = "", .detail = "", .duration_ms = elapsed_ms(r),
                         .wait_us = r->sent_ns ? (r->sent_ns - r->started_ns) / 1000u : 0,
                         .server_us = server_us(r)};
}

static void finish(http_client *c, http_req *r, CURLcode code)
{
    http_result res = result_start(r);
    result_from_curl(r, code, &res);
    deliver(c, r, &res);
}

static void teardown(http_client *c);

/* Hands every finished transfer to its callback. A callback may submit (fine:
 * curl queues it) or free the client: then stop reading curl's queue, and
 * release curl once no frame of ours is using it. */
static void collect_done(http_client *c)
{
    CURLMsg *msg;
    int left;
    while (!c->closing && (msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        /* msg does not survive curl_multi_remove_handle: copy first. */
        CURL *e = msg->easy_handle;
        CURLcode code = msg->data.result;
        char *priv = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
        curl_multi_remove_handle(c->multi, e);
        finish(c, (http_req *)(void *)priv, code);
    }
    if (c->closing && c->busy == 0)
        teardown(c);
}

/* ------------------------------------------------------------------------ */
/* curl <-> libuv: sockets and the timer                                    */

static void socket_action(http_client *c, curl_socket_t fd, int flags)
{
    int running;
    curl_multi_socket_action(c->multi, fd, flags, &running);
    collect_done(c);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    http_sock *s = p->data;
    int flags = 0;
    if (status < 0) {
        /* libuv has stopped the handle (POLLERR); let curl find the socket
         * error, and re-arm if curl asks for the socket again. */
        s->events = 0;
        flags = CURL_CSELECT_ERR;
    } else {
        flags |= (events & UV_READABLE) ? CURL_CSELECT_IN : 0;
        flags |= (events & UV_WRITABLE) ? CURL_CSELECT_OUT : 0;
    }
    socket_action(s->c, s->fd, flags);
}

static void on_sock_closed(uv_handle_t *h)
{
    free(h->data);
}

static http_sock *sock_open(http_client *c, curl_socket_t fd)
{
    http_sock *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
        free(s);   /* libuv registers the handle only on success */
        return NULL;
    }
    s->poll.data = s;
    s->c = c;
    s->fd = fd;
    list_push(&c->socks, &s->node);
    return s;
}

static void sock_close(http_client *c, http_sock *s)
{
    list_remove(&c->socks, &s->node);
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);   /* also stops it */
}

/* Re-arming costs epoll_ctl calls, so only a changed mask reaches libuv. */
static int sock_watch(http_sock *s, int events)
{
    if (events == s->events)
        return 0;
    int rc = events ? uv_poll_start(&s->poll, events, on_poll) : uv_poll_stop(&s->poll);
    s->events = rc == 0 ? events : 0;
    return rc;
}

static int poll_events_for(int what)
{
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    return events;
}

/* CURLMOPT_SOCKETFUNCTION. Returning -1 makes curl fail every transfer, so
 * it is kept for failures that leave a socket unwatched. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    http_client *c = userp;
    http_sock *s = socketp;
    (void)easy;
    if (c->released)
        return 0;   /* teardown closed every poll handle already */
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            curl_multi_assign(c->multi, fd, NULL);
            sock_close(c, s);
        }
        return 0;
    }
    if (!s) {
        /* Out of memory: -1 would kill the whole multi handle (curl marks
         * it dead and completes nothing again). Unwatched, this transfer
         * ends at its timeout instead, and everything else goes on. */
        s = sock_open(c, fd);
        if (!s)
            return 0;
        curl_multi_assign(c->multi, fd, s);
    }
    return sock_watch(s, poll_events_for(what)) == 0 ? 0 : -1;
}

static void on_timer(uv_timer_t *t)
{
    socket_action(t->data, CURL_SOCKET_TIMEOUT, 0);
}

/* CURLMOPT_TIMERFUNCTION. Calling socket_action from here would recurse into
 * curl, so even 0 ms ("as soon as possible") goes through a uv_timer and runs
 * after this callback, and the curl call that made it, have returned. */
static int on_curl_timer(CURLM *multi, long ms, void *userp)
{
    http_client *c = userp;
    (void)multi;
    if (c->released)
        return 0;
    if (ms < 0) {
        uv_timer_stop(&c->timer);
        return 0;
    }
    uv_timer_start(&c->timer, on_timer, (uint64_t)ms, 0);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Client                                                                   */

static bool options_ok(const http_options *o)
{
    return o && o->connect_timeout_ms > 0 && o->timeout_ms > 0 && o->max_connections > 0;
}

static int multi_setup(http_client *c)
{
    CURLM *m = c->multi;
    int bad = 0;
    bad |= curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK;
    bad |= curl_multi_setopt(m, CURLMOPT_SOCKETDATA, c) != CURLM_OK;
    bad |= curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK;
    bad |= curl_multi_setopt(m, CURLMOPT_TIMERDATA, c) != CURLM_OK;
    /* Keep every connection the concurrency can use alive between requests,
     * and queue (not open) beyond that; queued time counts against
     * CURLOPT_TIMEOUT_MS, hence "max_connections >= concurrency". */
    bad |= curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, c->opt.max_connections) != CURLM_OK;
    bad |= curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, c->opt.max_connections) != CURLM_OK;
    return bad ? -1 : 0;
}

http_client *http_client_new(uv_loop_t *loop, const http_options *opt)
{
    if (!loop || !options_ok(opt))
        return NULL;
    http_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->loop = loop;
    c->opt = *opt;
    /* on_curl_write reserves len + n + 1 with len + n <= the cap: keep the +1
     * from wrapping. */
    if (c->opt.max_body_bytes == SIZE_MAX)
        c->opt.max_body_bytes--;
    c->max_idle = (size_t)opt->max_connections > POOL_MIN_IDLE ? (size_t)opt->max_connections : POOL_MIN_IDLE;
    c->no_headers = http_headers_new(NULL, 0);
    c->multi = curl_multi_init();
    if (!c->no_headers || !c->multi || multi_setup(c) != 0)
        goto fail;
    /* Last: once the timer is initialised, freeing takes a loop turn. */
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    return c;
fail:
    c->released = true;   /* the timer is not initialised: curl must not reach it */
    if (c->multi)
        curl_multi_cleanup(c->multi);
    http_headers_unref(c->no_headers);
    free(c);
    return NULL;
}

static http_method method_of(const http_request_spec *s)
{
    if (!s->method || (s->body_len > 0 && !s->body))
        return METHOD_BAD;
    if (strcmp(s->method, "GET") == 0)
        return s->body_len == 0 ? METHOD_GET : METHOD_BAD;
    if (strcmp(s->method, "POST") == 0)
        return METHOD_POST;
    return METHOD_BAD;
}

/* The body is copied into the request's own buffer so POSTFIELDS (which
 * curl does not copy) stays valid until completion. */
static int set_post_body(http_req *r, const http_request_spec *s)
{
    static char empty[] = "";   /* POSTFIELDS NULL would make curl read stdin */
    char *data = empty;
    if (s->body_len > 0) {
        if (buf_reserve(&r->body, s->body_len) != 0)
            return -1;
        memcpy(r->body.data, s->body, s->body_len);
        r->body.len = s->body_len;
        data = r->body.data;
    }
    int bad = 0;
    /* Size first: a binary body may contain NULs, and curl must not strlen. */
    bad |= curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE_LARGE, off_from_size(s->body_len)) != CURLE_OK;
    bad |= curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, data) != CURLE_OK;
    return bad ? -1 : 0;
}

/* Per-request options. Everything a previous transfer on this handle set is
 * overwritten here: URL, header list, method (HTTPGET undoes a POST). */
static int req_prepare(http_req *r, const http_request_spec *s, http_method m)
{
    if (curl_easy_setopt(r->easy, CURLOPT_URL, s->url) != CURLE_OK)
        return -1;
    if (curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers->list) != CURLE_OK)
        return -1;
    if (m == METHOD_POST)
        return set_post_body(r, s);
    return curl_easy_setopt(r->easy, CURLOPT_HTTPGET, 1L) == CURLE_OK ? 0 : -1;
}

int http_submit(http_client *c, const http_request_spec *spec, http_done_fn *done, void *ud)
{
    if (!c || !spec || !spec->url || !done || c->closing)
        return -1;
    http_method m = method_of(spec);
    if (m == METHOD_BAD)
        return -1;
    http_req *r = req_acquire(c);
    if (!r)
        return -1;
    r->headers = headers_ref(spec->headers ? spec->headers : c->no_headers);
    r->done = done;
    r->ud = ud;
    r->budgeted = spec->budgeted;
    r->started_ns = uv_hrtime();
    r->sent_ns = 0;
    if (req_prepare(r, spec, m) != 0 || curl_multi_add_handle(c->multi, r->easy) != CURLM_OK) {
        req_release(c, r);
        return -1;
    }
    /* curl only schedules a 0 ms timeout here, so the callback cannot run
     * before we return. */
    list_push(&c->inflight, &r->node);
    c->n_inflight++;
    return 0;
}

size_t http_inflight(const http_client *c)
{
    return c ? c->n_inflight : 0;
}

uint64_t http_budget_in_flight(const http_client *c)
{
    return c ? c->budget_bytes : 0;
}

static void abort_all(http_client *c)
{
    while (c->inflight) {
        http_req *r = OWNER(c->inflight, http_req, node);
        curl_multi_remove_handle(c->multi, r->easy);
        http_result res = result_start(r);
        result_fail(&res, HTTP_ERR_ABORTED, "aborted");
        deliver(c, r, &res);
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Releases curl and starts closing the uv handles; the client's memory goes
 * with the timer's close callback (poll handles free themselves). Poll
 * handles are closed before curl closes the sockets, which libuv requires,
 * and curl's callbacks during curl_multi_cleanup are then ignored. */
static void teardown(http_client *c)
{
    c->released = true;
    while (c->socks)
        sock_close(c, OWNER(c->socks, http_sock, node));
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    while (c->idle) {
        list_node *n = c->idle;
        list_remove(&c->idle, n);
        req_destroy(OWNER(n, http_req, node));
    }
    c->n_idle = 0;
    http_headers_unref(c->no_headers);
    c->no_headers = NULL;
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

void http_client_free(http_client *c)
{
    if (!c || c->closing)
        return;
    c->closing = true;   /* from here on http_submit refuses */
    c->busy++;
    abort_all(c);
    c->busy--;
    /* Called from a done callback: collect_done finishes the job. */
    if (c->busy == 0)
        teardown(c);
}
