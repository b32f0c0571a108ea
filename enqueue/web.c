/* web: "adsync-enqueue web [--listen HOST:PORT]", the operators' console.
 *
 * libmicrohttpd with one internal polling thread, so requests are served
 * one at a time on one Redis connection (the app). The page, its script,
 * style and icon are compiled in (the files in web/, embedded like the Lua scripts):
 * no CDN, no build step. Every view has its JSON under /api/, the same
 * shapes as the CLI's --json (ops.h), and the page draws only from those.
 *
 * Security: loopback by default; anywhere else needs ADSYNC_WEB_TOKEN_FILE
 * (exit 78 without it) and then every request the token (cookie set by
 * /login?token=…, or "Authorization: Bearer"). GETs never change anything;
 * actions are POSTs with the per-process CSRF token (X-CSRF-Token) and an
 * Origin equal to the Host they were sent to, else 403. The page renders
 * every value as text, and the Content-Security-Policy allows no inline
 * script. No credential, token or password field is ever read. */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "app.h"
#include "cli.h"
#include "log.h"
#include "ops.h"
#include "webdata.h"

#define WEB_DEFAULT_LISTEN "127.0.0.1:8080"
#define WEB_BODY_MAX 65536
#define WEB_TOKEN_MIN 16
#define WEB_TOKEN_MAX 256
#define CSRF_HEX 64
#define PAGE_LIMIT_MAX 500

extern const char asset_page[], asset_script[], asset_style[], asset_icon[];

static const char csp[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

typedef struct web {
    app *a;
    char csrf[CSRF_HEX + 1];
    char token[WEB_TOKEN_MAX + 1];     /* "" when listening on loopback without one */
    char *page;                        /* asset_page with the CSRF token filled in */
} web;

/* One request's upload, collected across the handler's calls. */
typedef struct upload {
    char *body;
    size_t len;
    int too_big;
} upload;

/* ---- responses ------------------------------------------------------------------ */

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, const char *type, const char *body,
                               size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Content-Security-Policy", csp);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result respond_text(struct MHD_Connection *c, unsigned status, const char *text)
{
    return respond(c, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* Takes root (NULL: Redis unavailable -> 503). */
static enum MHD_Result respond_json(struct MHD_Connection *c, web *w, cJSON *root)
{
    if (root == NULL) {
        static const char msg[] = "{\"error\":\"Redis unavailable\"}";
        app_reconnect(w->a);   /* the next request finds a fresh connection */
        return respond(c, 503, "application/json", msg, sizeof msg - 1);
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (text == NULL)
        return respond_text(c, 500, "out of memory");
    enum MHD_Result rc = respond(c, 200, "application/json", text, strlen(text));
    cJSON_free(text);
    return rc;
}

/* ---- who may ask ---------------------------------------------------------------- */

static int same_text(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    return la == lb && sodium_memcmp(a, b, la) == 0;
}

static int has_token(struct MHD_Connection *c, const web *w)
{
    if (w->token[0] == '\0')
        return 1;
    const char *cookie = MHD_lookup_connection_value(c, MHD_COOKIE_KIND, "adsync_token");
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (cookie && same_text(cookie, w->token))
        return 1;
    return auth && strncmp(auth, "Bearer ", 7) == 0 && same_text(auth + 7, w->token);
}

/* A POST must come from our own page: its Origin is the Host it was sent
 * to, and it carries the CSRF token the page was served with. */
static int action_allowed(struct MHD_Connection *c, const web *w)
{
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
    const char *csrf = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-CSRF-Token");
    char expected[300];
    if (!origin || !host || !csrf)
        return 0;
    snprintf(expected, sizeof expected, "http://%s", host);
    return strcmp(origin, expected) == 0 && same_text(csrf, w->csrf);
}

/* ---- GET ------------------------------------------------------------------------ */

static size_t query_size(struct MHD_Connection *c, const char *name, size_t def, size_t max)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
    long long n;
    if (v == NULL || app_parse_ll(v, 0, (long long)max, &n) < 0)
        return def;
    return (size_t)n;
}

static enum MHD_Result login(struct MHD_Connection *c, const web *w)
{
    const char *t = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "token");
    if (w->token[0] == '\0' || !t || !same_text(t, w->token))
        return respond_text(c, 403, "wrong token\n");
    struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    if (r == NULL)
        return MHD_NO;
    char cookie[WEB_TOKEN_MAX + 80];
    snprintf(cookie, sizeof cookie, "adsync_token=%s; HttpOnly; SameSite=Strict; Path=/", w->token);
    MHD_add_response_header(r, "Set-Cookie", cookie);
    MHD_add_response_header(r, "Location", "/");
    enum MHD_Result rc = MHD_queue_response(c, 303, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result get(struct MHD_Connection *c, web *w, const char *url)
{
    static const struct { const char *path, *type; const char *body; } assets[] = {
        { "/static/script.js", "text/javascript; charset=utf-8", asset_script },
        { "/static/style.css", "text/css; charset=utf-8", asset_style },
        { "/static/icon.svg", "image/svg+xml", asset_icon },
        { "/favicon.ico", "image/svg+xml", asset_icon },
    };
    if (strcmp(url, "/") == 0)
        return respond(c, 200, "text/html; charset=utf-8", w->page, strlen(w->page));
    for (size_t i = 0; i < sizeof assets / sizeof assets[0]; i++)
        if (strcmp(url, assets[i].path) == 0)
            return respond(c, 200, assets[i].type, assets[i].body, strlen(assets[i].body));
    if (strcmp(url, "/api/status") == 0)
        return respond_json(c, w, status_snapshot(w->a));
    if (strcmp(url, "/api/clients") == 0)
        return respond_json(c, w, web_clients(w->a, MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "q"),
                                              query_size(c, "offset", 0, 1u << 30),
                                              query_size(c, "limit", 50, PAGE_LIMIT_MAX)));
    if (strcmp(url, "/api/activity") == 0)
        return respond_json(c, w, web_activity(w->a));
    if (strcmp(url, "/api/dead") == 0)
        return respond_json(c, w, dead_snapshot(w->a));
    if (strcmp(url, "/api/retry") == 0)
        return respond_json(c, w, web_retry(w->a));
    if (strcmp(url, "/api/run") == 0) {
        const char *id = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "id");
        return respond_json(c, w, web_run(w->a, id ? id : ""));
    }
    return respond_text(c, 404, "not found\n");
}

/* ---- POST: the actions -------------------------------------------------------------- */

/* The ids an action applies to: {"ids":[...]} or {"all":true} (one NULL). */
typedef struct selection {
    const char *ids[PAGE_LIMIT_MAX];
    size_t n;
} selection;

static int select_ids(const cJSON *body, selection *sel)
{
    sel->n = 0;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "all"))) {
        sel->ids[sel->n++] = NULL;
        return 0;
    }
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(body, "ids"), *id;
    if (!cJSON_IsArray(ids))
        return -1;
    cJSON_ArrayForEach(id, ids) {
        if (!cJSON_IsString(id) || !keys_valid_token(id->valuestring) || sel->n == PAGE_LIMIT_MAX)
            return -1;
        sel->ids[sel->n++] = id->valuestring;
    }
    return sel->n ? 0 : -1;
}

