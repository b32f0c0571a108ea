/* pg: a self-reconnecting, non-blocking libpq connection on libuv (see pg.h).
 *
 * Three phases: WAITING (backoff timer before the next attempt), CONNECTING
 * (PQconnectPoll driven by socket readiness, under a connect timeout) and
 * READY (one query at a time; the socket is watched for readability even
 * when idle, so a server that goes away is noticed at once). One timer serves
 * every phase: backoff, connect timeout, query timeout.
 *
 * Socket handles: libpq may close and reopen its socket while connecting
 * (another address, an SSL or GSS fallback), possibly under the same fd
 * number. A uv_poll handle must never outlive its socket (closing it later
 * would unregister whatever reused the number), so while connecting the
 * handle is closed before each PQconnectPoll and a fresh one made for the
 * socket libpq hands back; once READY the socket no longer changes, and the
 * handle is closed before PQfinish. Memory is freed when the timer and every
 * poll handle have been closed. */
#include "pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_CONNECT_TIMEOUT_MS 5000
#define DEFAULT_RECONNECT_MIN_MS 100
#define DEFAULT_RECONNECT_MAX_MS 5000
#define MAX_PARAMS 65535

typedef enum { PG_WAITING, PG_CONNECTING, PG_READY } pg_phase;

typedef struct pg_sock {
    uv_poll_t poll;
    pg_conn *pg;
} pg_sock;

struct pg_conn {
    uv_loop_t *loop;
    char *conninfo;                /* secret */
    char password[256];            /* masked in every reason */
    uint64_t connect_timeout_ms, query_timeout_ms;
    uint64_t reconnect_min_ms, reconnect_max_ms, backoff_ms;
    pg_state_fn *on_state;
    void *ud;

    PGconn *conn;
    pg_sock *sock;
    uv_timer_t timer;
    pg_phase phase;
    int reported;                  /* -1 nothing yet, 0 down, 1 up */
    int ever_connected;
    uint64_t reconnects;
    int closing;
    unsigned handles;              /* libuv handles not yet closed */

    /* the query in flight */
    pg_result_fn *cb;
    void *privdata;
    PGresult *result;
    int flushing;                  /* PQflush has more to send */
    char broken[PG_ERR_LEN];       /* set: drop the connection on the next timer tick */
};

static void start_connect(pg_conn *pg);
static void connect_step(pg_conn *pg);
static void on_timer(uv_timer_t *t);
static void on_ready_io(uv_poll_t *h, int status, int events);

/* ---- strings ---------------------------------------------------------------- */

/* Copies one line of text into out: whitespace runs become one space, the
 * password (3 bytes or longer) becomes "***". */
static void one_line(const char *password, const char *text, char *out, size_t outlen)
{
    size_t n = 0, plen = strlen(password);
    int space = 0;
    for (const char *p = text ? text : ""; *p && n + 1 < outlen; p++) {
        if (plen >= 3 && strncmp(p, password, plen) == 0) {
            for (const char *m = "***"; *m && n + 1 < outlen; m++)
                out[n++] = *m;
            p += plen - 1;
            space = 0;
            continue;
        }
        int ws = *p == ' ' || *p == '\n' || *p == '\t' || *p == '\r';
        if (ws && (space || n == 0))
            continue;
        space = ws;
        out[n++] = ws ? ' ' : *p;
    }
    while (n > 0 && out[n - 1] == ' ')
        n--;
    if (outlen)
        out[n] = '\0';
}

void pg_conn_error(const PGconn *conn, const char *password, const char *what, char *out, size_t outlen)
{
    char msg[PG_ERR_LEN];
    one_line(password ? password : "", conn ? PQerrorMessage(conn) : "", msg, sizeof msg);
    snprintf(out, outlen, "%s%s%s", what, msg[0] ? ": " : "", msg);
}

static void conn_error(const pg_conn *pg, const char *what, char *out, size_t outlen)
{
    pg_conn_error(pg->conn, pg->password, what, out, outlen);
}

void pg_result_error(const PGresult *res, char *out, size_t outlen)
{
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (primary == NULL) {
        const char *whole = res ? PQresultErrorMessage(res) : "";
        primary = whole && whole[0] ? whole : "no error message";
    }
    snprintf(out, outlen, "%s (SQLSTATE %s)", primary, state ? state : "none");
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\t' || *p == '\r')
            *p = ' ';
}

/* ---- connection strings ------------------------------------------------------ */

int pg_conninfo_check(const char *conninfo, char *err, size_t errlen)
{
    char *why = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo ? conninfo : "", &why);
    PQfreemem(why);   /* may quote the string: never shown */
    if (opts == NULL) {
        snprintf(err, errlen, "not a valid libpq connection string");
        return -1;
    }
    PQconninfoFree(opts);
    return 0;
}

