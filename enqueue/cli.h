/* cli: the adsync-enqueue subcommands (DESIGN.md §8), one entry point per
 * command group. Each takes argv with argv[0] = the group's name ("client",
 * "sync", ...), parses its own options, connects when it needs Redis and
 * returns the process exit code (see app.h). */
#ifndef ADSYNC_ENQUEUE_CLI_H
#define ADSYNC_ENQUEUE_CLI_H

int cli_client(int argc, char **argv);   /* clients.c: client add | list | remove */
int cli_sync(int argc, char **argv);     /* sync.c: sync ID... | --all, with --wait (wait.c) */
int cli_status(int argc, char **argv);   /* status.c */
int cli_dead(int argc, char **argv);     /* dead.c: dead list | retry | purge */
int cli_db(int argc, char **argv);       /* db.c: db migrate (PostgreSQL sink schema) */
int cli_secrets(int argc, char **argv);  /* secrets.c: secrets keygen | status | rotate | migrate */
int cli_web(int argc, char **argv);      /* web.c: the operators' web console */

#endif
