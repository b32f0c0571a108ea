/* cli: adsync-mock-api's command line: one option table that drives both
 * parsing and --help, strict value checks, and the defaults that reproduce
 * the real platform. Pure: no I/O except cli_usage writing to a stream. */
#ifndef ADSYNC_MOCK_CLI_H
#define ADSYNC_MOCK_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "platform.h"

/* A repeatable option's values; the strings are borrowed from argv. */
typedef struct cli_list {
  const char **v;
  size_t n;
} cli_list;

typedef struct cli_options {
  uint32_t port;
  uint32_t clients;
  uint32_t campaigns;
  uint32_t threads;          /* MHD polling threads */
  uint32_t max_connections;
  uint32_t cpu_cost_us;
  plat_config plat;          /* fail/reject arrays point into the lists below */
  int seed_given;
  const char *accounts_file; /* borrowed from argv, or NULL */
  int verbose;
  int help;
  cli_list fail_campaigns;
  cli_list reject_campaigns;
} cli_options;

/* Fills *o with the defaults, then applies argv. 0 on success (check o->help);
 * -1 with a one-line message naming the flag in err. Call cli_options_free
 * either way. argv must outlive *o. */
int cli_parse(int argc, char **argv, cli_options *o, char *err, size_t errlen);

/* Frees the lists (not the borrowed strings); safe after a failed parse. */
void cli_options_free(cli_options *o);

/* Writes the --help text. */
void cli_usage(FILE *out);

#endif
