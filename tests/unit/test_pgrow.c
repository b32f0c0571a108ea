/* Unit tests for pgrow.c: outbox entries to upsert parameters, the upsert
 * statement, error classes and dead letters. */
#include "test_common.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "pgrow.h"

#define ENTRY(campaign) "{\"client\":\"acme\",\"campaign\":" campaign "}"

static const char full[] = ENTRY(
    "{\"id\":\"campaign_1\",\"name\":\"O'Brien \\\"x\\\" \\\\ '); DROP TABLE campaigns; --\","
    "\"status\":\"active\",\"budget\":1100,\"impressions\":42,\"clicks\":7,\"conversions\":1,"
    "\"created_at\":\"2025-12-31T10:00:00.000Z\",\"synced_at\":\"2026-01-01T00:00:00.123Z\",\"run\":\"r1\"}");

static void parses_every_column(void **state)
{
    (void)state;
    pgrow row;
    char err[128];
    assert_int_equal(pgrow_parse(&row, full, strlen(full), err, sizeof err), 0);
    const char *want[PGROW_NCOLS] = {
        "acme", "campaign_1", "O'Brien \"x\" \\ '); DROP TABLE campaigns; --", "active", "1100", "42", "7", "1",
        "2025-12-31T10:00:00.000Z", "2026-01-01T00:00:00.123Z", "r1",
    };
    for (size_t i = 0; i < PGROW_NCOLS; i++)
        assert_string_equal(row.values[i], want[i]);
    assert_string_equal(pgrow_client(&row), "acme");
    assert_string_equal(pgrow_campaign_id(&row), "campaign_1");
    pgrow_clear(&row);
    pgrow_clear(&row);   /* twice is fine */
}

static void renders_other_json_values(void **state)
{
    (void)state;
    static const char e[] = ENTRY("{\"id\":\"c\",\"synced_at\":\"s\",\"name\":null,\"status\":true,"
                                  "\"budget\":0.1,\"impressions\":1e30,\"clicks\":-3,\"conversions\":[1,2],"
                                  "\"run\":{\"a\":1}}");
    pgrow row;
    char err[128];
    assert_int_equal(pgrow_parse(&row, e, strlen(e), err, sizeof err), 0);
    assert_null(row.values[2]);                    /* null -> SQL NULL */
    assert_string_equal(row.values[3], "true");
    assert_string_equal(row.values[4], "0.1");     /* shortest text that reads back the same */
    assert_string_equal(row.values[5], "1e+30");
    assert_string_equal(row.values[6], "-3");
    assert_string_equal(row.values[7], "[1,2]");
    assert_null(row.values[8]);                    /* created_at missing -> NULL */
    assert_string_equal(row.values[10], "{\"a\":1}");
    pgrow_clear(&row);

    static const char big[] = ENTRY("{\"id\":\"c\",\"synced_at\":\"s\",\"budget\":1234567890123456,"
                                    "\"impressions\":9.3e18,\"clicks\":-0.0,\"conversions\":-12.5}");
    assert_int_equal(pgrow_parse(&row, big, strlen(big), err, sizeof err), 0);
    assert_string_equal(row.values[4], "1234567890123456");
    assert_string_equal(row.values[5], "9300000000000000000");   /* bigint says "out of range" */
    assert_string_equal(row.values[6], "0");
    assert_string_equal(row.values[7], "-12.5");
    pgrow_clear(&row);
}

