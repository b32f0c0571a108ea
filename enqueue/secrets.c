/* secrets: the sealing key's life (README "Secrets").
 *
 *   secrets keygen FILE       a new 32-byte key, mode 0600 (never overwrites)
 *   secrets status [--json]   which key seals each client's password and token
 *   secrets rotate            re-seal under the current key what an older one sealed
 *   secrets migrate           seal what earlier versions stored in plain text
 *
 * rotate and migrate read every client's password and token in one pipeline,
 * then write each change with a compare-and-set (cas_hset.lua, cad.lua), so
 * a `client add` or a worker's login in between is never overwritten. A
 * token is not re-sealed but dropped: the next worker logs in once and seals
 * the new one under the current key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "cli.h"
#include "scripts.h"

#define SECRET_MAX 2048            /* a stored password or token, sealed or not */

/* ---- reading every client's secrets ------------------------------------------ */

typedef struct client_secrets {
    const char *id;                /* points into the SMEMBERS reply */
    char *password, *token;        /* stored forms (malloc'd), NULL when absent */
    char password_key[SEAL_KEY_ID_LEN + 1], token_key[SEAL_KEY_ID_LEN + 1];   /* "" = plain */
    char *new_password;            /* rotate/migrate: what to write, NULL = leave */
    int drop_token, failed;
} client_secrets;

typedef struct secrets_state {
    app *a;
    client_secrets *c;
    size_t n;
    char **ids;
    redisReply *members;
    rdsync_script script;
    char key[KEYS_MAX_LEN];
} secrets_state;

static void read_build(void *ud, size_t i, rdsync_cmd *cmd)
{
    secrets_state *st = ud;
    const char *id = st->c[i / 2].id;
    if (i % 2 == 0) {
        keys_client_key(&st->a->keys, id, KEYS_CLIENT, st->key, sizeof st->key);
        rdsync_cmd_init(cmd, "HGET");
        rdsync_cmd_add(cmd, st->key);
        rdsync_cmd_add(cmd, "password");
    } else {
        keys_client_key(&st->a->keys, id, KEYS_CLIENT_TOKEN, st->key, sizeof st->key);
        rdsync_cmd_init(cmd, "GET");
        rdsync_cmd_add(cmd, st->key);
    }
}

static void read_take(void *ud, size_t i, const redisReply *r)
{
    secrets_state *st = ud;
    client_secrets *c = &st->c[i / 2];
    if (r->type != REDIS_REPLY_STRING)
        return;   /* absent, or not a string (reported as absent) */
    char *copy = strndup(r->str, r->len);
    char *kid = i % 2 == 0 ? c->password_key : c->token_key;
    seal_is_sealed(r->str, r->len, kid);
    if (i % 2 == 0)
        c->password = copy;
    else
        c->token = copy;
}

static void state_free(secrets_state *st)
{
    for (size_t i = 0; i < st->n; i++) {
        free(st->c[i].password);
        free(st->c[i].token);
        free(st->c[i].new_password);
    }
    free(st->c);
    free(st->ids);
    if (st->members)
        freeReplyObject(st->members);
}

/* Every registered client with its stored password and token. 0, or -1
 * (Redis unavailable: a->err says why). */
