/* Unit tests for metrics.c: the exposition builder's exact text, and the
 * HTTP endpoint over real TCP to itself on one loop (routing, HEAD, 404,
 * 405, 400, 431, a request fed byte by byte, a silent client that must not
 * block anyone, the connection cap, bind errors, unref + close). Every
 * server case ends by closing the loop, which fails if a handle leaked. */
#include "test_common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "metrics.h"

/* ---- the builder ---------------------------------------------------------- */

static void test_family_and_samples(void **state)
{
    (void)state;
    mx_buf b;
    mx_buf_init(&b);
    mx_family(&b, "x_total", MX_COUNTER, "Things.\nWith a \\ newline.");
    mx_label l[] = { { "kind", "a\"b\\c\nd" }, { "class", "2xx" } };
    mx_sample_u64(&b, "x_total", l, 2, 18446744073709551615ULL);
    mx_sample_u64(&b, "x_total", NULL, 0, 0);
    mx_family(&b, "y", MX_GAUGE, "Y.");
    mx_sample(&b, "y", NULL, 0, 0.1);
    mx_sample(&b, "y", l + 1, 1, 1.0 / 0.0);
    mx_sample(&b, "y", NULL, 0, 1e21);
    assert_false(b.failed);
    assert_string_equal(b.data,
                        "# HELP x_total Things.\\nWith a \\\\ newline.\n"
                        "# TYPE x_total counter\n"
                        "x_total{kind=\"a\\\"b\\\\c\\nd\",class=\"2xx\"} 18446744073709551615\n"
                        "x_total 0\n"
                        "# HELP y Y.\n# TYPE y gauge\n"
                        "y 0.1\n"
                        "y{class=\"2xx\"} +Inf\n"
                        "y 1e+21\n");
    mx_buf_free(&b);
}

static void test_histogram(void **state)
{
    (void)state;
    mx_buf b;
    mx_buf_init(&b);
    const double bounds[] = { 0.005, 0.25, 1 };
    const uint64_t counts[] = { 1, 2, 0, 4 };
    mx_label l[] = { { "endpoint", "sync" } };
    mx_histogram(&b, "d_seconds", l, 1, bounds, 3, counts, 12.5);
    mx_histogram(&b, "e_seconds", NULL, 0, bounds, 0, counts, 0);
    assert_string_equal(b.data,
                        "d_seconds_bucket{endpoint=\"sync\",le=\"0.005\"} 1\n"
                        "d_seconds_bucket{endpoint=\"sync\",le=\"0.25\"} 3\n"
                        "d_seconds_bucket{endpoint=\"sync\",le=\"1\"} 3\n"
                        "d_seconds_bucket{endpoint=\"sync\",le=\"+Inf\"} 7\n"
                        "d_seconds_sum{endpoint=\"sync\"} 12.5\n"
                        "d_seconds_count{endpoint=\"sync\"} 7\n"
                        "e_seconds_bucket{le=\"+Inf\"} 1\n"
                        "e_seconds_sum 0\n"
                        "e_seconds_count 1\n");
    mx_buf_free(&b);
}

static void test_buf_grows(void **state)
{
    (void)state;
    mx_buf b;
    mx_buf_init(&b);
    for (int i = 0; i < 10000; i++)
        mx_buf_printf(&b, "%05d,", i);
    assert_int_equal(b.len, 60000);
    assert_memory_equal(b.data + 59994, "09999,", 6);
    mx_buf_free(&b);
    assert_null(b.data);
}

/* ---- the server, driven by clients on the same loop --------------------------- */

static uv_loop_t loop;
static int handled;

static void handler(void *ud, const char *path, mx_reply *reply)
{
    (void)ud;
    handled++;
    if (strcmp(path, "/metrics") == 0) {
        reply->status = 200;
        reply->content_type = MX_CONTENT_TYPE;
        mx_family(&reply->body, "t_total", MX_COUNTER, "T.");
        mx_sample_u64(&reply->body, "t_total", NULL, 0, 42);
    } else if (strcmp(path, "/healthz") == 0) {
        reply->status = 503;
        mx_buf_puts(&reply->body, "redis: down\n");
    }
}

typedef struct client {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    const char *req;
    size_t req_len, sent;
    int byte_by_byte;
    int silent;          /* connects, sends nothing */
    mx_buf resp;
    int eof, closed;
} client;

static void on_client_closed(uv_handle_t *h)
{
    client *c = h->data;
    c->closed = 1;
}

static void send_next(client *c);

static void on_client_written(uv_write_t *req, int status)
{
    client *c = req->data;
    if (status == 0 && c->sent < c->req_len)
        send_next(c);
}

static void send_next(client *c)
{
    size_t n = c->byte_by_byte ? 1 : c->req_len - c->sent;
    uv_buf_t buf = uv_buf_init((char *)c->req + c->sent, (unsigned)n);
    c->sent += n;
    c->write.data = c;
    assert_int_equal(uv_write(&c->write, (uv_stream_t *)&c->tcp, &buf, 1, on_client_written), 0);
}

static void on_client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    static char space[65536];
    (void)suggested;
    *buf = uv_buf_init(space, sizeof space);
}

