/* adsync-worker: pops sync jobs from Redis and runs them (DESIGN.md §8).
 *
 *   adsync-worker [--concurrency N] [--id ID] [--drain]
 *
 * Configuration comes from the environment (DESIGN.md §7); flags override.
 * Exit codes: 0 after a signal or a finished --drain, 64 bad usage, 78 bad
 * configuration, 1 when it could not start. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "log.h"
#include "seal.h"
#include "worker.h"

#define EX_USAGE 64

static const char usage[] =
    "usage: adsync-worker [--concurrency N] [--id ID] [--drain]\n"
    "  --concurrency N  HTTP requests in flight (overrides ADSYNC_CONCURRENCY)\n"
    "  --id ID          worker id (default host-pid-random); reuse it after a crash\n"
    "                   to take back what the crashed process held at once\n"
    "  --drain          exit 0 once the jobs list, the retry set and own work are empty\n"
    "Configuration: environment variables, see README.md.\n";

typedef struct options {
    const char *id;
    const char *concurrency;
    int drain;
} options;

/* 0: run; 1: --help was asked for; -1: bad usage (said on stderr). */
static int parse_args(int argc, char **argv, options *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (strcmp(a, "--drain") == 0) {
            o->drain = 1;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            return 1;
        } else if (strcmp(a, "--id") == 0 && has_value) {
            o->id = argv[++i];
        } else if (strcmp(a, "--concurrency") == 0 && has_value) {
            o->concurrency = argv[++i];
        } else {
            fprintf(stderr, "adsync-worker: unknown or incomplete option '%s'\n%s", a, usage);
            return -1;
        }
    }
    return 0;
}

/* Flags win over the environment; they go through the same validation. */
static int apply_flags(cfg *c, const options *o, char *err, size_t errlen)
{
    if (o->concurrency) {
        char *end;
        unsigned long n = strtoul(o->concurrency, &end, 10);
        if (*end != '\0' || end == o->concurrency || n < 1 || n > 4096) {
            snprintf(err, errlen, "--concurrency: '%.32s' is not an integer from 1 to 4096", o->concurrency);
            return -1;
        }
        c->concurrency = (unsigned)n;
    }
    if (o->id && !keys_valid_token(o->id)) {
        snprintf(err, errlen, "--id: invalid worker id (expected 1-128 of A-Z a-z 0-9 _ . : -)");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    seal_protect_process();   /* before any secret is read */
    options opt = { 0 };
    int parsed = parse_args(argc, argv, &opt);
    if (parsed != 0) {
        if (parsed > 0)
            fputs(usage, stdout);
        return parsed > 0 ? 0 : EX_USAGE;
    }

    cfg c;
    char err[CFG_ERR_LEN];
    if (cfg_load(&c, NULL, err, sizeof err) < 0 || apply_flags(&c, &opt, err, sizeof err) < 0) {
        fprintf(stderr, "adsync-worker: %s\n", err);
        return CFG_EXIT_CONFIG;
    }
    cfg_forget_env_secrets();
    log_setup(c.log_level, c.log_format, 2);
    log_secret_add(c.redis.password);
    if (c.deprecated)
        log_warn(c.deprecated);

    /* The key ring comes before Redis too: a bad key file is a config error. */
    seal_keyring *seal = seal_init() == 0 ? seal_keyring_new() : NULL;
    if (seal == NULL) {
        log_error("could not initialise libsodium");
        return 1;
    }
    if (seal_keyring_from_env(seal, err, sizeof err) < 0) {
        fprintf(stderr, "adsync-worker: %s\n", err);
        seal_keyring_free(seal);
        return CFG_EXIT_CONFIG;
    }
    if (seal_keyring_active(seal))
        log_info("credentials are sealed", LOG_STR("key_id", seal_keyring_id(seal)),
                 LOG_INT("plaintext_allowed", c.allow_plaintext_credentials));
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("curl_global_init failed");
        seal_keyring_free(seal);
        return 1;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    worker *w = wk_new();
    if (w == NULL) {
        log_error("out of memory");
        return 1;
    }
    wm_endpoint *metrics = NULL;   /* before Redis is touched: a bad address is a config error */
    if (c.metrics_enabled && (metrics = wm_open(&loop, wk_view, w, &c.metrics, err, sizeof err)) == NULL) {
        fprintf(stderr, "adsync-worker: ADSYNC_METRICS_ADDR: %s (expected a free host:port)\n", err);
        uv_loop_close(&loop);
        curl_global_cleanup();
        seal_keyring_free(seal);
        wk_free(w);
        return CFG_EXIT_CONFIG;
    }
    if (wk_init(w, &loop, &c, seal, opt.id, opt.drain) < 0) {
        log_error("could not set up the worker (out of memory?)");
        seal_keyring_free(seal);
        wk_free(w);
        return 1;
    }
    /* The worker keeps its own copy, the one reconnects use; this one goes. */
    explicit_bzero(c.redis.password, sizeof c.redis.password);
    explicit_bzero(c.pg_url, sizeof c.pg_url);
    wk_start(w);
    uv_run(&loop, UV_RUN_DEFAULT);
    wm_close(metrics);
    uv_run(&loop, UV_RUN_DEFAULT);   /* let the endpoint's handles close */
    int rc = uv_loop_close(&loop);
    if (rc != 0)
        log_warn("event loop closed with handles left", LOG_STR("error", uv_strerror(rc)));
    curl_global_cleanup();
    seal_keyring_free(seal);
    log_secret_clear();
    int exit_code = wk_exit_code(w);
    wk_free(w);
    return exit_code;
}
