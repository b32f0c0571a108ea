/* adsync-mock-api: entry point. Parses the command line, loads or generates
 * the accounts, starts the platform core and the HTTP server, prints where it
 * listens and the credentials, then waits for SIGTERM/SIGINT and shuts down
 * cleanly (held connections are released first). All logic lives in
 * platform.c (decisions) and server.c (HTTP). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "accounts.h"
#include "cli.h"
#include "platform.h"
#include "server.h"

#define EXIT_USAGE 64

/* Reads a whole file into a NUL-terminated heap buffer; NULL on error. */
static char *read_file(const char *path, size_t *out_len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  char *buf = NULL;
  size_t len = 0, cap = 0, n;
  do {
    if (len + 4096 + 1 > cap) {
      cap = cap ? cap * 2 : 8192;
      char *nb = realloc(buf, cap);
      if (!nb) {
        free(buf);
        fclose(f);
        return NULL;
      }
      buf = nb;
    }
    n = fread(buf + len, 1, cap - len - 1, f);
    len += n;
  } while (n > 0);
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return NULL;
  }
  buf[len] = '\0';
  *out_len = len;
  return buf;
}

static acct_list *load_accounts(const cli_options *o, char *err, size_t errlen) {
  if (!o->accounts_file) {
    acct_list *l = acct_list_generate(o->clients, o->campaigns);
    if (!l)
      snprintf(err, errlen, "out of memory");
    return l;
  }
  size_t len = 0;
  char *text = read_file(o->accounts_file, &len);
  if (!text) {
    snprintf(err, errlen, "--accounts: cannot read \"%s\"", o->accounts_file);
    return NULL;
  }
  char why[200];
  acct_list *l = acct_list_from_json(text, len, o->campaigns, why, sizeof why);
  free(text);
  if (!l)
    snprintf(err, errlen, "--accounts %s: %s", o->accounts_file, why);
  return l;
}

static uint64_t random_seed(void) {
  uint64_t v = 0;
  if (getrandom(&v, sizeof v, GRND_NONBLOCK) == (ssize_t)sizeof v)
    return v;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 16);
}

/* Held connections keep their descriptors: make room for the connection limit. */
static void raise_fd_limit(unsigned want) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
    return;
  rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
  setrlimit(RLIMIT_NOFILE, &rl);
}

static void print_banner(const srv *s, const plat *p, uint64_t seed) {
  const acct_list *l = plat_accounts(p);
  printf("listening on http://127.0.0.1:%u\n", (unsigned)srv_port(s));
  printf("seed %llu\n", (unsigned long long)seed);
  for (size_t i = 0; i < acct_count(l); i++) {
    const acct_info *a = acct_get(l, i);
    printf("account %s email=%s password=%s campaigns=%u\n", a->id, a->email, a->password,
           a->campaigns);
  }
  fflush(stdout);
}

/* Blocks SIGINT/SIGTERM in this and every later thread, so sigwait gets them. */
static void block_signals(sigset_t *set) {
  sigemptyset(set);
  sigaddset(set, SIGINT);
  sigaddset(set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, set, NULL);
  signal(SIGPIPE, SIG_IGN);
}

static int run(cli_options *o) {
  char err[300];
  acct_list *accounts = load_accounts(o, err, sizeof err);
  if (!accounts) {
    fprintf(stderr, "adsync-mock-api: %s\n", err);
    return EXIT_USAGE;
  }
  if (!o->seed_given)
    o->plat.seed = random_seed();
  o->plat.token_seed = random_seed();
  sigset_t set;
  block_signals(&set);
  raise_fd_limit(o->max_connections + 64);
  plat *p = plat_new(&o->plat, accounts);
  /* a trickled body holds its polling thread (hostile.h): give it company */
  unsigned threads = o->plat.hostile && o->threads < 4 ? 4 : o->threads;
  srv_options so = {.port = (uint16_t)o->port, .threads = threads,
                    .max_connections = o->max_connections, .cpu_cost_us = o->cpu_cost_us,
                    .verbose = o->verbose};
  srv *s = p ? srv_new(p, &so, err, sizeof err) : NULL;
  if (!s) {
    fprintf(stderr, "adsync-mock-api: %s\n", p ? err : "out of memory");
    plat_free(p);
    return 1;
  }
  print_banner(s, p, o->plat.seed);
  int sig = 0;
  sigwait(&set, &sig);
  srv_free(s);
  plat_free(p);
  return 0;
}

int main(int argc, char **argv) {
  cli_options o;
  char err[300];
  int rc;
  if (cli_parse(argc, argv, &o, err, sizeof err) != 0) {
    fprintf(stderr, "adsync-mock-api: %s (see --help)\n", err);
    rc = EXIT_USAGE;
  } else if (o.help) {
    cli_usage(stdout);
    rc = 0;
  } else {
    rc = run(&o);
  }
  cli_options_free(&o);
  return rc;
}
