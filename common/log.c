/* log: structured, redacting line logger (see log.h for the rules). */
#define _GNU_SOURCE   /* strcasestr */
#include "log.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "clock.h"

#define LINE_MAX_BYTES 8192
#define VALUE_MAX_BYTES 2048
#define MASK "[REDACTED]"

static struct {
    log_level min_level;
    log_format format;
    int fd;
    struct secret {
        unsigned char *masked;     /* the secret XOR pad: never kept in clear */
        unsigned char *pad;        /* random, as long as the secret */
        size_t len;
    } secrets[LOG_MAX_SECRETS];
    size_t next_secret;            /* ring position of the next insert */
} logger = { LOG_INFO, LOG_FORMAT_TEXT, 2, { { 0 } }, 0 };

static const char *const level_names[] = { "debug", "info", "warn", "error" };

/* Field keys whose values are secrets by definition. Matched as substrings,
 * case-insensitively, so "client_password" and "X-Auth-Token" count too. */
static const char *const secret_key_words[] = {
    "password", "passwd", "secret", "token", "authorization", "cookie", "credential",
};

void log_setup(log_level min_level, log_format format, int fd)
{
    logger.min_level = min_level;
    logger.format = format;
    logger.fd = fd;
}

int log_level_parse(const char *name, log_level *out)
{
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (log_level)i;
            return 0;
        }
    }
    return -1;
}

int log_enabled(log_level level)
{
    return level >= logger.min_level && level < LOG_OFF;
}

/* ---- registered secrets, kept XOR a random pad ----------------------------
 * Masking needs the secret's bytes, but a copy in clear would be one more
 * place a memory dump finds it: each is stored XOR a pad of its own and
 * opened into a stack buffer only while a line is being masked. */

static void secret_free(struct secret *s)
{
    free(s->masked);
    free(s->pad);
    *s = (struct secret){ 0 };
}

/* Writes the secret into out (len + 1 bytes) and returns out. */
static char *secret_open(const struct secret *s, char *out)
{
    for (size_t i = 0; i < s->len; i++)
        out[i] = (char)(s->masked[i] ^ s->pad[i]);
    out[s->len] = '\0';
    return out;
}

static int secret_is(const struct secret *s, const char *secret, size_t len)
{
    if (s->masked == NULL || s->len != len)
        return 0;
    unsigned char diff = 0;
    for (size_t i = 0; i < len; i++)
        diff |= (unsigned char)((unsigned char)secret[i] ^ s->masked[i] ^ s->pad[i]);
    return diff == 0;
}

void log_secret_add(const char *secret)
{
    size_t len = secret ? strlen(secret) : 0;
    if (len < 4 || len >= VALUE_MAX_BYTES)
        return;
    for (size_t i = 0; i < LOG_MAX_SECRETS; i++)
        if (secret_is(&logger.secrets[i], secret, len))
            return;
    struct secret s = { malloc(len), malloc(len), len };
    if (s.masked == NULL || s.pad == NULL || getrandom(s.pad, len, 0) != (ssize_t)len) {
        secret_free(&s);
        return;
    }
    for (size_t i = 0; i < len; i++)
        s.masked[i] = (unsigned char)((unsigned char)secret[i] ^ s.pad[i]);
    secret_free(&logger.secrets[logger.next_secret]);
    logger.secrets[logger.next_secret] = s;
    logger.next_secret = (logger.next_secret + 1) % LOG_MAX_SECRETS;
}

void log_secret_clear(void)
{
    for (size_t i = 0; i < LOG_MAX_SECRETS; i++)
        secret_free(&logger.secrets[i]);
    logger.next_secret = 0;
}

/* ---- redaction on a bounded, NUL-terminated buffer ---------------------- */

/* Replaces buf[start, start+len) by MASK, truncating at cap if needed.
 * Returns the index just past the inserted mask. */
static size_t mask_span(char *buf, size_t cap, size_t start, size_t len)
{
    size_t total = strlen(buf), masklen = strlen(MASK);
    size_t tail = total - start - len;
    if (start + masklen >= cap)
        masklen = cap - 1 - start;
    if (start + masklen + tail >= cap)
        tail = cap - 1 - start - masklen;
    memmove(buf + start + masklen, buf + start + len, tail);
    memcpy(buf + start, MASK, masklen);
    buf[start + masklen + tail] = '\0';
    return start + masklen;
}

static void mask_registered(char *buf, size_t cap)
{
    for (size_t i = 0; i < LOG_MAX_SECRETS; i++) {
        const struct secret *sec = &logger.secrets[i];
        if (sec->masked == NULL)
            continue;
        char s[VALUE_MAX_BYTES];
        size_t pos = 0;
        char *hit;
        secret_open(sec, s);
        while ((hit = strstr(buf + pos, s)) != NULL)
            pos = mask_span(buf, cap, (size_t)(hit - buf), sec->len);
        explicit_bzero(s, sizeof s);
    }
}

static int is_token_char(char c)
{
    return c != '\0' && (isalnum((unsigned char)c) || strchr("+/=._~-", c) != NULL);
}

