/* rdsync: synchronous hiredis helpers for short-lived tools (adsync-enqueue,
 * test and bench utilities): connect with timeouts, AUTH and SELECT from a
 * cfg_redis_url, argv building, pipelines, and EVALSHA with a reload on
 * NOSCRIPT.
 *
 * Nothing here logs or exits: failures return NULL/-1 with one line in a
 * caller buffer. That line names host:port and the problem, never the
 * password. A NULL reply means the connection is gone (hiredis contexts are
 * unusable after an I/O error or timeout): free it and reconnect. A server
 * error (WRONGTYPE, OOM ...) is a normal REDIS_REPLY_ERROR reply.
 * The event-loop worker uses common/redis.c instead; this file is blocking. */
#ifndef ADSYNC_RDSYNC_H
#define ADSYNC_RDSYNC_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "cfg.h"

#define RDSYNC_ERR_LEN 256
#define RDSYNC_MAX_ARGS 24
#define RDSYNC_SHA_LEN 40

/* One command as argv. Strings added with rdsync_cmd_add/addn are borrowed
 * and must stay valid until the command is appended (hiredis copies them
 * then); numbers are formatted into the struct itself. Adding more than
 * RDSYNC_MAX_ARGS arguments marks the command invalid (append fails). */
typedef struct rdsync_cmd {
    int argc;
    int overflow;
    const char *argv[RDSYNC_MAX_ARGS];
    size_t argvlen[RDSYNC_MAX_ARGS];
    char num[RDSYNC_MAX_ARGS][24];
} rdsync_cmd;

void rdsync_cmd_init(rdsync_cmd *cmd, const char *name);
void rdsync_cmd_add(rdsync_cmd *cmd, const char *s);
void rdsync_cmd_addn(rdsync_cmd *cmd, const char *s, size_t n);
void rdsync_cmd_addll(rdsync_cmd *cmd, long long v);

/* Connects to url->host:port giving up after connect_ms, sets a read/write
 * timeout of command_ms, then AUTHs (user + password, or password only) and
 * SELECTs url->db when not 0. Returns a ready context (free with
 * rdsync_free), or NULL with err filled. */
redisContext *rdsync_connect(const cfg_redis_url *url, unsigned connect_ms, unsigned command_ms,
                             char *err, size_t errlen);

/* redisFree; NULL is a no-op. */
void rdsync_free(redisContext *c);

/* Queues cmd on c's pipeline (nothing is sent until a read). 0, or -1 with
 * err (too many arguments, out of memory). */
int rdsync_append(redisContext *c, const rdsync_cmd *cmd, char *err, size_t errlen);

/* Sends what is queued and reads the next reply. Returns it (the caller
 * frees it with freeReplyObject), or NULL with err when the connection
 * failed or timed out. */
redisReply *rdsync_read(redisContext *c, char *err, size_t errlen);

/* Reads n pipelined replies into out[0..n). 0, or -1 with err; on -1 every
 * out[i] is NULL and nothing needs freeing. */
int rdsync_read_n(redisContext *c, redisReply **out, size_t n, char *err, size_t errlen);

/* freeReplyObject on out[0..n) and sets them NULL; NULL entries are skipped. */
void rdsync_free_n(redisReply **out, size_t n);

/* rdsync_append then rdsync_read. */
redisReply *rdsync_run(redisContext *c, const rdsync_cmd *cmd, char *err, size_t errlen);

/* A Lua script known by its body; sha is filled by rdsync_script_load
 * (SCRIPT LOAD), lazily by rdsync_eval. body is borrowed (usually one of the
 * script_<name> constants of scripts.h). */
typedef struct rdsync_script {
    const char *body;
    char sha[RDSYNC_SHA_LEN + 1];
} rdsync_script;

void rdsync_script_init(rdsync_script *s, const char *body);

/* SCRIPT LOAD s->body into s->sha. 0, or -1 with err (connection lost or the
 * server rejected the script; the reply text is in err). */
int rdsync_script_load(redisContext *c, rdsync_script *s, char *err, size_t errlen);

/* Starts cmd as "EVALSHA <s->sha> <nkeys>"; add the keys, then the args.
 * The sha argument points into s, so a later load fills it in place. */
void rdsync_cmd_evalsha(rdsync_cmd *cmd, const rdsync_script *s, int nkeys);

/* 1 if r is the NOSCRIPT error (script cache flushed or server restarted). */
int rdsync_is_noscript(const redisReply *r);

/* Runs cmd (built with rdsync_cmd_evalsha on s), loading s first if needed,
 * and on NOSCRIPT reloads it and retries once. Same return as rdsync_read. */
redisReply *rdsync_eval(redisContext *c, rdsync_script *s, const rdsync_cmd *cmd,
                        char *err, size_t errlen);

#endif
