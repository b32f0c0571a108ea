/* rds: one self-reconnecting hiredis 0.14 async connection on a libuv loop
 * (the contract is in rds.h).
 *
 * States, and the only ways between them:
 *   WAIT       nothing open; state_timer = first attempt or backoff delay
 *   RESOLVING  uv_getaddrinfo for a host name (IP literals skip it, because
 *              hiredis 0.14 would call a blocking getaddrinfo itself)
 *   CONNECTING redisAsyncConnect + libuv adapter; state_timer = watchdog
 *   HANDSHAKE  AUTH, SELECT, SCRIPT LOAD..., PING pipelined; watchdog still on
 *   READY      user commands accepted; tick checks the oldest reply's age
 * Every failure goes back to WAIT through conn_down(), the one place that
 * arms the backoff and tells the owner "down".
 *
 * Ownership: the rds owns its context (r->ac, NULL when there is none), two
 * timers and at most one getaddrinfo request. It is freed only once all of
 * them are closed or done, i.e. on a later loop turn than rds_close: hiredis
 * runs the callbacks of a dying context synchronously (before control returns
 * to the loop), so they always find the rds alive. Each user command owns
 * one rds_req from send until its callback has run. No logging here: the
 * owner logs the reasons on_state hands it. */
#include "rds.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>

#define RDS_SHA_LEN 40
#define RDS_REASON_LEN 256

enum rds_state { ST_WAIT, ST_RESOLVING, ST_CONNECTING, ST_HANDSHAKE, ST_READY };

/* Handshake steps, in the order they are sent (and answered). */
enum hs_step { HS_AUTH, HS_SELECT, HS_SCRIPT, HS_PING };
static const char *const hs_names[] = { "AUTH", "SELECT", "SCRIPT LOAD", "PING" };

typedef struct rds_req rds_req;
struct rds_req {
    rds_req *prev, *next;        /* r->head..r->tail, oldest send first */
    rds *r;
    rds_reply_fn *cb;
    void *privdata;
    uint64_t sent_ms;            /* loop time of the (last) send */
    /* Script calls only (argv NULL otherwise): the whole EVALSHA command,
     * copied into this same allocation, so NOSCRIPT can be answered by
     * sending it again as EVAL. */
    const char **argv;
    size_t *argvlen;
    int argc;
    int retried;
    size_t script;
    char nkeys[16];
};

struct rds {
    uv_loop_t *loop;
    const cfg_redis_url *url;      /* borrowed (rds_options) */
    char name[32];               /* opt->name, for a debugger; the owner logs */
    uint64_t connect_timeout_ms;
    uint64_t command_timeout_ms;
    uint64_t reconnect_min_ms;
    uint64_t reconnect_max_ms;
    const char *const *scripts;
    size_t nscripts;
    char (*shas)[RDS_SHA_LEN + 1];
    rds_state_fn *on_state;
    void *ud;

    enum rds_state st;
    redisAsyncContext *ac;
    uv_timer_t state_timer;      /* first attempt, backoff delay or connect watchdog */
    uv_timer_t tick;             /* command timeout check while READY */
    uv_getaddrinfo_t gai;
    int resolving;               /* gai is in flight */
    size_t hs_sent, hs_done;     /* handshake commands sent / answered */
    char hs_error[RDS_REASON_LEN]; /* why the handshake could not be sent */
    uint64_t backoff_ms;         /* delay before the next attempt */
    int reported;                /* last state given to on_state, -1: none yet */
    int ever_ready;
    uint64_t reconnects;
    rds_req *head, *tail;
    size_t npending;
    int closing;
    int open_handles;            /* timers not yet through their close callback */
};

static void attempt_start(rds *r);

/* ---- small helpers ------------------------------------------------------- */

static uint64_t or_default(uint64_t v, uint64_t def)
{
    return v ? v : def;
}

static uint64_t next_backoff(uint64_t cur, uint64_t max)
{
    return cur >= max / 2 ? max : cur * 2;
}