static void on_client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    client *c = s->data;
    if (nread > 0) {
        mx_buf_append(&c->resp, buf->base, (size_t)nread);
        return;
    }
    if (nread < 0) {
        c->eof = 1;
        uv_close((uv_handle_t *)&c->tcp, on_client_closed);
    }
}

static void on_client_connected(uv_connect_t *req, int status)
{
    client *c = req->data;
    assert_int_equal(status, 0);
    uv_read_start((uv_stream_t *)&c->tcp, on_client_alloc, on_client_read);
    if (!c->silent)
        send_next(c);
}

static void client_start(client *c, int port, const char *req)
{
    memset(c, 0, sizeof *c);
    c->req = req;
    c->req_len = req ? strlen(req) : 0;
    c->silent = req == NULL;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", port, &a);
    uv_tcp_init(&loop, &c->tcp);
    c->tcp.data = c->connect.data = c;
    assert_int_equal(uv_tcp_connect(&c->connect, &c->tcp, (struct sockaddr *)&a, on_client_connected), 0);
}

static void client_hangup(client *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_client_closed);
}

static mx_server *start_server(void)
{
    char err[MX_ERR_LEN];
    cfg_hostport addr = { .host = "127.0.0.1", .port = 0 };
    assert_int_equal(uv_loop_init(&loop), 0);
    handled = 0;
    mx_server *s = mx_listen(&loop, &addr, handler, NULL, err, sizeof err);
    assert_non_null(s);
    assert_true(mx_port(s) > 0);
    mx_unref(s);   /* uv_run returns once the clients are done */
    return s;
}

static void finish_server(mx_server *s)
{
    mx_close(s);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void assert_response(const client *c, const char *status_line, const char *body)
{
    assert_true(c->eof);
    assert_non_null(c->resp.data);
    assert_memory_equal(c->resp.data, status_line, strlen(status_line));
    const char *sep = strstr(c->resp.data, "\r\n\r\n");
    assert_non_null(sep);
    assert_string_equal(sep + 4, body);
    char cl[64];
    snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", strlen(body));
    assert_non_null(strstr(c->resp.data, cl));
    assert_non_null(strstr(c->resp.data, "Connection: close\r\n"));
}

static void test_routes(void **state)
{
    (void)state;
    mx_server *s = start_server();
    int port = mx_port(s);
    client c[6];
    client_start(&c[0], port, "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n");
    client_start(&c[1], port, "GET /healthz?verbose=1 HTTP/1.0\r\n\r\n");
    client_start(&c[2], port, "GET /nope HTTP/1.1\r\n\r\n");
    client_start(&c[3], port, "POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
    client_start(&c[4], port, "\r\nHEAD /metrics HTTP/1.1\n\n");
    client_start(&c[5], port, "garbage\r\n\r\n");
    uv_run(&loop, UV_RUN_DEFAULT);

    const char *metrics = "# HELP t_total T.\n# TYPE t_total counter\nt_total 42\n";
    assert_response(&c[0], "HTTP/1.1 200 OK\r\n", metrics);
    assert_non_null(strstr(c[0].resp.data, "Content-Type: " MX_CONTENT_TYPE "\r\n"));
    assert_response(&c[1], "HTTP/1.1 503 ", "redis: down\n");
    assert_response(&c[2], "HTTP/1.1 404 ", "not found\n");
    assert_response(&c[3], "HTTP/1.1 405 ", "only GET and HEAD\n");
    assert_non_null(strstr(c[3].resp.data, "Allow: GET, HEAD\r\n"));
    assert_non_null(strstr(c[4].resp.data, "HTTP/1.1 200 OK\r\n"));
    char cl[64];
    snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", strlen(metrics));
    assert_non_null(strstr(c[4].resp.data, cl));
    assert_string_equal(strstr(c[4].resp.data, "\r\n\r\n") + 4, "");   /* HEAD: no body */
    assert_response(&c[5], "HTTP/1.1 400 ", "bad request\n");
    assert_int_equal(handled, 4);
    for (int i = 0; i < 6; i++)
        mx_buf_free(&c[i].resp);
    finish_server(s);
}

static void test_byte_by_byte_and_oversized(void **state)
{
    (void)state;
    mx_server *s = start_server();
    client slow, big;
    client_start(&slow, mx_port(s), "GET /metrics HTTP/1.1\r\nUser-Agent: trickle\r\n\r\n");
    slow.byte_by_byte = 1;
    char *huge = malloc(9001);
    memcpy(huge, "GET /metrics HTTP/1.1\r\nX: ", 26);
    memset(huge + 26, 'a', 9000 - 26);
    huge[9000] = '\0';
    client_start(&big, mx_port(s), huge);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_response(&slow, "HTTP/1.1 200 OK\r\n", "# HELP t_total T.\n# TYPE t_total counter\nt_total 42\n");
    assert_response(&big, "HTTP/1.1 431 ", "request head too large\n");
    assert_int_equal(handled, 1);
    free(huge);
    mx_buf_free(&slow.resp);
    mx_buf_free(&big.resp);
    finish_server(s);
}

/* A client that says nothing holds a connection, but others are served;
 * mx_close drops it. */
static client *silent_one;
static void on_served_check(uv_timer_t *t)
{
    client *served = t->data;
    if (!served->closed)
        return;
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, NULL);
    assert_false(silent_one->eof);
    client_hangup(silent_one);
}

static void test_silent_client_blocks_nobody(void **state)
{
    (void)state;
    mx_server *s = start_server();
    client silent, served;
    silent_one = &silent;
    client_start(&silent, mx_port(s), NULL);
    client_start(&served, mx_port(s), "GET /metrics HTTP/1.1\r\n\r\n");
    uv_timer_t check;
    uv_timer_init(&loop, &check);
    check.data = &served;
    uv_timer_start(&check, on_served_check, 5, 5);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(served.eof);
    assert_true(silent.closed);
    assert_int_equal(handled, 1);
    mx_buf_free(&served.resp);
    mx_buf_free(&silent.resp);
    finish_server(s);
}

/* Past 64 connections at once, some are closed without a word. */
#define CROWD 70
static client crowd[CROWD];
static void on_crowd_check(uv_timer_t *t)
{
    int eofs = 0;
    for (int i = 0; i < CROWD; i++)
        eofs += crowd[i].eof;
    if (eofs < CROWD - 64)
        return;
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, NULL);
    for (int i = 0; i < CROWD; i++)
        client_hangup(&crowd[i]);
}

