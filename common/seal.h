/* seal: client credentials and cached tokens encrypted at rest in Redis
 * (libsodium XChaCha20-Poly1305, README "Secrets").
 *
 * A sealed value is text that names its format and key:
 *
 *     sealed:v1:<key id>:<base64 of nonce(24) || ciphertext || tag(16)>
 *
 * The associated data binds it to "<client id>/<field>", so a value copied
 * to another client, or a token copied into a password, does not open. The
 * key id is the first 8 bytes (16 hex digits) of BLAKE2b-256 of the key.
 *
 * A key ring holds the current key (sealing and opening) and, during a
 * rotation, the previous one (opening only), in guarded, locked memory
 * (sodium_malloc). Key files hold exactly 32 raw bytes and must not be
 * readable by group or others. Never logs; error texts name files and key
 * ids, never key bytes or plaintext. */
#ifndef ADSYNC_SEAL_H
#define ADSYNC_SEAL_H

#include <stddef.h>

#define SEAL_KEY_BYTES 32
#define SEAL_KEY_ID_LEN 16               /* hex digits */
#define SEAL_PREFIX "sealed:v1:"
#define SEAL_CREDENTIALS_NAME "adsync-secret-key"            /* in $CREDENTIALS_DIRECTORY */
#define SEAL_PREVIOUS_CREDENTIALS_NAME "adsync-secret-previous-key"

typedef struct seal_keyring seal_keyring;

/* What seal_open can say. */
enum {
    SEAL_OK = 0,
    SEAL_PLAIN = 1,          /* not a sealed value: plain text from an earlier version */
    SEAL_ERR_KEY = -1,       /* sealed under a key id the ring does not hold */
    SEAL_ERR_OPEN = -2,      /* tampered, malformed, or bound to another client/field */
    SEAL_ERR_SPACE = -3,     /* out too small */
};

/* Initialises libsodium; call once before anything else. 0, or -1. */
int seal_init(void);

/* Keeps this process's memory (keys, opened credentials, tokens) out of
 * core files and away from other processes of the same user: no core dumps
 * (RLIMIT_CORE 0) and not dumpable (no ptrace, /proc/PID/mem for root only).
 * Programs call it first thing. */
void seal_protect_process(void);

/* An empty ring (no key: sealing is off). NULL when out of memory. */
seal_keyring *seal_keyring_new(void);
void seal_keyring_free(seal_keyring *k);   /* wipes the keys; NULL is a no-op */

/* Loads a key file as the current key (previous == 0) or the previous one.
 * -1 with err filled: unreadable, readable by group/others, not 32 bytes. */
int seal_keyring_load(seal_keyring *k, const char *path, int previous, char *err, size_t errlen);

/* Fills the ring from the environment: ADSYNC_SECRET_KEY_FILE (else
 * $CREDENTIALS_DIRECTORY/adsync-secret-key if it exists) and
 * ADSYNC_SECRET_PREVIOUS_KEY_FILE (else the same directory's
 * adsync-secret-previous-key if it exists). No key configured is fine (0);
 * -1 with err naming the variable or file. */
int seal_keyring_from_env(seal_keyring *k, char *err, size_t errlen);

int seal_keyring_active(const seal_keyring *k);   /* a current key is loaded */
/* The current key's id, or "" when none. Borrowed. */
const char *seal_keyring_id(const seal_keyring *k);

/* Seals plain[0..len) for client/field under the current key. A malloc'd,
 * NUL-terminated string (caller frees), or NULL (no key, or out of memory). */
char *seal_seal(const seal_keyring *k, const char *client, const char *field, const char *plain,
                size_t len);

/* Opens a stored value into out (outcap bytes, NUL-terminated; *outlen set).
 * SEAL_PLAIN copies the value as it is. The key id the value names, if any,
 * goes to key_id (SEAL_KEY_ID_LEN + 1 bytes; "" for a plain value), so
 * callers can say which key is missing. On any failure out is wiped. */
int seal_open(const seal_keyring *k, const char *client, const char *field, const char *stored,
              size_t len, char *out, size_t outcap, size_t *outlen, char *key_id);

/* 1 if stored is in the sealed format (whatever its key), else 0; fills
 * key_id (SEAL_KEY_ID_LEN + 1 bytes) when it is. */
int seal_is_sealed(const char *stored, size_t len, char *key_id);

/* Creates path (it must not exist) with mode 0600 and 32 random bytes; puts
 * the new key's id in key_id. -1 with err filled. */
int seal_keygen(const char *path, char *key_id, char *err, size_t errlen);

#endif
