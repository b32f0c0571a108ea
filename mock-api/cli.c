/* cli: option table, parsing and help text (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef enum { CLI_U32, CLI_SEED, CLI_PROB, CLI_STR, CLI_LIST, CLI_FLAG } cli_kind;

typedef struct cli_opt {
  const char *name;
  const char *arg;     /* placeholder in --help */
  cli_kind kind;
  size_t offset;       /* of the field in cli_options */
  uint32_t min, max;   /* CLI_U32 range */
  int hook;            /* listed under "Test hooks" */
  const char *help;
} cli_opt;

#define CLI_AT(field) offsetof(cli_options, field)

static const cli_opt cli_table[] = {
    {"port", "N", CLI_U32, CLI_AT(port), 0, 65535, 0,
     "TCP port on 127.0.0.1 (0 picks a free one)"},
    {"clients", "N", CLI_U32, CLI_AT(clients), 1, ACCT_MAX_ACCOUNTS, 0,
     "accounts client_1..client_N (email <id>@example.test, password secret-<id>)"},
    {"campaigns", "M", CLI_U32, CLI_AT(campaigns), 0, ACCT_MAX_CAMPAIGNS, 0,
     "campaigns campaign_1..campaign_M per account"},
    {"sync-latency-ms", "MS", CLI_U32, CLI_AT(plat.sync_latency_ms), 0, 3600000, 0,
     "delay before a sync is answered (0 = answer at once)"},
    {"list-latency-ms", "MS", CLI_U32, CLI_AT(plat.list_latency_ms), 0, 3600000, 0,
     "delay before a campaign list is answered"},
    {"rate-limit", "N", CLI_U32, CLI_AT(plat.rate_limit), 0, 1000000, 0,
     "accepted /api requests per client in the sliding window (0 = no limit)"},
    {"rate-window-ms", "MS", CLI_U32, CLI_AT(plat.rate_window_ms), 0, 86400000, 0,
     "length of the sliding rate-limit window (0 = no limit)"},
    {"fail-every", "N", CLI_U32, CLI_AT(plat.fail_every), 0, UINT32_MAX, 0,
     "every Nth list request of a client answers 503 (0 = never)"},
    {"hang-every", "N", CLI_U32, CLI_AT(plat.hang_every), 0, UINT32_MAX, 0,
     "every Nth list request of a client is never answered (0 = never)"},
    {"faults-per-platform", NULL, CLI_FLAG, CLI_AT(plat.faults_platform), 0, 0, 0,
     "--fail-every/--hang-every count the list requests of all clients\n"
     "                           together instead of each client's own"},
    {"error-rate", "P", CLI_PROB, CLI_AT(plat.error_rate), 0, 0, 0,
     "probability that a sync answers 500"},
    {"malformed-rate", "P", CLI_PROB, CLI_AT(plat.malformed_rate), 0, 0, 0,
     "probability that a list or sync answers 200 with a body that is not\n"
     "                           JSON, truncated JSON or JSON of the wrong shape (no sync happens)"},
    {"token-ttl", "S", CLI_U32, CLI_AT(plat.token_ttl_s), 1, 31536000, 0,
     "access token lifetime in seconds"},
    {"seed", "S", CLI_SEED, CLI_AT(plat.seed), 0, 0, 0,
     "seed of the fault PRNG (default: random, printed at start)"},
    {"accounts", "FILE", CLI_STR, CLI_AT(accounts_file), 0, 0, 0,
     "JSON array of {\"id\",\"email\",\"password\"[,\"campaigns\":N]\n"
     "                           [,\"names\":{\"campaign_K\":\"name\"}]} instead of --clients"},
    {"threads", "N", CLI_U32, CLI_AT(threads), 1, 64, 0,
     "HTTP polling threads"},
    {"max-connections", "N", CLI_U32, CLI_AT(max_connections), 1, 1000000, 0,
     "concurrent connections (held ones count)"},
    {"cpu-cost-us", "US", CLI_U32, CLI_AT(cpu_cost_us), 0, 1000000, 0,
     "CPU time spent on every request (with --threads 1: a platform that is\n"
     "                           the slow side, for benchmarks)"},
    {"campaign-bytes", "N", CLI_U32, CLI_AT(plat.campaign_bytes), 0, 16u << 20, 0,
     "pad every listed campaign with a string of N bytes (memory tests)"},
    {"hostile", NULL, CLI_FLAG, CLI_AT(plat.hostile), 0, 0, 0,
     "a platform that misbehaves: account i gets behaviour i % 10 (odd ids,\n"
     "                           numbers beyond 2^53, deep nesting, wrong types,\n"
     "                           oversized items, huge pages, truncated and slow bodies,\n"
     "                           redirects, bad tokens; see mock-api/hostile.h)"},
    {"verbose", NULL, CLI_FLAG, CLI_AT(verbose), 0, 0, 0,
     "one line per request on stderr"},
    {"fail-campaign", "ID", CLI_LIST, CLI_AT(fail_campaigns), 0, 0, 1,
     "sync of campaign ID always answers 500 (retryable); repeatable"},
    {"reject-campaign", "ID", CLI_LIST, CLI_AT(reject_campaigns), 0, 0, 1,
     "sync of campaign ID answers 400 {\"success\":false,...} (permanent);\n"
     "                           repeatable"},
};
#define CLI_COUNT (sizeof cli_table / sizeof cli_table[0])

