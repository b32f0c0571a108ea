/* clients: "adsync-enqueue client add | list | remove": the registry of
 * client accounts (<p>:clients and the <p>:client:<id> hashes of
 * DESIGN.md §3).
 *
 * The password is read from stdin only (password.c), written into the hash
 * and wiped; no path here prints or logs it, and "client list" never even
 * fetches it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "cli.h"
#include "password.h"

#define EMAIL_MAX 320

/* ---- client add ------------------------------------------------------------ */

/* The optional numeric hash fields: flag, option letter, field, range. */
typedef struct numeric_field {
    const char *flag;
    int opt;
    const char *field;
    long long min, max;
} numeric_field;

static const numeric_field numeric_fields[] = {
    { "--rate-limit", 'r', "rate_limit", 1, 1000000 },
    { "--rate-window-ms", 'w', "rate_window_ms", 10, 86400000 },
    { "--page-size", 'p', "page_size", 1, 1000 },
};
#define N_NUMERIC (sizeof numeric_fields / sizeof numeric_fields[0])

typedef struct add_opts {
    const char *email;
    const char *api_url;
    const char *num_arg[N_NUMERIC];   /* as given, NULL if absent */
    long long num[N_NUMERIC];         /* parsed by add_validate */
} add_opts;

static int add_on_opt(void *ud, int opt, const char *value)
{
    add_opts *o = ud;
    if (opt == 'e')
        o->email = value;
    else if (opt == 'u')
        o->api_url = value;
    for (size_t i = 0; i < N_NUMERIC; i++)
        if (opt == numeric_fields[i].opt)
            o->num_arg[i] = value;
    return 0;
}

static const struct option add_longopts[] = {
    { "email", required_argument, NULL, 'e' },
    { "api-url", required_argument, NULL, 'u' },
    { "rate-limit", required_argument, NULL, 'r' },
    { "rate-window-ms", required_argument, NULL, 'w' },
    { "page-size", required_argument, NULL, 'p' },
    { 0 },
};

static const app_cmd_spec add_spec = {
    "client add ID --email EMAIL [--api-url URL] [--rate-limit N] [--rate-window-ms MS] [--page-size N]",
    "Registers a client account, or replaces it (all its settings, and its\n"
    "cached token, which may belong to the old credentials).\n"
    "The password is read from stdin, never from the command line: on a\n"
    "terminal a prompt appears and the typing is not echoed; otherwise the\n"
    "first line of stdin is the password (its \\n or \\r\\n is stripped).\n"
    "\n"
    "  ID                     ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$\n"
    "  --email EMAIL          login e-mail (required)\n"
    "  --api-url URL          http[s]://host[:port][/path] for this client\n"
    "                         (default: AD_PLATFORM_URL of the workers)\n"
    "  --rate-limit N         API requests per rate window, 1..1000000\n"
    "                         (default: ADSYNC_RATE_LIMIT_PER_MIN)\n"
    "  --rate-window-ms MS    the rate window, 10..86400000 (default: ADSYNC_RATE_WINDOW_MS)\n"
    "  --page-size N          campaigns per list page, 1..1000 (default: ADSYNC_PAGE_SIZE)\n"
    "\n"
    "exit codes: 0 added, 64 usage, 65 invalid id, e-mail, URL, number or empty\n"
    "password, 69 Redis unavailable, 78 bad configuration.\n",
    add_longopts, "",
};

static int email_ok(const char *email)
{
    size_t n = strlen(email);
    if (n == 0 || n > EMAIL_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)email[i] < 0x20 || email[i] == 0x7f)
            return 0;
    return 1;
}

/* Checks every input before anything touches Redis or stdin. 0 or
 * EX_DATAERR (message printed). url receives the normalised --api-url. */
static int add_validate(const char *id, add_opts *o, cfg_http_url *url)
{
    if (!keys_valid_client_id(id)) {
        app_error("client add: invalid client id (expected ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$)");
        return EX_DATAERR;
    }
    if (!email_ok(o->email)) {
        app_error("client add: --email must be 1-%d bytes without control characters", EMAIL_MAX);
        return EX_DATAERR;
    }
    char err[CFG_ERR_LEN];
    if (o->api_url && cfg_parse_http_url("--api-url", o->api_url, url, err, sizeof err) < 0) {
        app_error("client add: %s", err);
        return EX_DATAERR;
    }
    for (size_t i = 0; i < N_NUMERIC; i++) {
        const numeric_field *f = &numeric_fields[i];
        if (o->num_arg[i] && app_parse_ll(o->num_arg[i], f->min, f->max, &o->num[i]) < 0) {
            app_error("client add: %s must be an integer from %lld to %lld", f->flag, f->min, f->max);
            return EX_DATAERR;
        }
    }
    return 0;
}