static int state_read(app *a, secrets_state *st)
{
    memset(st, 0, sizeof *st);
    st->a = a;
    if ((st->members = app_client_ids(a, &st->ids, &st->n)) == NULL)
        return -1;
    st->c = calloc(st->n + 1, sizeof *st->c);
    if (st->c == NULL) {
        snprintf(a->err, sizeof a->err, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < st->n; i++)
        st->c[i].id = st->ids[i];
    return app_pipeline(a, 2 * st->n, read_build, read_take, st);
}

/* ---- status --------------------------------------------------------------------- */

/* Counts per key id ("plain" for text stored unsealed). */
typedef struct tally {
    char key[8][SEAL_KEY_ID_LEN + 1];
    size_t count[8], plain, other_keys;
    size_t nkeys;
} tally;

static void tally_add(tally *t, const char *stored, const char *key)
{
    if (stored == NULL)
        return;
    if (key[0] == '\0') {
        t->plain++;
        return;
    }
    for (size_t i = 0; i < t->nkeys; i++) {
        if (strcmp(t->key[i], key) == 0) {
            t->count[i]++;
            return;
        }
    }
    if (t->nkeys == sizeof t->key / sizeof t->key[0]) {
        t->other_keys++;
        return;
    }
    snprintf(t->key[t->nkeys], sizeof t->key[0], "%s", key);
    t->count[t->nkeys++] = 1;
}

static cJSON *tally_json(const tally *t)
{
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; i < t->nkeys; i++)
        cJSON_AddNumberToObject(o, t->key[i], (double)t->count[i]);
    cJSON_AddNumberToObject(o, "plain", (double)t->plain);
    return o;
}

static void tally_print(const char *what, const tally *t, const char *current)
{
    printf("%s:", what);
    for (size_t i = 0; i < t->nkeys; i++)
        printf(" %s%s %zu", t->key[i], strcmp(t->key[i], current) == 0 ? " (current)" : "", t->count[i]);
    printf(" plain %zu\n", t->plain);
}

static const app_cmd_spec status_spec = {
    "secrets status [--json]",
    "How many clients' passwords and cached tokens are sealed under which key\n"
    "id, and how many are stored in plain text. The current key is the one\n"
    "ADSYNC_SECRET_KEY_FILE (or $CREDENTIALS_DIRECTORY/adsync-secret-key) holds.\n"
    "  --json    {\"current_key\":ID|null,\"clients\":N,\"passwords\":{ID:N,\"plain\":N},\n"
    "            \"tokens\":{ID:N,\"plain\":N}}\n",
    app_json_longopts, "",
};

static int print_status(app *a, const secrets_state *st, int json)
{
    tally pw = { 0 }, tok = { 0 };
    for (size_t i = 0; i < st->n; i++) {
        tally_add(&pw, st->c[i].password, st->c[i].password_key);
        tally_add(&tok, st->c[i].token, st->c[i].token_key);
    }
    const char *current = seal_keyring_id(a->seal);
    if (!json) {
        printf("current key: %s\nclients: %zu\n", current[0] ? current : "none configured", st->n);
        tally_print("passwords", &pw, current);
        tally_print("tokens", &tok, current);
        return 0;
    }
    cJSON *root = cJSON_CreateObject();
    if (current[0])
        cJSON_AddStringToObject(root, "current_key", current);
    else
        cJSON_AddNullToObject(root, "current_key");
    cJSON_AddNumberToObject(root, "clients", (double)st->n);
    cJSON_AddItemToObject(root, "passwords", tally_json(&pw));
    cJSON_AddItemToObject(root, "tokens", tally_json(&tok));
    return app_print_json(root) < 0 ? EX_UNAVAILABLE : 0;
}

static int secrets_status_run(app *a, int json)
{
    secrets_state st;
    int rc = state_read(a, &st) < 0 ? app_unavailable(a) : print_status(a, &st, json);
    state_free(&st);
    return rc;
}

static int secrets_status_cmd(int argc, char **argv)
{
    return app_simple_cmd(&status_spec, argc, argv, secrets_status_run);
}

/* ---- rotate and migrate ---------------------------------------------------------- */

typedef enum { RESEAL_OLD_KEYS, RESEAL_PLAIN } reseal_mode;

/* Decides what to write for one client: a password sealed under another
 * key (rotate) or stored plain (migrate) is re-sealed under the current key;
 * a token in the same case is dropped. A password that cannot be opened is
 * counted as failed and left alone. */
