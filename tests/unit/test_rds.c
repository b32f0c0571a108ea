/* Unit tests for rds.c against real redis-server processes the test starts
 * and kills itself: round trips, scripts and NOSCRIPT, reconnecting after a
 * refusal, a silent server, a killed server and a command timeout, AUTH,
 * SELECT, host name resolution, and rds_close from every kind of callback.
 * Every case ends by closing the loop, which fails if a handle leaked. */
#include "test_common.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rds.h"

extern char **environ;

/* ---- redis-server processes --------------------------------------------- */

#define MAX_SERVERS 8
static pid_t servers[MAX_SERVERS];
static int main_port;

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static int listen_socket(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 64) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* A port nobody listens on (the kernel just handed it out). */
static int free_port(void)
{
    int port = 0;
    int fd = listen_socket(&port);
    assert_true(fd >= 0);
    close(fd);
    return port;
}

static int port_accepts(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static void server_forget(pid_t pid)
{
    for (int i = 0; i < MAX_SERVERS; i++)
        if (servers[i] == pid)
            servers[i] = 0;
}

static void server_stop(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    server_forget(pid);
}

/* Starts redis-server on 127.0.0.1:port and waits until it accepts. */
static pid_t server_start(int port, const char *password)
{
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    const char *argv[16] = { "redis-server", "--port", portstr, "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no",
                             "--enable-debug-command", "yes" };
    int argc = 11;
    if (password) {
        argv[argc++] = "--requirepass";
        argv[argc++] = password;
    }
    argv[argc] = NULL;

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    pid_t pid = 0;
    int rc = posix_spawnp(&pid, "redis-server", &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    assert_int_equal(rc, 0);
    for (int i = 0; i < MAX_SERVERS; i++)
        if (servers[i] == 0) {
            servers[i] = pid;
            break;
        }
    for (int i = 0; i < 500 && !port_accepts(port); i++) {
        assert_int_equal(waitpid(pid, NULL, WNOHANG), 0);
        sleep_ms(10);
    }
    assert_true(port_accepts(port));
    return pid;
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    int port = 0;
    int fd = listen_socket(&port);
    if (fd < 0)
        return -1;
    close(fd);
    main_port = port;
    server_start(main_port, NULL);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < MAX_SERVERS; i++)
        if (servers[i])
            server_stop(servers[i]);
    return 0;
}

/* ---- loop, state and reply recorders ------------------------------------ */

typedef struct t_loop {
    uv_loop_t loop;
    uv_timer_t guard;
    int expired;
} t_loop;

static void on_guard(uv_timer_t *t)
{
    ((t_loop *)t->data)->expired = 1;
}

static void t_init(t_loop *t)
{
    memset(t, 0, sizeof *t);
    assert_int_equal(uv_loop_init(&t->loop), 0);
    uv_timer_init(&t->loop, &t->guard);
    t->guard.data = t;
}

/* Runs the loop until cond holds or ms have passed. */
#define RUN_UNTIL(t, cond, ms)                                           \
    do {                                                                 \
        (t)->expired = 0;                                                \
        uv_timer_start(&(t)->guard, on_guard, (ms), 0);                  \
        while (!(cond) && !(t)->expired)                                 \
            uv_run(&(t)->loop, UV_RUN_ONCE);                             \
        uv_timer_stop(&(t)->guard);                                      \
    } while (0)

static void run_for(t_loop *t, uint64_t ms)
{
    RUN_UNTIL(t, 0, ms);
}

/* Everything must be closed by now: the loop drains and closes cleanly. */
static void t_finish(t_loop *t)
{
    uv_close((uv_handle_t *)&t->guard, NULL);
    for (int i = 0; i < 200 && uv_run(&t->loop, UV_RUN_NOWAIT); i++)
        sleep_ms(5);
    assert_int_equal(uv_loop_close(&t->loop), 0);
}

typedef struct watch {
    int ups, downs;
    char reason[256];
    int close_on_state;
} watch;

static void on_state(rds *r, int connected, const char *reason, void *ud)
{
    watch *w = ud;
    if (connected)
        w->ups++;
    else
        w->downs++;
    snprintf(w->reason, sizeof w->reason, "%s", reason);
    if (w->close_on_state)
        rds_close(r);
}

typedef struct rec {
    int calls, nulls, type;
    long long integer;
    size_t len, elements;
    char str[4096];
    char el[2][32];
    size_t ellen[2];
    rds *close_me;     /* rds_close(close_me) from inside the callback */
    int connected_in_null;   /* rds_is_connected() seen by a NULL callback */
    int send_in_null;        /* rds_command() result inside a NULL callback */
} rec;

static void copy_str(char *dst, size_t cap, const char *src, size_t len, size_t *outlen)
{
    size_t n = len < cap ? len : cap;
    memcpy(dst, src, n);
    *outlen = len;
}

static void on_rec(rds *r, redisReply *reply, void *privdata)
{
    rec *c = privdata;
    c->calls++;
    if (reply == NULL) {
        c->nulls++;
        c->connected_in_null = rds_is_connected(r);
        c->send_in_null = rds_command(r, NULL, NULL, 1, (const char *[]){ "PING" }, NULL);
    } else {
        c->type = reply->type;
        c->integer = reply->integer;
        c->elements = reply->elements;
        if (reply->str)
            copy_str(c->str, sizeof c->str - 1, reply->str, reply->len, &c->len);
        for (size_t i = 0; i < reply->elements && i < 2; i++)
            copy_str(c->el[i], sizeof c->el[i], reply->element[i]->str, reply->element[i]->len,
                     &c->ellen[i]);
    }
    if (c->close_me)
        rds_close(c->close_me);
}

static cfg_redis_url url_for(int port)
{
    cfg_redis_url u;
    memset(&u, 0, sizeof u);
    snprintf(u.host, sizeof u.host, "127.0.0.1");
    u.port = port;
    return u;
}

static rds_options opts_for(const cfg_redis_url *url, watch *w)
{
    rds_options o;
    memset(&o, 0, sizeof o);
    o.url = url;
    o.name = "test";
    o.connect_timeout_ms = 1000;
    o.reconnect_min_ms = 20;
    o.reconnect_max_ms = 100;
    o.on_state = on_state;
    o.ud = w;
    return o;
}

static rds *connect_ok(t_loop *t, const rds_options *o, watch *w)
{
    rds *r = rds_new(&t->loop, o);
    assert_non_null(r);
    RUN_UNTIL(t, w->ups == 1, 3000);
    assert_int_equal(w->ups, 1);
    assert_true(rds_is_connected(r));
    return r;
}

/* Sends argv (NULL-terminated, strlen lengths) and waits for the reply. */
static void command_wait(t_loop *t, rds *r, rec *c, const char *const *argv)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    memset(c, 0, sizeof *c);
    assert_int_equal(rds_command(r, on_rec, c, argc, (const char **)argv, NULL), 0);
    RUN_UNTIL(t, c->calls > 0, 3000);
    assert_int_equal(c->calls, 1);
}