/* MULTI: DEL hash, DEL token, HSET hash ..., SADD clients id; EXEC. */
static int add_write(app *a, const char *id, const add_opts *o, const cfg_http_url *url,
                     const char *password)
{
    char hash[KEYS_MAX_LEN], token[KEYS_MAX_LEN], clients[KEYS_MAX_LEN];
    keys_client_key(&a->keys, id, KEYS_CLIENT, hash, sizeof hash);
    keys_client_key(&a->keys, id, KEYS_CLIENT_TOKEN, token, sizeof token);
    keys_global_key(&a->keys, KEYS_CLIENTS, clients, sizeof clients);

    rdsync_cmd cmds[4];
    rdsync_cmd_init(&cmds[0], "DEL");
    rdsync_cmd_add(&cmds[0], hash);
    rdsync_cmd_init(&cmds[1], "DEL");
    rdsync_cmd_add(&cmds[1], token);
    rdsync_cmd_init(&cmds[2], "HSET");
    rdsync_cmd_add(&cmds[2], hash);
    rdsync_cmd_add(&cmds[2], "email");
    rdsync_cmd_add(&cmds[2], o->email);
    rdsync_cmd_add(&cmds[2], "password");
    rdsync_cmd_add(&cmds[2], password);
    if (o->api_url) {
        rdsync_cmd_add(&cmds[2], "api_url");
        rdsync_cmd_add(&cmds[2], url->base);
    }
    for (size_t i = 0; i < N_NUMERIC; i++) {
        if (o->num_arg[i]) {
            rdsync_cmd_add(&cmds[2], numeric_fields[i].field);
            rdsync_cmd_addll(&cmds[2], o->num[i]);
        }
    }
    rdsync_cmd_init(&cmds[3], "SADD");
    rdsync_cmd_add(&cmds[3], clients);
    rdsync_cmd_add(&cmds[3], id);

    redisReply *r = app_multi(a, cmds, 4);
    if (r == NULL)
        return app_unavailable(a);
    int added = app_reply_ll(r->element[3]) == 1;
    freeReplyObject(r);
    printf("%s client %s\n", added ? "added" : "updated", id);
    return 0;
}

static int client_add(int argc, char **argv)
{
    add_opts o = { 0 };
    int first;
    int rc = app_parse_opts(&add_spec, argc, argv, add_on_opt, &o, &first);
    if (rc)
        return rc == APP_HELP ? 0 : rc;
    if (argc - first != 1)
        return app_usage_error(add_spec.usage, argc - first ? "expected exactly one client ID"
                                                            : "missing client ID");
    if (o.email == NULL)
        return app_usage_error(add_spec.usage, "missing --email");
    const char *id = argv[first];
    cfg_http_url url;
    if ((rc = add_validate(id, &o, &url)) != 0)
        return rc;

    app a;
    if ((rc = app_open(&a)) != 0)
        return rc;
    char prompt[KEYS_ID_MAX + 32], err[128];
    snprintf(prompt, sizeof prompt, "Password for %s: ", id);
    char *password = password_read(prompt, err, sizeof err);
    char *sealed = NULL;
    if (password == NULL) {
        app_error("client add: %s", err);
        rc = EX_DATAERR;
    } else if (seal_keyring_active(a.seal) &&
               (sealed = seal_seal(a.seal, id, "password", password, strlen(password))) == NULL) {
        app_error("client add: out of memory sealing the password");
        rc = EX_SOFTWARE;
    } else {
        rc = add_write(&a, id, &o, &url, sealed ? sealed : password);   /* sealed when a key is set */
    }
    free(sealed);
    password_free(password);
    app_close(&a);
    return rc;
}

/* ---- client list ----------------------------------------------------------- */

/* The hash fields shown, in order: strings first, then numbers. The
 * password is deliberately absent. Clients stored by earlier versions carry
 * the rate limit under its old name, asked for after the shown fields. */
