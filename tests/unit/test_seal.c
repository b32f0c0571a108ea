/* Unit tests for seal.c: round trips, binding to client and field, wrong
 * key, tampering, key files (mode, size), key ring rotation, keygen. */
#include "test_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "seal.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/test_seal.XXXXXX");
    assert_non_null(mkdtemp(dir));
    assert_int_equal(seal_init(), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

/* A new key file under dir; its id in id. */
static void new_key(const char *name, char *path, char *id)
{
    char err[256];
    snprintf(path, 128, "%s/%s", dir, name);
    assert_int_equal(seal_keygen(path, id, err, sizeof err), 0);
}

static seal_keyring *ring_with(const char *current, const char *previous)
{
    char err[256];
    seal_keyring *k = seal_keyring_new();
    assert_non_null(k);
    if (current)
        assert_int_equal(seal_keyring_load(k, current, 0, err, sizeof err), 0);
    if (previous)
        assert_int_equal(seal_keyring_load(k, previous, 1, err, sizeof err), 0);
    return k;
}

static void round_trip_names_format_and_key(void **state)
{
    (void)state;
    char path[128], id[SEAL_KEY_ID_LEN + 1], got_id[SEAL_KEY_ID_LEN + 1], out[256];
    new_key("k1", path, id);
    seal_keyring *k = ring_with(path, NULL);
    assert_string_equal(seal_keyring_id(k), id);
    char *s = seal_seal(k, "acme", "password", "hunter2", 7);
    assert_non_null(s);
    assert_int_equal(strncmp(s, "sealed:v1:", 10), 0);
    assert_int_equal(strncmp(s + 10, id, SEAL_KEY_ID_LEN), 0);
    assert_null(strstr(s, "hunter2"));
    size_t n = 0;
    assert_int_equal(seal_open(k, "acme", "password", s, strlen(s), out, sizeof out, &n, got_id), SEAL_OK);
    assert_int_equal(n, 7);
    assert_string_equal(out, "hunter2");
    assert_string_equal(got_id, id);
    char *again = seal_seal(k, "acme", "password", "hunter2", 7);
    assert_string_not_equal(s, again);   /* a fresh nonce each time */
    free(s);
    free(again);
    seal_keyring_free(k);
}

static void bound_to_client_and_field(void **state)
{
    (void)state;
    char path[128], id[SEAL_KEY_ID_LEN + 1], out[256];
    new_key("k2", path, id);
    seal_keyring *k = ring_with(path, NULL);
    char *s = seal_seal(k, "acme", "password", "pw", 2);
    size_t n;
    assert_int_equal(seal_open(k, "other", "password", s, strlen(s), out, sizeof out, &n, NULL), SEAL_ERR_OPEN);
    assert_int_equal(seal_open(k, "acme", "token", s, strlen(s), out, sizeof out, &n, NULL), SEAL_ERR_OPEN);
    assert_string_equal(out, "");   /* wiped */
    free(s);
    seal_keyring_free(k);
}

static void tampered_or_malformed_values_do_not_open(void **state)
{
    (void)state;
    char path[128], id[SEAL_KEY_ID_LEN + 1], out[256];
    new_key("k3", path, id);
    seal_keyring *k = ring_with(path, NULL);
    char *s = seal_seal(k, "acme", "password", "secret-value", 12);
    size_t n, len = strlen(s);
    for (size_t i = 10 + SEAL_KEY_ID_LEN + 1; i < len; i += 3) {
        char saved = s[i];
        s[i] = s[i] == 'A' ? 'B' : 'A';
        assert_true(seal_open(k, "acme", "password", s, len, out, sizeof out, &n, NULL) < 0);
        s[i] = saved;
    }
    assert_int_equal(seal_open(k, "acme", "password", s, len - 4, out, sizeof out, &n, NULL), SEAL_ERR_OPEN);
    const char *junk = "sealed:v1:0123456789abcdef:!!!";
    assert_int_equal(seal_open(k, "acme", "password", junk, strlen(junk), out, sizeof out, &n, NULL),
                     SEAL_ERR_KEY);
    free(s);
    seal_keyring_free(k);
}

static void wrong_key_names_the_missing_key(void **state)
{
    (void)state;
    char p1[128], p2[128], id1[SEAL_KEY_ID_LEN + 1], id2[SEAL_KEY_ID_LEN + 1], got[SEAL_KEY_ID_LEN + 1], out[64];
    new_key("k4a", p1, id1);
    new_key("k4b", p2, id2);
    seal_keyring *a = ring_with(p1, NULL), *b = ring_with(p2, NULL);
    char *s = seal_seal(a, "acme", "password", "pw", 2);
    size_t n;
    assert_int_equal(seal_open(b, "acme", "password", s, strlen(s), out, sizeof out, &n, got), SEAL_ERR_KEY);
    assert_string_equal(got, id1);
    /* during a rotation the previous key still opens it */
    seal_keyring *both = ring_with(p2, p1);
    assert_int_equal(seal_open(both, "acme", "password", s, strlen(s), out, sizeof out, &n, got), SEAL_OK);
    assert_string_equal(seal_keyring_id(both), id2);
    free(s);
    seal_keyring_free(a);
    seal_keyring_free(b);
    seal_keyring_free(both);
}

static void plain_values_are_reported_as_plain(void **state)
{
    (void)state;
    char out[16], id[SEAL_KEY_ID_LEN + 1];
    size_t n;
    assert_int_equal(seal_open(NULL, "acme", "password", "plainpw", 7, out, sizeof out, &n, id), SEAL_PLAIN);
    assert_string_equal(out, "plainpw");
    assert_string_equal(id, "");
    assert_int_equal(seal_open(NULL, "acme", "password", "much-too-long-for-out", 21, out, sizeof out, &n, NULL),
                     SEAL_ERR_SPACE);
}

static void key_files_are_checked(void **state)
{
    (void)state;
    char path[128], id[SEAL_KEY_ID_LEN + 1], err[512];
    new_key("k5", path, id);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(seal_keygen(path, id, err, sizeof err), -1);   /* never overwritten */
    assert_non_null(strstr(err, "never overwritten"));
    seal_keyring *k = seal_keyring_new();
    chmod(path, 0640);
    assert_int_equal(seal_keyring_load(k, path, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "mode 640 lets group or others read it"));
    char small[128];
    snprintf(small, sizeof small, "%s/short", dir);
    FILE *f = fopen(small, "w");
    fputs("0123456789", f);
    fclose(f);
    chmod(small, 0600);
    assert_int_equal(seal_keyring_load(k, small, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "expected exactly 32 bytes"));
    assert_int_equal(seal_keyring_load(k, "/nonexistent/key", 0, err, sizeof err), -1);
    assert_false(seal_keyring_active(k));
    assert_null(seal_seal(k, "acme", "password", "x", 1));   /* no key: nothing sealed */
    seal_keyring_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip_names_format_and_key),
        cmocka_unit_test(bound_to_client_and_field),
        cmocka_unit_test(tampered_or_malformed_values_do_not_open),
        cmocka_unit_test(wrong_key_names_the_missing_key),
        cmocka_unit_test(plain_values_are_reported_as_plain),
        cmocka_unit_test(key_files_are_checked),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
