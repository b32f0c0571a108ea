/* app: what every adsync-enqueue subcommand shares: the configuration, the
 * key names, one blocking Redis connection, exit codes, option parsing and
 * the one-line error and JSON output helpers.
 *
 * Normal output goes to stdout; errors go to stderr as one line starting
 * with "adsync-enqueue: ". No helper here ever prints a password: the Redis
 * URL's password only reaches rdsync_connect, and client passwords never
 * reach this module. */
#ifndef ADSYNC_ENQUEUE_APP_H
#define ADSYNC_ENQUEUE_APP_H

#include <getopt.h>
#include <stddef.h>
#include <sysexits.h>

#include <cjson/cJSON.h>

#include "cfg.h"
#include "seal.h"
#include "keys.h"
#include "rdsync.h"

/* Exit codes (DESIGN.md §8): 0 ok, 1 some campaign ended dead (sync
 * --wait), EX_USAGE 64, EX_DATAERR 65 bad input, EX_UNAVAILABLE 69 Redis
 * unavailable, EX_CONFIG 78 (CFG_EXIT_CONFIG). */
#define APP_EXIT_DEAD 1

#define APP_CONNECT_TIMEOUT_MS 1000u
#define APP_COMMAND_TIMEOUT_MS 5000u
/* TTL on active_run: a safety valve, the worker deletes it when a run ends. */
#define APP_ACTIVE_RUN_TTL_MS (24LL * 3600 * 1000)
#define APP_PIPELINE_BATCH 512   /* commands in flight per pipelined round trip */

typedef struct app {
    cfg cfg;
    keys keys;
    seal_keyring *seal;          /* from ADSYNC_SECRET_KEY_FILE...; empty = no sealing */
    redisContext *rc;            /* NULL until app_open */
    char err[RDSYNC_ERR_LEN];    /* last rdsync error */
} app;

/* Loads the configuration and connects. 0, or the exit code to return
 * (EX_CONFIG, EX_UNAVAILABLE) after one line was printed. */
int app_open(app *a);
/* Closes the connection; safe to call twice. */
void app_close(app *a);
/* Drops the connection and connects again with the loaded configuration.
 * 0 or -1 (a->err says why). */
int app_reconnect(app *a);