static void assert_pong(t_loop *t, rds *r)
{
    rec c;
    command_wait(t, r, &c, (const char *[]){ "PING", NULL });
    assert_int_equal(c.nulls, 0);
    assert_int_equal(c.type, REDIS_REPLY_STATUS);
    assert_string_equal(c.str, "PONG");
}

/* ---- cases -------------------------------------------------------------- */

static void round_trip_binary_safe(void **state)
{
    (void)state;
    t_loop t;
    watch w = { 0 };
    t_init(&t);
    cfg_redis_url url = url_for(main_port);
    rds_options o = opts_for(&url, &w);
    rds *r = connect_ok(&t, &o, &w);
    assert_int_equal(rds_reconnects(r), 0);
    assert_ptr_equal(rds_userdata(r), &w);

    static const char val[] = "a\0b\r\nc";
    rec set = { 0 }, get = { 0 };
    assert_int_equal(rds_command(r, on_rec, &set, 3, (const char *[]){ "SET", "rds:bin", val },
                                 (const size_t[]){ 3, 7, 6 }), 0);
    assert_int_equal(rds_command(r, on_rec, &get, 2, (const char *[]){ "GET", "rds:bin" }, NULL), 0);
    assert_int_equal(rds_pending(r), 2);
    RUN_UNTIL(&t, get.calls > 0, 3000);
    assert_int_equal(rds_pending(r), 0);
    assert_int_equal(set.calls, 1);
    assert_int_equal(set.type, REDIS_REPLY_STATUS);
    assert_int_equal(get.calls, 1);
    assert_int_equal(get.type, REDIS_REPLY_STRING);
    assert_int_equal(get.len, 6);
    assert_memory_equal(get.str, val, 6);

    /* printf style with %b, then a server error: a reply, not NULL. */
    rec f = { 0 }, bad = { 0 };
    assert_int_equal(rds_commandf(r, on_rec, &f, "APPEND %s %b", "rds:bin", "\0z", (size_t)2), 0);
    assert_int_equal(rds_commandf(r, on_rec, &bad, "HGET %s x", "rds:bin"), 0);
    RUN_UNTIL(&t, bad.calls > 0, 3000);
    assert_int_equal(f.type, REDIS_REPLY_INTEGER);
    assert_int_equal(f.integer, 8);
    assert_int_equal(bad.nulls, 0);
    assert_int_equal(bad.type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(bad.str, "WRONGTYPE"));
    assert_true(rds_is_connected(r));

    rds_close(r);
    t_finish(&t);
    assert_int_equal(w.downs, 0);   /* no on_state after rds_close */
}

