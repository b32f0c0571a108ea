/* test_http: common/http.c against a real HTTP server.
 *
 * A libmicrohttpd daemon runs inside the test process on a free loopback
 * port (its own polling thread, plus a waker thread that resumes suspended
 * connections for /slow). Each test drives its own uv loop and ends with
 * uv_loop_close() == 0, so a leaked handle fails it.
 *
 * Routes: /ok (echoes method, X-Client-Id, Expect and the body as JSON),
 * /status/N (429 adds "Retry-After: 7"), /slow?ms=N, /hang (parked until the
 * server stops), /big?n=N[&chunked=1] (N bytes, with or without
 * Content-Length), /close (connection dropped mid-body). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <uv.h>

#include "http.h"
#include "test_common.h"

/* ------------------------------------------------------------------------ */
/* The server                                                               */

enum { MAX_PARKED = 1024 };

typedef struct srv_req {
    char *body;
    size_t len;
    bool parked;   /* suspended once already: this call is the resumed one */
} srv_req;

typedef struct parked {
    struct MHD_Connection *conn;
    uint64_t due_ns;   /* 0: /hang, resumed only at shutdown */
} parked;

static struct {
    struct MHD_Daemon *daemon;
    uint16_t port;
    pthread_mutex_t mu;
    parked list[MAX_PARKED];
    size_t n_parked;
    pthread_t waker;
    atomic_bool stop;
    atomic_int connections;   /* accepted since start */
} srv = {.mu = PTHREAD_MUTEX_INITIALIZER};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, const char *body,
                               size_t len, const char *retry_after)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    if (retry_after)
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, retry_after);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result respond_callback(struct MHD_Connection *c, uint64_t size,
                                        MHD_ContentReaderCallback reader, size_t n)
{
    struct MHD_Response *r = MHD_create_response_from_callback(size, 4096, reader, (void *)(uintptr_t)n, NULL);
    if (!r)
        return MHD_NO;
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static const char *header(struct MHD_Connection *c, const char *name)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    return v ? v : "";
}

static long query_long(struct MHD_Connection *c, const char *name)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
    return v ? atol(v) : 0;
}

static enum MHD_Result route_ok(struct MHD_Connection *c, const char *method, const srv_req *st)
{
    size_t cap = st->len + 512;
    char *json = malloc(cap);
    if (!json)
        return MHD_NO;
    int n = snprintf(json, cap, "{\"method\":\"%s\",\"client_id\":\"%s\",\"expect\":\"%s\",\"body\":\"%.*s\"}",
                     method, header(c, "X-Client-Id"), header(c, "Expect"), (int)st->len,
                     st->body ? st->body : "");
    enum MHD_Result ret = respond(c, MHD_HTTP_OK, json, (size_t)n, NULL);
    free(json);
    return ret;
}

static enum MHD_Result route_status(struct MHD_Connection *c, const char *url)
{
    unsigned status = (unsigned)atoi(url + strlen("/status/"));
    return respond(c, status, "{}", 2, status == 429 ? "7" : NULL);
}

/* Suspends the connection; the waker (or shutdown) resumes it and MHD then
 * calls the handler again. Suspend first, then publish, both under the lock,
 * so a resume can never precede its suspend. */
static enum MHD_Result park(struct MHD_Connection *c, srv_req *st, uint64_t due_ns)
{
    pthread_mutex_lock(&srv.mu);
    if (srv.n_parked == MAX_PARKED) {
        pthread_mutex_unlock(&srv.mu);
        return MHD_NO;
    }
    MHD_suspend_connection(c);
    srv.list[srv.n_parked++] = (parked){.conn = c, .due_ns = due_ns};
    st->parked = true;
    pthread_mutex_unlock(&srv.mu);
    return MHD_YES;
}

static ssize_t read_x(void *cls, uint64_t pos, char *buf, size_t max)
{
    uint64_t n = (uint64_t)(uintptr_t)cls;
    if (pos >= n)
        return MHD_CONTENT_READER_END_OF_STREAM;
    size_t k = n - pos < max ? (size_t)(n - pos) : max;
    memset(buf, 'x', k);
    return (ssize_t)k;
}

/* Announces 50000 bytes (under every test's cap), sends 1000, then makes MHD
 * drop the connection. */
