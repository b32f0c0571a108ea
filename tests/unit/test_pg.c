/* Unit tests for pg.c without a PostgreSQL server: connection strings, and
 * the loop side of failing connects (refused, silent peer): one "down"
 * report however many retries, no password in reasons, no query accepted,
 * and every handle closed (uv_loop_close == 0), even when the owner closes
 * from inside its callback. The happy path runs against a real server in
 * tests/integration/test_pg_sink.py. */
#include "test_common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pg.h"

typedef struct seen {
    int up, down;
    char reason[PG_ERR_LEN];
    int close_in_callback;
    pg_conn *pg;
} seen;

static void on_state(pg_conn *pg, int connected, const char *reason, void *ud)
{
    seen *s = ud;
    (connected ? &s->up : &s->down)[0]++;
    snprintf(s->reason, sizeof s->reason, "%s", reason);
    if (s->close_in_callback) {
        pg_close(pg);
        s->pg = NULL;
    }
}

static void on_stop(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static void never_called(pg_conn *pg, const PGresult *res, void *privdata)
{
    (void)pg, (void)res, (void)privdata;
    fail();
}

/* A loopback TCP socket: listening (silent peer) or closed (refused port). */
static int loopback(int listening, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    if (listening) {
        assert_int_equal(listen(fd, 8), 0);
        return fd;
    }
    close(fd);
    return -1;
}

/* Runs a pg_conn against port for ms, then closes it and the loop. */
static void run_against(int port, uint64_t connect_timeout_ms, uint64_t ms, seen *s)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char url[256];
    snprintf(url, sizeof url, "postgresql://me:sekret-pw@127.0.0.1:%d/db", port);
    pg_options opt = { .conninfo = url, .connect_timeout_ms = connect_timeout_ms, .reconnect_min_ms = 10,
                       .reconnect_max_ms = 20, .on_state = on_state, .ud = s };
    s->pg = pg_new(&loop, &opt);
    assert_non_null(s->pg);
    assert_int_equal(pg_query(s->pg, "SELECT 1", 0, NULL, NULL, never_called, NULL), -1);
    uv_timer_t stop;
    uv_timer_init(&loop, &stop);
    uv_timer_start(&stop, on_stop, ms, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (s->pg) {
        assert_false(pg_is_connected(s->pg));
        assert_int_equal(pg_query(s->pg, "SELECT 1", 0, NULL, NULL, never_called, NULL), -1);
    }
    pg_close(s->pg);
    uv_close((uv_handle_t *)&stop, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void refused_reports_down_once(void **state)
{
    (void)state;
    int port;
    loopback(0, &port);
    seen s = { 0 };
    run_against(port, 1000, 300, &s);   /* ~10 attempts at 10-20 ms backoff */
    assert_int_equal(s.up, 0);
    assert_int_equal(s.down, 1);
    assert_non_null(strstr(s.reason, "connect failed"));
    assert_null(strstr(s.reason, "sekret"));
    assert_null(strchr(s.reason, '\n'));
}

static void silent_peer_times_out(void **state)
{
    (void)state;
    int port;
    int fd = loopback(1, &port);
    seen s = { 0 };
    run_against(port, 100, 400, &s);
    close(fd);
    assert_int_equal(s.up, 0);
    assert_int_equal(s.down, 1);
    assert_string_equal(s.reason, "connect timed out after 100 ms");
}

static void close_inside_callback(void **state)
{
    (void)state;
    int port;
    loopback(0, &port);
    seen s = { .close_in_callback = 1 };
    run_against(port, 1000, 200, &s);
    assert_int_equal(s.down, 1);
    assert_null(s.pg);
}

static void connection_strings(void **state)
{
    (void)state;
    char err[128], pw[64];
    assert_int_equal(pg_conninfo_check("postgresql://u:p@h:5432/db?sslmode=disable", err, sizeof err), 0);
    assert_int_equal(pg_conninfo_check("host=h dbname=d", err, sizeof err), 0);
    assert_int_equal(pg_conninfo_check("postgresql://u:hunter2@h/db?bogus=1", err, sizeof err), -1);
    assert_null(strstr(err, "hunter2"));
    assert_int_equal(pg_conninfo_check("postgresql://u:hunter2@[::1/db", err, sizeof err), -1);
    assert_int_equal(pg_conninfo_password("postgresql://u:hunter2@h/db", pw, sizeof pw), 0);
    assert_string_equal(pw, "hunter2");
    assert_int_equal(pg_conninfo_password("postgresql://h/db", pw, sizeof pw), 0);
    assert_string_equal(pw, "");
    assert_int_equal(pg_conninfo_password("postgresql://u:hunter2@h/db", pw, 4), -1);
    uv_loop_t loop;
    uv_loop_init(&loop);
    pg_options opt = { .conninfo = "postgresql://h/db?bogus=1" };
    assert_null(pg_new(&loop, &opt));
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(refused_reports_down_once),
        cmocka_unit_test(silent_peer_times_out),
        cmocka_unit_test(close_inside_callback),
        cmocka_unit_test(connection_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
