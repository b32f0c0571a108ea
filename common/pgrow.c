/* pgrow: outbox entries to upsert parameters, and the upsert statement
 * (see pgrow.h). Pure: no I/O, no clock (the caller passes now). */
#include "pgrow.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "keys.h"

#define OID_INT8 20
#define OID_TEXT 25
#define OID_TIMESTAMPTZ 1184
#define OID_NUMERIC 1700

/* Column i is campaign member columns[i] (column 0, client, is the entry's). */
static const char *const columns[PGROW_NCOLS] = {
    "client", "id", "name", "status", "budget", "impressions", "clicks", "conversions",
    "created_at", "synced_at", "run",
};
enum { COL_CLIENT, COL_ID, COL_SYNCED_AT = 9 };

const Oid pgrow_types[PGROW_NCOLS] = {
    OID_TEXT, OID_TEXT, OID_TEXT, OID_TEXT, OID_NUMERIC, OID_INT8, OID_INT8, OID_INT8,
    OID_TIMESTAMPTZ, OID_TIMESTAMPTZ, OID_TEXT,
};

/* ---- entries -------------------------------------------------------------------- */

void pgrow_clear(pgrow *row)
{
    for (size_t i = 0; i < PGROW_NCOLS; i++)
        free(row->owned[i]);
    cJSON_Delete(row->root);
    memset(row, 0, sizeof *row);
}

static int reject(pgrow *row, char *err, size_t errlen, const char *why)
{
    pgrow_clear(row);
    snprintf(err, errlen, "outbox entry %s", why);
    return -1;
}

/* Writes d as decimal text into out (32 bytes): an integral value below
 * 1e19 digit by digit (exact, and what bigint wants; one past its range
 * reads as "out of range" rather than as bad syntax), anything else as the
 * shortest of %.15g / %.17g that reads back as d. */
static void number_text(double d, char out[32])
{
    double m = fabs(d);
    if (m < 1e19 && m == floor(m)) {
        unsigned long long u = (unsigned long long)m;
        char rev[24];
        size_t n = 0, k = 0;
        do {
            rev[n++] = (char)('0' + (int)(u % 10));
            u /= 10;
        } while (u);
        if (d < 0)
            out[k++] = '-';
        while (n)
            out[k++] = rev[--n];
        out[k] = '\0';
        return;
    }
    snprintf(out, 32, "%.15g", d);
    if (strtod(out, NULL) != d)
        snprintf(out, 32, "%.17g", d);
}

/* Sets column i from v. 0, or -1 when out of memory. */
static int set_value(pgrow *row, size_t i, const cJSON *v)
{
    if (v == NULL || cJSON_IsNull(v))
        return 0;
    if (cJSON_IsString(v)) {
        row->values[i] = v->valuestring;
    } else if (cJSON_IsBool(v)) {
        row->values[i] = cJSON_IsTrue(v) ? "true" : "false";
    } else if (cJSON_IsNumber(v)) {
        number_text(v->valuedouble, row->text[i]);
        row->values[i] = row->text[i];
    } else {
        row->owned[i] = cJSON_PrintUnformatted(v);
        row->values[i] = row->owned[i];
    }
    return row->values[i] ? 0 : -1;
}

int pgrow_parse(pgrow *row, const char *entry, size_t len, char *err, size_t errlen)
{
    memset(row, 0, sizeof *row);
    row->root = cJSON_ParseWithLength(entry, len);
    if (!cJSON_IsObject(row->root))
        return reject(row, err, errlen, "is not a JSON object");
    const cJSON *client = cJSON_GetObjectItemCaseSensitive(row->root, "client");
    const cJSON *campaign = cJSON_GetObjectItemCaseSensitive(row->root, "campaign");
    if (!cJSON_IsString(client) || !keys_valid_client_id(client->valuestring))
        return reject(row, err, errlen, "has no valid \"client\"");
    if (!cJSON_IsObject(campaign))
        return reject(row, err, errlen, "has no \"campaign\" object");
    row->values[COL_CLIENT] = client->valuestring;
    for (size_t i = COL_ID; i < PGROW_NCOLS; i++)
        if (set_value(row, i, cJSON_GetObjectItemCaseSensitive(campaign, columns[i])) < 0)
            return reject(row, err, errlen, "could not be read: out of memory");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(campaign, "id");
    const cJSON *synced_at = cJSON_GetObjectItemCaseSensitive(campaign, "synced_at");
    if (!cJSON_IsString(id) || id->valuestring[0] == '\0')
        return reject(row, err, errlen, "has a campaign without a string \"id\"");
    if (!cJSON_IsString(synced_at))
        return reject(row, err, errlen, "has a campaign without a string \"synced_at\"");
    return 0;
}

