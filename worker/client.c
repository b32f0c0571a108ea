/* client: what a worker knows about one client account while it holds jobs
 * for it: credentials from <prefix>:client:<id>, and a token shared by every
 * worker through <prefix>:client:<id>:token (DESIGN.md §6).
 *
 * Token protocol: take the cached token if there is one; otherwise try to
 * take the short lock <prefix>:client:<id>:authlock and authenticate; a
 * worker that does not get the lock polls for the token the lock holder
 * writes. So one worker per client authenticates at a time, and the platform
 * sees one login per token lifetime, not one per worker. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "seal.h"
#include "client.h"

#define CL_RELOAD_MS 500          /* retry after a failed credentials read */
#define CL_TOKEN_POLL_MS 100      /* waiting for another worker's login */
#define CL_AUTHLOCK_MS 10000
#define CL_TOKEN_RECHECK_MS 30000 /* re-read the shared token this often */
#define CL_PASSWORD_MAX 1023      /* what adsync-enqueue client add accepts */

struct cl_set {
    wctx *x;
    il_node clients;         /* every client, by client.link */
    cl_event_fn *on_event;   /* the scheduler's (client.h) */
    void *ud;
};

static void load_credentials(client *c);
static void free_if_unused(client *c);

static wctx *cx(const client *c)
{
    return c->set->x;
}

static int tell(client *c, cl_event ev)
{
    return c->set->on_event(c, ev, c->set->ud);
}

static int client_key(client *c, keys_client_kind kind, char *out)
{
    return keys_client_key(&cx(c)->keys, c->id, kind, out, KEYS_MAX_LEN);
}

static void on_timer(uv_timer_t *t)
{
    client *c = t->data;
    c->timer_armed = 0;
    if (c->state == CL_LOADING)
        load_credentials(c);
    else
        cl_prepare(c);
    tell(c, CL_EV_TIMER);
}

void cl_arm_timer(client *c, uint64_t ms)
{
    uv_timer_start(&c->timer, on_timer, ms, 0);
    c->timer_armed = 1;
}

static void set_state(client *c, cl_state s)
{
    c->state = s;
    tell(c, CL_EV_CHANGED);
}

static void fail(client *c, int permanent, const char *why)
{
    snprintf(c->failure, sizeof c->failure, "%.255s", why);   /* failure[256] */
    c->failed_permanent = permanent;
    log_warn("client unusable", LOG_STR("client", c->id), LOG_STR("error", why),
             LOG_INT("permanent", permanent));
    set_state(c, CL_FAILED);
}

/* ---- credentials --------------------------------------------------------- */

static void copy_field(char *dst, size_t dstlen, const redisReply *v)
{
    snprintf(dst, dstlen, "%.*s", (int)v->len, v->str);
}

static unsigned parse_unsigned(const redisReply *v, unsigned def, unsigned max)
{
    char buf[32], *end;
    copy_field(buf, sizeof buf, v);
    unsigned long n = strtoul(buf, &end, 10);
    return *end == '\0' && end != buf && n <= max ? (unsigned)n : def;
}

/* ---- the password, as stored (sealed, or plain from earlier versions) ----- */

static void forget_password(client *c)
{
    if (c->password)
        sodium_memzero(c->password, strlen(c->password));
    free(c->password);
    c->password = NULL;
}

/* Keeps the stored form only: a sealed password is opened just before a
 * login and wiped right after (authenticate). */
/* -1 when out of memory (the password is then missing, not empty). */
static int keep_stored_password(client *c, const redisReply *v)
{
    forget_password(c);
    c->password = malloc(v->len + 1);
    if (c->password == NULL)
        return -1;
    memcpy(c->password, v->str, v->len);
    c->password[v->len] = '\0';
    return 0;
}

/* Opens the stored password into out. -1 with why filled: it cannot be
 * opened (wrong or missing key, tampered, another client's), or it is plain
 * text while a key is configured and plain text is not allowed. */
