/* store: the worker's ordered script writes that survive Redis outages (see
 * store.c). Created from what it needs — the loop, the Redis connection and
 * a callback for "a write landed, work may move on" — so it knows nothing
 * of the worker above it. */
#ifndef ADSYNC_WORKER_STORE_H
#define ADSYNC_WORKER_STORE_H

#include <stddef.h>
#include <uv.h>

#include "rds.h"

typedef struct store store;

/* done gets the reply (never NULL: transport failures are retried until the
 * write lands); an error reply is retried with backoff too. ud is the
 * caller's. */
typedef void st_done_fn(redisReply *reply, void *ud);

/* Called after each write lands and its done ran (ud as given to st_new). */
typedef void st_landed_fn(void *ud);

/* The script number st_conn.send gets for a plain command (argv[0] names it). */
#define ST_COMMAND (-1)

/* How the store reaches Redis: rds_script and rds_is_connected on one
 * connection for the worker (st_new), something else in the store's unit
 * test. send follows rds_script's contract (0: cb runs later, with NULL if
 * the connection is lost; < 0: it never runs). */
typedef struct st_conn {
    int (*send)(void *ud, int script, int nkeys, int argc, const char **argv, const size_t *lens,
                rds_reply_fn *cb, void *arg);
    int (*connected)(void *ud);
    void *ud;
} st_conn;

/* loop and redis are borrowed and must outlive the store. NULL on OOM. */
store *st_new(uv_loop_t *loop, rds *redis, st_landed_fn *landed, void *ud);
/* The same over conn (copied; conn->ud borrowed). */
store *st_new_on(uv_loop_t *loop, const st_conn *conn, st_landed_fn *landed, void *ud);
/* Drops what is unconfirmed; the memory goes once libuv closed the timer. */
void st_free(store *s);
/* Queues one script call; every string is copied. argv = KEYS then ARGV. */
int st_script(store *s, int script, int nkeys, int argc, const char **argv, const size_t *lens,
              st_done_fn *done, void *ud);
/* Queues one plain command (argv[0] is its name), in order with the script
 * calls. Replies as for st_script, except that a WRONGTYPE error is an
 * answer (done gets it, nothing is retried): such a key stays as it is, so
 * the caller reads it in a later script call and fails there. */
int st_command(store *s, int argc, const char **argv, const size_t *lens, st_done_fn *done, void *ud);
size_t st_backlog(const store *s);       /* writes not yet confirmed */
void st_on_connected(store *s);          /* resend what is unconfirmed */

#endif