static void rejects_bad_entries(void **state)
{
    (void)state;
    static const struct { const char *entry, *why; } bad[] = {
        { "not json", "not a JSON object" },
        { "[1]", "not a JSON object" },
        { "{\"campaign\":{\"id\":\"c\",\"synced_at\":\"s\"}}", "client" },
        { "{\"client\":\"a:b\",\"campaign\":{\"id\":\"c\",\"synced_at\":\"s\"}}", "client" },
        { "{\"client\":\"a\",\"campaign\":\"x\"}", "campaign" },
        { "{\"client\":\"a\",\"campaign\":{\"synced_at\":\"s\"}}", "\"id\"" },
        { "{\"client\":\"a\",\"campaign\":{\"id\":\"\",\"synced_at\":\"s\"}}", "\"id\"" },
        { "{\"client\":\"a\",\"campaign\":{\"id\":\"c\",\"synced_at\":5}}", "synced_at" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pgrow row;
        char err[128];
        assert_int_equal(pgrow_parse(&row, bad[i].entry, strlen(bad[i].entry), err, sizeof err), -1);
        assert_non_null(strstr(err, bad[i].why));
        assert_null(row.root);
    }
}

/* Counts "$N" placeholders and checks they run 1..n in order. */
static size_t placeholders(const char *sql)
{
    size_t next = 1;
    for (const char *p = strchr(sql, '$'); p; p = strchr(p + 1, '$')) {
        assert_int_equal(strtoul(p + 1, NULL, 10), next);
        next++;
    }
    return next - 1;
}

static void upsert_statement(void **state)
{
    (void)state;
    assert_null(pgrow_upsert_sql(0));
    assert_null(pgrow_upsert_sql(PGROW_MAX_ROWS + 1));
    char *one = pgrow_upsert_sql(1);
    assert_non_null(one);
    assert_int_equal(placeholders(one), PGROW_NCOLS);
    assert_non_null(strstr(one, "INSERT INTO campaigns AS c (client, id, name, status, budget, impressions, "
                                "clicks, conversions, created_at, synced_at, run, updated_at)"));
    assert_non_null(strstr(one, "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)"));
    assert_non_null(strstr(one, "DISTINCT ON (v.client, v.id)"));
    assert_non_null(strstr(one, "ORDER BY v.client, v.id, v.synced_at DESC"));
    assert_non_null(strstr(one, "ON CONFLICT (client, id) DO UPDATE SET name = EXCLUDED.name, "));
    assert_null(strstr(one, "id = EXCLUDED.id"));
    assert_null(strstr(one, "client = EXCLUDED.client"));
    assert_non_null(strstr(one, "WHERE c.synced_at <= EXCLUDED.synced_at"));
    free(one);
    char *most = pgrow_upsert_sql(PGROW_MAX_ROWS);
    assert_non_null(most);
    assert_int_equal(placeholders(most), PGROW_MAX_ROWS * PGROW_NCOLS);
    assert_true(PGROW_MAX_ROWS * PGROW_NCOLS <= 65535);
    free(most);
}

static void error_classes(void **state)
{
    (void)state;
    assert_true(pgrow_is_row_error("22003"));    /* numeric_value_out_of_range */
    assert_true(pgrow_is_row_error("22P02"));    /* invalid_text_representation */
    assert_true(pgrow_is_row_error("23502"));    /* not_null_violation */
    assert_false(pgrow_is_row_error("42P01"));   /* undefined_table */
    assert_false(pgrow_is_row_error("57P01"));   /* admin_shutdown */
    assert_false(pgrow_is_row_error("40P01"));   /* deadlock */
    assert_false(pgrow_is_row_error(NULL));
}

static void dead_letters(void **state)
{
    (void)state;
    pgrow row;
    char err[128];
    assert_int_equal(pgrow_parse(&row, full, strlen(full), err, sizeof err), 0);
    char *letter = pgrow_dead_letter(&row, full, strlen(full), "postgres: boom", 1234);
    cJSON *o = cJSON_Parse(letter);
    assert_string_equal(cJSON_GetObjectItem(o, "type")->valuestring, "pg_row");
    assert_string_equal(cJSON_GetObjectItem(o, "client")->valuestring, "acme");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "campaign"), "id")->valuestring, "campaign_1");
    assert_string_equal(cJSON_GetObjectItem(o, "last_error")->valuestring, "postgres: boom");
    assert_int_equal(cJSON_GetObjectItem(o, "dead_at")->valuedouble, 1234);
    assert_int_equal(strlen(cJSON_GetObjectItem(o, "id")->valuestring), 32);
    cJSON_Delete(o);
    free(letter);
    pgrow_clear(&row);

    letter = pgrow_dead_letter(NULL, "junk\"", 5, "outbox entry is not a JSON object", 1);
    o = cJSON_Parse(letter);
    assert_string_equal(cJSON_GetObjectItem(o, "raw")->valuestring, "junk\"");
    assert_null(cJSON_GetObjectItem(o, "campaign"));
    cJSON_Delete(o);
    free(letter);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_every_column), cmocka_unit_test(renders_other_json_values),
        cmocka_unit_test(rejects_bad_entries), cmocka_unit_test(upsert_statement),
        cmocka_unit_test(error_classes),       cmocka_unit_test(dead_letters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