static int open_password(client *c, char *out, size_t outcap, size_t *outlen, char *why, size_t whylen)
{
    const wctx *x = cx(c);
    char key_id[SEAL_KEY_ID_LEN + 1];
    int rc = seal_open(x->seal, c->id, "password", c->password, strlen(c->password), out, outcap, outlen,
                       key_id);
    if (rc == SEAL_OK)
        return 0;
    if (rc == SEAL_PLAIN && (!seal_keyring_active(x->seal) || x->cfg.allow_plaintext_credentials))
        return 0;
    if (rc == SEAL_PLAIN) {
        sodium_memzero(out, outcap);
        snprintf(why, whylen, "credentials of client %s are stored in plain text while a sealing key is "
                              "configured: run 'adsync-enqueue secrets migrate' (or set "
                              "ADSYNC_ALLOW_PLAINTEXT_CREDENTIALS=1)", c->id);
    } else if (rc == SEAL_ERR_SPACE) {
        snprintf(why, whylen, "credentials of client %s are too long (at most %d bytes)", c->id, CL_PASSWORD_MAX);
    } else {
        snprintf(why, whylen, "credentials cannot be opened (key id %s)%s", key_id,
                 rc == SEAL_ERR_KEY ? ": no such key configured (ADSYNC_SECRET_KEY_FILE, "
                                      "ADSYNC_SECRET_PREVIOUS_KEY_FILE)"
                                    : ": tampered, or sealed for another client");
    }
    return -1;
}

/* Whether the stored password can be used at all, checked when it is read
 * so a job whose credentials cannot be opened is dead-lettered before
 * anything reaches the platform. */
static int password_unusable(client *c, char *why, size_t whylen)
{
    char plain[CL_PASSWORD_MAX + 1];
    size_t n;
    int rc = open_password(c, plain, sizeof plain, &n, why, whylen);
    sodium_memzero(plain, sizeof plain);
    return rc < 0;
}

/* Applies one field of the client hash; unknown fields are ignored. */
/* -1 when out of memory. */
static int apply_field(client *c, const redisReply *k, const redisReply *v)
{
    if (strcmp(k->str, "email") == 0 && v->len >= sizeof c->email)
        c->email_too_long = 1;   /* never cut: a shortened e-mail only fails the login */
    else if (strcmp(k->str, "email") == 0)
        copy_field(c->email, sizeof c->email, v);
    else if (strcmp(k->str, "password") == 0)
        return keep_stored_password(c, v);
    else if (strcmp(k->str, "api_url") == 0)
        copy_field(c->base_url, sizeof c->base_url, v);
    else if (strcmp(k->str, "rate_limit") == 0) {
        c->rate_limit = parse_unsigned(v, c->rate_limit, 1000000);
        c->rate_limit_named = 1;   /* wins over the old name, whichever HGETALL lists first */
    } else if (strcmp(k->str, "rate_limit_per_min") == 0 && !c->rate_limit_named)
        c->rate_limit = parse_unsigned(v, c->rate_limit, 1000000);   /* the old name */
    else if (strcmp(k->str, "rate_window_ms") == 0)
        c->rate_window_ms = parse_unsigned(v, (unsigned)c->rate_window_ms, 86400000);
    else if (strcmp(k->str, "page_size") == 0)
        c->page_size = parse_unsigned(v, c->page_size, 1000);
    return 0;
}

static void validate_credentials(client *c)
{
    char err[CFG_ERR_LEN], msg[CFG_ERR_LEN + 128];
    cfg_http_url url;
    if (c->email_too_long) {
        snprintf(msg, sizeof msg, "the e-mail of client %s is longer than %zu bytes", c->id, sizeof c->email - 1);
        fail(c, 1, msg);
    } else if (c->email[0] == '\0' || c->password == NULL || c->password[0] == '\0') {
        snprintf(msg, sizeof msg, "no credentials for client %s", c->id);
        fail(c, 1, msg);
    } else if (password_unusable(c, msg, sizeof msg)) {
        fail(c, 1, msg);
    } else if (cfg_parse_http_url("api_url", c->base_url, &url, err, sizeof err) < 0) {
        snprintf(msg, sizeof msg, "bad api_url for client %s: %s", c->id, err);
        fail(c, 1, msg);
    } else {
        snprintf(c->base_url, sizeof c->base_url, "%s", url.base);
        if (c->page_size == 0)
            c->page_size = cx(c)->cfg.page_size;
        set_state(c, CL_NEED_TOKEN);
        cl_prepare(c);
    }
}

static void on_credentials(rds *r, redisReply *reply, void *privdata)
{
    (void)r;
    client *c = privdata;
    c->pending_io--;
    if (reply && reply->type == REDIS_REPLY_ERROR) {   /* e.g. WRONGTYPE: waiting will not fix it */
        char msg[CFG_ERR_LEN];
        snprintf(msg, sizeof msg, "cannot read the hash of client %s: %.200s", c->id, reply->str);
        fail(c, 1, msg);
        free_if_unused(c);
        return;
    }
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        cl_arm_timer(c, CL_RELOAD_MS);
        free_if_unused(c);
        return;
    }
    int oom = 0;
    for (size_t i = 0; i + 1 < reply->elements; i += 2)
        oom |= apply_field(c, reply->element[i], reply->element[i + 1]) < 0;
    if (oom) {   /* not "no credentials": they are there, we could not keep them */
        cl_arm_timer(c, CL_RELOAD_MS);
        free_if_unused(c);
        return;
    }
    tell(c, CL_EV_LIMITS);
    if (c->password && !seal_keyring_active(cx(c)->seal))
        log_secret_add(c->password);   /* plain text at rest: keep it out of logs too */
    validate_credentials(c);
    free_if_unused(c);
}

