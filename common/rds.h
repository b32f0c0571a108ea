/* rds: one hiredis (0.14) async connection on a libuv loop that keeps itself
 * connected.
 *
 * It connects, authenticates (AUTH from the URL), selects the database and
 * loads the Lua scripts it was given; only then does it report "connected".
 * When the connection drops, is refused, or a command stays unanswered past
 * command_timeout_ms, every pending callback runs with a NULL reply, the
 * owner hears "disconnected" once, and a new context is made after a capped
 * exponential backoff (hiredis 0.14 contexts cannot be reused). The loop is
 * never blocked.
 *
 * Callback contract: rds_command/rds_script return 0 when the callback will
 * run exactly once (with a reply, or NULL if the command failed for any
 * transport reason); -1 when the command was not sent (not connected), in
 * which case the callback never runs and privdata stays the caller's.
 * The reply is borrowed: valid only during the callback (hiredis frees it).
 * A server error arrives as a reply of type REDIS_REPLY_ERROR, not NULL.
 * Scripts: EVALSHA with the SHA from SCRIPT LOAD; on NOSCRIPT (server
 * restarted, SCRIPT FLUSH) the script is re-sent with EVAL transparently.
 *
 * Single-threaded; all callbacks run on the loop. */
#ifndef ADSYNC_RDS_H
#define ADSYNC_RDS_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cfg.h"

typedef struct rds rds;

typedef void rds_reply_fn(rds *r, redisReply *reply, void *privdata);
/* connected: 1 after a (re)connect completed, 0 when it was lost or a
 * connect attempt failed (reported once per state change, not per retry).
 * reason: short text for logs, never containing the password. */
typedef void rds_state_fn(rds *r, int connected, const char *reason, void *ud);

typedef struct rds_options {
    const cfg_redis_url *url;      /* borrowed, must outlive the rds: the password
                                      is kept in one place, not once per connection */
    const char *name;              /* for logs, e.g. "main" or "pop"; copied */
    uint64_t connect_timeout_ms;   /* default 2000 when 0 */
    uint64_t command_timeout_ms;   /* a reply older than this drops the connection; 0 = never */
    uint64_t reconnect_min_ms;     /* default 100 when 0 */
    uint64_t reconnect_max_ms;     /* default 5000 when 0 */
    const char *const *scripts;    /* Lua bodies to SCRIPT LOAD on every connect; borrowed, must outlive rds */
    size_t nscripts;
    rds_state_fn *on_state;        /* may be NULL */
    void *ud;                      /* passed to on_state */
} rds_options;

/* Creates the connection object and starts connecting. NULL on allocation
 * failure. loop is borrowed and must outlive the rds. */
rds *rds_new(uv_loop_t *loop, const rds_options *opt);

int rds_is_connected(const rds *r);
uint64_t rds_reconnects(const rds *r);   /* successful connects after the first */
size_t rds_pending(const rds *r);        /* commands sent, reply not yet seen */
void *rds_userdata(const rds *r);        /* opt->ud */

/* Sends a command (binary-safe). argv/argvlen are borrowed for the call only
 * (hiredis copies); argvlen NULL means strlen. See the contract above.
 * SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE, PUNSUBSCRIBE and MONITOR return -1
 * here and in rds_commandf: their replies cannot map to one callback. */
int rds_command(rds *r, rds_reply_fn *cb, void *privdata, int argc, const char **argv,
                const size_t *argvlen);

/* printf-style convenience for fixed commands (hiredis format: %s %b %d …). */
int rds_commandf(rds *r, rds_reply_fn *cb, void *privdata, const char *fmt, ...);

/* Runs script number script_index (index into opt->scripts) with nkeys keys
 * followed by the other arguments: args = KEYS..., ARGV... (nargs total). */
int rds_script(rds *r, size_t script_index, rds_reply_fn *cb, void *privdata, int nkeys, int nargs,
               const char **args, const size_t *arglens);

/* Drops the connection now (pending callbacks get NULL) and stops
 * reconnecting; frees everything once libuv has closed the handles (a later
 * loop turn). r must not be used afterwards. NULL is a no-op. */
void rds_close(rds *r);

#endif