static ssize_t read_then_fail(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls;
    if (pos >= 1000)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t k = max < 1000 ? max : 1000;
    memset(buf, 'y', k);
    return (ssize_t)k;
}

static enum MHD_Result route(struct MHD_Connection *c, const char *url, const char *method, srv_req *st)
{
    if (strcmp(url, "/ok") == 0)
        return route_ok(c, method, st);
    if (strncmp(url, "/status/", 8) == 0)
        return route_status(c, url);
    if (strcmp(url, "/slow") == 0 || strcmp(url, "/hang") == 0) {
        if (st->parked)
            return respond(c, MHD_HTTP_OK, "late", 4, NULL);
        bool hang = url[1] == 'h';
        return park(c, st, hang ? 0 : now_ns() + (uint64_t)query_long(c, "ms") * 1000000u);
    }
    if (strcmp(url, "/big") == 0) {
        size_t n = (size_t)query_long(c, "n");
        return respond_callback(c, query_long(c, "chunked") ? MHD_SIZE_UNKNOWN : n, read_x, n);
    }
    if (strcmp(url, "/close") == 0)
        return respond_callback(c, 50000, read_then_fail, 0);
    return respond(c, MHD_HTTP_NOT_FOUND, "{}", 2, NULL);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)version;
    srv_req *st = *con_cls;
    if (!st) {   /* headers only: set up state, answer later */
        st = calloc(1, sizeof *st);
        *con_cls = st;
        return st ? MHD_YES : MHD_NO;
    }
    if (*upload_size > 0) {
        char *b = realloc(st->body, st->len + *upload_size);
        if (!b)
            return MHD_NO;
        memcpy(b + st->len, upload, *upload_size);
        st->body = b;
        st->len += *upload_size;
        *upload_size = 0;
        return MHD_YES;
    }
    return route(c, url, method, st);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    srv_req *st = *con_cls;
    if (st)
        free(st->body);
    free(st);
    *con_cls = NULL;
}

static void notify_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                              enum MHD_ConnectionNotificationCode toe)
{
    (void)cls;
    (void)c;
    (void)socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED)
        atomic_fetch_add(&srv.connections, 1);
}

/* Resumes every entry that is due (all of them, hangs included, when
 * everything is true). Caller holds srv.mu. */
static void resume_due(uint64_t now, bool everything)
{
    size_t i = 0;
    while (i < srv.n_parked) {
        parked *p = &srv.list[i];
        if (!everything && (p->due_ns == 0 || p->due_ns > now)) {
            i++;
            continue;
        }
        MHD_resume_connection(p->conn);
        *p = srv.list[--srv.n_parked];
    }
}

static void *waker_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&srv.stop)) {
        pthread_mutex_lock(&srv.mu);
        resume_due(now_ns(), false);
        pthread_mutex_unlock(&srv.mu);
        usleep(1000);
    }
    return NULL;
}

static int server_start(void **state)
{
    (void)state;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    srv.daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL,
        NULL, handler, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_NOTIFY_COMPLETED,
        completed, NULL, MHD_OPTION_NOTIFY_CONNECTION, notify_connection, NULL, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)2000, MHD_OPTION_END);
    if (!srv.daemon)
        return -1;
    srv.port = MHD_get_daemon_info(srv.daemon, MHD_DAEMON_INFO_BIND_PORT)->port;
    if (pthread_create(&srv.waker, NULL, waker_main, NULL) != 0)
        return -1;
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

