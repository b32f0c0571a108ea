/* pgrow: the PostgreSQL sink's pure core (DESIGN.md §10): outbox entries in,
 * statement text and parameters out, without any I/O.
 *
 * An outbox entry is what progress.lua appends to <prefix>:outbox:
 *
 *     {"client":"acme","campaign":{…the stored campaign JSON: as listed + synced_at + run…}}
 *
 * A row is its eleven column values as text (NULL = SQL NULL), to be sent as
 * parameters of pgrow_upsert_sql: no value is ever spliced into SQL. The
 * statement inserts up to PGROW_MAX_ROWS rows, keeps the newest duplicate
 * within one batch, and updates an existing row only when the incoming
 * synced_at is not older (newer wins, replays are harmless). */
#ifndef ADSYNC_PGROW_H
#define ADSYNC_PGROW_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define PGROW_NCOLS 11            /* client id name status budget impressions clicks conversions
                                     created_at synced_at run */
#define PGROW_MAX_ROWS 5000       /* 11 parameters a row; a statement takes at most 65535 */

typedef struct pgrow {
    cJSON *root;                         /* the parsed entry (owned) */
    const char *values[PGROW_NCOLS];     /* text per column, NULL = SQL NULL; borrowed from root/text/owned */
    char text[PGROW_NCOLS][32];          /* renderings of numbers and booleans */
    char *owned[PGROW_NCOLS];            /* renderings of nested values (malloc'd) */
} pgrow;

/* Parameter types of one row, in column order (text, numeric, int8,
 * timestamptz): repeat them for every row of a statement. */
extern const Oid pgrow_types[PGROW_NCOLS];

/* Parses one outbox entry. 0 and row filled (release with pgrow_clear); -1
 * with err (not JSON, no valid client, no campaign object, no campaign id
 * or synced_at string) and row cleared. Numbers become their shortest exact
 * decimal text, booleans true/false, nested values their JSON text. */
int pgrow_parse(pgrow *row, const char *entry, size_t len, char *err, size_t errlen);
void pgrow_clear(pgrow *row);   /* safe on a zeroed or cleared row */

const char *pgrow_client(const pgrow *row);
const char *pgrow_campaign_id(const pgrow *row);

/* The upsert statement for nrows rows (1..PGROW_MAX_ROWS): parameters
 * $1..$(11·nrows), row after row. malloc'd (free()); NULL when out of
 * memory or nrows is out of range. */
char *pgrow_upsert_sql(size_t nrows);

/* 1 when a statement failed because of the values of some row (SQLSTATE
 * class 22 data exception or 23 integrity constraint violation): finding
 * and dead-lettering that row helps. Anything else (connection, schema,
 * resources, serialization) is worth retrying as is. */
int pgrow_is_row_error(const char *sqlstate);

/* The dead letter for an entry the database (or pgrow_parse) refused:
 *     {"v":1,"id":"<new>","type":"pg_row","client":…,"campaign":{…},"last_error":…,"dead_at":ms}
 * with "raw" (the entry's text) instead of client/campaign when row is NULL.
 * malloc'd JSON (free()), NULL when out of memory. */
char *pgrow_dead_letter(const pgrow *row, const char *entry, size_t len, const char *error, uint64_t now_ms);

#endif