int pg_conninfo_password(const char *conninfo, char *out, size_t outlen)
{
    PQconninfoOption *opts = PQconninfoParse(conninfo ? conninfo : "", NULL);
    if (opts == NULL || outlen == 0) {
        PQconninfoFree(opts);
        return -1;
    }
    int rc = 0;
    out[0] = '\0';
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (strcmp(o->keyword, "password") == 0 && o->val) {
            int n = snprintf(out, outlen, "%s", o->val);
            rc = n >= 0 && (size_t)n < outlen ? 0 : -1;
        }
    }
    PQconninfoFree(opts);
    return rc;
}

/* ---- handles ----------------------------------------------------------------- */

static void handle_gone(pg_conn *pg)
{
    if (--pg->handles == 0 && pg->closing) {
        free(pg->conninfo);
        free(pg);
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    handle_gone(h->data);
}

static void on_sock_closed(uv_handle_t *h)
{
    pg_sock *s = h->data;
    pg_conn *pg = s->pg;
    free(s);
    handle_gone(pg);
}

static void sock_drop(pg_conn *pg)
{
    if (pg->sock == NULL)
        return;
    uv_close((uv_handle_t *)&pg->sock->poll, on_sock_closed);
    pg->sock = NULL;
}

/* Watches libpq's current socket for events. 0 or -1. */
static int sock_watch(pg_conn *pg, int events, uv_poll_cb cb)
{
    int fd = PQsocket(pg->conn);
    if (fd < 0)
        return -1;
    if (pg->sock == NULL) {
        pg_sock *s = calloc(1, sizeof *s);
        if (s == NULL)
            return -1;
        if (uv_poll_init_socket(pg->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->pg = pg;
        s->poll.data = s;
        pg->sock = s;
        pg->handles++;
    }
    return uv_poll_start(&pg->sock->poll, events, cb) == 0 ? 0 : -1;
}

/* ---- state changes ----------------------------------------------------------- */

static void report(pg_conn *pg, int connected, const char *reason)
{
    if (pg->closing || pg->reported == connected)
        return;
    pg->reported = connected;
    if (pg->on_state)
        pg->on_state(pg, connected, reason, pg->ud);
}

static void take_query(pg_conn *pg, pg_result_fn **cb, void **privdata, PGresult **res)
{
    *cb = pg->cb;
    *privdata = pg->privdata;
    *res = pg->result;
    pg->cb = NULL;
    pg->privdata = NULL;
    pg->result = NULL;
}

/* Closes the socket and the libpq connection; the query in flight is not
 * answered here. */
static void drop_conn(pg_conn *pg)
{
    sock_drop(pg);
    if (pg->conn)
        PQfinish(pg->conn);
    pg->conn = NULL;
    pg->flushing = 0;
    pg->broken[0] = '\0';
}

/* The query in flight, if any, ends with a NULL result: its callback runs
 * exactly once, as pg.h promises. */
static void fail_query(pg_conn *pg)
{
    pg_result_fn *cb;
    void *privdata;
    PGresult *res;
    take_query(pg, &cb, &privdata, &res);
    PQclear(res);
    if (cb)
        cb(pg, NULL, privdata);
}

/* Any failure: drop the connection, answer the query in flight with NULL,
 * say "down" once, try again after the backoff. */
static void fail(pg_conn *pg, const char *reason)
{
    drop_conn(pg);
    pg->phase = PG_WAITING;
    uv_timer_start(&pg->timer, on_timer, pg->backoff_ms, 0);
    pg->backoff_ms = pg->backoff_ms * 2 > pg->reconnect_max_ms ? pg->reconnect_max_ms : pg->backoff_ms * 2;
    fail_query(pg);
    report(pg, 0, reason);
}

static void fail_conn(pg_conn *pg, const char *what)
{
    char reason[PG_ERR_LEN];
    conn_error(pg, what, reason, sizeof reason);
    fail(pg, reason);
}

/* ---- connecting --------------------------------------------------------------- */

static void quiet_notices(void *arg, const char *message)
{
    (void)arg;   /* notices and "arrived while idle" messages: not for stderr */
    (void)message;
}

static void on_connect_io(uv_poll_t *h, int status, int events)
{
    (void)status;   /* an error shows in PQconnectPoll */
    (void)events;
    pg_sock *s = h->data;
    connect_step(s->pg);
}

static void start_connect(pg_conn *pg)
{
    pg->phase = PG_CONNECTING;
    pg->conn = PQconnectStart(pg->conninfo);
    if (pg->conn == NULL) {
        fail(pg, "out of memory");
        return;
    }
    if (PQstatus(pg->conn) == CONNECTION_BAD) {
        fail_conn(pg, "connect failed");
        return;
    }
    PQsetNoticeProcessor(pg->conn, quiet_notices, NULL);
    uv_timer_start(&pg->timer, on_timer, pg->connect_timeout_ms, 0);
    /* libpq: right after PQconnectStart, act as if PQconnectPoll said WRITING. */
    if (sock_watch(pg, UV_WRITABLE, on_connect_io) < 0)
        fail_conn(pg, "connect failed");
}

static void became_ready(pg_conn *pg)
{
    if (PQsetnonblocking(pg->conn, 1) != 0 || sock_watch(pg, UV_READABLE, on_ready_io) < 0) {
        fail_conn(pg, "connect failed");
        return;
    }
    pg->phase = PG_READY;
    uv_timer_stop(&pg->timer);
    pg->backoff_ms = pg->reconnect_min_ms;
    if (pg->ever_connected)
        pg->reconnects++;
    pg->ever_connected = 1;
    report(pg, 1, "connected");
}

static void connect_step(pg_conn *pg)
{
    sock_drop(pg);   /* the socket may change inside PQconnectPoll */
    switch (PQconnectPoll(pg->conn)) {
    case PGRES_POLLING_READING:
        if (sock_watch(pg, UV_READABLE, on_connect_io) < 0)
            fail_conn(pg, "connect failed");
        return;
    case PGRES_POLLING_WRITING:
        if (sock_watch(pg, UV_WRITABLE, on_connect_io) < 0)
            fail_conn(pg, "connect failed");
        return;
    case PGRES_POLLING_OK:
        became_ready(pg);
        return;
    default:
        fail_conn(pg, "connect failed");
        return;
    }
}

/* ---- queries ------------------------------------------------------------------ */

/* The result to hand over: the first one, unless a later one is an error
 * (a failed commit after the command completed). */
static void keep_result(pg_conn *pg, PGresult *r)
{
    if (pg->result == NULL) {
        pg->result = r;
    } else if (PQresultStatus(r) == PGRES_FATAL_ERROR && PQresultStatus(pg->result) != PGRES_FATAL_ERROR) {
        PQclear(pg->result);
        pg->result = r;
    } else {
        PQclear(r);
    }
}

static void answer(pg_conn *pg)
{
    if (PQstatus(pg->conn) == CONNECTION_BAD) {   /* the "result" is the lost connection */
        fail_conn(pg, "connection lost");
        return;
    }
    uv_timer_stop(&pg->timer);
    pg_result_fn *cb;
    void *privdata;
    PGresult *res;
    take_query(pg, &cb, &privdata, &res);
    cb(pg, res, privdata);
    PQclear(res);
}

/* Reads every result that is complete; answers once the last one came. */
static void collect(pg_conn *pg)
{
    while (pg->cb && !PQisBusy(pg->conn)) {
        PGresult *r = PQgetResult(pg->conn);
        if (r == NULL) {
            answer(pg);
            return;
        }
        keep_result(pg, r);
    }
}

static int flush_out(pg_conn *pg)
{
    int r = PQflush(pg->conn);
    pg->flushing = r == 1;
    return r < 0 ? -1 : 0;
}

static void rewatch(pg_conn *pg)
{
    if (pg->closing || pg->phase != PG_READY)
        return;
    if (sock_watch(pg, UV_READABLE | (pg->flushing ? UV_WRITABLE : 0), on_ready_io) < 0)
        fail_conn(pg, "poll failed");
}

static void on_ready_io(uv_poll_t *h, int status, int events)
{
    pg_conn *pg = ((pg_sock *)h->data)->pg;
    if ((status < 0 || (events & UV_READABLE)) && !PQconsumeInput(pg->conn)) {
        fail_conn(pg, "connection lost");
        return;
    }
    if (pg->flushing && flush_out(pg) < 0) {
        fail_conn(pg, "connection lost");
        return;
    }
    for (PGnotify *n; (n = PQnotifies(pg->conn)) != NULL;)
        PQfreemem(n);
    if (pg->cb)
        collect(pg);
    else if (PQstatus(pg->conn) == CONNECTION_BAD)
        fail_conn(pg, "connection lost");
    rewatch(pg);
}

static int can_send(const pg_conn *pg, pg_result_fn *cb, int nparams)
{
    return pg_is_connected(pg) && pg->cb == NULL && cb != NULL && nparams >= 0 && nparams <= MAX_PARAMS;
}

/* After a PQsend*: ok is its result. Takes the query in flight. */
static int sent(pg_conn *pg, int ok, pg_result_fn *cb, void *privdata)
{
    if (!ok) {
        conn_error(pg, "send failed", pg->broken, sizeof pg->broken);
        uv_timer_start(&pg->timer, on_timer, 0, 0);   /* dropped on the next turn */
        return -1;
    }
    pg->cb = cb;
    pg->privdata = privdata;
    if (flush_out(pg) < 0) {
        conn_error(pg, "send failed", pg->broken, sizeof pg->broken);
        uv_timer_start(&pg->timer, on_timer, 0, 0);   /* answered with NULL then */
        return 0;
    }
    if (pg->query_timeout_ms)
        uv_timer_start(&pg->timer, on_timer, pg->query_timeout_ms, 0);
    rewatch(pg);
    return 0;
}

int pg_query(pg_conn *pg, const char *sql, int nparams, const Oid *types, const char *const *values,
             pg_result_fn *cb, void *privdata)
{
    if (!can_send(pg, cb, nparams))
        return -1;
    return sent(pg, PQsendQueryParams(pg->conn, sql, nparams, types, values, NULL, NULL, 0), cb, privdata);
}

int pg_prepare(pg_conn *pg, const char *name, const char *sql, int nparams, const Oid *types,
               pg_result_fn *cb, void *privdata)
{
    if (!can_send(pg, cb, nparams))
        return -1;
    return sent(pg, PQsendPrepare(pg->conn, name, sql, nparams, types), cb, privdata);
}

int pg_query_prepared(pg_conn *pg, const char *name, int nparams, const char *const *values, pg_result_fn *cb,
                      void *privdata)
{
    if (!can_send(pg, cb, nparams))
        return -1;
    return sent(pg, PQsendQueryPrepared(pg->conn, name, nparams, values, NULL, NULL, 0), cb, privdata);
}

/* ---- timer: backoff over, connect timed out, query timed out or broken ------- */

static void on_timer(uv_timer_t *t)
{
    pg_conn *pg = t->data;
    char reason[PG_ERR_LEN];
    switch (pg->phase) {
    case PG_WAITING:
        start_connect(pg);
        return;
    case PG_CONNECTING:
        snprintf(reason, sizeof reason, "connect timed out after %llu ms",
                 (unsigned long long)pg->connect_timeout_ms);
        fail(pg, reason);
        return;
    case PG_READY:
        if (pg->broken[0])
            snprintf(reason, sizeof reason, "%s", pg->broken);
        else
            snprintf(reason, sizeof reason, "no answer within %llu ms", (unsigned long long)pg->query_timeout_ms);
        fail(pg, reason);
        return;
    }
}

/* ---- life ----------------------------------------------------------------------- */

static uint64_t or_default(uint64_t v, uint64_t def)
{
    return v ? v : def;
}

pg_conn *pg_new(uv_loop_t *loop, const pg_options *opt)
{
    if (opt == NULL || opt->conninfo == NULL)
        return NULL;
    char err[64];
    if (pg_conninfo_check(opt->conninfo, err, sizeof err) < 0)
        return NULL;
    pg_conn *pg = calloc(1, sizeof *pg);
    if (pg == NULL || (pg->conninfo = strdup(opt->conninfo)) == NULL) {
        free(pg);
        return NULL;
    }
    if (pg_conninfo_password(opt->conninfo, pg->password, sizeof pg->password) < 0)
        pg->password[0] = '\0';
    pg->loop = loop;
    pg->connect_timeout_ms = or_default(opt->connect_timeout_ms, DEFAULT_CONNECT_TIMEOUT_MS);
    pg->query_timeout_ms = opt->query_timeout_ms;
    pg->reconnect_min_ms = or_default(opt->reconnect_min_ms, DEFAULT_RECONNECT_MIN_MS);
    pg->reconnect_max_ms = or_default(opt->reconnect_max_ms, DEFAULT_RECONNECT_MAX_MS);
    pg->backoff_ms = pg->reconnect_min_ms;
    pg->on_state = opt->on_state;
    pg->ud = opt->ud;
    pg->reported = -1;
    uv_timer_init(loop, &pg->timer);
    pg->timer.data = pg;
    pg->handles = 1;
    pg->phase = PG_WAITING;
    uv_timer_start(&pg->timer, on_timer, 0, 0);   /* connect on the first loop turn */
    return pg;
}

int pg_is_connected(const pg_conn *pg)
{
    return pg && !pg->closing && pg->phase == PG_READY && !pg->broken[0];
}

int pg_is_busy(const pg_conn *pg)
{
    return pg && pg->cb != NULL;
}

uint64_t pg_reconnects(const pg_conn *pg)
{
    return pg ? pg->reconnects : 0;
}

void pg_close(pg_conn *pg)
{
    if (pg == NULL || pg->closing)
        return;
    pg->closing = 1;
    uv_timer_stop(&pg->timer);
    drop_conn(pg);
    fail_query(pg);
    uv_close((uv_handle_t *)&pg->timer, on_timer_closed);
}