/* MHD must not be stopped with connections still suspended. */
static int server_stop(void **state)
{
    (void)state;
    atomic_store(&srv.stop, true);
    pthread_join(srv.waker, NULL);
    pthread_mutex_lock(&srv.mu);
    resume_due(0, true);
    pthread_mutex_unlock(&srv.mu);
    MHD_stop_daemon(srv.daemon);
    curl_global_cleanup();
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Client-side helpers                                                      */

typedef struct capture {
    int calls;
    http_error error;
    long status;
    long retry_after_s;
    uint64_t duration_ms;
    char body[8192];
    size_t body_len;
    size_t body_strlen;
    bool body_terminated;
    char detail[128];
} capture;

static void on_capture(const http_result *res, void *ud)
{
    capture *cap = ud;
    cap->calls++;
    cap->error = res->error;
    cap->status = res->status;
    cap->retry_after_s = res->retry_after_s;
    cap->duration_ms = res->duration_ms;
    cap->body_len = res->body_len;
    cap->body_terminated = res->body && res->body[res->body_len] == '\0';
    cap->body_strlen = res->body ? strlen(res->body) : 0;
    snprintf(cap->body, sizeof cap->body, "%s", res->body ? res->body : "(null)");
    snprintf(cap->detail, sizeof cap->detail, "%s", res->detail ? res->detail : "(null)");
}

static const http_options default_opt = {
    .connect_timeout_ms = 1000,
    .timeout_ms = 3000,
    .max_body_bytes = 64 * 1024,
    .max_connections = 16,
};

typedef struct fixture {
    uv_loop_t loop;
    http_client *client;
} fixture;

static void fixture_open(fixture *f, const http_options *opt)
{
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->client = http_client_new(&f->loop, opt ? opt : &default_opt);
    assert_non_null(f->client);
}

/* Frees the client (if the test has not), drains the loop and checks that
 * every handle was closed. */
static void fixture_close(fixture *f)
{
    http_client_free(f->client);
    f->client = NULL;
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static char *url_of(char *buf, size_t len, const char *path)
{
    snprintf(buf, len, "http://127.0.0.1:%u%s", (unsigned)srv.port, path);
    return buf;
}

static void submit(fixture *f, const char *method, const char *path, const http_headers *h, const char *body,
                   http_done_fn *done, void *ud)
{
    char url[256];
    http_request_spec spec = {
        .method = method,
        .url = url_of(url, sizeof url, path),
        .headers = h,
        .body = body,
        .body_len = body ? strlen(body) : 0,
    };
    assert_int_equal(http_submit(f->client, &spec, done, ud), 0);
}

static void run_until(fixture *f, const int *counter, int target)
{
    while (*counter < target)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static void fetch(fixture *f, const char *method, const char *path, const http_headers *h, const char *body,
                  capture *cap)
{
    memset(cap, 0, sizeof *cap);
    submit(f, method, path, h, body, on_capture, cap);
    run_until(f, &cap->calls, 1);
    assert_int_equal(cap->calls, 1);
    assert_true(cap->body_terminated);
}

static uint16_t unused_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                    */

static void test_get_and_post_round_trip(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, NULL);
    const char *lines[] = {"X-Client-Id: abc-123", "Accept: application/json"};
    http_headers *h = http_headers_new(lines, 2);
    assert_non_null(h);
    capture cap;

    fetch(&f, "GET", "/ok", h, NULL, &cap);
    assert_int_equal(cap.error, HTTP_OK);
    assert_int_equal(cap.status, 200);
    assert_string_equal(cap.body, "{\"method\":\"GET\",\"client_id\":\"abc-123\",\"expect\":\"\",\"body\":\"\"}");
    assert_int_equal(cap.body_len, cap.body_strlen);
    assert_int_equal(cap.retry_after_s, 0);
    assert_string_equal(cap.detail, "");

    fetch(&f, "POST", "/ok", h, "{\"n\":1}", &cap);
    assert_int_equal(cap.status, 200);
    assert_string_equal(cap.body,
                        "{\"method\":\"POST\",\"client_id\":\"abc-123\",\"expect\":\"\",\"body\":\"{\"n\":1}\"}");

    /* The same pooled handle goes back to GET after a POST. */
    fetch(&f, "GET", "/ok", NULL, NULL, &cap);
    assert_string_equal(cap.body, "{\"method\":\"GET\",\"client_id\":\"\",\"expect\":\"\",\"body\":\"\"}");

    /* Empty POST: Content-Length 0, nothing read from stdin. */
    fetch(&f, "POST", "/ok", NULL, NULL, &cap);
    assert_string_equal(cap.body, "{\"method\":\"POST\",\"client_id\":\"\",\"expect\":\"\",\"body\":\"\"}");

    http_headers_unref(h);
    fixture_close(&f);
}

/* curl would add "Expect: 100-continue" to a large POST and wait for the
 * interim answer; the header sets suppress it. */
static void test_large_post_sends_no_expect(void **state)
{
    (void)state;
    http_options opt = default_opt;
    opt.max_body_bytes = 4u << 20;
    fixture f;
    fixture_open(&f, &opt);
    size_t n = (size_t)(1.5 * 1024 * 1024);
    char *body = malloc(n + 1);
    assert_non_null(body);
    memset(body, 'b', n);
    body[n] = '\0';
    static capture cap;   /* the echo is bigger than capture.body: check the prefix */
    fetch(&f, "POST", "/ok", NULL, body, &cap);
    assert_int_equal(cap.status, 200);
    assert_true(cap.body_len > n);
    const char *prefix = "{\"method\":\"POST\",\"client_id\":\"\",\"expect\":\"\",\"body\":\"bbb";
    assert_memory_equal(cap.body, prefix, strlen(prefix));
    free(body);
    fixture_close(&f);
}

static void test_retry_after_and_status(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, NULL);
    capture cap;
    fetch(&f, "GET", "/status/429", NULL, NULL, &cap);
    assert_int_equal(cap.error, HTTP_OK);
    assert_int_equal(cap.status, 429);
    assert_int_equal(cap.retry_after_s, 7);
    assert_string_equal(cap.body, "{}");

    /* Same pooled handle: the previous Retry-After must not leak through. */
    fetch(&f, "GET", "/status/503", NULL, NULL, &cap);
    assert_int_equal(cap.error, HTTP_OK);
    assert_int_equal(cap.status, 503);
    assert_int_equal(cap.retry_after_s, 0);

    fetch(&f, "GET", "/status/404", NULL, NULL, &cap);
    assert_int_equal(cap.status, 404);
    fixture_close(&f);
}

static void on_tick(uv_timer_t *t)
{
    (*(int *)t->data)++;
}

static void on_tick_closed(uv_handle_t *h)
{
    (void)h;
}

static void test_timeout_does_not_stall_loop(void **state)
{
    (void)state;
    http_options opt = default_opt;
    opt.timeout_ms = 300;
    fixture f;
    fixture_open(&f, &opt);
    int ticks = 0;
    uv_timer_t tick;
    uv_timer_init(&f.loop, &tick);
    tick.data = &ticks;
    uv_timer_start(&tick, on_tick, 10, 10);

    capture cap = {0};
    uint64_t t0 = now_ns();
    submit(&f, "GET", "/hang", NULL, NULL, on_capture, &cap);
    run_until(&f, &cap.calls, 1);
    uint64_t ms = (now_ns() - t0) / 1000000u;

    assert_int_equal(cap.calls, 1);
    assert_int_equal(cap.error, HTTP_ERR_TIMEOUT);
    assert_int_equal(cap.status, 0);
    assert_true(ms >= 290 && ms < 1000);
    assert_true(cap.duration_ms >= 290 && cap.duration_ms < 1000);
    assert_true(strncmp(cap.detail, "timeout after ", 14) == 0);
    assert_true(ticks >= 15);   /* ~30 expected: the loop kept turning */

    uv_close((uv_handle_t *)&tick, on_tick_closed);
    fixture_close(&f);
}

static void test_connection_refused(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, NULL);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/ok", (unsigned)unused_port());
    capture cap = {0};
    http_request_spec spec = {.method = "GET", .url = url};
    assert_int_equal(http_submit(f.client, &spec, on_capture, &cap), 0);
    run_until(&f, &cap.calls, 1);
    assert_int_equal(cap.error, HTTP_ERR_CONNECT);
    assert_int_equal(cap.status, 0);
    assert_string_equal(cap.detail, "connection refused");
    assert_string_equal(cap.body, "");
    fixture_close(&f);
}