/* "Bearer abc", "Basic abc": mask the credential after the scheme word. */
static void mask_auth_schemes(char *buf, size_t cap)
{
    static const char *const schemes[] = { "bearer ", "basic " };
    for (size_t s = 0; s < 2; s++) {
        size_t wlen = strlen(schemes[s]);
        for (size_t i = 0; buf[i]; i++) {
            if (strncasecmp(buf + i, schemes[s], wlen) != 0)
                continue;
            size_t start = i + wlen, end = start;
            while (is_token_char(buf[end]))
                end++;
            if (end > start && strncmp(buf + start, MASK, strlen(MASK)) != 0)
                i = mask_span(buf, cap, start, end - start) - 1;
        }
    }
}

/* "access_token": "abc" and "password":"abc" inside embedded JSON text. */
static void mask_json_members(char *buf, size_t cap)
{
    static const char *const members[] = { "\"access_token\"", "\"password\"", "\"token\"" };
    for (size_t m = 0; m < sizeof members / sizeof members[0]; m++) {
        size_t pos = 0;
        char *hit;
        while ((hit = strstr(buf + pos, members[m])) != NULL) {
            char *p = hit + strlen(members[m]);
            while (*p == ' ')
                p++;
            if (*p == ':')
                p++;
            while (*p == ' ')
                p++;
            pos = (size_t)(p - buf);
            if (*p != '"')
                continue;
            size_t start = pos + 1, end = start;
            while (buf[end] && buf[end] != '"')
                end += buf[end] == '\\' && buf[end + 1] ? 2 : 1;
            pos = mask_span(buf, cap, start, end - start);
        }
    }
}

static int key_is_secret(const char *key)
{
    for (size_t i = 0; i < sizeof secret_key_words / sizeof secret_key_words[0]; i++)
        if (strcasestr(key, secret_key_words[i]))
            return 1;
    return 0;
}

/* Copies value into out (cap bytes) with every redaction rule applied. */
static void scrub(const char *value, char *out, size_t cap)
{
    snprintf(out, cap, "%s", value);
    mask_registered(out, cap);
    mask_auth_schemes(out, cap);
    mask_json_members(out, cap);
}

/* ---- line building ------------------------------------------------------ */

typedef struct {
    char buf[LINE_MAX_BYTES];
    size_t len;
} line;

static void put_raw(line *l, const char *s, size_t n)
{
    size_t room = sizeof l->buf - 3 - l->len;   /* keep space for "}\n\0" */
    if (n > room)
        n = room;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void put_str(line *l, const char *s)
{
    put_raw(l, s, strlen(s));
}

static void put_json_string(line *l, const char *s)
{
    put_raw(l, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put_raw(l, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put_str(l, esc);
        } else {
            put_raw(l, (const char *)&c, 1);
        }
    }
    put_raw(l, "\"", 1);
}

static int needs_quotes(const char *s)
{
    if (*s == '\0')
        return 1;
    for (; *s; s++)
        if (*s == ' ' || *s == '"' || *s == '=' || (unsigned char)*s < 0x20)
            return 1;
    return 0;
}

static void put_text_value(line *l, const char *s)
{
    if (needs_quotes(s))
        put_json_string(l, s);   /* JSON escaping keeps one event on one line */
    else
        put_str(l, s);
}

static void put_value(line *l, const char *s)
{
    if (logger.format == LOG_FORMAT_JSON)
        put_json_string(l, s);
    else
        put_text_value(l, s);
}

static void put_field(line *l, const log_field *f)
{
    char value[VALUE_MAX_BYTES];
    if (f->str == NULL)
        snprintf(value, sizeof value, "%lld", f->num);
    else if (key_is_secret(f->key))
        snprintf(value, sizeof value, "%s", MASK);
    else
        scrub(f->str, value, sizeof value);

    if (logger.format == LOG_FORMAT_JSON) {
        put_str(l, ",");
        put_json_string(l, f->key);
        put_str(l, ":");
        if (f->str == NULL)
            put_str(l, value);
        else
            put_json_string(l, value);
    } else {
        put_str(l, " ");
        put_str(l, f->key);
        put_str(l, "=");
        put_value(l, value);
    }
}

void log_emit(log_level level, const char *msg, const log_field *fields, size_t n)
{
    if (!log_enabled(level))
        return;
    line l = { .len = 0 };
    char ts[32], text[VALUE_MAX_BYTES];
    clock_iso8601(clock_wall_ms(), ts, sizeof ts);
    scrub(msg, text, sizeof text);

    if (logger.format == LOG_FORMAT_JSON) {
        put_str(&l, "{\"ts\":\"");
        put_str(&l, ts);
        put_str(&l, "\",\"level\":\"");
        put_str(&l, level_names[level]);
        put_str(&l, "\",\"msg\":");
        put_json_string(&l, text);
    } else {
        char head[64];
        snprintf(head, sizeof head, "%s %-5s ", ts, level_names[level]);
        put_str(&l, head);
        put_str(&l, text);
    }
    for (size_t i = 0; i < n; i++)
        put_field(&l, &fields[i]);
    if (logger.format == LOG_FORMAT_JSON)
        l.buf[l.len++] = '}';   /* room was reserved: a long line stays valid JSON */
    l.buf[l.len++] = '\n';

    /* One write per line keeps lines whole when several processes share a
     * pipe; a failed write has nowhere to be reported. */
    ssize_t rc = write(logger.fd, l.buf, l.len);
    (void)rc;
}