static int is_ip_literal(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* Commands whose replies do not map one-to-one onto callbacks: hiredis 0.14
 * would call our callback repeatedly (pub/sub) or abort (MONITOR). */
static int is_push_command(const char *name, size_t len)
{
    static const char *const banned[] = { "subscribe", "psubscribe", "unsubscribe",
                                          "punsubscribe", "monitor" };
    for (size_t i = 0; i < sizeof banned / sizeof banned[0]; i++)
        if (strlen(banned[i]) == len && strncasecmp(name, banned[i], len) == 0)
            return 1;
    return 0;
}

static int is_noscript(const redisReply *reply)
{
    return reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0;
}

/* ---- state changes ------------------------------------------------------- */

/* Tells the owner, but only when the state really changed and never after
 * rds_close. */
static void report(rds *r, int up, const char *reason)
{
    if (r->closing || r->reported == up)
        return;
    r->reported = up;
    if (r->on_state)
        r->on_state(r, up, reason, r->ud);
}

static void on_retry_due(uv_timer_t *t)
{
    attempt_start(t->data);
}

/* Back to WAIT: arms the backoff and reports "down". r->ac must already be
 * detached. The report comes last: the owner may call rds_close from it. */
static void conn_down(rds *r, const char *reason)
{
    r->st = ST_WAIT;
    if (!r->closing) {
        uv_timer_stop(&r->tick);
        uv_timer_start(&r->state_timer, on_retry_due, r->backoff_ms, 0);
        r->backoff_ms = next_backoff(r->backoff_ms, r->reconnect_max_ms);
    }
    report(r, 0, reason);
}

/* We end the current context (timeout, failed handshake, watchdog). State is
 * updated first, so the callbacks redisAsyncFree runs with NULL see "not
 * connected"; inside a hiredis reply callback the free (and those NULLs)
 * happen right after that callback returns. */
static void conn_drop(rds *r, const char *reason)
{
    redisAsyncContext *ac = r->ac;
    r->ac = NULL;
    conn_down(r, reason);
    if (ac)
        redisAsyncFree(ac);
}

/* hiredis is tearing ac down itself (EOF, I/O error, failed connect) and
 * frees it; we only forget it. Whichever of a NULL reply or onDisconnect
 * comes first does the work; the rest find r->ac already changed. */
static void ctx_lost(rds *r, const redisAsyncContext *ac)
{
    if (r->ac != ac)
        return;
    r->ac = NULL;
    conn_down(r, ac->c.err ? ac->c.errstr : "connection lost");
}

static void on_tick(uv_timer_t *t)
{
    rds *r = t->data;
    if (!r->head || uv_now(r->loop) - r->head->sent_ms < r->command_timeout_ms)
        return;
    char reason[64];
    snprintf(reason, sizeof reason, "command timeout after %llu ms",
             (unsigned long long)r->command_timeout_ms);
    conn_drop(r, reason);
}

static void on_ready(rds *r)
{
    uv_timer_stop(&r->state_timer);
    r->st = ST_READY;
    r->backoff_ms = r->reconnect_min_ms;
    if (r->ever_ready)
        r->reconnects++;
    r->ever_ready = 1;
    if (r->command_timeout_ms) {
        /* Checking only the oldest reply is enough: replies come in order. */
        uint64_t every = r->command_timeout_ms / 4;
        every = every > 1000 ? 1000 : every ? every : 1;
        uv_timer_start(&r->tick, on_tick, every, every);
    }
    report(r, 1, "connected");
}

/* ---- handshake ----------------------------------------------------------- */

/* Which step reply number n answers (replies come back in send order). */
static enum hs_step hs_step_of(const rds *r, size_t n, size_t *script)
{
    size_t auth = r->url->password[0] ? 1 : 0;
    size_t select = r->url->db != 0 ? 1 : 0;
    if (n < auth)
        return HS_AUTH;
    n -= auth;
    if (n < select)
        return HS_SELECT;
    n -= select;
    if (n < r->nscripts) {
        *script = n;
        return HS_SCRIPT;
    }
    return HS_PING;
}

/* 0, or -1 with reason filled. */
static int hs_check(rds *r, const redisReply *reply, char *reason, size_t len)
{
    size_t script = 0;
    enum hs_step step = hs_step_of(r, r->hs_done, &script);
    if (reply->type == REDIS_REPLY_ERROR) {
        /* Server text only: it never echoes the AUTH arguments. */
        snprintf(reason, len, "%s failed: %.200s", hs_names[step], reply->str);
        return -1;
    }
    if (step != HS_SCRIPT)
        return 0;
    if (reply->type != REDIS_REPLY_STRING || reply->len != RDS_SHA_LEN) {
        snprintf(reason, len, "SCRIPT LOAD failed: unexpected reply");
        return -1;
    }
    memcpy(r->shas[script], reply->str, RDS_SHA_LEN + 1);
    return 0;
}

static void on_handshake(redisAsyncContext *ac, void *reply, void *privdata)
{
    rds *r = privdata;
    if (r->ac != ac)
        return;            /* NULL from a context we already dropped */
    if (r->hs_error[0])
        return;            /* half-sent handshake: the watchdog drops it */
    if (reply == NULL) {
        ctx_lost(r, ac);
        return;
    }
    char reason[RDS_REASON_LEN];
    if (hs_check(r, reply, reason, sizeof reason) < 0) {
        conn_drop(r, reason);
        return;
    }
    if (++r->hs_done == r->hs_sent)
        on_ready(r);
}

static int hs_send(rds *r, int argc, const char **argv, const size_t *argvlen)
{
    if (redisAsyncCommandArgv(r->ac, on_handshake, r, argc, argv, argvlen) != REDIS_OK)
        return -1;
    r->hs_sent++;
    return 0;
}

/* AUTH is formatted here and the buffer wiped once hiredis took it, so the
 * password is not left behind in a freed command buffer (hiredis's own
 * output buffer is freed unwiped once written; that copy we cannot reach). */
static int hs_send_auth(rds *r)
{
    const cfg_redis_url *u = r->url;
    if (!u->password[0])
        return 0;
    const char *with_user[] = { "AUTH", u->user, u->password }, *alone[] = { "AUTH", u->password };
    char *cmd = NULL;
    int len = u->user[0] ? redisFormatCommandArgv(&cmd, 3, with_user, NULL)
                         : redisFormatCommandArgv(&cmd, 2, alone, NULL);
    if (len < 0)
        return -1;
    int rc = redisAsyncFormattedCommand(r->ac, on_handshake, r, cmd, (size_t)len);
    explicit_bzero(cmd, (size_t)len);
    redisFreeCommand(cmd);
    if (rc != REDIS_OK)
        return -1;
    r->hs_sent++;
    return 0;
}

static int hs_send_select(rds *r)
{
    if (r->url->db == 0)
        return 0;
    char db[16];
    snprintf(db, sizeof db, "%d", r->url->db);
    return hs_send(r, 2, (const char *[]){ "SELECT", db }, NULL);
}

/* Pipelines the whole handshake. The final PING makes READY always arrive in
 * a reply callback, never inside onConnect(OK), where an owner calling
 * rds_close from on_state would free the context under hiredis's feet. */
static int hs_send_all(rds *r)
{
    r->hs_sent = r->hs_done = 0;
    if (hs_send_auth(r) < 0 || hs_send_select(r) < 0)
        return -1;
    for (size_t i = 0; i < r->nscripts; i++)
        if (hs_send(r, 3, (const char *[]){ "SCRIPT", "LOAD", r->scripts[i] }, NULL) < 0)
            return -1;
    return hs_send(r, 1, (const char *[]){ "PING" }, NULL);
}

/* ---- connecting ---------------------------------------------------------- */

/* The stock 0.14 adapter drops poll errors, so a refused connect never calls
 * onConnect; the watchdog ends it. SO_ERROR tells refused from slow. */
static void watchdog_reason(const rds *r, char *out, size_t len)
{
    int err = 0;
    socklen_t elen = sizeof err;
    if (r->hs_error[0])
        snprintf(out, len, "%s", r->hs_error);
    else if (r->st == ST_CONNECTING && r->ac &&
             getsockopt(r->ac->c.fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 && err != 0)
        snprintf(out, len, "%s", strerror(err));
    else
        snprintf(out, len, "%s timeout after %llu ms",
                 r->st == ST_HANDSHAKE ? "handshake" : "connect",
                 (unsigned long long)r->connect_timeout_ms);
}

static void on_watchdog(uv_timer_t *t)
{
    rds *r = t->data;
    char reason[RDS_REASON_LEN];
    watchdog_reason(r, reason, sizeof reason);
    conn_drop(r, reason);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    rds *r = ac->data;
    if (r->ac != ac)
        return;
    if (status != REDIS_OK) {
        ctx_lost(r, ac);   /* hiredis frees ac right after we return */
        return;
    }
    r->st = ST_HANDSHAKE;
    if (hs_send_all(r) == 0)
        return;
    /* 0.14 must not see redisAsyncFree inside onConnect(OK) (no in-callback
     * guard there): let the watchdog drop it on the next loop turn. */
    snprintf(r->hs_error, sizeof r->hs_error, "cannot send the handshake: %s",
             r->ac->c.err ? r->ac->c.errstr : "out of memory");
    uv_timer_start(&r->state_timer, on_watchdog, 0, 0);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    ctx_lost(ac->data, ac);
}

/* hiredis 0.14's libuv adapter drops poll errors: libuv reports a reset
 * socket as status < 0 and stops the handle, the adapter returns, and the
 * connection is never seen to die (only the command timeout would notice).
 * These replace the adapter's event hooks with one that hands an error to
 * hiredis as readiness, so its read or write fails and it disconnects: the
 * fix hiredis 1.x made to the same adapter. */
static void poll_cb(uv_poll_t *handle, int status, int events)
{
    redisLibuvEvents *p = handle->data;
    int ev = status < 0 ? p->events : events;
    if (p->context != NULL && (ev & UV_READABLE))
        redisAsyncHandleRead(p->context);
    if (p->context != NULL && (ev & UV_WRITABLE))
        redisAsyncHandleWrite(p->context);
}

static void set_events(void *privdata, int add, int mask)
{
    redisLibuvEvents *p = privdata;
    p->events = add ? p->events | mask : p->events & ~mask;
    if (p->events)
        uv_poll_start(&p->handle, p->events, poll_cb);
    else
        uv_poll_stop(&p->handle);
}

static void add_read(void *privdata) { set_events(privdata, 1, UV_READABLE); }
static void del_read(void *privdata) { set_events(privdata, 0, UV_READABLE); }
static void add_write(void *privdata) { set_events(privdata, 1, UV_WRITABLE); }
static void del_write(void *privdata) { set_events(privdata, 0, UV_WRITABLE); }

static void connect_to(rds *r, const char *ip)
{
    r->hs_error[0] = '\0';
    redisAsyncContext *ac = redisAsyncConnect(ip, r->url->port);
    if (ac == NULL) {
        conn_down(r, "out of memory");
        return;
    }
    if (ac->err) {
        char reason[RDS_REASON_LEN];
        snprintf(reason, sizeof reason, "%s", ac->errstr);
        redisAsyncFree(ac);
        conn_down(r, reason);
        return;
    }
    if (redisLibuvAttach(ac, r->loop) != REDIS_OK) {
        /* 0.14's attach installs ev.cleanup before it can fail, and cleanup
         * would dereference the still-NULL ev.data: unhook first. */
        memset(&ac->ev, 0, sizeof ac->ev);
        redisAsyncFree(ac);
        conn_down(r, "cannot watch the socket");
        return;
    }
    ac->ev.addRead = add_read;     /* see poll_cb */
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->data = r;
    r->ac = ac;
    r->st = ST_CONNECTING;
    /* After the attach: this setter arms the write watcher through it. */
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    uv_timer_start(&r->state_timer, on_watchdog, r->connect_timeout_ms, 0);
}

/* Prefers IPv4, as hiredis itself does. ip is left empty when none fits. */
static void pick_address(const struct addrinfo *res, char *ip, size_t len)
{
    const struct addrinfo *v6 = NULL;
    for (const struct addrinfo *a = res; a; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            uv_ip4_name((const struct sockaddr_in *)(const void *)a->ai_addr, ip, len);
            return;
        }
        if (a->ai_family == AF_INET6 && !v6)
            v6 = a;
    }
    if (v6)
        uv_ip6_name((const struct sockaddr_in6 *)(const void *)v6->ai_addr, ip, len);
}

static void maybe_free(rds *r)
{
    if (r->open_handles > 0 || r->resolving)
        return;
    free(r->shas);
    free(r);
}

static void resolve_failed(rds *r, int status)
{
    char reason[RDS_REASON_LEN];
    snprintf(reason, sizeof reason, "cannot resolve %.100s: %s", r->url->host, uv_strerror(status));
    conn_down(r, reason);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    rds *r = req->data;
    char ip[INET6_ADDRSTRLEN] = "";
    r->resolving = 0;
    if (status == 0)
        pick_address(res, ip, sizeof ip);
    uv_freeaddrinfo(res);
    if (r->closing) {
        maybe_free(r);
        return;
    }
    if (!ip[0]) {
        resolve_failed(r, status ? status : UV_EAI_NONAME);
        return;
    }
    connect_to(r, ip);
}

static void attempt_start(rds *r)
{
    if (is_ip_literal(r->url->host)) {
        connect_to(r, r->url->host);
        return;
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = uv_getaddrinfo(r->loop, &r->gai, on_resolved, r->url->host, NULL, &hints);
    if (rc < 0) {
        resolve_failed(r, rc);
        return;
    }
    r->st = ST_RESOLVING;
    r->resolving = 1;
}

/* ---- user commands ------------------------------------------------------- */

static void req_push(rds *r, rds_req *q)
{
    q->sent_ms = uv_now(r->loop);
    q->next = NULL;
    q->prev = r->tail;
    if (r->tail)
        r->tail->next = q;
    else
        r->head = q;
    r->tail = q;
    r->npending++;
}

static void req_unlink(rds *r, rds_req *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        r->head = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else
        r->tail = q->prev;
    r->npending--;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);

static int req_send_script(redisAsyncContext *ac, rds_req *q)
{
    return redisAsyncCommandArgv(ac, on_reply, q, q->argc, q->argv, q->argvlen);
}

/* NOSCRIPT (cache flushed, server restarted): the same call again as EVAL
 * with the body; the user callback waits for that reply. 1 if re-sent. */
static int script_resend(rds *r, redisAsyncContext *ac, rds_req *q, const redisReply *reply)
{
    if (!q->argv || q->retried || r->ac != ac || !is_noscript(reply))
        return 0;
    q->retried = 1;
    q->argv[0] = "EVAL";
    q->argvlen[0] = 4;
    q->argv[1] = r->scripts[q->script];
    q->argvlen[1] = strlen(q->argv[1]);
    if (req_send_script(ac, q) != REDIS_OK)
        return 0;   /* deliver the NOSCRIPT error itself */
    req_unlink(r, q);
    req_push(r, q);   /* it is the newest request now */
    return 1;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    rds_req *q = privdata;
    rds *r = q->r;
    if (reply == NULL)
        ctx_lost(r, ac);
    else if (script_resend(r, ac, q, reply))
        return;
    req_unlink(r, q);
    if (q->cb)
        q->cb(r, reply, q->privdata);
    free(q);
}

static int can_send(const rds *r)
{
    return r && !r->closing && r->st == ST_READY && r->ac;
}

static rds_req *req_new(rds *r, rds_reply_fn *cb, void *privdata, size_t size)
{
    rds_req *q = calloc(1, size);
    if (!q)
        return NULL;
    q->r = r;
    q->cb = cb;
    q->privdata = privdata;
    return q;
}

/* After a send: on success the request waits in the pending list for
 * on_reply; on failure hiredis will never call back, so it goes now. */
static int req_sent(rds *r, rds_req *q, int status)
{
    if (status != REDIS_OK) {
        free(q);
        return -1;
    }
    req_push(r, q);
    return 0;
}

int rds_command(rds *r, rds_reply_fn *cb, void *privdata, int argc, const char **argv,
                const size_t *argvlen)
{
    if (!can_send(r) || argc <= 0 || !argv || !argv[0])
        return -1;
    size_t len0 = argvlen ? argvlen[0] : strlen(argv[0]);
    if (is_push_command(argv[0], len0))
        return -1;
    rds_req *q = req_new(r, cb, privdata, sizeof *q);
    if (!q)
        return -1;
    return req_sent(r, q, redisAsyncCommandArgv(r->ac, on_reply, q, argc, argv, argvlen));
}

int rds_commandf(rds *r, rds_reply_fn *cb, void *privdata, const char *fmt, ...)
{
    if (!can_send(r) || !fmt || is_push_command(fmt, strcspn(fmt, " ")))
        return -1;
    rds_req *q = req_new(r, cb, privdata, sizeof *q);
    if (!q)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int status = redisvAsyncCommand(r->ac, on_reply, q, fmt, ap);
    va_end(ap);
    return req_sent(r, q, status);
}

static size_t arg_len(const char **args, const size_t *lens, int i)
{
    return lens ? lens[i] : strlen(args[i]);
}

static void req_set_arg(rds_req *q, int i, const char *s, size_t len)
{
    q->argv[i] = s;
    q->argvlen[i] = len;
}

/* "EVALSHA sha nkeys args..." in one allocation: the request, the argv and
 * argvlen arrays, then the argument bytes. */
static rds_req *script_req_new(rds *r, size_t script, rds_reply_fn *cb, void *privdata,
                               int nkeys, int nargs, const char **args, const size_t *arglens)
{
    size_t argc = (size_t)nargs + 3, bytes = 0;
    for (int i = 0; i < nargs; i++)
        bytes += arg_len(args, arglens, i);
    rds_req *q = req_new(r, cb, privdata,
                         sizeof *q + argc * (sizeof(char *) + sizeof(size_t)) + bytes);
    if (!q)
        return NULL;
    q->argc = nargs + 3;
    q->script = script;
    q->argv = (const char **)(void *)(q + 1);
    q->argvlen = (size_t *)(void *)(q->argv + argc);
    char *data = (char *)(q->argvlen + argc);
    snprintf(q->nkeys, sizeof q->nkeys, "%d", nkeys);
    req_set_arg(q, 0, "EVALSHA", 7);
    req_set_arg(q, 1, r->shas[script], RDS_SHA_LEN);
    req_set_arg(q, 2, q->nkeys, strlen(q->nkeys));
    for (int i = 0; i < nargs; i++) {
        size_t len = arg_len(args, arglens, i);
        if (len)
            memcpy(data, args[i], len);
        req_set_arg(q, i + 3, data, len);
        data += len;
    }
    return q;
}

int rds_script(rds *r, size_t script_index, rds_reply_fn *cb, void *privdata, int nkeys, int nargs,
               const char **args, const size_t *arglens)
{
    if (!can_send(r) || script_index >= r->nscripts || nkeys < 0 || nargs < nkeys ||
        (nargs > 0 && !args))
        return -1;
    rds_req *q = script_req_new(r, script_index, cb, privdata, nkeys, nargs, args, arglens);
    if (!q)
        return -1;
    return req_sent(r, q, req_send_script(r->ac, q));
}

/* ---- lifetime ------------------------------------------------------------ */

static void on_handle_closed(uv_handle_t *h)
{
    rds *r = h->data;
    r->open_handles--;
    maybe_free(r);
}

static void rds_configure(rds *r, uv_loop_t *loop, const rds_options *opt)
{
    r->loop = loop;
    r->url = opt->url;
    snprintf(r->name, sizeof r->name, "%s", opt->name ? opt->name : "redis");
    r->connect_timeout_ms = or_default(opt->connect_timeout_ms, 2000);
    r->command_timeout_ms = opt->command_timeout_ms;
    r->reconnect_min_ms = or_default(opt->reconnect_min_ms, 100);
    r->reconnect_max_ms = or_default(opt->reconnect_max_ms, 5000);
    if (r->reconnect_max_ms < r->reconnect_min_ms)
        r->reconnect_max_ms = r->reconnect_min_ms;
    r->backoff_ms = r->reconnect_min_ms;
    r->scripts = opt->scripts;
    r->nscripts = opt->nscripts;
    r->on_state = opt->on_state;
    r->ud = opt->ud;
    r->reported = -1;
}

rds *rds_new(uv_loop_t *loop, const rds_options *opt)
{
    if (!loop || !opt || !opt->url || (opt->nscripts && !opt->scripts))
        return NULL;
    rds *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    if (opt->nscripts && !(r->shas = calloc(opt->nscripts, sizeof *r->shas))) {
        free(r);
        return NULL;
    }
    rds_configure(r, loop, opt);
    uv_timer_init(loop, &r->state_timer);
    uv_timer_init(loop, &r->tick);
    r->state_timer.data = r;
    r->tick.data = r;
    r->gai.data = r;
    r->open_handles = 2;
    /* First attempt on the next loop turn: on_state must not run before the
     * caller even has r. */
    uv_timer_start(&r->state_timer, on_retry_due, 0, 0);
    return r;
}

void rds_close(rds *r)
{
    if (!r || r->closing)
        return;
    r->closing = 1;
    r->st = ST_WAIT;
    redisAsyncContext *ac = r->ac;
    r->ac = NULL;
    if (ac)
        redisAsyncFree(ac);   /* pending callbacks get NULL (now, or when the current one returns) */
    if (r->resolving)
        uv_cancel((uv_req_t *)&r->gai);
    uv_close((uv_handle_t *)&r->state_timer, on_handle_closed);
    uv_close((uv_handle_t *)&r->tick, on_handle_closed);
}

int rds_is_connected(const rds *r)
{
    return r && !r->closing && r->st == ST_READY;
}

uint64_t rds_reconnects(const rds *r)
{
    return r ? r->reconnects : 0;
}

size_t rds_pending(const rds *r)
{
    return r ? r->npending : 0;
}

void *rds_userdata(const rds *r)
{
    return r ? r->ud : NULL;
}