static void cli_defaults(cli_options *o) {
  memset(o, 0, sizeof *o);
  o->port = 3001;
  o->clients = 1;
  o->campaigns = 100;
  o->threads = 1;
  o->max_connections = 4000;
  o->plat.sync_latency_ms = 2000;
  o->plat.rate_limit = 10;
  o->plat.rate_window_ms = 60000;
  o->plat.fail_every = 5;
  o->plat.hang_every = 10;
  o->plat.token_ttl_s = 3600;
}

/* ---- values ------------------------------------------------------------------ */

static int cli_u64(const char *s, uint64_t max, uint64_t *out) {
  if (!s || *s < '0' || *s > '9')
    return -1;
  errno = 0;
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || v > max)
    return -1;
  *out = v;
  return 0;
}

static int cli_prob(const char *s, double *out) {
  if (!s || !*s)
    return -1;
  char *end;
  double v = strtod(s, &end);
  if (*end || !isfinite(v) || v < 0 || v > 1)
    return -1;
  *out = v;
  return 0;
}

static int cli_push(cli_list *l, const char *v) {
  const char **nv = realloc(l->v, (l->n + 1) * sizeof *nv);
  if (!nv)
    return -1;
  nv[l->n++] = v;
  l->v = nv;
  return 0;
}

/* Stores value into the field of opt; -1 with err set. */
static int cli_set(const cli_opt *opt, const char *value, cli_options *o, char *err,
                   size_t errlen) {
  char *field = (char *)o + opt->offset;
  uint64_t u = 0;
  switch (opt->kind) {
  case CLI_U32:
    if (cli_u64(value, opt->max, &u) != 0 || u < opt->min)
      break;
    *(uint32_t *)(void *)field = (uint32_t)u;
    return 0;
  case CLI_SEED:
    if (cli_u64(value, UINT64_MAX, &u) != 0)
      break;
    *(uint64_t *)(void *)field = u;
    o->seed_given = 1;
    return 0;
  case CLI_PROB:
    if (cli_prob(value, (double *)(void *)field) != 0)
      break;
    return 0;
  case CLI_STR:
    *(const char **)(void *)field = value;
    return 0;
  case CLI_LIST:
    if (*value && cli_push((cli_list *)(void *)field, value) == 0)
      return 0;
    break;
  case CLI_FLAG:
    *(int *)(void *)field = 1;
    return 0;
  }
  if (opt->kind == CLI_U32)
    snprintf(err, errlen, "--%s: invalid value \"%s\" (expected an integer %u..%u)", opt->name,
             value, opt->min, opt->max);
  else if (opt->kind == CLI_PROB)
    snprintf(err, errlen, "--%s: invalid value \"%s\" (expected a probability 0..1)",
             opt->name, value);
  else
    snprintf(err, errlen, "--%s: invalid value \"%s\"", opt->name, value);
  return -1;
}

/* ---- parsing ----------------------------------------------------------------- */

static const cli_opt *cli_find(const char *name, size_t len) {
  for (size_t i = 0; i < CLI_COUNT; i++)
    if (strlen(cli_table[i].name) == len && strncmp(cli_table[i].name, name, len) == 0)
      return &cli_table[i];
  return NULL;
}

