/* metrics: the /metrics + /healthz HTTP endpoint on a libuv loop, and the
 * Prometheus text builder (see metrics.h for the contract).
 *
 * A connection lives through four states: READING (until the end of the
 * request head, at most MX_REQ_MAX bytes, within MX_READ_MS), WRITING (one
 * uv_write of head + body, within MX_WRITE_MS), LINGER (FIN sent; what the
 * client still sends is discarded until its EOF or MX_LINGER_MS, so unread
 * input never turns our close into a reset that eats the response) and
 * CLOSING (both handles closing; freed when the last close callback runs).
 * The server owns the list of connections; it is freed once its own handle
 * and every connection have closed. */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MX_REQ_MAX 8192        /* request head cap: more is a 431 */
#define MX_MAX_CONNS 64        /* more at once are closed on accept */
#define MX_READ_MS 10000
#define MX_WRITE_MS 5000
#define MX_LINGER_MS 2000
#define MX_BACKLOG 128
#define MX_MAX_LABELS 8

/* ---- text buffer ----------------------------------------------------------- */

void mx_buf_init(mx_buf *b)
{
    memset(b, 0, sizeof *b);
}

void mx_buf_free(mx_buf *b)
{
    free(b->data);
    mx_buf_init(b);
}

/* Room for n more bytes plus a NUL. */
static int buf_reserve(mx_buf *b, size_t n)
{
    if (b->failed)
        return -1;
    if (b->len + n + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL) {
        b->failed = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

void mx_buf_append(mx_buf *b, const char *s, size_t n)
{
    if (buf_reserve(b, n) < 0)
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void mx_buf_puts(mx_buf *b, const char *s)
{
    mx_buf_append(b, s, strlen(s));
}

void mx_buf_printf(mx_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, (size_t)n) < 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* ---- exposition format --------------------------------------------------------- */

/* Escapes backslash and newline (HELP), and the double quote too (labels). */
static void put_escaped(mx_buf *b, const char *s, int quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            mx_buf_puts(b, "\\\\");
        else if (*s == '\n')
            mx_buf_puts(b, "\\n");
        else if (*s == '"' && quote)
            mx_buf_puts(b, "\\\"");
        else
            mx_buf_append(b, s, 1);
    }
}

/* Shortest text that reads back as the same double; +Inf/-Inf/NaN. */
static void format_double(double v, char *out, size_t outlen)
{
    if (isnan(v)) {
        snprintf(out, outlen, "NaN");
    } else if (isinf(v)) {
        snprintf(out, outlen, "%sInf", v > 0 ? "+" : "-");
    } else {
        snprintf(out, outlen, "%.15g", v);
        if (strtod(out, NULL) != v)
            snprintf(out, outlen, "%.17g", v);
    }
}

void mx_family(mx_buf *b, const char *name, mx_type type, const char *help)
{
    static const char *const type_names[] = { [MX_COUNTER] = "counter", [MX_GAUGE] = "gauge",
                                              [MX_HISTOGRAM] = "histogram" };
    mx_buf_printf(b, "# HELP %s ", name);
    put_escaped(b, help, 0);
    mx_buf_printf(b, "\n# TYPE %s %s\n", name, type_names[type]);
}

/* name{a="x",b="y"} (le last, when given), or just name. */
static void put_series(mx_buf *b, const char *name, const mx_label *labels, size_t nlabels,
                       const char *le)
{
    mx_buf_puts(b, name);
    if (nlabels == 0 && le == NULL)
        return;
    mx_buf_puts(b, "{");
    for (size_t i = 0; i < nlabels; i++) {
        mx_buf_printf(b, "%s%s=\"", i ? "," : "", labels[i].name);
        put_escaped(b, labels[i].value, 1);
        mx_buf_puts(b, "\"");
    }
    if (le)
        mx_buf_printf(b, "%sle=\"%s\"", nlabels ? "," : "", le);
    mx_buf_puts(b, "}");
}

void mx_sample_u64(mx_buf *b, const char *name, const mx_label *labels, size_t nlabels, uint64_t v)
{
    put_series(b, name, labels, nlabels, NULL);
    mx_buf_printf(b, " %llu\n", (unsigned long long)v);
}

void mx_sample(mx_buf *b, const char *name, const mx_label *labels, size_t nlabels, double v)
{
    char num[40];
    format_double(v, num, sizeof num);
    put_series(b, name, labels, nlabels, NULL);
    mx_buf_printf(b, " %s\n", num);
}

void mx_histogram(mx_buf *b, const char *name, const mx_label *labels, size_t nlabels,
                  const double *bounds, size_t nbounds, const uint64_t *counts, double sum)
{
    char series[128], le[40];
    uint64_t cumulative = 0;
    snprintf(series, sizeof series, "%s_bucket", name);
    for (size_t i = 0; i <= nbounds; i++) {
        cumulative += counts[i];
        if (i < nbounds)
            format_double(bounds[i], le, sizeof le);
        else
            snprintf(le, sizeof le, "+Inf");
        put_series(b, series, labels, nlabels, le);
        mx_buf_printf(b, " %llu\n", (unsigned long long)cumulative);
    }
    snprintf(series, sizeof series, "%s_sum", name);
    mx_sample(b, series, labels, nlabels, sum);
    snprintf(series, sizeof series, "%s_count", name);
    mx_sample_u64(b, series, labels, nlabels, cumulative);
}

/* ---- server state ------------------------------------------------------------ */

typedef enum { CONN_READING, CONN_WRITING, CONN_LINGER, CONN_CLOSING } conn_state;

typedef struct mx_conn mx_conn;
struct mx_conn {
    mx_conn *next, *prev;
    mx_server *srv;
    uv_tcp_t tcp;
    uv_timer_t timer;          /* the current state's deadline */
    uv_write_t write_req;
    uv_shutdown_t shutdown_req;
    conn_state state;
    int open_handles;          /* handles whose close callback has not run */
    int peer_eof;
    size_t len;
    char req[MX_REQ_MAX];
    char head[512];
    mx_buf body;
};

struct mx_server {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    mx_handler_fn *handler;
    void *ud;
    mx_conn *conns;
    size_t nconns;             /* connections not closing */
    int port;
    int unref;
    int closing;
    int listen_closed;
};

static void srv_maybe_free(mx_server *s)
{
    if (s->closing && s->listen_closed && s->conns == NULL)
        free(s);
}

/* ---- one connection ------------------------------------------------------------ */

static void on_conn_closed(uv_handle_t *h)
{
    mx_conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    mx_server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    mx_buf_free(&c->body);
    free(c);
    srv_maybe_free(s);
}

static void conn_close(mx_conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    c->state = CONN_CLOSING;
    c->srv->nconns--;   /* counts open connections: a closing one no longer takes a place */
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_deadline(uv_timer_t *t)
{
    conn_close(t->data);
}

static void conn_enter(mx_conn *c, conn_state state, uint64_t deadline_ms)
{
    c->state = state;
    uv_timer_start(&c->timer, on_deadline, deadline_ms, 0);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    mx_conn *c = req->data;
    if (c->state == CONN_CLOSING)
        return;   /* cancelled by the close */
    if (status < 0 || c->peer_eof)
        conn_close(c);
    /* else: LINGER until the client's EOF or the deadline */
}

static void on_written(uv_write_t *req, int status)
{
    mx_conn *c = req->data;
    if (c->state == CONN_CLOSING)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    conn_enter(c, CONN_LINGER, MX_LINGER_MS);
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
        conn_close(c);
}

static const char *status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

/* Sends head + body (the body is taken: freed with the connection). */
static void conn_respond(mx_conn *c, int status, const char *content_type, mx_buf *body, int head_only)
{
    c->body = *body;
    mx_buf_init(body);
    int n = snprintf(c->head, sizeof c->head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                     "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                     status, status_text(status), content_type, c->body.len,
                     status == 405 ? "Allow: GET, HEAD\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof c->head) {   /* an absurd content type */
        conn_close(c);
        return;
    }
    uv_buf_t bufs[2] = {
        uv_buf_init(c->head, (unsigned)n),
        uv_buf_init(c->body.data ? c->body.data : c->head, head_only ? 0 : (unsigned)c->body.len),
    };
    conn_enter(c, CONN_WRITING, MX_WRITE_MS);
    c->write_req.data = c;
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, bufs, 2, on_written) < 0)
        conn_close(c);
}

static void respond_text(mx_conn *c, int status, const char *text)
{
    mx_buf body;
    mx_buf_init(&body);
    mx_buf_puts(&body, text);
    conn_respond(c, status, "text/plain; charset=utf-8", &body, 0);
}

/* End of the request head: the offset just past "\n\n" or "\n\r\n", or 0. */
static size_t head_end(const char *s, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] != '\n')
            continue;
        if (s[i + 1] == '\n')
            return i + 2;
        if (s[i + 1] == '\r' && i + 2 < n && s[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

/* "METHOD SP /target SP HTTP/1.x": NUL-terminates method and path (the
 * query string cut off) in place. 0 on success, -1 if malformed. */
static int parse_request_line(char *line, char **method, char **path)
{
    line[strcspn(line, "\r\n")] = '\0';
    char *sp1 = strchr(line, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (sp1 == NULL || sp2 == NULL || sp1 == line || sp1[1] != '/')
        return -1;
    if (strcmp(sp2 + 1, "HTTP/1.0") != 0 && strcmp(sp2 + 1, "HTTP/1.1") != 0)
        return -1;
    *sp1 = *sp2 = '\0';
    for (const char *p = line; *p; p++)
        if (*p < 'A' || *p > 'Z')
            return -1;
    (sp1 + 1)[strcspn(sp1 + 1, "?#")] = '\0';
    *method = line;
    *path = sp1 + 1;
    return 0;
}

static void handle_request(mx_conn *c)
{
    char *method, *path;
    while (c->len > 0 && (c->req[0] == '\r' || c->req[0] == '\n'))   /* stray CRLFs before it */
        memmove(c->req, c->req + 1, --c->len);
    c->req[c->len < MX_REQ_MAX ? c->len : MX_REQ_MAX - 1] = '\0';
    if (parse_request_line(c->req, &method, &path) < 0) {
        respond_text(c, 400, "bad request\n");
        return;
    }
    int head_only = strcmp(method, "HEAD") == 0;
    if (!head_only && strcmp(method, "GET") != 0) {
        respond_text(c, 405, "only GET and HEAD\n");
        return;
    }
    mx_reply reply = { .status = 404, .content_type = "text/plain; charset=utf-8" };
    mx_buf_init(&reply.body);
    c->srv->handler(c->srv->ud, path, &reply);
    if (reply.body.failed) {
        mx_buf_free(&reply.body);
        respond_text(c, 500, "out of memory\n");
        return;
    }
    if (reply.status == 404 && reply.body.len == 0)
        mx_buf_puts(&reply.body, "not found\n");
    conn_respond(c, reply.status, reply.content_type, &reply.body, head_only);
}

static char discard[4096];   /* input after the request head: read and dropped */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    mx_conn *c = h->data;
    if (c->state == CONN_READING && c->len < MX_REQ_MAX)
        *buf = uv_buf_init(c->req + c->len, (unsigned)(MX_REQ_MAX - c->len));
    else
        *buf = uv_buf_init(discard, sizeof discard);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    mx_conn *c = stream->data;
    if (c->state == CONN_CLOSING)
        return;
    if (nread < 0) {
        c->peer_eof = 1;
        uv_read_stop(stream);
        if (c->state != CONN_WRITING)   /* a response being written still goes out */
            conn_close(c);
        return;
    }
    if (c->state != CONN_READING || nread == 0)
        return;
    c->len += (size_t)nread;
    size_t end = head_end(c->req, c->len);
    if (end > 0) {
        c->len = end;
        handle_request(c);
    } else if (c->len >= MX_REQ_MAX) {
        respond_text(c, 431, "request head too large\n");
    }
}

/* At the connection cap, the oldest connection that has not sent a byte
 * gives way: idle sockets (a port scan, a stuck client) must not keep a
 * liveness probe from getting its answer. 1 if one was closed. */
static int evict_idle(mx_server *s)
{
    mx_conn *oldest = NULL;
    for (mx_conn *c = s->conns; c; c = c->next)
        if (c->state == CONN_READING && c->len == 0)
            oldest = c;   /* the list is newest first */
    if (oldest == NULL)
        return 0;
    conn_close(oldest);
    return 1;
}

static void on_connection(uv_stream_t *listener, int status)
{
    mx_server *s = listener->data;
    if (status < 0 || s->closing)
        return;
    if (s->nconns >= MX_MAX_CONNS)
        evict_idle(s);
    mx_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return;   /* stays in the backlog; we come back on the next one */
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    if (s->unref) {
        uv_unref((uv_handle_t *)&c->tcp);
        uv_unref((uv_handle_t *)&c->timer);
    }
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) < 0 || s->nconns > MX_MAX_CONNS ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
        conn_close(c);
        return;
    }
    conn_enter(c, CONN_READING, MX_READ_MS);
}

