/* seal: credentials sealed at rest with libsodium (see seal.h). */
#include "seal.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errbuf.h"

#define NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_BYTES crypto_aead_xchacha20poly1305_ietf_ABYTES
#define B64_VARIANT sodium_base64_VARIANT_ORIGINAL
#define AD_MAX 160

typedef struct seal_key {
    unsigned char bytes[SEAL_KEY_BYTES];
    char id[SEAL_KEY_ID_LEN + 1];
    int loaded;
} seal_key;

struct seal_keyring {
    seal_key *keys;          /* [0] current, [1] previous; sodium_malloc'd (guarded, locked) */
};

int seal_init(void)
{
    return sodium_init() < 0 ? -1 : 0;
}

void seal_protect_process(void)
{
    struct rlimit none = { 0, 0 };
    setrlimit(RLIMIT_CORE, &none);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

seal_keyring *seal_keyring_new(void)
{
    seal_keyring *k = calloc(1, sizeof *k);
    if (k == NULL)
        return NULL;
    k->keys = sodium_malloc(2 * sizeof *k->keys);
    if (k->keys == NULL) {
        free(k);
        return NULL;
    }
    sodium_memzero(k->keys, 2 * sizeof *k->keys);
    return k;
}

void seal_keyring_free(seal_keyring *k)
{
    if (k == NULL)
        return;
    sodium_free(k->keys);   /* wipes before freeing */
    free(k);
}

static void key_id_of(const unsigned char *key, char *id)
{
    unsigned char hash[crypto_generichash_BYTES];
    crypto_generichash(hash, sizeof hash, key, SEAL_KEY_BYTES, NULL, 0);
    sodium_bin2hex(id, SEAL_KEY_ID_LEN + 1, hash, SEAL_KEY_ID_LEN / 2);
}

/* Reads exactly SEAL_KEY_BYTES from fd into key; -1 with err. */
static int read_key(int fd, const char *path, unsigned char *key, char *err, size_t errlen)
{
    unsigned char extra;
    size_t got = 0;
    while (got < SEAL_KEY_BYTES) {
        ssize_t n = read(fd, key + got, SEAL_KEY_BYTES - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got != SEAL_KEY_BYTES || read(fd, &extra, 1) != 0) {
        sodium_memzero(key, SEAL_KEY_BYTES);
        return errbuf_set(err, errlen, "key file %s: not a key (expected exactly %d bytes, as "
                                       "'adsync-enqueue secrets keygen' writes)", path, SEAL_KEY_BYTES);
    }
    return 0;
}

int seal_keyring_load(seal_keyring *k, const char *path, int previous, char *err, size_t errlen)
{
    seal_key *slot = &k->keys[previous ? 1 : 0];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errbuf_set(err, errlen, "key file %s: %s", path, strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        rc = errbuf_set(err, errlen, "key file %s: not a regular file", path);
    else if (st.st_mode & (S_IRWXG | S_IRWXO))
        rc = errbuf_set(err, errlen, "key file %s: mode %03o lets group or others read it "
                                     "(expected 0600 or 0400: chmod 600 %s)",
                        path, (unsigned)(st.st_mode & 0777), path);
    else
        rc = read_key(fd, path, slot->bytes, err, errlen);
    close(fd);
    if (rc < 0)
        return -1;
    key_id_of(slot->bytes, slot->id);
    slot->loaded = 1;
    return 0;
}

/* The file named by variable `name`, else `file` in $CREDENTIALS_DIRECTORY
 * when it exists there (systemd LoadCredential=). */
static int load_configured(seal_keyring *k, const char *name, const char *file, int previous,
                           char *err, size_t errlen)
{
    const char *path = getenv(name);
    char buf[4096];
    if (path != NULL && *path == '\0')
        return errbuf_set(err, errlen, "%s: set but empty (unset it to run without sealing)", name);
    if (path == NULL) {
        const char *dir = getenv("CREDENTIALS_DIRECTORY");
        if (dir == NULL || *dir == '\0')
            return 0;
        snprintf(buf, sizeof buf, "%s/%s", dir, file);
        if (access(buf, F_OK) != 0)
            return 0;
        path = buf;
    }
    char why[512];
    if (seal_keyring_load(k, path, previous, why, sizeof why) < 0)
        return errbuf_set(err, errlen, "%s: %s", name, why);
    return 0;
}

int seal_keyring_from_env(seal_keyring *k, char *err, size_t errlen)
{
    if (load_configured(k, "ADSYNC_SECRET_KEY_FILE", SEAL_CREDENTIALS_NAME, 0, err, errlen) < 0 ||
        load_configured(k, "ADSYNC_SECRET_PREVIOUS_KEY_FILE", SEAL_PREVIOUS_CREDENTIALS_NAME, 1,
                        err, errlen) < 0)
        return -1;
    if (k->keys[1].loaded && !k->keys[0].loaded)
        return errbuf_set(err, errlen, "ADSYNC_SECRET_PREVIOUS_KEY_FILE: set without "
                                       "ADSYNC_SECRET_KEY_FILE (expected both during a rotation)");
    return 0;
}

int seal_keyring_active(const seal_keyring *k)
{
    return k != NULL && k->keys[0].loaded;
}

const char *seal_keyring_id(const seal_keyring *k)
{
    return seal_keyring_active(k) ? k->keys[0].id : "";
}

/* "<client>/<field>": what a sealed value is bound to. */
static size_t bind_to(char *ad, const char *client, const char *field)
{
    int n = snprintf(ad, AD_MAX, "%s/%s", client, field);
    return n > 0 && n < AD_MAX ? (size_t)n : AD_MAX - 1;
}

char *seal_seal(const seal_keyring *k, const char *client, const char *field, const char *plain,
                size_t len)
{
    if (!seal_keyring_active(k))
        return NULL;
    const seal_key *key = &k->keys[0];
    size_t raw_len = NONCE_BYTES + len + TAG_BYTES;
    unsigned char *raw = malloc(raw_len);
    size_t b64_len = sodium_base64_ENCODED_LEN(raw_len, B64_VARIANT);
    size_t prefix_len = strlen(SEAL_PREFIX) + SEAL_KEY_ID_LEN + 1;
    char *out = malloc(prefix_len + b64_len);
    if (raw == NULL || out == NULL) {
        free(raw);
        free(out);
        return NULL;
    }
    char ad[AD_MAX];
    size_t ad_len = bind_to(ad, client, field);
    randombytes_buf(raw, NONCE_BYTES);
    crypto_aead_xchacha20poly1305_ietf_encrypt(raw + NONCE_BYTES, NULL, (const unsigned char *)plain, len,
                                               (const unsigned char *)ad, ad_len, NULL, raw, key->bytes);
    snprintf(out, prefix_len + 1, "%s%s:", SEAL_PREFIX, key->id);
    sodium_bin2base64(out + prefix_len, b64_len, raw, raw_len, B64_VARIANT);
    free(raw);
    return out;
}

int seal_is_sealed(const char *stored, size_t len, char *key_id)
{
    size_t plen = strlen(SEAL_PREFIX);
    if (len < plen + SEAL_KEY_ID_LEN + 1 || memcmp(stored, SEAL_PREFIX, plen) != 0 ||
        stored[plen + SEAL_KEY_ID_LEN] != ':')
        return 0;
    if (key_id) {
        memcpy(key_id, stored + plen, SEAL_KEY_ID_LEN);
        key_id[SEAL_KEY_ID_LEN] = '\0';
    }
    return 1;
}

static const seal_key *find_key(const seal_keyring *k, const char *id)
{
    for (int i = 0; k && i < 2; i++)
        if (k->keys[i].loaded && strcmp(k->keys[i].id, id) == 0)
            return &k->keys[i];
    return NULL;
}

/* Decodes and decrypts body (the base64 part) with key into out. */
static int decrypt(const seal_key *key, const char *ad, size_t ad_len, const char *body, size_t body_len,
                   char *out, size_t outcap, size_t *outlen)
{
    size_t raw_cap = body_len / 4 * 3 + 3, raw_len = 0;
    unsigned char *raw = malloc(raw_cap);
    if (raw == NULL)
        return SEAL_ERR_SPACE;
    int rc = SEAL_ERR_OPEN;
    unsigned long long plain_len = 0;
    if (sodium_base642bin(raw, raw_cap, body, body_len, NULL, &raw_len, NULL, B64_VARIANT) == 0 &&
        raw_len >= NONCE_BYTES + TAG_BYTES) {
        if (raw_len - NONCE_BYTES - TAG_BYTES >= outcap)
            rc = SEAL_ERR_SPACE;
        else if (crypto_aead_xchacha20poly1305_ietf_decrypt(
                     (unsigned char *)out, &plain_len, NULL, raw + NONCE_BYTES, raw_len - NONCE_BYTES,
                     (const unsigned char *)ad, ad_len, raw, key->bytes) == 0)
            rc = SEAL_OK;
    }
    free(raw);
    if (rc == SEAL_OK) {
        out[plain_len] = '\0';
        *outlen = (size_t)plain_len;
    }
    return rc;
}

int seal_open(const seal_keyring *k, const char *client, const char *field, const char *stored,
              size_t len, char *out, size_t outcap, size_t *outlen, char *key_id)
{
    char id[SEAL_KEY_ID_LEN + 1] = "";
    int rc;
    if (!seal_is_sealed(stored, len, id)) {
        rc = len < outcap ? SEAL_PLAIN : SEAL_ERR_SPACE;
        if (rc == SEAL_PLAIN) {
            memcpy(out, stored, len);
            out[len] = '\0';
            *outlen = len;
        }
    } else {
        const seal_key *key = find_key(k, id);
        size_t skip = strlen(SEAL_PREFIX) + SEAL_KEY_ID_LEN + 1;
        char ad[AD_MAX];
        size_t ad_len = bind_to(ad, client, field);
        rc = key ? decrypt(key, ad, ad_len, stored + skip, len - skip, out, outcap, outlen) : SEAL_ERR_KEY;
    }
    if (key_id)
        memcpy(key_id, id, sizeof id);
    if (rc < 0 && outcap > 0)
        sodium_memzero(out, outcap);
    return rc;
}

int seal_keygen(const char *path, char *key_id, char *err, size_t errlen)
{
    unsigned char key[SEAL_KEY_BYTES];
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return errbuf_set(err, errlen, "%s: %s%s", path, strerror(errno),
                          errno == EEXIST ? " (a key is never overwritten: choose a new file)" : "");
    randombytes_buf(key, sizeof key);
    ssize_t n = write(fd, key, sizeof key);
    int bad = n != (ssize_t)sizeof key || fsync(fd) != 0;
    bad |= close(fd) != 0;
    if (bad) {
        sodium_memzero(key, sizeof key);
        unlink(path);
        return errbuf_set(err, errlen, "%s: could not write the key", path);
    }
    key_id_of(key, key_id);
    sodium_memzero(key, sizeof key);
    return 0;
}