/* Applies argv[*i] (and maybe its value in argv[*i + 1]); -1 with err set. */
static int cli_one(int argc, char **argv, int *i, cli_options *o, char *err, size_t errlen) {
  const char *a = argv[*i];
  if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
    o->help = 1;
    return 0;
  }
  if (strncmp(a, "--", 2) != 0) {
    snprintf(err, errlen, "unexpected argument \"%s\"", a);
    return -1;
  }
  const char *name = a + 2, *eq = strchr(name, '=');
  const cli_opt *opt = cli_find(name, eq ? (size_t)(eq - name) : strlen(name));
  if (!opt) {
    snprintf(err, errlen, "unknown option \"%s\"", a);
    return -1;
  }
  if (opt->kind == CLI_FLAG) {
    if (eq) {
      snprintf(err, errlen, "--%s takes no value", opt->name);
      return -1;
    }
    return cli_set(opt, NULL, o, err, errlen);
  }
  const char *value = eq ? eq + 1 : (*i + 1 < argc ? argv[++*i] : NULL);
  if (!value) {
    snprintf(err, errlen, "--%s needs a value (%s)", opt->name, opt->arg);
    return -1;
  }
  return cli_set(opt, value, o, err, errlen);
}

int cli_parse(int argc, char **argv, cli_options *o, char *err, size_t errlen) {
  cli_defaults(o);
  for (int i = 1; i < argc; i++) {
    if (cli_one(argc, argv, &i, o, err, errlen) != 0)
      return -1;
    if (o->help)
      return 0;
  }
  o->plat.fail_campaigns = o->fail_campaigns.v;
  o->plat.n_fail_campaigns = o->fail_campaigns.n;
  o->plat.reject_campaigns = o->reject_campaigns.v;
  o->plat.n_reject_campaigns = o->reject_campaigns.n;
  return 0;
}

void cli_options_free(cli_options *o) {
  free(o->fail_campaigns.v);
  free(o->reject_campaigns.v);
  o->fail_campaigns.v = o->reject_campaigns.v = NULL;
  o->fail_campaigns.n = o->reject_campaigns.n = 0;
}

/* ---- help -------------------------------------------------------------------- */

/* " (default X)" for options whose default is worth showing. */
static void cli_default_text(const cli_opt *opt, const cli_options *d, char *buf, size_t n) {
  const char *field = (const char *)d + opt->offset;
  buf[0] = '\0';
  if (opt->kind == CLI_U32)
    snprintf(buf, n, " (default %u)", *(const uint32_t *)(const void *)field);
  else if (opt->kind == CLI_PROB)
    snprintf(buf, n, " (default %g)", *(const double *)(const void *)field);
}

static void cli_usage_section(FILE *out, const cli_options *d, int hooks) {
  for (size_t i = 0; i < CLI_COUNT; i++) {
    const cli_opt *opt = &cli_table[i];
    if (opt->hook != hooks)
      continue;
    char left[40], dflt[40];
    snprintf(left, sizeof left, "--%s%s%s", opt->name, opt->arg ? " " : "",
             opt->arg ? opt->arg : "");
    cli_default_text(opt, d, dflt, sizeof dflt);
    fprintf(out, "  %-24s %s%s\n", left, opt->help, dflt);
  }
}

void cli_usage(FILE *out) {
  cli_options d;
  cli_defaults(&d);
  fputs("Usage: adsync-mock-api [options]\n"
        "\n"
        "A simulated ad platform (POST /auth/token, GET /api/campaigns,\n"
        "POST /api/campaigns/{id}/sync) with fault injection, for adsync tests and\n"
        "benchmarks. Listens on 127.0.0.1 only. The defaults reproduce the real\n"
        "platform; 0 turns a rate, an every-N or a latency off, so\n"
        "--sync-latency-ms 0 --fail-every 0 --hang-every 0 --rate-limit 0 is a\n"
        "fault-free, unlimited platform.\n"
        "\n"
        "Options:\n", out);
  cli_usage_section(out, &d, 0);
  fputs("  --help                   this text\n"
        "\n"
        "Test hooks:\n", out);
  cli_usage_section(out, &d, 1);
  fputs("  GET  /admin/stats          per client: requests by endpoint (auth, list, sync)\n"
        "                             and status (\"hang\" for unanswered ones), and how\n"
        "                             many times each campaign was synced\n"
        "  POST /admin/reset          zero the stats, fault counters and rate windows\n"
        "  POST /admin/revoke-tokens  every token issued so far answers 401 \"Token expired\"\n"
        "  GET  /health               {\"status\":\"ok\"}\n"
        "\n"
        "Exit status: 0 after SIGTERM/SIGINT, 64 bad usage, 1 cannot serve.\n", out);
}