static void test_body_too_large(void **state)
{
    (void)state;
    http_options opt = default_opt;
    opt.max_body_bytes = 10000;
    fixture f;
    fixture_open(&f, &opt);
    capture cap;

    fetch(&f, "GET", "/big?n=10000", NULL, NULL, &cap);   /* exactly the cap */
    assert_int_equal(cap.error, HTTP_OK);
    assert_int_equal(cap.body_len, 10000);
    assert_int_equal(cap.body_strlen, 10000);

    fetch(&f, "GET", "/big?n=10001", NULL, NULL, &cap);   /* Content-Length: MAXFILESIZE */
    assert_int_equal(cap.error, HTTP_ERR_TOO_LARGE);
    assert_string_equal(cap.detail, "body over 10000 bytes");
    assert_string_equal(cap.body, "");

    fetch(&f, "GET", "/big?n=300000&chunked=1", NULL, NULL, &cap);   /* chunked: write callback */
    assert_int_equal(cap.error, HTTP_ERR_TOO_LARGE);
    assert_int_equal(cap.status, 0);

    fetch(&f, "GET", "/big?n=9000&chunked=1", NULL, NULL, &cap);
    assert_int_equal(cap.error, HTTP_OK);
    assert_int_equal(cap.body_len, 9000);
    fixture_close(&f);
}