static void test_connection_cap(void **state)
{
    (void)state;
    mx_server *s = start_server();
    for (int i = 0; i < CROWD; i++)
        client_start(&crowd[i], mx_port(s), NULL);
    uv_timer_t check;
    uv_timer_init(&loop, &check);
    uv_timer_start(&check, on_crowd_check, 5, 5);
    uv_run(&loop, UV_RUN_DEFAULT);
    int refused = 0;
    for (int i = 0; i < CROWD; i++) {
        refused += crowd[i].eof && crowd[i].resp.len == 0;
        mx_buf_free(&crowd[i].resp);
    }
    assert_int_equal(refused, CROWD - 64);
    finish_server(s);
}

/* A probe arriving when idle sockets fill every place still gets its
 * answer: the oldest silent connection gives way. */
static client probe;
static void on_probe_check(uv_timer_t *t)
{
    if (!probe.closed)
        return;
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, NULL);
    for (int i = 0; i < CROWD; i++)
        client_hangup(&crowd[i]);
}

static void on_crowd_seated(uv_timer_t *t)
{
    client_start(&probe, *(int *)t->data, "GET /healthz HTTP/1.1\r\n\r\n");
    uv_timer_start(t, on_probe_check, 5, 5);
}

static void test_idle_crowd_does_not_block_a_probe(void **state)
{
    (void)state;
    mx_server *s = start_server();
    int port = mx_port(s);
    memset(crowd, 0, sizeof crowd);
    memset(&probe, 0, sizeof probe);
    for (int i = 0; i < CROWD; i++)
        client_start(&crowd[i], port, NULL);
    uv_timer_t seated;
    uv_timer_init(&loop, &seated);
    seated.data = &port;
    uv_timer_start(&seated, on_crowd_seated, 100, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(probe.eof);
    assert_non_null(strstr(probe.resp.data ? probe.resp.data : "", "HTTP/1.1 503"));
    assert_non_null(strstr(probe.resp.data, "redis: down"));
    mx_buf_free(&probe.resp);
    for (int i = 0; i < CROWD; i++)
        mx_buf_free(&crowd[i].resp);
    finish_server(s);
}

static void test_bind_errors(void **state)
{
    (void)state;
    char err[MX_ERR_LEN];
    assert_int_equal(uv_loop_init(&loop), 0);
    cfg_hostport addr = { .host = "127.0.0.1", .port = 0 };
    mx_server *s = mx_listen(&loop, &addr, handler, NULL, err, sizeof err);
    assert_non_null(s);
    addr.port = mx_port(s);
    assert_null(mx_listen(&loop, &addr, handler, NULL, err, sizeof err));
    assert_non_null(strstr(err, "in use"));
    cfg_hostport bad = { .host = "no-such-host.invalid", .port = 9 };
    assert_null(mx_listen(&loop, &bad, handler, NULL, err, sizeof err));
    assert_non_null(strstr(err, "cannot resolve host 'no-such-host.invalid'"));
    cfg_hostport v6 = { .host = "[::1]", .port = 0 };
    mx_server *s6 = mx_listen(&loop, &v6, handler, NULL, err, sizeof err);
    if (s6 == NULL)   /* a container without IPv6 loopback */
        assert_non_null(strstr(err, "cannot"));
    mx_close(s6);
    mx_close(s);
    mx_close(NULL);
    uv_run(&loop, UV_RUN_DEFAULT);   /* a referenced server kept the loop until closed */
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_family_and_samples),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_buf_grows),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_byte_by_byte_and_oversized),
        cmocka_unit_test(test_silent_client_blocks_nobody),
        cmocka_unit_test(test_connection_cap),
        cmocka_unit_test(test_idle_crowd_does_not_block_a_probe),
        cmocka_unit_test(test_bind_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
