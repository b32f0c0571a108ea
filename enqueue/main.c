/* adsync-enqueue: the scheduler's and operator's command-line tool
 * (DESIGN.md §8). A short-lived, synchronous program: this file only holds
 * the top-level help and dispatches to the command groups of cli.h. */
#include "app.h"
#include "cli.h"
#include "seal.h"

static const char help_text[] =
    "commands:\n"
    "  client add ID --email EMAIL [--api-url URL] [--rate-limit N]\n"
    "                                register or replace a client; password on stdin\n"
    "  client list [--json]          registered clients (never their passwords)\n"
    "  client remove ID [--purge]    forget a client\n"
    "  sync ID... | sync --all [--force] [--wait] [--json]\n"
    "                                queue one sync run per client\n"
    "  status [--json]               queues, workers, each client's last run\n"
    "  dead list [--json] | dead retry (--all | JOB_ID) | dead purge\n"
    "                                inspect and re-queue dead letters\n"
    "  db migrate                    create/upgrade the PostgreSQL sink's table\n"
    "  secrets keygen FILE | status [--json] | rotate | migrate\n"
    "                                sealing key and sealed credentials\n"
    "  web [--listen HOST:PORT]      the operators' console (default 127.0.0.1:8080)\n"
    "\n"
    "Every command takes --help. Configuration comes from the environment, as\n"
    "for adsync-worker: REDIS_URL (redis://[user:password@]host[:port][/db]),\n"
    "ADSYNC_PREFIX, ... A Redis that does not answer within 1 s is unavailable.\n"
    "\n"
    "exit codes: 0 ok, 1 some campaign ended dead (sync --wait), 64 usage,\n"
    "65 bad input, 69 Redis unavailable, 78 bad configuration.\n";

static const app_subcmd commands[] = {
    { "client", cli_client },
    { "sync", cli_sync },
    { "status", cli_status },
    { "dead", cli_dead },
    { "db", cli_db },
    { "secrets", cli_secrets },
    { "web", cli_web },
};

int main(int argc, char **argv)
{
    seal_protect_process();   /* passwords pass through it (client add, secrets) */
    static const app_group program = {
        "COMMAND [ARGS...]   (client, sync, status, dead, db, secrets, web; --help for more)", help_text,
        commands, sizeof commands / sizeof commands[0],
    };
    return app_dispatch(&program, argc, argv);
}
