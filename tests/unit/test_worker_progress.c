/* Unit tests of worker/progress: the C side of progress.lua's layout must
 * be the script's. The script is read from the source tree; a key added,
 * moved or renamed on one side only, a pair the script reads that C never
 * sends (or the reverse), an outcome spelled differently, each fails here. */
#include "test_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "progress.h"

static char *read_script(void)
{
    FILE *f = fopen(ADSYNC_SOURCE_DIR "/common/lua/progress.lua", "r");
    assert_non_null(f);
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    return text;
}

/* "-- KEYS[1] run hash        KEYS[2] ..." lines: each name runs until two
 * spaces, the next KEYS[ or the end of the line. */
static void keys_match_the_header(void **state)
{
    (void)state;
    const char *text = read_script();
    int seen = 0;
    for (const char *p = strstr(text, "KEYS["); p; p = strstr(p, "KEYS[")) {
        char *end;
        long n = strtol(p + 5, &end, 10);
        if (*end != ']' || end[1] != ' ') {   /* KEYS[k] in code, not the header */
            p += 5;
            continue;
        }
        const char *name = end + 2;
        size_t len = strcspn(name, "\n");
        const char *ends[] = { strstr(name, "  "), strstr(name, " KEYS[") };
        for (size_t e = 0; e < 2; e++)
            if (ends[e] && (size_t)(ends[e] - name) < len)
                len = (size_t)(ends[e] - name);
        if (n < 1 || n > PR_KEYS)
            fail_msg("progress.lua declares KEYS[%ld], progress.h knows %d keys", n, PR_KEYS);
        if (strlen(pr_key_names[n - 1]) != len || strncmp(pr_key_names[n - 1], name, len) != 0)
            fail_msg("KEYS[%ld] is \"%.*s\" in progress.lua, \"%s\" in progress.c", n, (int)len, name,
                     pr_key_names[n - 1]);
        seen |= 1 << (n - 1);
        p = name;
    }
    assert_int_equal(seen, (1 << PR_KEYS) - 1);
}

static int script_reads(const char *text, const char *name)
{
    char needle[64];
    snprintf(needle, sizeof needle, "a.%s", name);
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle)) {
        char after = p[strlen(needle)];
        if (!(after == '_' || (after >= 'a' && after <= 'z')))
            return 1;
    }
    return 0;
}

static void pairs_are_the_ones_the_script_reads(void **state)
{
    (void)state;
    const char *text = read_script();
    for (int i = 0; i < PR_ARGS; i++)
        if (!script_reads(text, pr_arg_names[i]))
            fail_msg("progress.h sends \"%s\", progress.lua never reads a.%s", pr_arg_names[i], pr_arg_names[i]);
    for (const char *p = strstr(text, "a."); p; p = strstr(p + 2, "a.")) {
        if (p > text && ((p[-1] >= 'a' && p[-1] <= 'z') || p[-1] == '_'))
            continue;   /* part of a longer word */
        size_t len = strspn(p + 2, "abcdefghijklmnopqrstuvwxyz_");
        int known = 0;
        for (int i = 0; i < PR_ARGS && !known; i++)
            known = strlen(pr_arg_names[i]) == len && strncmp(pr_arg_names[i], p + 2, len) == 0;
        if (len > 0 && !known)
            fail_msg("progress.lua reads a.%.*s, progress.h does not know it", (int)len, p + 2);
    }
}

static void outcomes_are_the_scripts(void **state)
{
    (void)state;
    const char *text = read_script();
    for (int i = 0; i < PR_OUTCOMES; i++) {
        char needle[64];
        snprintf(needle, sizeof needle, "a.outcome == '%s'", pr_outcome_names[i]);
        if (strstr(text, needle) == NULL)
            fail_msg("progress.lua has no %s", needle);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keys_match_the_header),
        cmocka_unit_test(pairs_are_the_ones_the_script_reads),
        cmocka_unit_test(outcomes_are_the_scripts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