static void load_credentials(client *c)
{
    char key[KEYS_MAX_LEN];
    client_key(c, KEYS_CLIENT, key);
    if (rds_commandf(cx(c)->redis, on_credentials, c, "HGETALL %s", key) < 0) {
        cl_arm_timer(c, CL_RELOAD_MS);
        return;
    }
    c->pending_io++;
}

/* ---- registry ------------------------------------------------------------ */

cl_set *cl_set_new(wctx *x, cl_event_fn *on_event, void *ud)
{
    cl_set *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    *s = (cl_set){ .x = x, .on_event = on_event, .ud = ud };
    il_init(&s->clients);
    return s;
}

client *cl_acquire(cl_set *s, const char *id)
{
    for (il_node *n = s->clients.next; n != &s->clients; n = n->next) {
        client *c = IL_ENTRY(n, client, link);
        if (strcmp(c->id, id) == 0) {
            c->refs++;
            return c;
        }
    }
    client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    const wctx *x = s->x;
    c->set = s;
    snprintf(c->id, sizeof c->id, "%s", id);
    snprintf(c->base_url, sizeof c->base_url, "%s", x->cfg.platform.base);
    c->rate_limit = x->cfg.rate_limit;
    c->rate_window_ms = x->cfg.rate_window_ms;
    c->refs = 1;
    c->state = CL_LOADING;
    if (tell(c, CL_EV_NEW) < 0) {
        free(c);
        return NULL;
    }
    uv_timer_init(x->loop, &c->timer);
    c->timer.data = c;
    il_push_front(&s->clients, &c->link);
    load_credentials(c);
    return c;
}

static void on_client_closed(uv_handle_t *h)
{
    client *c = h->data;
    forget_password(c);
    free(c->token_stored);
    free(c);
}

static void destroy(client *c)
{
    il_unlink(&c->link);
    tell(c, CL_EV_GONE);
    http_headers_unref(c->headers);
    c->headers = NULL;
    uv_close((uv_handle_t *)&c->timer, on_client_closed);
}

static void free_if_unused(client *c)
{
    if (uv_is_closing((uv_handle_t *)&c->timer))
        return;   /* destroyed at teardown; a callback aborted by it still ends here */
    if (c->refs == 0 && c->pending_io == 0)
        destroy(c);
}

void cl_release(client *c)
{
    if (c == NULL)
        return;
    c->refs--;
    free_if_unused(c);
}

void cl_pin(client *c)
{
    c->pending_io++;
}

void cl_unpin(client *c)
{
    c->pending_io--;
    free_if_unused(c);
}

void cl_set_free(cl_set *s)
{
    if (s == NULL)
        return;
    il_node *n;
    while ((n = il_first(&s->clients)) != NULL)
        destroy(IL_ENTRY(n, client, link));
    free(s);
}

/* ---- token ----------------------------------------------------------------- */

/* token is the plain token, stored what <prefix>:client:<id>:token holds
 * for it (sealed, or the same text): kept to compare and delete by value. */
static void adopt_token(client *c, const char *token, const char *stored)
{
    char auth[API_TOKEN_MAX + 32], cid[KEYS_ID_MAX + 16];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    snprintf(cid, sizeof cid, "X-Client-Id: %s", c->id);
    const char *lines[] = { auth, cid, "Content-Type: application/json", "Accept: application/json" };
    http_headers *h = http_headers_new(lines, 4);
    memset(auth, 0, sizeof auth);
    if (h == NULL) {
        fail(c, 0, "out of memory building headers");
        return;
    }
    char *copy = strdup(stored);
    if (copy == NULL) {
        http_headers_unref(h);
        fail(c, 0, "out of memory keeping the token");
        return;
    }
    log_secret_add(token);
    http_headers_unref(c->headers);
    c->headers = h;
    free(c->token_stored);
    c->token_stored = copy;
    if (strcmp(c->token, token) != 0)
        c->token_gen++;
    snprintf(c->token, sizeof c->token, "%s", token);
    c->token_recheck_at = clock_mono_ms() + CL_TOKEN_RECHECK_MS;
    set_state(c, CL_READY);
}