static void commands_refused_until_ready(void **state)
{
    (void)state;
    static const char *const scripts[] = { "return 1" };
    t_loop t;
    watch wa = { 0 }, wb = { 0 };
    t_init(&t);
    cfg_redis_url url = url_for(main_port);
    rds_options o = opts_for(&url, &wb);
    o.scripts = scripts;
    o.nscripts = 1;

    rec never = { 0 };
    assert_int_equal(rds_command(NULL, on_rec, &never, 1, (const char *[]){ "PING" }, NULL), -1);
    rds_close(NULL);

    /* Stall the server so b sits in its handshake (TCP up, PING unanswered). */
    rds_options oa = opts_for(&url, &wa);
    rds *a = connect_ok(&t, &oa, &wa);
    rec slow = { 0 };
    assert_int_equal(rds_command(a, on_rec, &slow, 3, (const char *[]){ "DEBUG", "SLEEP", "0.5" },
                                 NULL), 0);
    run_for(&t, 50);

    rds *b = rds_new(&t.loop, &o);
    assert_non_null(b);
    assert_int_equal(rds_command(b, on_rec, &never, 1, (const char *[]){ "PING" }, NULL), -1);
    run_for(&t, 200);
    assert_int_equal(wb.ups, 0);
    assert_false(rds_is_connected(b));
    assert_int_equal(rds_command(b, on_rec, &never, 1, (const char *[]){ "PING" }, NULL), -1);
    assert_int_equal(rds_commandf(b, on_rec, &never, "PING"), -1);
    assert_int_equal(rds_script(b, 0, on_rec, &never, 0, 0, NULL, NULL), -1);

    RUN_UNTIL(&t, wb.ups == 1, 3000);
    assert_int_equal(wb.ups, 1);
    assert_int_equal(wb.downs, 0);
    assert_pong(&t, b);
    /* Commands that would answer more than once are refused outright. */
    assert_int_equal(rds_command(b, on_rec, &never, 2, (const char *[]){ "SUBSCRIBE", "ch" }, NULL),
                     -1);
    assert_int_equal(rds_commandf(b, on_rec, &never, "psubscribe ch*"), -1);
    assert_int_equal(never.calls, 0);

    rds_close(a);
    rds_close(b);
    t_finish(&t);
    assert_int_equal(slow.calls, 1);
}

