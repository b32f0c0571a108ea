/* rdsync: synchronous hiredis helpers (see rdsync.h). */
#include "rdsync.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- argv building ------------------------------------------------------ */

void rdsync_cmd_init(rdsync_cmd *cmd, const char *name)
{
    cmd->argc = 0;
    cmd->overflow = 0;
    rdsync_cmd_add(cmd, name);
}

void rdsync_cmd_addn(rdsync_cmd *cmd, const char *s, size_t n)
{
    if (cmd->argc >= RDSYNC_MAX_ARGS) {
        cmd->overflow = 1;
        return;
    }
    cmd->argv[cmd->argc] = s;
    cmd->argvlen[cmd->argc] = n;
    cmd->argc++;
}

void rdsync_cmd_add(rdsync_cmd *cmd, const char *s)
{
    rdsync_cmd_addn(cmd, s, strlen(s));
}

void rdsync_cmd_addll(rdsync_cmd *cmd, long long v)
{
    if (cmd->argc >= RDSYNC_MAX_ARGS) {
        cmd->overflow = 1;
        return;
    }
    char *slot = cmd->num[cmd->argc];
    int n = snprintf(slot, sizeof cmd->num[0], "%lld", v);
    rdsync_cmd_addn(cmd, slot, (size_t)n);
}

/* ---- connection ----------------------------------------------------------- */

static struct timeval ms_to_tv(unsigned ms)
{
    struct timeval tv = { (time_t)(ms / 1000u), (suseconds_t)((ms % 1000u) * 1000u) };
    return tv;
}

/* Runs a setup command (AUTH, SELECT) and checks for an OK status. The
 * error names only what (never the arguments, which may hold a password). */
static int setup_command(redisContext *c, const rdsync_cmd *cmd, const char *what,
                         const cfg_redis_url *url, char *err, size_t errlen)
{
    char ioerr[RDSYNC_ERR_LEN];
    redisReply *r = rdsync_run(c, cmd, ioerr, sizeof ioerr);
    if (r == NULL) {
        set_err(err, errlen, "%s failed: %s", what, ioerr);
        return -1;
    }
    int ok = r->type == REDIS_REPLY_STATUS;
    if (!ok)
        set_err(err, errlen, "Redis at %s:%d: %s failed: %.120s", url->host, url->port, what,
                r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    freeReplyObject(r);
    return ok ? 0 : -1;
}

static int authenticate(redisContext *c, const cfg_redis_url *url, char *err, size_t errlen)
{
    if (url->password[0] == '\0')
        return 0;
    rdsync_cmd cmd;
    rdsync_cmd_init(&cmd, "AUTH");
    if (url->user[0])
        rdsync_cmd_add(&cmd, url->user);
    rdsync_cmd_add(&cmd, url->password);
    return setup_command(c, &cmd, "AUTH", url, err, errlen);
}

static int select_db(redisContext *c, const cfg_redis_url *url, char *err, size_t errlen)
{
    if (url->db == 0)
        return 0;
    rdsync_cmd cmd;
    rdsync_cmd_init(&cmd, "SELECT");
    rdsync_cmd_addll(&cmd, url->db);
    return setup_command(c, &cmd, "SELECT", url, err, errlen);
}

redisContext *rdsync_connect(const cfg_redis_url *url, unsigned connect_ms, unsigned command_ms,
                             char *err, size_t errlen)
{
    redisContext *c = redisConnectWithTimeout(url->host, url->port, ms_to_tv(connect_ms));
    if (c == NULL) {
        set_err(err, errlen, "Redis at %s:%d: out of memory", url->host, url->port);
        return NULL;
    }
    if (c->err) {
        set_err(err, errlen, "Redis at %s:%d: %s", url->host, url->port, c->errstr);
        redisFree(c);
        return NULL;
    }
    if (redisSetTimeout(c, ms_to_tv(command_ms)) != REDIS_OK) {
        set_err(err, errlen, "Redis at %s:%d: %s", url->host, url->port, c->errstr);
        redisFree(c);
        return NULL;
    }
    if (authenticate(c, url, err, errlen) < 0 || select_db(c, url, err, errlen) < 0) {
        redisFree(c);
        return NULL;
    }
    return c;
}

void rdsync_free(redisContext *c)
{
    if (c)
        redisFree(c);
}

/* ---- commands and pipelines --------------------------------------------- */

int rdsync_append(redisContext *c, const rdsync_cmd *cmd, char *err, size_t errlen)
{
    if (cmd->overflow) {
        set_err(err, errlen, "command %.32s has more than %d arguments", cmd->argv[0], RDSYNC_MAX_ARGS);
        return -1;
    }
    if (redisAppendCommandArgv(c, cmd->argc, (const char **)cmd->argv, cmd->argvlen) != REDIS_OK) {
        set_err(err, errlen, "Redis: %s", c->errstr[0] ? c->errstr : "out of memory");
        return -1;
    }
    return 0;
}

redisReply *rdsync_read(redisContext *c, char *err, size_t errlen)
{
    void *reply = NULL;
    if (redisGetReply(c, &reply) != REDIS_OK || reply == NULL) {
        const char *why = c->errstr[0] ? c->errstr : "no reply";
        if (c->err == REDIS_ERR_IO && strstr(why, "temporarily unavailable"))
            why = "timed out waiting for a reply";
        set_err(err, errlen, "Redis at %s:%d: %s", c->tcp.host ? c->tcp.host : "?", c->tcp.port, why);
        return NULL;
    }
    return reply;
}

void rdsync_free_n(redisReply **out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (out[i])
            freeReplyObject(out[i]);
        out[i] = NULL;
    }
}