static void fetch_shared_token(client *c);

static void release_authlock(client *c)
{
    char key[KEYS_MAX_LEN];
    client_key(c, KEYS_CLIENT_AUTHLOCK, key);
    const char *args[] = { key, cx(c)->id };
    rds_script(cx(c)->redis, SCRIPT_CAD, NULL, NULL, 1, 2, args, NULL);
}

static void on_token_stored(rds *r, redisReply *reply, void *privdata)
{
    (void)r;
    (void)reply;   /* if it did not land, other workers log in themselves */
    client *c = privdata;
    c->pending_io--;
    release_authlock(c);
    free_if_unused(c);
}

/* The token's stored form: sealed when a key is configured, else itself.
 * NULL when out of memory. */
static char *token_to_store(client *c, const char *token)
{
    if (seal_keyring_active(cx(c)->seal))
        return seal_seal(cx(c)->seal, c->id, "token", token, strlen(token));
    return strdup(token);
}

static void store_token(client *c, const char *stored, long expires_in)
{
    /* Cached a minute less than the platform keeps it, so nobody uses a
     * token in its last seconds; short test TTLs keep half their life. */
    long ttl_ms = expires_in > 120 ? (expires_in - 60) * 1000 : expires_in * 500;
    char key[KEYS_MAX_LEN], ttl[32];
    client_key(c, KEYS_CLIENT_TOKEN, key);
    snprintf(ttl, sizeof ttl, "%ld", ttl_ms > 0 ? ttl_ms : 1);
    const char *argv[] = { "SET", key, stored, "PX", ttl };
    if (rds_command(cx(c)->redis, on_token_stored, c, 5, argv, NULL) == 0)
        c->pending_io++;
    else
        release_authlock(c);
}

static void on_auth_done(const http_result *res, void *ud)
{
    client *c = ud;
    wctx *x = cx(c);
    c->pending_io--;
    ctx_count_http(x, API_EP_AUTH, res);
    char token[API_TOKEN_MAX], err[256], why[400];
    long expires_in = 0;
    api_verdict v = api_classify(res->error, res->status);
    if (v == API_OK && api_parse_token(res->body, res->body_len, token, sizeof token, &expires_in,
                                       err, sizeof err) == 0) {
        log_info("authenticated", LOG_STR("client", c->id), LOG_INT("expires_in", expires_in));
        char *stored = token_to_store(c, token);
        if (stored) {
            store_token(c, stored, expires_in);
            adopt_token(c, token, stored);
        } else {
            release_authlock(c);
            fail(c, 0, "out of memory sealing the token");
        }
        free(stored);
        sodium_memzero(token, sizeof token);
    } else {
        api_describe_failure(res, v == API_OK ? err : NULL, why, sizeof why);
        release_authlock(c);
        int permanent = v == API_REAUTH || v == API_PERMANENT;
        char msg[512];
        snprintf(msg, sizeof msg, "authentication failed: %s", why);
        fail(c, permanent, msg);
    }
    free_if_unused(c);
}

static void authenticate(client *c)
{
    char basic[API_BASIC_HEADER_MAX], url[1100], plain[CL_PASSWORD_MAX + 1], why[CFG_ERR_LEN];
    size_t plain_len;
    if (open_password(c, plain, sizeof plain, &plain_len, why, sizeof why) < 0) {
        fail(c, 1, why);
        return;
    }
    int too_long = api_basic_auth_header(c->email, plain, basic, sizeof basic) < 0;
    sodium_memzero(plain, sizeof plain);
    if (too_long) {
        fail(c, 1, "credentials too long");
        return;
    }
    const char *lines[] = { basic, "Accept: application/json" };
    http_headers *h = http_headers_new(lines, 2);
    sodium_memzero(basic, sizeof basic);
    const api_call none = { 0 };
    char *body;
    int rc = api_request(API_EP_AUTH, c->base_url, &none, url, sizeof url, &body);
    http_request_spec spec = { .method = api_endpoints[API_EP_AUTH].method, .url = url, .headers = h,
                               .body = body, .body_len = body ? strlen(body) : 0 };
    if (rc == 0)
        rc = h && cx(c)->http ? http_submit(cx(c)->http, &spec, on_auth_done, c) : -1;
    free(body);
    http_headers_unref(h);   /* the request holds its own reference */
    if (rc < 0) {
        release_authlock(c);
        fail(c, 0, "could not start the authentication request");
        return;
    }
    c->pending_io++;
    cx(c)->n.auth_requests++;
    set_state(c, CL_AUTHING);
}