static void script_survives_flush(void **state)
{
    (void)state;
    static const char *const scripts[] = { "return 'unused'", "return {KEYS[1], ARGV[1]}" };
    t_loop t;
    watch w = { 0 };
    t_init(&t);
    cfg_redis_url url = url_for(main_port);
    rds_options o = opts_for(&url, &w);
    o.scripts = scripts;
    o.nscripts = 2;
    rds *r = connect_ok(&t, &o, &w);
    rec c;
    command_wait(&t, r, &c, (const char *[]){ "CONFIG", "RESETSTAT", NULL });

    /* The arguments are borrowed for the call only: scribble on them after. */
    char key[] = "k1", arg[] = "v\0x";
    const char *args[] = { key, arg };
    const size_t lens[] = { 2, 3 };
    rec s1 = { 0 };
    assert_int_equal(rds_script(r, 1, on_rec, &s1, 1, 2, args, lens), 0);
    RUN_UNTIL(&t, s1.calls > 0, 3000);
    assert_int_equal(s1.type, REDIS_REPLY_ARRAY);
    assert_int_equal(s1.elements, 2);
    assert_int_equal(s1.ellen[0], 2);
    assert_memory_equal(s1.el[0], "k1", 2);
    assert_int_equal(s1.ellen[1], 3);
    assert_memory_equal(s1.el[1], "v\0x", 3);

    command_wait(&t, r, &c, (const char *[]){ "SCRIPT", "FLUSH", NULL });
    assert_int_equal(c.type, REDIS_REPLY_STATUS);

    rec s2 = { 0 };
    assert_int_equal(rds_script(r, 1, on_rec, &s2, 1, 2, args, lens), 0);
    memset(key, 'X', sizeof key);
    memset(arg, 'X', sizeof arg);
    RUN_UNTIL(&t, s2.calls > 0, 3000);
    run_for(&t, 50);   /* a second callback would show up here */
    assert_int_equal(s2.calls, 1);
    assert_int_equal(s2.type, REDIS_REPLY_ARRAY);
    assert_int_equal(s2.elements, 2);
    assert_memory_equal(s2.el[0], "k1", 2);
    assert_memory_equal(s2.el[1], "v\0x", 3);
    assert_int_equal(rds_pending(r), 0);

    /* The NOSCRIPT path really ran: one EVAL after two EVALSHA. */
    command_wait(&t, r, &c, (const char *[]){ "INFO", "commandstats", NULL });
    assert_non_null(strstr(c.str, "cmdstat_evalsha:calls=2,"));
    assert_non_null(strstr(c.str, "cmdstat_eval:calls=1,"));

    rec never = { 0 };
    assert_int_equal(rds_script(r, 2, on_rec, &never, 0, 0, NULL, NULL), -1);
    assert_int_equal(rds_script(r, 1, on_rec, &never, 3, 2, args, lens), -1);
    assert_int_equal(never.calls, 0);

    rds_close(r);
    t_finish(&t);
}