static const char *const list_fields[] = {
    "email", "api_url", "rate_limit", "rate_window_ms", "page_size",
};
#define N_LIST_FIELDS (sizeof list_fields / sizeof list_fields[0])
#define N_LIST_STRINGS 2
#define LIST_RATE_LIMIT 2
#define LIST_OLD_RATE_LIMIT N_LIST_FIELDS   /* "rate_limit_per_min" */

static const char *list_value(const redisReply *r, size_t f)
{
    const char *v = app_reply_elem_str(r, f);
    return v == NULL && f == LIST_RATE_LIMIT ? app_reply_elem_str(r, LIST_OLD_RATE_LIMIT) : v;
}

typedef struct list_state {
    app *a;
    char **ids;
    cJSON *json;                 /* array, or NULL for text output */
    char key[KEYS_MAX_LEN];
} list_state;

static void list_build(void *ud, size_t i, rdsync_cmd *cmd)
{
    list_state *st = ud;
    keys_client_key(&st->a->keys, st->ids[i], KEYS_CLIENT, st->key, sizeof st->key);
    rdsync_cmd_init(cmd, "HMGET");
    rdsync_cmd_add(cmd, st->key);
    for (size_t f = 0; f < N_LIST_FIELDS; f++)
        rdsync_cmd_add(cmd, list_fields[f]);
    rdsync_cmd_add(cmd, "rate_limit_per_min");
}

static void list_take_json(list_state *st, size_t i, const redisReply *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", st->ids[i]);
    for (size_t f = 0; f < N_LIST_FIELDS; f++) {
        const char *v = list_value(r, f);
        if (v == NULL)
            cJSON_AddNullToObject(o, list_fields[f]);
        else if (f < N_LIST_STRINGS)
            cJSON_AddStringToObject(o, list_fields[f], v);
        else
            cJSON_AddNumberToObject(o, list_fields[f], (double)strtoll(v, NULL, 10));
    }
    cJSON_AddItemToArray(st->json, o);
}

static void list_take_text(list_state *st, size_t i, const redisReply *r)
{
    const char *email = app_reply_elem_str(r, 0);
    if (email == NULL) {
        printf("%-24s (no credentials stored)\n", st->ids[i]);
        return;
    }
    char shown[N_LIST_FIELDS][128];
    for (size_t f = 0; f < N_LIST_FIELDS; f++) {
        const char *v = list_value(r, f);
        app_printable(v ? v : "-", v ? strlen(v) : 1, shown[f], sizeof shown[f]);
    }
    printf("%-24s %-32s %-8s %-10s %-9s %s\n", st->ids[i], shown[0], shown[2], shown[3], shown[4],
           shown[1]);
}

static void list_take(void *ud, size_t i, const redisReply *r)
{
    list_state *st = ud;
    if (st->json)
        list_take_json(st, i, r);
    else
        list_take_text(st, i, r);
}

static const app_cmd_spec list_spec = {
    "client list [--json]",
    "Lists the registered clients with their e-mail, rate limit, rate window,\n"
    "page size and API URL (\"-\" = the worker default). Passwords are never shown.\n"
    "  --json    one JSON object: {\"clients\":[{\"id\",\"email\",\"api_url\",...}]}\n",
    app_json_longopts, "",
};

static int list_print(app *a, int json)
{
    char **ids = NULL;
    size_t n = 0;
    redisReply *members = app_client_ids(a, &ids, &n);
    if (members == NULL)
        return app_unavailable(a);
    list_state st = { .a = a, .ids = ids, .json = json ? cJSON_CreateArray() : NULL };
    if (!json)
        printf("%-24s %-32s %-8s %-10s %-9s %s\n", "ID", "EMAIL", "RATE", "WINDOW_MS", "PAGE_SIZE",
               "API_URL");
    int rc = app_pipeline(a, n, list_build, list_take, &st) < 0 ? app_unavailable(a) : 0;
    if (json && rc == 0) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddItemToObject(root, "clients", st.json);
        st.json = NULL;
        rc = app_print_json(root) < 0 ? EX_UNAVAILABLE : 0;
    }
    cJSON_Delete(st.json);
    free(ids);
    freeReplyObject(members);
    return rc;
}