/* No token yet (another worker is logging in) or no answer from Redis: look
 * again later. Back to NEED_TOKEN first, or the timer would find the client
 * still "authing", and nothing would ever ask again. */
static void token_retry_later(client *c, uint64_t ms)
{
    c->state = CL_NEED_TOKEN;
    cl_arm_timer(c, ms);
}

static void on_authlock(rds *r, redisReply *reply, void *privdata)
{
    (void)r;
    client *c = privdata;
    c->pending_io--;
    if (reply && reply->type == REDIS_REPLY_STATUS)
        authenticate(c);                  /* we hold the lock */
    else
        token_retry_later(c, CL_TOKEN_POLL_MS); /* somebody else is logging in */
    free_if_unused(c);
}

static void ask_for_authlock(client *c)
{
    char key[KEYS_MAX_LEN];
    client_key(c, KEYS_CLIENT_AUTHLOCK, key);
    if (rds_commandf(cx(c)->redis, on_authlock, c, "SET %s %s NX PX %d", key, cx(c)->id, CL_AUTHLOCK_MS) == 0)
        c->pending_io++;
    else
        token_retry_later(c, CL_RELOAD_MS);
}

/* A cached token opens into token, or is no token at all: sealed under a
 * key we lack, tampered, plain text while sealing is on, sealed while it is
 * off. Such a value is never sent: the client logs in and replaces it. */
static int open_token(client *c, const redisReply *v, char *token, size_t cap)
{
    size_t n;
    int rc = seal_open(cx(c)->seal, c->id, "token", v->str, v->len, token, cap, &n, NULL);
    int sealing = seal_keyring_active(cx(c)->seal);
    int usable = n > 0;
    for (size_t i = 0; i < n; i++)
        usable &= token[i] > 0x20 && token[i] < 0x7f;   /* CR, LF, spaces: no header can carry it */
    if ((rc == SEAL_OK || (rc == SEAL_PLAIN && !sealing)) && usable)
        return 0;
    sodium_memzero(token, cap);
    return -1;
}

static void on_shared_token(rds *r, redisReply *reply, void *privdata)
{
    (void)r;
    client *c = privdata;
    c->pending_io--;
    char token[API_TOKEN_MAX];
    if (reply && reply->type == REDIS_REPLY_STRING && open_token(c, reply, token, sizeof token) == 0) {
        adopt_token(c, token, reply->str);
        sodium_memzero(token, sizeof token);
    } else if (reply && (reply->type == REDIS_REPLY_NIL || reply->type == REDIS_REPLY_STRING)) {
        ask_for_authlock(c);
    } else if (reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "WRONGTYPE", 9) == 0) {
        /* Somebody's value under our key: the login's SET replaces it. */
        log_warn("cached token key holds the wrong type, logging in to replace it", LOG_STR("client", c->id));
        ask_for_authlock(c);
    } else {
        token_retry_later(c, CL_RELOAD_MS);   /* Redis away */
    }
    free_if_unused(c);
}

static void fetch_shared_token(client *c)
{
    char key[KEYS_MAX_LEN];
    client_key(c, KEYS_CLIENT_TOKEN, key);
    if (rds_commandf(cx(c)->redis, on_shared_token, c, "GET %s", key) < 0) {
        cl_arm_timer(c, CL_RELOAD_MS);
        return;
    }
    c->pending_io++;
    c->state = CL_AUTHING;   /* a fetch is under way: nothing to start meanwhile */
}

void cl_prepare(client *c)
{
    /* After a retryable failure the next op that is due logs in again: the
     * ops failed with the login and wait for their own backoff, so logins
     * are paced as the attempts they spend. */
    if (c->state == CL_FAILED && !c->failed_permanent)
        c->state = CL_NEED_TOKEN;
    if (c->state == CL_READY && clock_mono_ms() >= c->token_recheck_at)
        c->state = CL_NEED_TOKEN;
    if (c->state == CL_NEED_TOKEN && !c->timer_armed)
        fetch_shared_token(c);
}

void cl_token_rejected(client *c, uint64_t token_gen)
{
    if (token_gen != c->token_gen || c->token_stored == NULL)
        return;   /* already replaced */
    char key[KEYS_MAX_LEN];
    client_key(c, KEYS_CLIENT_TOKEN, key);
    const char *args[] = { key, c->token_stored };
    rds_script(cx(c)->redis, SCRIPT_CAD, NULL, NULL, 1, 2, args, NULL);
    c->token[0] = '\0';
    c->token_gen++;
    cx(c)->n.token_refreshes++;
    log_info("token rejected, logging in again", LOG_STR("client", c->id));
    c->state = CL_NEED_TOKEN;
    cl_prepare(c);
}