static void refused_then_server_starts(void **state)
{
    (void)state;
    t_loop t;
    watch w = { 0 };
    t_init(&t);
    int port = free_port();
    cfg_redis_url url = url_for(port);
    rds_options o = opts_for(&url, &w);
    o.connect_timeout_ms = 150;
    rds *r = rds_new(&t.loop, &o);
    assert_non_null(r);

    run_for(&t, 800);   /* several attempts: 150 ms watchdog + 20..100 ms backoff */
    assert_int_equal(w.downs, 1);
    assert_int_equal(w.ups, 0);
    assert_non_null(strstr(w.reason, "efused"));
    assert_false(rds_is_connected(r));

    pid_t pid = server_start(port, NULL);
    RUN_UNTIL(&t, w.ups == 1, 3000);
    assert_int_equal(w.ups, 1);
    assert_int_equal(w.downs, 1);
    assert_int_equal(rds_reconnects(r), 0);   /* the first successful connect */
    assert_pong(&t, r);
    run_for(&t, 400);   /* the connect watchdog is off once connected */
    assert_true(rds_is_connected(r));
    assert_int_equal(w.downs, 1);

    rds_close(r);
    t_finish(&t);
    server_stop(pid);
}

static void silent_server_times_out_handshake(void **state)
{
    (void)state;
    t_loop t;
    watch w = { 0 };
    t_init(&t);
    int port = 0;
    int lfd = listen_socket(&port);   /* accepts TCP (kernel), never answers */
    assert_true(lfd >= 0);
    cfg_redis_url url = url_for(port);
    rds_options o = opts_for(&url, &w);
    o.connect_timeout_ms = 150;
    rds *r = rds_new(&t.loop, &o);
    assert_non_null(r);

    run_for(&t, 900);
    assert_int_equal(w.downs, 1);
    assert_int_equal(w.ups, 0);
    assert_non_null(strstr(w.reason, "handshake timeout after 150 ms"));
    rds_close(r);
    t_finish(&t);

    int attempts = 0, fd;
    fcntl(lfd, F_SETFL, O_NONBLOCK);
    while ((fd = accept(lfd, NULL, NULL)) >= 0) {
        attempts++;
        close(fd);
    }
    close(lfd);
    assert_true(attempts >= 3);
}

static void server_killed_with_pending(void **state)
{
    (void)state;
    t_loop t;
    watch w = { 0 };
    t_init(&t);
    int port = free_port();
    pid_t pid = server_start(port, NULL);
    cfg_redis_url url = url_for(port);
    rds_options o = opts_for(&url, &w);
    o.connect_timeout_ms = 200;
    rds *r = connect_ok(&t, &o, &w);

    rec c[3];
    memset(c, 0, sizeof c);
    assert_int_equal(rds_command(r, on_rec, &c[0], 3, (const char *[]){ "BLPOP", "rds:none", "10" },
                                 NULL), 0);
    assert_int_equal(rds_command(r, on_rec, &c[1], 2, (const char *[]){ "GET", "x" }, NULL), 0);
    assert_int_equal(rds_command(r, on_rec, &c[2], 2, (const char *[]){ "GET", "y" }, NULL), 0);
    run_for(&t, 100);
    assert_int_equal(rds_pending(r), 3);
    assert_int_equal(c[0].calls + c[1].calls + c[2].calls, 0);

    server_stop(pid);
    RUN_UNTIL(&t, c[2].calls > 0 && w.downs > 0, 3000);
    run_for(&t, 300);   /* failed retries must not report again */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(c[i].calls, 1);
        assert_int_equal(c[i].nulls, 1);
        assert_int_equal(c[i].connected_in_null, 0);   /* already "down" inside */
        assert_int_equal(c[i].send_in_null, -1);
    }
    assert_int_equal(w.downs, 1);
    assert_int_equal(w.ups, 1);
    assert_int_equal(rds_pending(r), 0);
    assert_false(rds_is_connected(r));

    pid = server_start(port, NULL);
    RUN_UNTIL(&t, w.ups == 2, 3000);
    assert_int_equal(w.ups, 2);
    assert_int_equal(rds_reconnects(r), 1);
    assert_pong(&t, r);
    for (int i = 0; i < 3; i++)
        assert_int_equal(c[i].calls, 1);

    rds_close(r);
    t_finish(&t);
    server_stop(pid);
}