static cJSON *count_result(const char *name, long long n)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, name, (double)n);
    return o;
}

static cJSON *act_dead_retry(web *w, const selection *sel)
{
    size_t moved = 0;
    for (size_t i = 0; i < sel->n; i++) {
        dead_retry_result r;
        if (dead_retry(w->a, sel->ids[i], &r) < 0)
            return NULL;
        moved += r.moved;
    }
    return count_result("moved", (long long)moved);
}

static cJSON *act_retry_now(web *w, const selection *sel)
{
    size_t moved = 0, one;
    for (size_t i = 0; i < sel->n; i++) {
        if (web_retry_now(w->a, sel->ids[i], &one) < 0)
            return NULL;
        moved += one;
    }
    return count_result("due_now", (long long)moved);
}

static cJSON *act_sync(web *w, const cJSON *body)
{
    const cJSON *client = cJSON_GetObjectItemCaseSensitive(body, "client");
    char state[16], run[KEYS_TOKEN_MAX + 1];
    if (!cJSON_IsString(client))
        return cJSON_CreateNull();
    if (sync_one(w->a, client->valuestring, 0, state, sizeof state, run, sizeof run) < 0)
        return NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "state", state);
    cJSON_AddStringToObject(o, "run", run);
    return o;
}

static enum MHD_Result post(struct MHD_Connection *c, web *w, const char *url, const upload *up)
{
    if (!action_allowed(c, w))
        return respond_text(c, 403, "forbidden: actions need the page's CSRF token and its origin\n");
    if (up->too_big)
        return respond_text(c, 413, "request body too large\n");
    cJSON *body = cJSON_ParseWithLength(up->body ? up->body : "{}", up->body ? up->len : 2);
    selection sel;
    enum MHD_Result rc;
    if (!cJSON_IsObject(body))
        rc = respond_text(c, 400, "expected a JSON object\n");
    else if (strcmp(url, "/api/sync") == 0)
        rc = respond_json(c, w, act_sync(w, body));
    else if (strcmp(url, "/api/dead/purge") == 0) {
        long long n;
        rc = respond_json(c, w, dead_purge(w->a, &n) < 0 ? NULL : count_result("purged", n));
    } else if (strcmp(url, "/api/dead/retry") == 0 || strcmp(url, "/api/retry/now") == 0) {
        if (select_ids(body, &sel) < 0)
            rc = respond_text(c, 400, "expected {\"ids\":[job ids]} or {\"all\":true}\n");
        else
            rc = respond_json(c, w, url[5] == 'd' ? act_dead_retry(w, &sel) : act_retry_now(w, &sel));
    } else
        rc = respond_text(c, 404, "not found\n");
    cJSON_Delete(body);
    return rc;
}