static void test_closed_mid_body(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, NULL);
    capture cap;
    fetch(&f, "GET", "/close", NULL, NULL, &cap);
    assert_int_equal(cap.error, HTTP_ERR_CLOSED);   /* 7.88.1: CURLE_PARTIAL_FILE */
    assert_string_equal(cap.detail, "connection closed mid-body");
    assert_string_equal(cap.body, "");

    fetch(&f, "GET", "/ok", NULL, NULL, &cap);   /* the client recovers */
    assert_int_equal(cap.status, 200);
    fixture_close(&f);
}

static void test_concurrent_slow(void **state)
{
    (void)state;
    http_options opt = default_opt;
    opt.max_connections = 256;
    fixture f;
    fixture_open(&f, &opt);
    enum { N = 200 };
    static capture caps[N];
    memset(caps, 0, sizeof caps);
    int done = 0;
    uint64_t t0 = now_ns();
    for (int i = 0; i < N; i++)
        submit(&f, "GET", "/slow?ms=200", NULL, NULL, on_capture, &caps[i]);
    assert_int_equal(http_inflight(f.client), N);
    while (done < N) {
        uv_run(&f.loop, UV_RUN_ONCE);
        done = 0;
        for (int i = 0; i < N; i++)
            done += caps[i].calls;
    }
    uint64_t ms = (now_ns() - t0) / 1000000u;
    for (int i = 0; i < N; i++) {
        assert_int_equal(caps[i].calls, 1);
        assert_int_equal(caps[i].status, 200);
        assert_string_equal(caps[i].body, "late");
    }
    assert_int_equal(http_inflight(f.client), 0);
    assert_true(ms >= 190 && ms < 1500);
    fixture_close(&f);
}

/* More requests than connections: the rest wait inside curl for a free
 * connection instead of opening more. */
static void test_queue_beyond_max_connections(void **state)
{
    (void)state;
    http_options opt = default_opt;
    opt.max_connections = 4;
    fixture f;
    fixture_open(&f, &opt);
    enum { N = 20 };
    static capture caps[N];
    memset(caps, 0, sizeof caps);
    int before = atomic_load(&srv.connections);
    for (int i = 0; i < N; i++)
        submit(&f, "GET", "/slow?ms=30", NULL, NULL, on_capture, &caps[i]);
    for (int i = 0; i < N; i++)
        run_until(&f, &caps[i].calls, 1);
    for (int i = 0; i < N; i++)
        assert_int_equal(caps[i].status, 200);
    int opened = atomic_load(&srv.connections) - before;
    assert_true(opened >= 1 && opened <= 4);
    fixture_close(&f);
}

/* Chains requests: each callback submits the next one. */
typedef struct chain {
    fixture *f;
    int left;
    int ok;
    int completed;
} chain;

static void on_chain(const http_result *res, void *ud)
{
    chain *ch = ud;
    ch->completed++;
    ch->ok += res->error == HTTP_OK && res->status == 200;
    if (--ch->left > 0)
        submit(ch->f, "GET", "/ok", NULL, NULL, on_chain, ch);
}

static void test_keep_alive_reuses_connections(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, NULL);
    int before = atomic_load(&srv.connections);
    chain ch = {.f = &f, .left = 500};
    submit(&f, "GET", "/ok", NULL, NULL, on_chain, &ch);
    run_until(&f, &ch.completed, 500);
    int opened = atomic_load(&srv.connections) - before;
    assert_int_equal(ch.ok, 500);
    assert_true(opened >= 1 && opened <= 3);
    fixture_close(&f);
}