static void command_timeout_reconnects(void **state)
{
    (void)state;
    t_loop t;
    watch w = { 0 };
    t_init(&t);
    cfg_redis_url url = url_for(main_port);
    rds_options o = opts_for(&url, &w);
    o.command_timeout_ms = 300;
    o.connect_timeout_ms = 3000;
    rds *r = connect_ok(&t, &o, &w);

    rec c = { 0 };
    uint64_t start = uv_now(&t.loop);
    assert_int_equal(rds_command(r, on_rec, &c, 3, (const char *[]){ "DEBUG", "SLEEP", "1" }, NULL),
                     0);
    RUN_UNTIL(&t, c.calls > 0, 3000);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.nulls, 1);
    assert_true(uv_now(&t.loop) - start < 800);   /* the timeout, not the end of the sleep */
    assert_int_equal(w.downs, 1);
    assert_string_equal(w.reason, "command timeout after 300 ms");

    RUN_UNTIL(&t, w.ups == 2, 4000);
    assert_int_equal(w.ups, 2);
    assert_int_equal(rds_reconnects(r), 1);
    assert_pong(&t, r);

    rds_close(r);
    t_finish(&t);
}

/* Connects with the given credentials; returns the final watch. */
static watch auth_attempt(int port, const char *user, const char *password)
{
    t_loop t;
    watch w = { 0 };
    t_init(&t);
    cfg_redis_url url = url_for(port);
    snprintf(url.user, sizeof url.user, "%s", user);
    snprintf(url.password, sizeof url.password, "%s", password);
    rds_options o = opts_for(&url, &w);
    rds *r = rds_new(&t.loop, &o);
    assert_non_null(r);
    RUN_UNTIL(&t, w.ups + w.downs > 0, 3000);
    if (w.ups)
        assert_pong(&t, r);
    else
        run_for(&t, 150);   /* retries keep failing, silently */
    rds_close(r);
    t_finish(&t);
    return w;
}

static void auth_from_url(void **state)
{
    (void)state;
    int port = free_port();
    pid_t pid = server_start(port, "s3cret-pass");

    watch ok = auth_attempt(port, "", "s3cret-pass");
    assert_int_equal(ok.ups, 1);
    assert_int_equal(ok.downs, 0);
    watch okuser = auth_attempt(port, "default", "s3cret-pass");
    assert_int_equal(okuser.ups, 1);

    watch bad = auth_attempt(port, "", "wrong-pass-123");
    assert_int_equal(bad.ups, 0);
    assert_int_equal(bad.downs, 1);
    assert_non_null(strstr(bad.reason, "AUTH failed: WRONGPASS"));
    assert_null(strstr(bad.reason, "wrong-pass-123"));

    watch none = auth_attempt(port, "", "");
    assert_int_equal(none.ups, 0);
    assert_non_null(strstr(none.reason, "NOAUTH"));

    server_stop(pid);
}

static void select_db_from_url(void **state)
{
    (void)state;
    t_loop t;
    watch w3 = { 0 }, w0 = { 0 };
    t_init(&t);
    cfg_redis_url url3 = url_for(main_port), url0 = url_for(main_port);
    url3.db = 3;
    rds_options o3 = opts_for(&url3, &w3), o0 = opts_for(&url0, &w0);
    rds *r3 = connect_ok(&t, &o3, &w3);
    rds *r0 = connect_ok(&t, &o0, &w0);

    rec c;
    command_wait(&t, r3, &c, (const char *[]){ "SET", "rds:sel", "in3", NULL });
    command_wait(&t, r0, &c, (const char *[]){ "GET", "rds:sel", NULL });
    assert_int_equal(c.type, REDIS_REPLY_NIL);
    command_wait(&t, r3, &c, (const char *[]){ "GET", "rds:sel", NULL });
    assert_string_equal(c.str, "in3");
    command_wait(&t, r3, &c, (const char *[]){ "CLIENT", "INFO", NULL });
    assert_non_null(strstr(c.str, " db=3 "));
    command_wait(&t, r3, &c, (const char *[]){ "DEL", "rds:sel", NULL });

    rds_close(r3);
    rds_close(r0);
    t_finish(&t);
}

