/* floor: the least a program can do for adsync's work, as a yardstick for
 * the worker benchmark (tests/bench/worker.sh builds and runs it).
 *
 * For clients client_1..N: log in, list every page, POST each listed
 * campaign's sync, and store each synced campaign with one HSET. One libuv
 * loop, one curl multi handle (the shape of curl's multi-uv.c), one hiredis
 * async connection; no queue, no limiter, no retries, no bookkeeping. Any
 * failure ends the run with exit 1: it measures, it does not cope.
 *
 *   floor --redis HOST:PORT --api URL --clients N [--page-size P] [--concurrency C]
 *
 * Prints one JSON line: {"campaigns":N,"seconds":S}. */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef enum { REQ_AUTH, REQ_LIST, REQ_SYNC } req_kind;

typedef struct client {
    char id[32], token[128], auth[200];
    struct curl_slist *headers;
    int page;
} client;

typedef struct req {
    req_kind kind;
    client *c;
    char *campaign;            /* REQ_SYNC: the listed JSON object */
    char id[128];
    char *body;
    size_t len, cap;
    char url[512], post[256];
    struct req *next;          /* waiting for a slot */
} req;

static uv_loop_t *loop;
static CURLM *multi;
static uv_timer_t curl_timer;
static redisAsyncContext *redis;
static const char *api = "http://127.0.0.1:3001";
static int page_size = 100, concurrency = 256, inflight, pending_stores, lists_open;
static long long stored;
static req *queue_head, *queue_tail;

static void fail(const char *what)
{
    fprintf(stderr, "floor: %s\n", what);
    exit(1);
}

/* ---- curl multi on libuv ------------------------------------------------------ */

typedef struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
} sock_ctx;

static void check_done(void);

static void on_poll(uv_poll_t *p, int status, int events)
{
    sock_ctx *s = p->data;
    int flags = status < 0 ? CURL_CSELECT_ERR : 0;
    flags |= events & UV_READABLE ? CURL_CSELECT_IN : 0;
    flags |= events & UV_WRITABLE ? CURL_CSELECT_OUT : 0;
    int running;
    curl_multi_socket_action(multi, s->fd, flags, &running);
    check_done();
}

static void on_sock_closed(uv_handle_t *h)
{
    free(h->data);
}

static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)e, (void)userp;
    sock_ctx *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            uv_poll_stop(&s->poll);
            uv_close((uv_handle_t *)&s->poll, on_sock_closed);
            curl_multi_assign(multi, fd, NULL);
        }
        return 0;
    }
    if (s == NULL) {
        s = calloc(1, sizeof *s);
        s->fd = fd;
        if (uv_poll_init_socket(loop, &s->poll, fd) != 0)
            fail("uv_poll_init_socket failed");
        s->poll.data = s;
        curl_multi_assign(multi, fd, s);
    }
    int events = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
    uv_poll_start(&s->poll, events, on_poll);
    return 0;
}

static void on_curl_timeout(uv_timer_t *t)
{
    (void)t;
    int running;
    curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done();
}

static int on_timer(CURLM *m, long ms, void *userp)
{
    (void)m, (void)userp;
    if (ms < 0)
        uv_timer_stop(&curl_timer);
    else
        uv_timer_start(&curl_timer, on_curl_timeout, (uint64_t)ms, 0);
    return 0;
}

static size_t on_write(char *data, size_t size, size_t n, void *ud)
{
    req *r = ud;
    size_t len = size * n;
    if (r->len + len + 1 > r->cap) {
        r->cap = (r->len + len + 1) * 2;
        r->body = realloc(r->body, r->cap);
    }
    memcpy(r->body + r->len, data, len);
    r->len += len;
    r->body[r->len] = '\0';
    return len;
}

static void start(req *r)
{
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    if (r->kind == REQ_AUTH) {
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
        curl_easy_setopt(e, CURLOPT_USERPWD, r->c->auth);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
    } else {
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->c->headers);
        if (r->kind == REQ_SYNC)
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->post);
    }
    inflight++;
    curl_multi_add_handle(multi, e);
}

/* Starts what the slots allow, oldest first. */
static void pump(void)
{
    while (queue_head && inflight < concurrency) {
        req *r = queue_head;
        queue_head = r->next;
        if (queue_head == NULL)
            queue_tail = NULL;
        start(r);
    }
}

static void submit(req *r)
{
    r->next = NULL;
    if (queue_tail)
        queue_tail->next = r;
    else
        queue_head = r;
    queue_tail = r;
    pump();
}

/* ---- the work -------------------------------------------------------------------- */

static req *new_req(req_kind kind, client *c)
{
    req *r = calloc(1, sizeof *r);
    r->kind = kind;
    r->c = c;
    return r;
}

static void list_page(client *c)
{
    req *r = new_req(REQ_LIST, c);
    snprintf(r->url, sizeof r->url, "%s/api/campaigns?page=%d&limit=%d", api, ++c->page, page_size);
    lists_open++;
    submit(r);
}

static void on_stored(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac, (void)privdata;
    if (reply == NULL || ((redisReply *)reply)->type == REDIS_REPLY_ERROR)
        fail("HSET failed");
    pending_stores--;
    stored++;
    check_done();
}