/* ---- the handler ------------------------------------------------------------------ */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *data, size_t *data_size, void **con_cls)
{
    (void)version;
    web *w = cls;
    upload *up = *con_cls;
    if (up == NULL) {   /* headers only: set up, answer on a later call */
        if ((up = calloc(1, sizeof *up)) == NULL)
            return MHD_NO;
        *con_cls = up;
        return MHD_YES;
    }
    if (*data_size > 0) {
        if (up->len + *data_size > WEB_BODY_MAX) {
            up->too_big = 1;
        } else {
            char *grown = realloc(up->body, up->len + *data_size + 1);
            if (grown == NULL)
                return MHD_NO;
            memcpy(grown + up->len, data, *data_size);
            up->body = grown;
            up->len += *data_size;
            up->body[up->len] = '\0';
        }
        *data_size = 0;
        return MHD_YES;
    }
    if (strcmp(url, "/login") == 0 && strcmp(method, "GET") == 0)
        return login(c, w);
    if (!has_token(c, w))
        return respond_text(c, 401, "this console needs its token: open /login?token=...\n");
    if (strcmp(method, "GET") == 0)
        return get(c, w, url);
    if (strcmp(method, "POST") == 0)
        return post(c, w, url, up);
    return respond_text(c, 405, "method not allowed\n");
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t)
{
    (void)cls, (void)c, (void)t;
    upload *up = *con_cls;
    if (up) {
        free(up->body);
        free(up);
    }
    *con_cls = NULL;
}

/* ---- setup -------------------------------------------------------------------------- */

static int is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
    return 0;
}

/* ADSYNC_WEB_TOKEN_FILE: one line, at least WEB_TOKEN_MIN printable bytes,
 * not readable by group or others. 0, or -1 with err. */
static int load_token(web *w, char *err, size_t errlen)
{
    const char *path = getenv("ADSYNC_WEB_TOKEN_FILE");
    if (path == NULL || *path == '\0')
        return snprintf(err, errlen, "ADSYNC_WEB_TOKEN_FILE: not set (a console that listens beyond loopback "
                                     "needs a token: expected a file with one line of at least %d characters)",
                        WEB_TOKEN_MIN), -1;
    FILE *f = fopen(path, "r");
    struct stat st;
    if (f == NULL || fstat(fileno(f), &st) < 0) {
        snprintf(err, errlen, "ADSYNC_WEB_TOKEN_FILE: %s: %s", path, strerror(errno));
        if (f)
            fclose(f);
        return -1;
    }
    int ok = fgets(w->token, sizeof w->token, f) != NULL;
    fclose(f);
    w->token[strcspn(w->token, "\r\n")] = '\0';
    size_t n = strlen(w->token);
    for (size_t i = 0; i < n; i++)
        ok &= w->token[i] > 0x20 && w->token[i] < 0x7f && w->token[i] != ';';
    if (st.st_mode & (S_IRWXG | S_IRWXO))
        return snprintf(err, errlen, "ADSYNC_WEB_TOKEN_FILE: %s: group or others can read it (expected mode 0600)",
                        path), -1;
    if (!ok || n < WEB_TOKEN_MIN)
        return snprintf(err, errlen, "ADSYNC_WEB_TOKEN_FILE: %s: expected one line of at least %d printable "
                                     "characters", path, WEB_TOKEN_MIN), -1;
    return 0;
}