static void host_name_is_resolved(void **state)
{
    (void)state;
    t_loop t;
    watch w = { 0 };
    t_init(&t);
    cfg_redis_url url = url_for(main_port);
    snprintf(url.host, sizeof url.host, "localhost");
    rds_options o = opts_for(&url, &w);
    rds *r = connect_ok(&t, &o, &w);
    assert_pong(&t, r);
    rds_close(r);

    /* Closed while the lookup runs: the request is cancelled, nothing leaks. */
    rds *r2 = rds_new(&t.loop, &o);
    uv_run(&t.loop, UV_RUN_NOWAIT);
    rds_close(r2);
    /* Closed before the first attempt even started. */
    rds_close(rds_new(&t.loop, &o));
    t_finish(&t);
}

static void close_inside_reply_callback(void **state)
{
    (void)state;
    t_loop t;
    watch w = { 0 };
    t_init(&t);
    cfg_redis_url url = url_for(main_port);
    rds_options o = opts_for(&url, &w);
    rds *r = connect_ok(&t, &o, &w);

    rec a = { 0 }, b = { 0 }, c = { 0 };
    a.close_me = r;
    assert_int_equal(rds_command(r, on_rec, &a, 1, (const char *[]){ "PING" }, NULL), 0);
    assert_int_equal(rds_command(r, on_rec, &b, 1, (const char *[]){ "PING" }, NULL), 0);
    assert_int_equal(rds_command(r, on_rec, &c, 1, (const char *[]){ "PING" }, NULL), 0);
    RUN_UNTIL(&t, a.calls > 0, 3000);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.nulls, 0);
    /* The rest were answered with NULL before control left hiredis. */
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.nulls, 1);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.nulls, 1);
    t_finish(&t);
    assert_int_equal(w.downs, 0);
}

static void close_inside_state_and_null_callbacks(void **state)
{
    (void)state;
    t_loop t;
    watch w = { .close_on_state = 1 };
    t_init(&t);
    cfg_redis_url url = url_for(main_port);
    rds_options o = opts_for(&url, &w);
    rds *r = rds_new(&t.loop, &o);
    assert_non_null(r);
    RUN_UNTIL(&t, w.ups > 0, 3000);
    assert_int_equal(w.ups, 1);

    /* Timeout drop: on_state(0), then the NULL callback closes the rds. */
    watch w2 = { 0 };
    rds_options o2 = opts_for(&url, &w2);
    o2.command_timeout_ms = 100;
    rds *r2 = connect_ok(&t, &o2, &w2);
    rec c = { 0 };
    c.close_me = r2;
    assert_int_equal(rds_command(r2, on_rec, &c, 3, (const char *[]){ "DEBUG", "SLEEP", "0.3" },
                                 NULL), 0);
    RUN_UNTIL(&t, c.calls > 0, 3000);
    assert_int_equal(c.nulls, 1);
    assert_int_equal(w2.downs, 1);
    t_finish(&t);
    assert_int_equal(w.downs, 0);
    assert_int_equal(w2.ups, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip_binary_safe),
        cmocka_unit_test(commands_refused_until_ready),
        cmocka_unit_test(script_survives_flush),
        cmocka_unit_test(refused_then_server_starts),
        cmocka_unit_test(silent_server_times_out_handshake),
        cmocka_unit_test(server_killed_with_pending),
        cmocka_unit_test(command_timeout_reconnects),
        cmocka_unit_test(auth_from_url),
        cmocka_unit_test(select_db_from_url),
        cmocka_unit_test(host_name_is_resolved),
        cmocka_unit_test(close_inside_reply_callback),
        cmocka_unit_test(close_inside_state_and_null_callbacks),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