/* ---- listening ------------------------------------------------------------------ */

/* A listening, non-blocking socket on the first address of host:port that
 * binds; -1 with err filled. */
static int bind_listen(const cfg_hostport *addr, char *err, size_t errlen)
{
    char port[8];
    snprintf(port, sizeof port, "%d", addr->port);
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai = NULL;
    int rc = getaddrinfo(addr->host, port, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve host '%s': %s", addr->host, gai_strerror(rc));
        return -1;
    }
    int fd = -1, last_errno = EADDRNOTAVAIL;
    for (struct addrinfo *p = ai; p && fd < 0; p = p->ai_next) {
        fd = socket(p->ai_family, p->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, p->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, p->ai_addr, p->ai_addrlen) < 0 || listen(fd, MX_BACKLOG) < 0) {
            last_errno = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0)
        snprintf(err, errlen, "cannot listen on %s:%d: %s", addr->host, addr->port, strerror(last_errno));
    return fd;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void on_listen_closed(uv_handle_t *h)
{
    mx_server *s = h->data;
    s->listen_closed = 1;
    srv_maybe_free(s);
}

mx_server *mx_listen(uv_loop_t *loop, const cfg_hostport *addr, mx_handler_fn *handler, void *ud,
                     char *err, size_t errlen)
{
    if (!loop || !addr || !handler) {
        snprintf(err, errlen, "invalid arguments");
        return NULL;
    }
    mx_server *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    int fd = bind_listen(addr, err, errlen);
    if (fd < 0) {
        free(s);
        return NULL;
    }
    s->loop = loop;
    s->handler = handler;
    s->ud = ud;
    s->port = bound_port(fd);
    uv_tcp_init(loop, &s->tcp);
    s->tcp.data = s;
    int rc = uv_tcp_open(&s->tcp, fd);
    if (rc < 0)
        close(fd);   /* else the handle owns it */
    else
        rc = uv_listen((uv_stream_t *)&s->tcp, MX_BACKLOG, on_connection);
    if (rc < 0) {   /* not expected once bind and listen worked */
        snprintf(err, errlen, "cannot listen on %s:%d: %s", addr->host, addr->port, uv_strerror(rc));
        s->closing = 1;
        uv_close((uv_handle_t *)&s->tcp, on_listen_closed);   /* freed on a later loop turn */
        return NULL;
    }
    return s;
}

int mx_port(const mx_server *s)
{
    return s ? s->port : 0;
}

void mx_unref(mx_server *s)
{
    if (s == NULL)
        return;
    s->unref = 1;
    uv_unref((uv_handle_t *)&s->tcp);
    for (mx_conn *c = s->conns; c; c = c->next) {
        uv_unref((uv_handle_t *)&c->tcp);
        uv_unref((uv_handle_t *)&c->timer);
    }
}

void mx_close(mx_server *s)
{
    if (s == NULL || s->closing)
        return;
    s->closing = 1;
    uv_close((uv_handle_t *)&s->tcp, on_listen_closed);
    for (mx_conn *c = s->conns; c; c = c->next)
        conn_close(c);
}