const char *pgrow_client(const pgrow *row)
{
    return row->values[COL_CLIENT];
}

const char *pgrow_campaign_id(const pgrow *row)
{
    return row->values[COL_ID];
}

/* ---- the statement ---------------------------------------------------------------- */

typedef struct sbuf {
    char *s;
    size_t len, cap;
    int oom;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(sbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len) {
        b->oom = 1;   /* sized up front: running out means a bug or no memory */
        return;
    }
    b->len += (size_t)n;
}

/* "client, id, …" (from: first column, with prefix before each name). */
static void put_columns(sbuf *b, size_t from, const char *prefix)
{
    for (size_t i = from; i < PGROW_NCOLS; i++)
        put(b, "%s%s%s", i > from ? ", " : "", prefix, columns[i]);
}

char *pgrow_upsert_sql(size_t nrows)
{
    if (nrows < 1 || nrows > PGROW_MAX_ROWS)
        return NULL;
    sbuf b = { .cap = 2048 + nrows * (PGROW_NCOLS * 8 + 4) };
    if ((b.s = malloc(b.cap)) == NULL)
        return NULL;
    b.s[0] = '\0';
    put(&b, "INSERT INTO campaigns AS c (");
    put_columns(&b, 0, "");
    put(&b, ", updated_at) SELECT DISTINCT ON (v.client, v.id) v.*, now() FROM (VALUES ");
    for (size_t r = 0; r < nrows; r++) {
        put(&b, r ? ",(" : "(");
        for (size_t i = 0; i < PGROW_NCOLS; i++)
            put(&b, "%s$%zu", i ? "," : "", r * PGROW_NCOLS + i + 1);
        put(&b, ")");
    }
    put(&b, ") AS v (");
    put_columns(&b, 0, "");
    put(&b, ") ORDER BY v.client, v.id, v.synced_at DESC ON CONFLICT (client, id) DO UPDATE SET ");
    for (size_t i = COL_ID + 1; i < PGROW_NCOLS; i++)
        put(&b, "%s = EXCLUDED.%s, ", columns[i], columns[i]);
    put(&b, "updated_at = EXCLUDED.updated_at WHERE c.%s <= EXCLUDED.%s", columns[COL_SYNCED_AT],
        columns[COL_SYNCED_AT]);
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

int pgrow_is_row_error(const char *sqlstate)
{
    return sqlstate && (strncmp(sqlstate, "22", 2) == 0 || strncmp(sqlstate, "23", 2) == 0);
}

/* ---- dead letters ------------------------------------------------------------------ */

/* Adds what the letter is about: client and campaign, or the raw entry. */
static int add_source(cJSON *o, const pgrow *row, const char *entry, size_t len)
{
    if (row == NULL) {
        char *raw = strndup(entry, len);
        int ok = raw && cJSON_AddStringToObject(o, "raw", raw);
        free(raw);
        return ok;
    }
    if (!cJSON_AddStringToObject(o, "client", pgrow_client(row)))
        return 0;
    cJSON *copy = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(row->root, "campaign"), 1);
    if (copy && !cJSON_AddItemToObject(o, "campaign", copy)) {
        cJSON_Delete(copy);
        return 0;
    }
    return copy != NULL;
}

char *pgrow_dead_letter(const pgrow *row, const char *entry, size_t len, const char *error, uint64_t now_ms)
{
    char id[JOB_ID_LEN + 1];
    job_make_id(id);
    cJSON *o = cJSON_CreateObject();
    int ok = o && cJSON_AddNumberToObject(o, "v", 1) && cJSON_AddStringToObject(o, "id", id) &&
             cJSON_AddStringToObject(o, "type", "pg_row") && add_source(o, row, entry, len) &&
             cJSON_AddStringToObject(o, "last_error", error) &&
             cJSON_AddNumberToObject(o, "dead_at", (double)now_ms);
    char *out = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return out;
}