static void on_synced(req *r)
{
    cJSON *answer = cJSON_Parse(r->body), *campaign = cJSON_Parse(r->campaign);
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(answer, "synced_at");
    if (!cJSON_IsString(at) || campaign == NULL)
        fail("bad sync answer");
    cJSON_AddStringToObject(campaign, "synced_at", at->valuestring);
    char *json = cJSON_PrintUnformatted(campaign);
    redisAsyncCommand(redis, on_stored, NULL, "HSET floor:client:%s:campaigns %s %s", r->c->id, r->id, json);
    pending_stores++;
    free(json);
    cJSON_Delete(answer);
    cJSON_Delete(campaign);
}

static void on_listed(req *r)
{
    cJSON *page = cJSON_Parse(r->body);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(page, "data"), *item;
    const cJSON *more = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(page, "pagination"),
                                                         "has_more");
    if (!cJSON_IsArray(data))
        fail("bad page");
    cJSON_ArrayForEach(item, data) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(item, "id");
        req *s = new_req(REQ_SYNC, r->c);
        char *escaped = curl_easy_escape(NULL, id->valuestring, 0);
        snprintf(s->id, sizeof s->id, "%s", id->valuestring);
        snprintf(s->url, sizeof s->url, "%s/api/campaigns/%s/sync", api, escaped);
        snprintf(s->post, sizeof s->post, "{\"campaign_id\":\"%s\"}", id->valuestring);
        s->campaign = cJSON_PrintUnformatted(item);
        curl_free(escaped);
        submit(s);
    }
    if (cJSON_IsTrue(more) && cJSON_GetArraySize(data) > 0)
        list_page(r->c);
    cJSON_Delete(page);
}

static void on_authed(req *r)
{
    cJSON *answer = cJSON_Parse(r->body);
    const cJSON *token = cJSON_GetObjectItemCaseSensitive(answer, "access_token");
    if (!cJSON_IsString(token))
        fail("bad login answer");
    char auth[200], cid[64];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token->valuestring);
    snprintf(cid, sizeof cid, "X-Client-Id: %s", r->c->id);
    r->c->headers = curl_slist_append(curl_slist_append(curl_slist_append(NULL, auth), cid),
                                      "Content-Type: application/json");
    cJSON_Delete(answer);
    list_page(r->c);
}

static void finish_req(CURL *e, CURLcode code)
{
    req *r;
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(multi, e);
    curl_easy_cleanup(e);
    inflight--;
    if (code != CURLE_OK || status != 200)
        fail("a request failed (run the mock without faults and rate limits)");
    if (r->kind == REQ_AUTH)
        on_authed(r);
    else if (r->kind == REQ_LIST)
        lists_open--, on_listed(r);
    else
        on_synced(r);
    free(r->body);
    free(r->campaign);
    free(r);
    pump();
}

static void check_done(void)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(multi, &left)))
        if (m->msg == CURLMSG_DONE)
            finish_req(m->easy_handle, m->data.result);
    if (inflight == 0 && !queue_head && lists_open == 0 && pending_stores == 0 && redis) {
        redisAsyncDisconnect(redis);
        redis = NULL;
        uv_close((uv_handle_t *)&curl_timer, NULL);
    }
}

int main(int argc, char **argv)
{
    const char *redis_addr = "127.0.0.1:6379";
    int clients = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--redis") == 0)
            redis_addr = argv[i + 1];
        else if (strcmp(argv[i], "--api") == 0)
            api = argv[i + 1];
        else if (strcmp(argv[i], "--clients") == 0)
            clients = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--page-size") == 0)
            page_size = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--concurrency") == 0)
            concurrency = atoi(argv[i + 1]);
        else
            fail("usage: floor --redis HOST:PORT --api URL --clients N [--page-size P] [--concurrency C]");
    }
    char host[128];
    int port = 6379;
    if (sscanf(redis_addr, "%127[^:]:%d", host, &port) < 1)
        fail("bad --redis");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    loop = uv_default_loop();
    multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)concurrency);
    uv_timer_init(loop, &curl_timer);
    redis = redisAsyncConnect(host, port);
    if (redis == NULL || redis->err)
        fail("cannot connect to Redis");
    redisLibuvAttach(redis, loop);
    uint64_t t0 = uv_hrtime();
    client *cs = calloc((size_t)clients, sizeof *cs);
    for (int i = 0; i < clients; i++) {
        client *c = &cs[i];
        snprintf(c->id, sizeof c->id, "client_%d", i + 1);
        snprintf(c->auth, sizeof c->auth, "client_%d@example.test:secret-client_%d", i + 1, i + 1);
        req *r = new_req(REQ_AUTH, c);
        snprintf(r->url, sizeof r->url, "%s/auth/token", api);
        submit(r);
    }
    uv_run(loop, UV_RUN_DEFAULT);
    double seconds = (double)(uv_hrtime() - t0) / 1e9;
    printf("{\"campaigns\":%lld,\"seconds\":%.3f}\n", stored, seconds);
    for (int i = 0; i < clients; i++)
        curl_slist_free_all(cs[i].headers);
    free(cs);
    curl_multi_cleanup(multi);
    curl_global_cleanup();
    return 0;
}