static void plan_client(const app *a, client_secrets *c, reseal_mode mode)
{
    const char *current = seal_keyring_id(a->seal);
    int pw_plain = c->password && c->password_key[0] == '\0';
    int pw_old = c->password && !pw_plain && strcmp(c->password_key, current) != 0;
    int tok_plain = c->token && c->token_key[0] == '\0';
    int tok_old = c->token && !tok_plain && strcmp(c->token_key, current) != 0;
    c->drop_token = mode == RESEAL_PLAIN ? tok_plain : tok_old;
    if (!(mode == RESEAL_PLAIN ? pw_plain : pw_old))
        return;
    char plain[SECRET_MAX];
    size_t n;
    int rc = seal_open(a->seal, c->id, "password", c->password, strlen(c->password), plain, sizeof plain, &n,
                       NULL);
    if (rc == SEAL_OK || rc == SEAL_PLAIN)
        c->new_password = seal_seal(a->seal, c->id, "password", plain, n);
    c->failed = c->new_password == NULL;
    explicit_bzero(plain, sizeof plain);
}

/* The writes: for client i, [0] the password's compare-and-set, [1] the
 * token's compare-and-delete; skipped entries are PINGs. */
static void write_build(void *ud, size_t i, rdsync_cmd *cmd)
{
    secrets_state *st = ud;
    client_secrets *c = &st->c[i / 2];
    if (i % 2 == 0 && c->new_password) {
        keys_client_key(&st->a->keys, c->id, KEYS_CLIENT, st->key, sizeof st->key);
        rdsync_cmd_evalsha(cmd, &st->script, 1);
        rdsync_cmd_add(cmd, st->key);
        rdsync_cmd_add(cmd, "password");
        rdsync_cmd_add(cmd, c->password);
        rdsync_cmd_add(cmd, c->new_password);
    } else if (i % 2 == 1 && c->drop_token) {
        keys_client_key(&st->a->keys, c->id, KEYS_CLIENT_TOKEN, st->key, sizeof st->key);
        rdsync_cmd_init(cmd, "EVAL");
        rdsync_cmd_add(cmd, script_cad);
        rdsync_cmd_add(cmd, "1");
        rdsync_cmd_add(cmd, st->key);
        rdsync_cmd_add(cmd, c->token);
    } else {
        rdsync_cmd_init(cmd, "PING");
    }
}

static void write_take(void *ud, size_t i, const redisReply *r)
{
    secrets_state *st = ud;
    client_secrets *c = &st->c[i / 2];
    if (i % 2 == 0 && c->new_password && !(r->type == REDIS_REPLY_INTEGER && r->integer == 1)) {
        free(c->new_password);   /* changed meanwhile (client add): it is current already */
        c->new_password = NULL;
        c->failed = r->type == REDIS_REPLY_ERROR;
    }
}

static int reseal(app *a, reseal_mode mode, const char *name)
{
    if (!seal_keyring_active(a->seal)) {
        app_error("secrets %s: no key configured (set ADSYNC_SECRET_KEY_FILE%s)", name,
                  mode == RESEAL_OLD_KEYS ? " to the new key and ADSYNC_SECRET_PREVIOUS_KEY_FILE to the old one" : "");
        return CFG_EXIT_CONFIG;
    }
    secrets_state st;
    int rc = 0;
    if (state_read(a, &st) < 0) {
        state_free(&st);
        return app_unavailable(a);
    }
    for (size_t i = 0; i < st.n; i++)
        plan_client(a, &st.c[i], mode);
    rdsync_script_init(&st.script, script_cas_hset);
    if (app_eval_pipeline(a, &st.script, 2 * st.n, write_build, write_take, &st) < 0) {
        state_free(&st);
        return app_unavailable(a);
    }
    size_t sealed = 0, dropped = 0, failed = 0;
    for (size_t i = 0; i < st.n; i++) {
        sealed += st.c[i].new_password != NULL;
        dropped += st.c[i].drop_token != 0;
        if (st.c[i].failed) {
            failed++;
            app_error("secrets %s: client %s: its password cannot be opened with the configured keys", name,
                      st.c[i].id);
        }
    }
    printf("%s %zu passwords under key %s, dropped %zu cached tokens, %zu clients left as they were\n",
           mode == RESEAL_PLAIN ? "sealed" : "re-sealed", sealed, seal_keyring_id(a->seal), dropped,
           st.n - sealed);
    if (failed)
        rc = EX_DATAERR;
    state_free(&st);
    return rc;
}

