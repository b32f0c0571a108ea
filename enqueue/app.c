/* app: configuration, connection and output helpers shared by the
 * adsync-enqueue subcommands (see app.h). */
#include "app.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

void app_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("adsync-enqueue: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int app_unavailable(const app *a)
{
    app_error("Redis unavailable: %s", a->err);
    return EX_UNAVAILABLE;
}

int app_usage_error(const char *usage, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("adsync-enqueue: ", stderr);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nusage: adsync-enqueue %s\n", usage);
    va_end(ap);
    return EX_USAGE;
}

/* ---- configuration and connection ---------------------------------------- */

int app_open(app *a)
{
    char err[CFG_ERR_LEN];
    a->rc = NULL;
    a->seal = NULL;
    if (cfg_load(&a->cfg, NULL, err, sizeof err) < 0) {
        app_error("%s", err);
        return CFG_EXIT_CONFIG;
    }
    log_setup(a->cfg.log_level, a->cfg.log_format, 2);
    log_secret_add(a->cfg.redis.password);
    if (seal_init() < 0 || (a->seal = seal_keyring_new()) == NULL) {
        app_error("could not initialise libsodium");
        return EX_SOFTWARE;
    }
    if (seal_keyring_from_env(a->seal, err, sizeof err) < 0) {
        app_error("%s", err);
        seal_keyring_free(a->seal);
        a->seal = NULL;
        return CFG_EXIT_CONFIG;
    }
    keys_init(&a->keys, a->cfg.prefix);
    a->rc = rdsync_connect(&a->cfg.redis, APP_CONNECT_TIMEOUT_MS, APP_COMMAND_TIMEOUT_MS,
                           a->err, sizeof a->err);
    if (a->rc)
        return 0;
    seal_keyring_free(a->seal);   /* callers close only what opened */
    a->seal = NULL;
    return app_unavailable(a);
}

void app_close(app *a)
{
    rdsync_free(a->rc);
    a->rc = NULL;
    seal_keyring_free(a->seal);
    a->seal = NULL;
    log_secret_clear();
}

int app_reconnect(app *a)
{
    rdsync_free(a->rc);
    a->rc = rdsync_connect(&a->cfg.redis, APP_CONNECT_TIMEOUT_MS, APP_COMMAND_TIMEOUT_MS,
                           a->err, sizeof a->err);
    return a->rc ? 0 : -1;
}

redisReply *app_run(app *a, const rdsync_cmd *cmd)
{
    return rdsync_run(a->rc, cmd, a->err, sizeof a->err);
}

int app_append(app *a, const rdsync_cmd *cmd)
{
    return rdsync_append(a->rc, cmd, a->err, sizeof a->err);
}

int app_read_n(app *a, redisReply **out, size_t n)
{
    return rdsync_read_n(a->rc, out, n, a->err, sizeof a->err);
}

static int pipeline_batch(app *a, size_t from, size_t to, app_build_fn build, app_take_fn take,
                          void *ud)
{
    rdsync_cmd cmd;
    for (size_t i = from; i < to; i++) {
        build(ud, i, &cmd);
        if (app_append(a, &cmd) < 0)
            return -1;
    }
    for (size_t i = from; i < to; i++) {
        redisReply *r = rdsync_read(a->rc, a->err, sizeof a->err);
        if (r == NULL)
            return -1;
        take(ud, i, r);
        freeReplyObject(r);
    }
    return 0;
}

int app_pipeline(app *a, size_t n, app_build_fn build, app_take_fn take, void *ud)
{
    for (size_t from = 0; from < n; from += APP_PIPELINE_BATCH) {
        size_t to = n - from > APP_PIPELINE_BATCH ? from + APP_PIPELINE_BATCH : n;
        if (pipeline_batch(a, from, to, build, take, ud) < 0)
            return -1;
    }
    return 0;
}

/* app_eval_pipeline's view of the caller's pipeline: indexes map the
 * current pass onto the caller's items, again collects NOSCRIPT ones. */
typedef struct eval_pass {
    app_build_fn build;
    app_take_fn take;
    void *ud;
    size_t *index;                 /* this pass's i -> caller's i */
    size_t *again;                 /* caller's indexes to send once more */
    size_t nagain;
    int last;                      /* last pass: NOSCRIPT goes to take */
} eval_pass;

static void eval_build(void *ud, size_t i, rdsync_cmd *cmd)
{
    eval_pass *p = ud;
    p->build(p->ud, p->index[i], cmd);
}

static void eval_take(void *ud, size_t i, const redisReply *r)
{
    eval_pass *p = ud;
    if (!p->last && rdsync_is_noscript(r))
        p->again[p->nagain++] = p->index[i];
    else
        p->take(p->ud, p->index[i], r);
}

int app_eval_pipeline(app *a, rdsync_script *s, size_t n, app_build_fn build, app_take_fn take,
                      void *ud)
{
    eval_pass p = { build, take, ud, calloc(n + 1, sizeof(size_t)), calloc(n + 1, sizeof(size_t)), 0, 0 };
    int rc = -1;
    if (p.index == NULL || p.again == NULL) {
        snprintf(a->err, sizeof a->err, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        p.index[i] = i;
    size_t todo = n;
    for (int pass = 0; pass < 2 && todo > 0; pass++) {
        if (rdsync_script_load(a->rc, s, a->err, sizeof a->err) < 0)
            goto out;
        if (pass == 1) {           /* only the NOSCRIPT ones, and for the last time */
            memcpy(p.index, p.again, todo * sizeof *p.index);
            p.last = 1;
        }
        p.nagain = 0;
        if (app_pipeline(a, todo, eval_build, eval_take, &p) < 0)
            goto out;
        todo = p.nagain;
    }
    rc = 0;
out:
    free(p.index);
    free(p.again);
    return rc;
}

int app_run_all(app *a, const rdsync_cmd *cmds, size_t n, redisReply **out)
{
    for (size_t i = 0; i < n; i++)
        if (app_append(a, &cmds[i]) < 0)
            return -1;
    return app_read_n(a, out, n);
}

redisReply *app_multi(app *a, const rdsync_cmd *cmds, size_t n)
{
    rdsync_cmd multi, exec;
    rdsync_cmd_init(&multi, "MULTI");
    rdsync_cmd_init(&exec, "EXEC");
    if (app_append(a, &multi) < 0)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (app_append(a, &cmds[i]) < 0)
            return NULL;
    if (app_append(a, &exec) < 0)
        return NULL;
    redisReply *r = NULL;
    for (size_t i = 0; i < n + 2; i++) {       /* +OK, n x +QUEUED, then EXEC's array */
        if (r)
            freeReplyObject(r);
        r = rdsync_read(a->rc, a->err, sizeof a->err);
        if (r == NULL)
            return NULL;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
        snprintf(a->err, sizeof a->err, "transaction refused: %.160s",
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

redisReply *app_client_ids(app *a, char ***ids, size_t *n)
{
    char key[KEYS_MAX_LEN];
    keys_global_key(&a->keys, KEYS_CLIENTS, key, sizeof key);
    rdsync_cmd cmd;
    rdsync_cmd_init(&cmd, "SMEMBERS");
    rdsync_cmd_add(&cmd, key);
    redisReply *r = app_run(a, &cmd);
    if (r == NULL)
        return NULL;
    if (r->type != REDIS_REPLY_ARRAY) {
        snprintf(a->err, sizeof a->err, "SMEMBERS %.100s: %.120s", key,
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        freeReplyObject(r);
        return NULL;
    }
    *ids = malloc((r->elements ? r->elements : 1) * sizeof **ids);
    if (*ids == NULL) {
        snprintf(a->err, sizeof a->err, "out of memory");
        freeReplyObject(r);
        return NULL;
    }
    *n = app_collect_ids(r, keys_valid_client_id, *ids);
    return r;
}

size_t app_collect_ids(const redisReply *members, int (*valid)(const char *), char **out)
{
    size_t n = 0;
    for (size_t i = 0; members->type == REDIS_REPLY_ARRAY && i < members->elements; i++) {
        const redisReply *e = members->element[i];
        if (e->type == REDIS_REPLY_STRING && strlen(e->str) == e->len && valid(e->str))
            out[n++] = e->str;
    }
    qsort(out, n, sizeof *out, app_cmp_strp);
    return n;
}

/* ---- options ------------------------------------------------------------- */

#define APP_MAX_OPTS 16

static int print_help(const app_cmd_spec *spec)
{
    printf("usage: adsync-enqueue %s\n\n%s", spec->usage, spec->help);
    return APP_HELP;
}

int app_parse_opts(const app_cmd_spec *spec, int argc, char **argv, app_opt_fn on_opt, void *ud,
                   int *first_arg)
{
    struct option longopts[APP_MAX_OPTS + 2];
    size_t n = 0;
    for (; spec->longopts && spec->longopts[n].name && n < APP_MAX_OPTS; n++)
        longopts[n] = spec->longopts[n];
    longopts[n++] = (struct option){ "help", no_argument, NULL, 'h' };
    longopts[n] = (struct option){ 0 };
    char shortopts[64];
    snprintf(shortopts, sizeof shortopts, ":h%s", spec->shortopts ? spec->shortopts : "");

    opterr = 0;
    optind = 0;                  /* glibc: 0 re-initialises getopt completely */
    int opt;
    while ((opt = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        const char *bad = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
        if (opt == 'h')
            return print_help(spec);
        if (opt == ':')
            return app_usage_error(spec->usage, "option '%s' needs a value", bad);
        if (opt == '?')
            return app_usage_error(spec->usage, "unknown option '%s'", bad);
        int rc = on_opt(ud, opt, optarg);
        if (rc != 0)
            return rc;
    }
    *first_arg = optind;
    return 0;
}

int app_dispatch(const app_group *g, int argc, char **argv)
{
    if (argc < 2)
        return app_usage_error(g->usage, "missing command");
    const char *name = argv[1];
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "help") == 0) {
        printf("usage: adsync-enqueue %s\n\n%s", g->usage, g->help);
        return 0;
    }
    for (size_t i = 0; i < g->nsubs; i++)
        if (strcmp(name, g->subs[i].name) == 0)
            return g->subs[i].run(argc - 1, argv + 1);
    char shown[65];
    app_printable(name, strlen(name), shown, sizeof shown);
    return app_usage_error(g->usage, "unknown command '%s'", shown);
}

const struct option app_json_longopts[] = {
    { "json", no_argument, NULL, 'j' },
    { 0 },
};

int app_simple_cmd(const app_cmd_spec *spec, int argc, char **argv, int (*run)(app *a, int flag))
{
    int flag = 0, first = argc;
    int rc = app_parse_opts(spec, argc, argv, app_flag_opt, &flag, &first);
    if (rc)
        return rc == APP_HELP ? 0 : rc;
    if (first < argc)
        return app_usage_error(spec->usage, "unexpected argument '%s'", argv[first]);
    app a;
    if ((rc = app_open(&a)) != 0)
        return rc;
    rc = run(&a, flag);
    app_close(&a);
    return rc;
}

int app_flag_opt(void *ud, int opt, const char *value)
{
    (void)opt, (void)value;
    *(int *)ud = 1;
    return 0;
}

int app_parse_ll(const char *s, long long min, long long max, long long *out)
{
    if (s == NULL || !isdigit((unsigned char)s[0]))
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* ---- replies ------------------------------------------------------------- */

const char *const app_run_fields[RUN_NFIELDS] = {
    "state", "listed", "synced", "retrying", "dead", "enqueued_at",
};

void app_cmd_run_fields(const app *a, rdsync_cmd *cmd, const char *run_id, char *key)
{
    keys_run_key(&a->keys, run_id, key, KEYS_MAX_LEN);
    rdsync_cmd_init(cmd, "HMGET");
    rdsync_cmd_add(cmd, key);
    for (size_t f = 0; f < RUN_NFIELDS; f++)
        rdsync_cmd_add(cmd, app_run_fields[f]);
}

long long app_run_field_ll(const redisReply *r, size_t i)
{
    return r->type == REDIS_REPLY_ARRAY && i < r->elements ? app_reply_ll(r->element[i]) : 0;
}

long long app_reply_ll(const redisReply *r)
{
    if (r == NULL)
        return 0;
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (r->type == REDIS_REPLY_STRING)
        return strtoll(r->str, NULL, 10);
    return 0;
}

const char *app_reply_str(const redisReply *r)
{
    if (r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS))
        return r->str;
    return NULL;
}

const char *app_reply_elem_str(const redisReply *r, size_t i)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || i >= r->elements)
        return NULL;
    return app_reply_str(r->element[i]);
}

/* ---- output -------------------------------------------------------------- */

void app_printable(const char *s, size_t len, char *out, size_t outlen)
{
    if (outlen == 0)
        return;
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        out[n++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
    }
    out[n] = '\0';
}

int app_cmp_strp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int app_print_json(cJSON *root)
{
    char *text = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (text == NULL) {
        app_error("out of memory");
        return -1;
    }
    puts(text);
    cJSON_free(text);
    return 0;
}

void app_format_age(long long ms, char *out, size_t outlen)
{
    long long s = ms < 0 ? 0 : ms / 1000;
    if (s < 60)
        snprintf(out, outlen, "%llds", s);
    else if (s < 3600)
        snprintf(out, outlen, "%lldm%02llds", s / 60, s % 60);
    else if (s < 86400)
        snprintf(out, outlen, "%lldh%02lldm", s / 3600, s % 3600 / 60);
    else
        snprintf(out, outlen, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
}