int rdsync_read_n(redisContext *c, redisReply **out, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = rdsync_read(c, err, errlen);
        if (out[i] == NULL) {
            rdsync_free_n(out, i);
            return -1;
        }
    }
    return 0;
}

redisReply *rdsync_run(redisContext *c, const rdsync_cmd *cmd, char *err, size_t errlen)
{
    if (rdsync_append(c, cmd, err, errlen) < 0)
        return NULL;
    return rdsync_read(c, err, errlen);
}

/* ---- scripts ------------------------------------------------------------ */

void rdsync_script_init(rdsync_script *s, const char *body)
{
    s->body = body;
    memset(s->sha, 0, sizeof s->sha);
}

int rdsync_script_load(redisContext *c, rdsync_script *s, char *err, size_t errlen)
{
    rdsync_cmd cmd;
    rdsync_cmd_init(&cmd, "SCRIPT");
    rdsync_cmd_add(&cmd, "LOAD");
    rdsync_cmd_add(&cmd, s->body);
    redisReply *r = rdsync_run(c, &cmd, err, errlen);
    if (r == NULL)
        return -1;
    int ok = r->type == REDIS_REPLY_STRING && r->len == RDSYNC_SHA_LEN;
    if (ok)
        memcpy(s->sha, r->str, RDSYNC_SHA_LEN + 1);
    else
        set_err(err, errlen, "SCRIPT LOAD failed: %.160s",
                r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    freeReplyObject(r);
    return ok ? 0 : -1;
}

void rdsync_cmd_evalsha(rdsync_cmd *cmd, const rdsync_script *s, int nkeys)
{
    rdsync_cmd_init(cmd, "EVALSHA");
    rdsync_cmd_addn(cmd, s->sha, RDSYNC_SHA_LEN);
    rdsync_cmd_addll(cmd, nkeys);
}

int rdsync_is_noscript(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

redisReply *rdsync_eval(redisContext *c, rdsync_script *s, const rdsync_cmd *cmd,
                        char *err, size_t errlen)
{
    if (s->sha[0] == '\0' && rdsync_script_load(c, s, err, errlen) < 0)
        return NULL;
    redisReply *r = rdsync_run(c, cmd, err, errlen);
    if (!rdsync_is_noscript(r))
        return r;
    freeReplyObject(r);
    if (rdsync_script_load(c, s, err, errlen) < 0)
        return NULL;
    return rdsync_run(c, cmd, err, errlen);
}
