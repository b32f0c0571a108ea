/* pg: one PostgreSQL connection (libpq, non-blocking) on a libuv loop that
 * keeps itself connected, and runs one query at a time.
 *
 * It connects with PQconnectStart/PQconnectPoll, watching PQsocket with a
 * uv_poll handle; sends with PQsendQueryParams + PQflush and reads with
 * PQconsumeInput/PQgetResult, so the loop never waits for the database. When
 * the connection drops, is refused, or a connect or a query takes longer
 * than its timeout, the query in flight (if any) is answered with NULL, the
 * owner hears "disconnected" once, and a new connection is started after a
 * capped exponential backoff.
 *
 * Not here: what the queries are (the owner's), retries of failed queries,
 * logging (the owner logs; reasons never contain the connection string or
 * its password). Limitation of libpq: a host name is resolved inside
 * PQconnectPoll, i.e. on the loop; give an IP address or a local name.
 *
 * Single-threaded; every callback runs on the loop. */
#ifndef ADSYNC_PG_H
#define ADSYNC_PG_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define PG_ERR_LEN 256

typedef struct pg_conn pg_conn;

/* connected: 1 once a (re)connect completed, 0 when it was lost or an
 * attempt failed (once per state change, not per retry). reason: one line
 * for logs, with any password masked. */
typedef void pg_state_fn(pg_conn *pg, int connected, const char *reason, void *ud);

/* The answer to pg_query: res is borrowed (cleared when the callback
 * returns) and is NULL when the connection was lost, timed out or closed
 * before the answer: the statement may or may not have been committed.
 * Otherwise it is the statement's result: PGRES_COMMAND_OK/TUPLES_OK means
 * committed (an implicit transaction commits before the answer is given
 * here), PGRES_FATAL_ERROR carries the server's SQLSTATE and message. */
typedef void pg_result_fn(pg_conn *pg, const PGresult *res, void *privdata);

typedef struct pg_options {
    const char *conninfo;          /* libpq URI or key=value string; copied; secret */
    uint64_t connect_timeout_ms;   /* default 5000 when 0 */
    uint64_t query_timeout_ms;     /* an answer older than this drops the connection; 0 = never */
    uint64_t reconnect_min_ms;     /* default 100 when 0 */
    uint64_t reconnect_max_ms;     /* default 5000 when 0 */
    pg_state_fn *on_state;         /* may be NULL */
    void *ud;                      /* passed to on_state */
} pg_options;

/* Creates the connection object and starts connecting. NULL when out of
 * memory or when conninfo does not parse (see pg_conninfo_check). loop is
 * borrowed and must outlive the pg_conn. */
pg_conn *pg_new(uv_loop_t *loop, const pg_options *opt);

int pg_is_connected(const pg_conn *pg);
int pg_is_busy(const pg_conn *pg);        /* a query was sent and not yet answered */
uint64_t pg_reconnects(const pg_conn *pg);

/* Sends one statement with nparams text parameters (values[i] NULL = SQL
 * NULL; types may be NULL to let the server infer them). Everything is
 * borrowed for the call only. 0: cb will run exactly once (possibly with
 * NULL). -1: not sent (not connected, a query already in flight, or
 * nparams over 65535): cb never runs. */
int pg_query(pg_conn *pg, const char *sql, int nparams, const Oid *types, const char *const *values,
             pg_result_fn *cb, void *privdata);

/* Prepared statements, same contract as pg_query: pg_prepare creates
 * statement name (its result says whether it worked), pg_query_prepared
 * runs it. A statement lives as long as the connection: prepare again after
 * every "connected". */
int pg_prepare(pg_conn *pg, const char *name, const char *sql, int nparams, const Oid *types,
               pg_result_fn *cb, void *privdata);
int pg_query_prepared(pg_conn *pg, const char *name, int nparams, const char *const *values, pg_result_fn *cb,
                      void *privdata);

/* Drops the connection (a query in flight is answered with NULL, now) and
 * stops reconnecting; memory is freed once libuv has closed the handles (a
 * later loop turn). pg must not be used afterwards. NULL is a no-op. */
void pg_close(pg_conn *pg);

/* 0 when conninfo parses as a libpq connection string (URI or key=value),
 * else -1 with a message in err that never repeats the string. */
int pg_conninfo_check(const char *conninfo, char *err, size_t errlen);

/* Copies the password conninfo carries (possibly "") into out. 0, or -1
 * when conninfo does not parse or out is too small. */
int pg_conninfo_password(const char *conninfo, char *out, size_t outlen);

/* PQerrorMessage(conn) as one line, with password (if not "") masked, after
 * "what: ". For synchronous users (adsync-enqueue) as much as for pg.c. */
void pg_conn_error(const PGconn *conn, const char *password, const char *what, char *out, size_t outlen);

/* One line describing a failed result: "<primary message> (SQLSTATE
 * xxxxx)" into out. */
void pg_result_error(const PGresult *res, char *out, size_t outlen);

#endif
