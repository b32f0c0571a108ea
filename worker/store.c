/* store: the worker's Redis writes (script calls that record progress, and
 * the plain HSETs that store synced campaigns ahead of their script call),
 * kept in order and replayed until Redis confirms them.
 *
 * A write whose reply never came (connection lost, command timeout) may or
 * may not have run; every write it carries is idempotent (progress.lua moves
 * campaign states, a stored campaign's HSET writes the same value again,
 * bury/reap check what they remove), so it is simply sent
 * again once the connection is back. While Redis is away the HTTP work of
 * held jobs goes on and its results wait here, in memory; the scheduler stops
 * starting new work when the backlog passes ST_HIGH_WATER. */
#include "store.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

#define ST_WINDOW 512            /* writes in flight on the connection */
#define ST_ERROR_RETRY_MS 1000

typedef struct write {
    struct write *next;
    struct store *store;
    int script, nkeys, argc;
    const char **argv;
    size_t *lens;
    st_done_fn *done;
    void *ud;
    int sent;
} write;

struct store {
    uv_loop_t *loop;
    st_conn conn;
    st_landed_fn *landed;
    void *landed_ud;
    write *head, *tail;
    write *cursor;           /* every write before it is sent: flush starts here */
    size_t count, inflight;
    uv_timer_t retry_timer;
    int error_logged;
};

static void flush(store *s);

static void on_retry_timer(uv_timer_t *t)
{
    flush(t->data);
}

store *st_new_on(uv_loop_t *loop, const st_conn *conn, st_landed_fn *landed, void *ud)
{
    store *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    *s = (store){ .loop = loop, .conn = *conn, .landed = landed, .landed_ud = ud };
    uv_timer_init(loop, &s->retry_timer);
    s->retry_timer.data = s;
    return s;
}

static int rds_send(void *ud, int script, int nkeys, int argc, const char **argv, const size_t *lens,
                    rds_reply_fn *cb, void *arg)
{
    if (script == ST_COMMAND)
        return rds_command(ud, cb, arg, argc, argv, lens);
    return rds_script(ud, (size_t)script, cb, arg, nkeys, argc, argv, lens);
}

static int rds_connected(void *ud)
{
    return rds_is_connected(ud);
}

store *st_new(uv_loop_t *loop, rds *redis, st_landed_fn *landed, void *ud)
{
    st_conn conn = { rds_send, rds_connected, redis };
    return st_new_on(loop, &conn, landed, ud);
}

static void free_write(write *wr)
{
    free(wr);   /* argv, lens and the strings live in the same block */
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void st_free(store *s)
{
    if (s == NULL)
        return;
    for (write *wr = s->head, *next; wr; wr = next) {
        next = wr->next;
        free_write(wr);
    }
    uv_close((uv_handle_t *)&s->retry_timer, on_timer_closed);
}

size_t st_backlog(const store *s)
{
    return s->count;
}

/* One allocation holds the write, its argv/len arrays and copies of the
 * arguments: a write is created and freed as one piece. */
static write *write_new(store *s, int script, int nkeys, int argc, const char **argv, const size_t *lens)
{
    size_t bytes = sizeof(write) + (size_t)argc * (sizeof(char *) + sizeof(size_t));
    for (int i = 0; i < argc; i++)
        bytes += (lens ? lens[i] : strlen(argv[i])) + 1;
    write *wr = malloc(bytes);
    if (wr == NULL)
        return NULL;
    memset(wr, 0, sizeof *wr);
    wr->store = s;
    wr->script = script;
    wr->nkeys = nkeys;
    wr->argc = argc;
    wr->argv = (const char **)(wr + 1);
    wr->lens = (size_t *)(wr->argv + argc);
    char *data = (char *)(wr->lens + argc);
    for (int i = 0; i < argc; i++) {
        size_t n = lens ? lens[i] : strlen(argv[i]);
        memcpy(data, argv[i], n);
        data[n] = '\0';
        wr->argv[i] = data;
        wr->lens[i] = n;
        data += n + 1;
    }
    return wr;
}

static void unlink_write(store *s, write *wr)
{
    write **pp = &s->head, *prev = NULL;
    while (*pp && *pp != wr) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp == NULL)
        return;
    *pp = wr->next;
    if (s->tail == wr)
        s->tail = prev;
    if (s->cursor == wr)
        s->cursor = wr->next;
    s->count--;
}

/* A plain command's WRONGTYPE is final: retrying cannot change the key. */
static int refused(const write *wr, const redisReply *reply)
{
    if (reply->type != REDIS_REPLY_ERROR)
        return 0;
    return wr->script != ST_COMMAND || strncmp(reply->str, "WRONGTYPE", 9) != 0;
}

static void on_reply(rds *r, redisReply *reply, void *privdata)
{
    (void)r;
    write *wr = privdata;
    store *s = wr->store;
    s->inflight--;
    int again = reply == NULL || refused(wr, reply);
    if (again) {
        wr->sent = 0;
        s->cursor = s->head;   /* rare: something must be sent again */
    }
    if (reply == NULL)
        return;   /* connection gone: resent by st_on_connected */
    if (again) {
        /* A server-side refusal (OOM under noeviction, a script error):
         * retrying is the only way not to lose the result. Say so once. */
        if (!s->error_logged)
            log_error("redis refused a write, retrying", LOG_STR("error", reply->str));
        s->error_logged = 1;
        uv_timer_start(&s->retry_timer, on_retry_timer, ST_ERROR_RETRY_MS, 0);
        return;
    }
    if (s->error_logged)
        log_info("redis accepts writes again");
    s->error_logged = 0;
    unlink_write(s, wr);
    if (wr->done)
        wr->done(reply, wr->ud);
    free_write(wr);
    flush(s);
    s->landed(s->landed_ud);
}

static void flush(store *s)
{
    const st_conn *c = &s->conn;
    write *wr = s->cursor;
    for (; wr && s->inflight < ST_WINDOW; wr = wr->next) {
        if (wr->sent)
            continue;
        if (!c->connected(c->ud))
            break;   /* st_on_connected sends it */
        if (c->send(c->ud, wr->script, wr->nkeys, wr->argc, wr->argv, wr->lens, on_reply, wr) < 0) {
            /* out of memory: nothing else may come along to flush again */
            uv_timer_start(&s->retry_timer, on_retry_timer, ST_ERROR_RETRY_MS, 0);
            break;
        }
        wr->sent = 1;
        s->inflight++;
    }
    s->cursor = wr;
}

static int queue(store *s, int script, int nkeys, int argc, const char **argv, const size_t *lens,
                 st_done_fn *done, void *ud)
{
    write *wr = write_new(s, script, nkeys, argc, argv, lens);
    if (wr == NULL)
        return -1;
    wr->done = done;
    wr->ud = ud;
    if (s->tail)
        s->tail->next = wr;
    else
        s->head = wr;
    s->tail = wr;
    if (s->cursor == NULL)
        s->cursor = wr;
    s->count++;
    flush(s);
    return 0;
}

int st_script(store *s, int script, int nkeys, int argc, const char **argv, const size_t *lens,
              st_done_fn *done, void *ud)
{
    return queue(s, script, nkeys, argc, argv, lens, done, ud);
}

int st_command(store *s, int argc, const char **argv, const size_t *lens, st_done_fn *done, void *ud)
{
    return queue(s, ST_COMMAND, 0, argc, argv, lens, done, ud);
}

void st_on_connected(store *s)
{
    flush(s);
}
