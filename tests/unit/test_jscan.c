/* Unit tests of common/jscan: what counts as JSON, and the spans it gives. */
#include "test_common.h"

#include <stdlib.h>
#include <string.h>

#include "jscan.h"

static int valid(const char *s)
{
    jscan_span sp;
    return jscan_value(s, strlen(s), &sp) == 0;
}

static void grammar(void **state)
{
    (void)state;
    const char *good[] = { "0", "-0.5e+3", "1E400", "9007199254740993", "\"a\\u00e9\\n\"", "true",
                           " null ", "[]", "{}", "[1,[2,{\"a\":[]}]]", "{\"a\":1,\"b\":\"x\"}",
                           "\"\xc3\xa9\"" };
    const char *bad[] = { "", " ", "01", "1.", ".5", "-", "1e", "+1", "tru", "nul", "\"a", "\"\\x\"",
                          "\"\\u12g4\"", "\"a\tb\"", "[1,]", "[,1]", "{\"a\"}", "{\"a\":}", "{a:1}",
                          "{\"a\":1,}", "[1 2]", "1 2", "[}", "{]", "NaN", "Infinity" };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(valid(good[i]));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(valid(bad[i]));
    assert_false(jscan_value("1\0", 2, &(jscan_span){ 0 }) == 0);
}

/* Depth is counted in containers: JSCAN_MAX_DEPTH nested arrays are fine,
 * one more is refused, without using up the stack. */
static char *nested(size_t n)
{
    char *s = malloc(2 * n + 1);
    memset(s, '[', n);
    memset(s + n, ']', n);
    s[2 * n] = '\0';
    return s;
}

static void nesting_is_bounded(void **state)
{
    (void)state;
    char *ok = nested(JSCAN_MAX_DEPTH), *deep = nested(JSCAN_MAX_DEPTH + 1), *hostile = nested(100000);
    assert_true(valid(ok));
    assert_false(valid(deep));
    assert_false(valid(hostile));
    free(ok);
    free(deep);
    free(hostile);
}

static void members_and_items(void **state)
{
    (void)state;
    const char *text = " {\"data\" : [ {\"id\":\"a\", \"n\":1e400} , 2,\"x\" ], \"d\\u0061ta\":0,"
                       " \"data\":\"second\"} ";
    jscan_span root, data, item, none;
    assert_int_equal(jscan_value(text, strlen(text), &root), 0);
    assert_int_equal(root.p[0], '{');
    assert_int_equal(root.p[root.len - 1], '}');
    assert_int_equal(jscan_member(root, "data", &data), 1);   /* the first one */
    assert_int_equal(jscan_member(root, "missing", &none), 0);
    assert_int_equal(jscan_member(data, "x", &none), -1);

    jscan_iter it;
    assert_int_equal(jscan_array(&it, data), 0);
    const char *want[] = { "{\"id\":\"a\", \"n\":1e400}", "2", "\"x\"" };
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(jscan_next(&it, &item), 1);
        assert_int_equal(item.len, strlen(want[i]));
        assert_memory_equal(item.p, want[i], item.len);
    }
    assert_int_equal(jscan_next(&it, &item), 0);
    assert_int_equal(jscan_array(&it, root), -1);

    jscan_span empty;
    assert_int_equal(jscan_value("{ }", 3, &empty), 0);
    assert_true(jscan_object_empty(empty));
    assert_false(jscan_object_empty(root));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(grammar),
        cmocka_unit_test(nesting_is_bounded),
        cmocka_unit_test(members_and_items),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