static void test_escape_segment(void **state)
{
    (void)state;
    char out[64];
    const char *s = "a b/c?d#\xc3\xa9";
    assert_int_equal(http_escape_segment(s, strlen(s), out, sizeof out), 22);
    assert_string_equal(out, "a%20b%2Fc%3Fd%23%C3%A9");

    const char *keep = "AZaz09-._~";
    assert_int_equal(http_escape_segment(keep, strlen(keep), out, sizeof out), 10);
    assert_string_equal(out, keep);

    assert_int_equal(http_escape_segment("a\0b", 3, out, sizeof out), 5);   /* length, not strlen */
    assert_string_equal(out, "a%00b");
    /* dot-segments would be folded into the path: their dots are escaped */
    assert_int_equal(http_escape_segment(".", 1, out, sizeof out), 3);
    assert_string_equal(out, "%2E");
    assert_int_equal(http_escape_segment("..", 2, out, sizeof out), 6);
    assert_string_equal(out, "%2E%2E");
    assert_int_equal(http_escape_segment("...", 3, out, sizeof out), 3);
    assert_string_equal(out, "...");

    assert_int_equal(http_escape_segment("", 0, out, sizeof out), 0);
    assert_string_equal(out, "");

    /* Exactly enough room (22 + NUL), one byte short, and no room at all. */
    assert_int_equal(http_escape_segment(s, strlen(s), out, 23), 22);
    assert_int_equal(http_escape_segment(s, strlen(s), out, 22), -1);
    assert_int_equal(http_escape_segment("abc", 3, out, 3), -1);
    assert_int_equal(http_escape_segment("", 0, out, 0), -1);
}

static void test_headers_unref_in_flight(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, NULL);
    const char *lines[] = {"X-Client-Id: dropped-early"};
    http_headers *h = http_headers_new(lines, 1);
    assert_non_null(h);
    capture cap = {0};
    submit(&f, "GET", "/slow?ms=50", h, NULL, on_capture, &cap);
    http_headers_unref(h);   /* the request's reference keeps the list alive */
    run_until(&f, &cap.calls, 1);
    assert_int_equal(cap.status, 200);

    memset(&cap, 0, sizeof cap);
    h = http_headers_new(lines, 1);
    submit(&f, "GET", "/ok", h, NULL, on_capture, &cap);
    http_headers_unref(h);
    run_until(&f, &cap.calls, 1);
    assert_string_equal(cap.body, "{\"method\":\"GET\",\"client_id\":\"dropped-early\",\"expect\":\"\",\"body\":\"\"}");

    const char *bad[] = {"X-A: 1\r\nX-Injected: 1"};
    assert_null(http_headers_new(bad, 1));
    assert_null(http_headers_new(NULL, 1));
    http_headers_unref(NULL);
    fixture_close(&f);
}

static void test_submit_rejects_bad_specs(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, NULL);
    capture cap = {0};
    char url[128];
    url_of(url, sizeof url, "/ok");
    http_request_spec put = {.method = "PUT", .url = url};
    http_request_spec get_body = {.method = "GET", .url = url, .body = "x", .body_len = 1};
    http_request_spec no_url = {.method = "GET"};
    assert_int_equal(http_submit(f.client, &put, on_capture, &cap), -1);
    assert_int_equal(http_submit(f.client, &get_body, on_capture, &cap), -1);
    assert_int_equal(http_submit(f.client, &no_url, on_capture, &cap), -1);
    assert_int_equal(http_submit(f.client, &put, NULL, &cap), -1);
    assert_int_equal(http_submit(NULL, &put, on_capture, &cap), -1);
    assert_int_equal(http_inflight(f.client), 0);

    /* A URL curl cannot parse is accepted, then fails on a later turn. */
    http_request_spec weird = {.method = "GET", .url = "nope://x"};
    assert_int_equal(http_submit(f.client, &weird, on_capture, &cap), 0);
    assert_int_equal(cap.calls, 0);   /* never synchronously */
    run_until(&f, &cap.calls, 1);
    assert_int_equal(cap.error, HTTP_ERR_OTHER);
    assert_int_equal(cap.calls, 1);

    http_options bad = default_opt;
    bad.max_connections = 0;
    assert_null(http_client_new(&f.loop, &bad));
    assert_null(http_client_new(&f.loop, NULL));
    http_client_free(NULL);
    fixture_close(&f);
}