static const app_cmd_spec rotate_spec = {
    "secrets rotate",
    "Re-seals under the current key (ADSYNC_SECRET_KEY_FILE) every password\n"
    "sealed under another key, which ADSYNC_SECRET_PREVIOUS_KEY_FILE must hold,\n"
    "and drops cached tokens sealed under another key. Each client changes\n"
    "atomically; workers that hold both keys keep syncing throughout. Exit 65\n"
    "if some password could not be opened (named on stderr).\n",
    NULL, "",
};

static const app_cmd_spec migrate_spec = {
    "secrets migrate",
    "Seals under the current key every password stored in plain text by an\n"
    "earlier version, and drops plain-text cached tokens. Each client changes\n"
    "atomically. Idempotent.\n",
    NULL, "",
};

static int secrets_rotate_run(app *a, int unused)
{
    (void)unused;
    return reseal(a, RESEAL_OLD_KEYS, "rotate");
}

static int secrets_migrate_run(app *a, int unused)
{
    (void)unused;
    return reseal(a, RESEAL_PLAIN, "migrate");
}

static int secrets_rotate_cmd(int argc, char **argv)
{
    return app_simple_cmd(&rotate_spec, argc, argv, secrets_rotate_run);
}

static int secrets_migrate_cmd(int argc, char **argv)
{
    return app_simple_cmd(&migrate_spec, argc, argv, secrets_migrate_run);
}

/* ---- keygen ------------------------------------------------------------------------ */

static const app_cmd_spec keygen_spec = {
    "secrets keygen FILE",
    "Writes a new random 32-byte sealing key to FILE (created with mode 0600;\n"
    "an existing file is never overwritten) and prints its key id. Point\n"
    "ADSYNC_SECRET_KEY_FILE at it, or hand it to systemd's LoadCredential=\n"
    "as adsync-secret-key, or mount it from a Kubernetes Secret.\n",
    NULL, "",
};

static int secrets_keygen_cmd(int argc, char **argv)
{
    int unused = 0, first;
    int rc = app_parse_opts(&keygen_spec, argc, argv, app_flag_opt, &unused, &first);
    if (rc)
        return rc == APP_HELP ? 0 : rc;
    if (argc - first != 1)
        return app_usage_error(keygen_spec.usage, argc - first ? "expected exactly one FILE" : "missing FILE");
    char id[SEAL_KEY_ID_LEN + 1], err[512];
    if (seal_init() < 0) {
        app_error("secrets keygen: could not initialise libsodium");
        return EX_SOFTWARE;
    }
    if (seal_keygen(argv[first], id, err, sizeof err) < 0) {
        app_error("secrets keygen: %s", err);
        return EX_CANTCREAT;
    }
    printf("wrote key %s to %s\n", id, argv[first]);
    return 0;
}

/* ---- the group ------------------------------------------------------------------- */

static const app_subcmd secrets_cmds[] = {
    { "keygen", secrets_keygen_cmd },
    { "status", secrets_status_cmd },
    { "rotate", secrets_rotate_cmd },
    { "migrate", secrets_migrate_cmd },
};

int cli_secrets(int argc, char **argv)
{
    static const app_group group = {
        "secrets keygen FILE | status [--json] | rotate | migrate",
        "  secrets keygen FILE      write a new sealing key (mode 0600)\n"
        "  secrets status [--json]  which key seals each client's password and token\n"
        "  secrets rotate           re-seal under the current key what the previous one sealed\n"
        "  secrets migrate          seal what earlier versions stored in plain text\n"
        "\"adsync-enqueue secrets CMD --help\" explains each.\n",
        secrets_cmds, sizeof secrets_cmds / sizeof secrets_cmds[0],
    };
    return app_dispatch(&group, argc, argv);
}