static int client_list(int argc, char **argv)
{
    return app_simple_cmd(&list_spec, argc, argv, list_print);
}

/* ---- client remove --------------------------------------------------------- */

static const struct option remove_longopts[] = {
    { "purge", no_argument, NULL, 'p' },
    { 0 },
};

static const app_cmd_spec remove_spec = {
    "client remove ID [--purge]",
    "Forgets a client: removes it from the registry and deletes its credentials,\n"
    "cached token, active run marker, cooldown, rate-limit log, auth lock and\n"
    "last-run pointer. Its synced campaigns (<prefix>:client:<id>:campaigns)\n"
    "and its run hashes are kept as results, unless --purge is given, which also\n"
    "deletes the campaigns. Jobs already queued for it end in the dead letters.\n"
    "\n"
    "exit codes: 0 removed, 64 usage, 65 invalid id or no such client,\n"
    "69 Redis unavailable, 78 bad configuration.\n",
    remove_longopts, "",
};

static const keys_client_kind removed_kinds[] = {
    KEYS_CLIENT, KEYS_CLIENT_TOKEN, KEYS_CLIENT_ACTIVE_RUN, KEYS_CLIENT_COOLDOWN,
    KEYS_CLIENT_RATELIMIT, KEYS_CLIENT_AUTHLOCK, KEYS_CLIENT_LAST_RUN, KEYS_CLIENT_CAMPAIGNS,
};
#define N_REMOVED (sizeof removed_kinds / sizeof removed_kinds[0])

static int remove_write(app *a, const char *id, int purge)
{
    char clients[KEYS_MAX_LEN], key[N_REMOVED][KEYS_MAX_LEN];
    keys_global_key(&a->keys, KEYS_CLIENTS, clients, sizeof clients);
    rdsync_cmd cmds[2];
    rdsync_cmd_init(&cmds[0], "SREM");
    rdsync_cmd_add(&cmds[0], clients);
    rdsync_cmd_add(&cmds[0], id);
    rdsync_cmd_init(&cmds[1], "DEL");
    size_t nkeys = purge ? N_REMOVED : N_REMOVED - 1;   /* campaigns is last */
    for (size_t i = 0; i < nkeys; i++) {
        keys_client_key(&a->keys, id, removed_kinds[i], key[i], sizeof key[i]);
        rdsync_cmd_add(&cmds[1], key[i]);
    }
    redisReply *r = app_multi(a, cmds, 2);
    if (r == NULL)
        return app_unavailable(a);
    int existed = app_reply_ll(r->element[0]) + app_reply_ll(r->element[1]) > 0;
    freeReplyObject(r);
    if (!existed) {
        app_error("client remove: no such client '%s'", id);
        return EX_DATAERR;
    }
    printf("removed client %s%s\n", id, purge ? " and its campaigns" : " (campaign results kept)");
    return 0;
}

static int client_remove(int argc, char **argv)
{
    int purge = 0, first;
    int rc = app_parse_opts(&remove_spec, argc, argv, app_flag_opt, &purge, &first);
    if (rc)
        return rc == APP_HELP ? 0 : rc;
    if (argc - first != 1)
        return app_usage_error(remove_spec.usage, argc - first ? "expected exactly one client ID"
                                                               : "missing client ID");
    const char *id = argv[first];
    if (!keys_valid_client_id(id)) {
        app_error("client remove: invalid client id (expected ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$)");
        return EX_DATAERR;
    }
    app a;
    if ((rc = app_open(&a)) != 0)
        return rc;
    rc = remove_write(&a, id, purge);
    app_close(&a);
    return rc;
}

/* ---- the group ------------------------------------------------------------- */

static const app_subcmd client_cmds[] = {
    { "add", client_add },
    { "list", client_list },
    { "remove", client_remove },
};

int cli_client(int argc, char **argv)
{
    static const app_group group = {
        "client (add | list | remove) ...",
        "  client add ID --email EMAIL [--api-url URL] [--rate-limit N]   password on stdin\n"
        "  client list [--json]\n"
        "  client remove ID [--purge]\n"
        "\"adsync-enqueue client COMMAND --help\" explains each.\n",
        client_cmds, sizeof client_cmds / sizeof client_cmds[0],
    };
    return app_dispatch(&group, argc, argv);
}