static void test_callback_submits(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, NULL);
    chain ch = {.f = &f, .left = 3};
    submit(&f, "POST", "/ok", NULL, "first", on_chain, &ch);
    run_until(&f, &ch.completed, 3);
    assert_int_equal(ch.ok, 3);
    assert_int_equal(http_inflight(f.client), 0);
    fixture_close(&f);
}

/* Counts aborts, and checks that submitting during an abort is refused. */
typedef struct abort_count {
    fixture *f;
    int calls;
    int aborted;
    int refused;
} abort_count;

static void on_abort_count(const http_result *res, void *ud)
{
    abort_count *a = ud;
    a->calls++;
    a->aborted += res->error == HTTP_ERR_ABORTED;
    char url[128];
    http_request_spec spec = {.method = "GET", .url = url_of(url, sizeof url, "/ok")};
    a->refused += http_submit(a->f->client, &spec, on_capture, NULL) == -1;
}

static void on_free_later(uv_timer_t *t)
{
    fixture *f = t->data;
    http_client_free(f->client);
    f->client = NULL;
    uv_close((uv_handle_t *)t, on_tick_closed);
}

static void test_free_with_requests_in_flight(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, NULL);
    enum { N = 20 };
    static abort_count counts[N];
    memset(counts, 0, sizeof counts);
    for (int i = 0; i < N; i++) {
        counts[i].f = &f;
        submit(&f, "GET", i % 2 ? "/hang" : "/slow?ms=5000", NULL, NULL, on_abort_count, &counts[i]);
    }
    /* Let the requests reach the server, then free from a timer. */
    uv_timer_t later;
    uv_timer_init(&f.loop, &later);
    later.data = &f;
    uv_timer_start(&later, on_free_later, 100, 0);
    assert_int_equal(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(counts[i].calls, 1);
        assert_int_equal(counts[i].aborted, 1);
        assert_int_equal(counts[i].refused, 1);
    }
    assert_null(f.client);
    assert_int_equal(uv_loop_close(&f.loop), 0);
}

/* The first answer frees the client from inside its own callback. */
typedef struct free_inside {
    fixture *f;
    int calls;
} free_inside;

static void on_free_inside(const http_result *res, void *ud)
{
    free_inside *fi = ud;
    fi->calls++;
    assert_int_equal(res->status, 200);
    http_client_free(fi->f->client);
    http_client_free(fi->f->client);   /* a second call while closing is a no-op */
}

static void test_free_from_callback(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, NULL);
    enum { N = 5 };
    abort_count counts[N];
    memset(counts, 0, sizeof counts);
    for (int i = 0; i < N; i++) {
        counts[i].f = &f;
        submit(&f, "GET", "/slow?ms=3000", NULL, NULL, on_abort_count, &counts[i]);
    }
    free_inside fi = {.f = &f};
    submit(&f, "GET", "/ok", NULL, NULL, on_free_inside, &fi);
    assert_int_equal(uv_run(&f.loop, UV_RUN_DEFAULT), 0);   /* returns once freed */
    assert_int_equal(fi.calls, 1);
    for (int i = 0; i < N; i++) {
        assert_int_equal(counts[i].calls, 1);
        assert_int_equal(counts[i].aborted, 1);
    }
    assert_int_equal(uv_loop_close(&f.loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_and_post_round_trip),
        cmocka_unit_test(test_large_post_sends_no_expect),
        cmocka_unit_test(test_retry_after_and_status),
        cmocka_unit_test(test_timeout_does_not_stall_loop),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_body_too_large),
        cmocka_unit_test(test_closed_mid_body),
        cmocka_unit_test(test_concurrent_slow),
        cmocka_unit_test(test_queue_beyond_max_connections),
        cmocka_unit_test(test_keep_alive_reuses_connections),
        cmocka_unit_test(test_escape_segment),
        cmocka_unit_test(test_headers_unref_in_flight),
        cmocka_unit_test(test_submit_rejects_bad_specs),
        cmocka_unit_test(test_callback_submits),
        cmocka_unit_test(test_free_with_requests_in_flight),
        cmocka_unit_test(test_free_from_callback),
    };
    return cmocka_run_group_tests(tests, server_start, server_stop);
}
