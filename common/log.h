/* log: one line per event on a file descriptor (stderr by default), as JSON
 * or as human-readable text (DESIGN.md §9).
 *
 * Fields are typed key/value pairs, so callers never format secrets into the
 * message by hand:
 *
 *     log_info("campaign synced", LOG_STR("client", id), LOG_INT("ms", ms));
 *
 * Redaction is applied to every message and value, whoever the caller is:
 *   - values of fields whose key names a secret (password, token, secret,
 *     authorization, cookie, credential) are replaced by "[REDACTED]";
 *   - every value registered with log_secret_add() is masked wherever it
 *     appears, even inside a longer string (an upstream error body, say);
 *   - "Bearer X" / "Basic X" and JSON members "access_token"/"password"
 *     are masked by pattern, for secrets nobody registered.
 *
 * The level check happens before anything is formatted, so disabled debug
 * lines cost one comparison. Not thread-safe: one thread logs per process
 * (the worker and enqueue are single-threaded; the mock has its own log). */
#ifndef ADSYNC_LOG_H
#define ADSYNC_LOG_H

#include <stddef.h>

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF } log_level;
typedef enum { LOG_FORMAT_TEXT, LOG_FORMAT_JSON } log_format;

typedef struct log_field {
    const char *key;
    const char *str;      /* NULL: the field is the number below */
    long long num;
} log_field;

static inline log_field log_field_str(const char *key, const char *value)
{
    return (log_field){ key, value ? value : "", 0 };
}

#define LOG_STR(k, v) log_field_str((k), (v))
#define LOG_INT(k, v) ((log_field){ (k), NULL, (long long)(v) })

/* Where and what to log. fd is borrowed (not closed). Default: LOG_INFO,
 * text, fd 2. */
void log_setup(log_level min_level, log_format format, int fd);

/* "debug" | "info" | "warn" | "error" (case-insensitive). 0 or -1. */
int log_level_parse(const char *name, log_level *out);

int log_enabled(log_level level);

/* Registers a secret value to be masked in every later line. The string is
 * copied. Values shorter than 4 bytes are ignored (key and pattern rules still
 * apply to them); the registry keeps the newest LOG_MAX_SECRETS values. */
#define LOG_MAX_SECRETS 512
void log_secret_add(const char *secret);
void log_secret_clear(void);   /* forgets every registered secret */

/* Writes one line. fields is borrowed; n may be 0. Prefer the macros. */
void log_emit(log_level level, const char *msg, const log_field *fields, size_t n);

#define log_at(level, msg, ...)                                                    \
    do {                                                                           \
        if (log_enabled(level)) {                                                  \
            const log_field log_fields_[] = { { 0 }, __VA_ARGS__ };                \
            log_emit((level), (msg), log_fields_ + 1,                              \
                     sizeof log_fields_ / sizeof log_fields_[0] - 1);              \
        }                                                                          \
    } while (0)

#define log_debug(msg, ...) log_at(LOG_DEBUG, msg, __VA_ARGS__)
#define log_info(msg, ...)  log_at(LOG_INFO, msg, __VA_ARGS__)
#define log_warn(msg, ...)  log_at(LOG_WARN, msg, __VA_ARGS__)
#define log_error(msg, ...) log_at(LOG_ERROR, msg, __VA_ARGS__)

#endif