/* The page with the CSRF token in its <meta>; NULL when out of memory. */
static char *make_page(const char *csrf)
{
    const char *mark = strstr(asset_page, "@CSRF@");
    if (mark == NULL)
        return strdup(asset_page);
    size_t before = (size_t)(mark - asset_page), total = strlen(asset_page) - 6 + strlen(csrf);
    char *page = malloc(total + 1);
    if (page)
        snprintf(page, total + 1, "%.*s%s%s", (int)before, asset_page, csrf, mark + 6);
    return page;
}

static const struct option web_longopts[] = {
    { "listen", required_argument, NULL, 'l' },
    { 0 },
};

static const app_cmd_spec web_spec = {
    "web [--listen HOST:PORT]",
    "Serves the operators' console: overview (queues, workers, activity of the\n"
    "last hour), clients and their last runs, one run's campaigns, the retry\n"
    "queue and the dead letters, with \"sync now\", retry and purge. Every view's\n"
    "JSON is under /api/ (status, clients, activity, run?id=, retry, dead).\n"
    "  --listen HOST:PORT   default 127.0.0.1:8080. Anywhere but loopback needs\n"
    "                       ADSYNC_WEB_TOKEN_FILE (else exit 78); then open\n"
    "                       /login?token=... once.\n"
    "Runs until SIGINT or SIGTERM.\n",
    web_longopts, "l:",
};

static int web_on_opt(void *ud, int opt, const char *value)
{
    (void)opt;
    *(const char **)ud = value;
    return 0;
}

/* Resolves listen into addr; -1 with err. */
static int resolve(const char *listen, struct sockaddr_storage *addr, char *err, size_t errlen)
{
    cfg_hostport hp;
    if (cfg_parse_hostport("--listen", listen, &hp, err, errlen) < 0)
        return -1;
    char port[8];
    snprintf(port, sizeof port, "%d", hp.port);
    struct addrinfo hints = { .ai_flags = AI_NUMERICSERV, .ai_socktype = SOCK_STREAM }, *res = NULL;
    int gai = getaddrinfo(hp.host, port, &hints, &res);
    if (gai != 0)
        return snprintf(err, errlen, "--listen: cannot resolve '%s': %s", hp.host, gai_strerror(gai)), -1;
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

static int serve(web *w, const struct sockaddr_storage *addr, const char *listen)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (addr->ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    struct MHD_Daemon *d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, w,
                                            MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)addr,
                                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_END);
    if (d == NULL) {
        app_error("web: cannot listen on %s (in use, or not an address of this host)", listen);
        return EX_UNAVAILABLE;
    }
    printf("console on http://%s/%s\n", listen, w->token[0] ? " (open /login?token=... once)" : "");
    fflush(stdout);
    sigset_t stop;
    int sig;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigwait(&stop, &sig);
    MHD_stop_daemon(d);
    return 0;
}

int cli_web(int argc, char **argv)
{
    const char *listen = WEB_DEFAULT_LISTEN;
    int first;
    int rc = app_parse_opts(&web_spec, argc, argv, web_on_opt, &listen, &first);
    if (rc)
        return rc == APP_HELP ? 0 : rc;
    if (first < argc)
        return app_usage_error(web_spec.usage, "unexpected argument '%s'", argv[first]);
    web w = { 0 };
    char err[CFG_ERR_LEN];
    struct sockaddr_storage addr;
    if (resolve(listen, &addr, err, sizeof err) < 0 ||
        (!is_loopback((struct sockaddr *)&addr) && load_token(&w, err, sizeof err) < 0)) {
        app_error("web: %s", err);
        return CFG_EXIT_CONFIG;
    }
    sigset_t stop;   /* blocked before any thread starts: only sigwait sees them */
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    app a;
    if ((rc = app_open(&a)) != 0)
        return rc;
    cfg_forget_env_secrets();   /* a long-lived process: the environment keeps no password */
    w.a = &a;
    unsigned char raw[CSRF_HEX / 2];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(w.csrf, sizeof w.csrf, raw, sizeof raw);
    if ((w.page = make_page(w.csrf)) == NULL) {
        app_error("web: out of memory");
        rc = EX_SOFTWARE;
    } else {
        rc = serve(&w, &addr, listen);
    }
    free(w.page);
    sodium_memzero(w.token, sizeof w.token);
    app_close(&a);
    return rc;
}