/* Prints "adsync-enqueue: <message>" on stderr. */
void app_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints the Redis error in a->err and returns EX_UNAVAILABLE. */
int app_unavailable(const app *a);
/* Prints a usage error, then "usage: <usage>", and returns EX_USAGE. */
int app_usage_error(const char *usage, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Thin wrappers over rdsync on a->rc, filling a->err. */
redisReply *app_run(app *a, const rdsync_cmd *cmd);
int app_append(app *a, const rdsync_cmd *cmd);
int app_read_n(app *a, redisReply **out, size_t n);

/* Runs n commands in pipelined round trips of APP_PIPELINE_BATCH:
 * build(ud, i, cmd) fills the i-th command (what it adds needs to live only
 * until build returns for the next i: each command is copied out right away),
 * take(ud, i, reply) gets its reply (borrowed; may be an error reply).
 * 0, or -1 when the connection failed (a->err). */
typedef void (*app_build_fn)(void *ud, size_t i, rdsync_cmd *cmd);
typedef void (*app_take_fn)(void *ud, size_t i, const redisReply *reply);
int app_pipeline(app *a, size_t n, app_build_fn build, app_take_fn take, void *ud);

/* Collects the string elements of an array reply that pass valid() into
 * out (room for members->elements pointers, pointing into members), sorted.
 * Returns how many. */
size_t app_collect_ids(const redisReply *members, int (*valid)(const char *), char **out);

/* SMEMBERS <p>:clients: *ids (malloc'd, sorted, invalid ids dropped) points
 * into the returned reply; free both. NULL with a->err on failure. */
redisReply *app_client_ids(app *a, char ***ids, size_t *n);

/* app_pipeline for n calls of one script: loads s (SCRIPT LOAD) first,
 * and sends the calls that met NOSCRIPT (cache flushed meanwhile) once more
 * after a reload, calling build again for them; take sees every other
 * reply once. 0, or -1 with a->err. */
int app_eval_pipeline(app *a, rdsync_script *s, size_t n, app_build_fn build, app_take_fn take,
                      void *ud);

/* Sends cmds[0..n) in one pipelined round trip and reads their replies
 * into out[0..n) (free with rdsync_free_n). 0, or -1 with a->err. */
int app_run_all(app *a, const rdsync_cmd *cmds, size_t n, redisReply **out);

/* Runs cmds[0..n) inside MULTI/EXEC. Returns the EXEC reply (an array of n
 * replies; free with freeReplyObject), or NULL with a->err (connection lost,
 * or the server refused the transaction). */
redisReply *app_multi(app *a, const rdsync_cmd *cmds, size_t n);

/* One flag table for a subcommand. Every subcommand accepts -h/--help.
 * app_parse_opts runs getopt_long over argv[1..] (argv[0] is the
 * subcommand's name) and calls on_opt for every other option; returns 0,
 * APP_HELP when --help was given (help already printed to stdout), or
 * EX_USAGE (message and usage printed). on_opt returns 0 or an exit code.
 * Afterwards *first_arg indexes the first operand in argv. */
#define APP_HELP (-1)
typedef int (*app_opt_fn)(void *ud, int opt, const char *optarg_value);
typedef struct app_cmd_spec {
    const char *usage;           /* one line, shown after "usage: " */
    const char *help;            /* full --help text */
    const struct option *longopts;   /* without help; {0} terminated */
    const char *shortopts;       /* without "h" */
} app_cmd_spec;
int app_parse_opts(const app_cmd_spec *spec, int argc, char **argv, app_opt_fn on_opt, void *ud,
                   int *first_arg);

/* Runs a command that takes no operand and at most one flag (--json for
 * most, none for some): parses argv (answering --help), connects, calls
 * run(a, flag given), closes. Returns the exit code. */
int app_simple_cmd(const app_cmd_spec *spec, int argc, char **argv, int (*run)(app *a, int flag));

/* A command group ("client", "dead", or the program itself): argv[1]
 * names the subcommand, which runs with argv shifted by one. Missing or
 * unknown names are usage errors; "-h", "--help" and "help" print the
 * group's help to stdout and return 0. */
typedef struct app_subcmd {
    const char *name;
    int (*run)(int argc, char **argv);
} app_subcmd;
typedef struct app_group {
    const char *usage;           /* one line, shown after "usage: adsync-enqueue " */
    const char *help;            /* full help text */
    const app_subcmd *subs;
    size_t nsubs;
} app_group;
int app_dispatch(const app_group *g, int argc, char **argv);

/* For subcommands with a single boolean flag: app_flag_opt sets
 * *(int *)ud = 1 for any option; app_json_longopts is the --json table. */
extern const struct option app_json_longopts[];
int app_flag_opt(void *ud, int opt, const char *value);

/* Parses a decimal integer in [min, max]. 0 or -1. */
int app_parse_ll(const char *s, long long min, long long max, long long *out);

/* Reply accessors that tolerate any reply shape. */
long long app_reply_ll(const redisReply *r);             /* integer or numeric string; else 0 */
/* A run's progress as `status` and `sync --wait` read it: one HMGET of
 * these fields of <prefix>:run:<id>, in this order. */
enum { RUN_STATE, RUN_LISTED, RUN_SYNCED, RUN_RETRYING, RUN_DEAD, RUN_ENQUEUED_AT, RUN_NFIELDS };
extern const char *const app_run_fields[RUN_NFIELDS];
/* Builds that HMGET into cmd; key (KEYS_MAX_LEN bytes) must live until the
 * command is appended. */
void app_cmd_run_fields(const app *a, rdsync_cmd *cmd, const char *run_id, char *key);
/* Numeric field i of its reply (0 when absent). */
long long app_run_field_ll(const redisReply *r, size_t i);
const char *app_reply_str(const redisReply *r);          /* string/status text, or NULL */
const char *app_reply_elem_str(const redisReply *r, size_t i);   /* array element's text or NULL */

/* Copies s into out (outlen bytes) replacing control characters and
 * non-ASCII bytes with '?', so stored data cannot mess up a terminal. */
void app_printable(const char *s, size_t len, char *out, size_t outlen);

/* qsort comparator for an array of char * (ascending strcmp). */
int app_cmp_strp(const void *a, const void *b);

/* Prints root as one line of JSON on stdout and deletes it. 0, or -1 when
 * out of memory. */
int app_print_json(cJSON *root);

/* Formats an age in ms as "45s", "12m03s", "3h12m", "2d04h". */
void app_format_age(long long ms, char *out, size_t outlen);

#endif
