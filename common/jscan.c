/* jscan: JSON validation and value spans without a tree (see jscan.h).
 * A recursive descent over the RFC 8259 grammar that only moves a pointer;
 * the depth bound keeps hostile nesting from using up the stack. */
#include "jscan.h"

#include <string.h>

static const char *skip_value(const char *p, const char *end, int depth);

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* p is at the opening quote. */
static const char *skip_string(const char *p, const char *end)
{
    for (p++; p < end;) {
        unsigned char c = (unsigned char)*p++;
        if (c == '"')
            return p;
        if (c < 0x20)
            return NULL;
        if (c != '\\')
            continue;
        if (p >= end)
            return NULL;
        c = (unsigned char)*p++;
        if (c == 'u') {
            for (int i = 0; i < 4; i++, p++)
                if (p >= end || !is_hex(*p))
                    return NULL;
        } else if (c == '\0' || strchr("\"\\/bfnrt", c) == NULL) {
            return NULL;
        }
    }
    return NULL;
}

static const char *skip_digits(const char *p, const char *end)
{
    const char *start = p;
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    return p == start ? NULL : p;
}

static const char *skip_number(const char *p, const char *end)
{
    if (p < end && *p == '-')
        p++;
    if (p < end && *p == '0')
        p++;
    else if ((p = skip_digits(p, end)) == NULL)
        return NULL;
    if (p < end && *p == '.' && (p = skip_digits(p + 1, end)) == NULL)
        return NULL;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        p = skip_digits(p, end);
    }
    return p;
}

static const char *skip_literal(const char *p, const char *end, const char *word)
{
    size_t n = strlen(word);
    return (size_t)(end - p) >= n && memcmp(p, word, n) == 0 ? p + n : NULL;
}

/* p is at '{' or '['. */
static const char *skip_container(const char *p, const char *end, int depth)
{
    int object = *p == '{';
    char close = object ? '}' : ']';
    if (depth >= JSCAN_MAX_DEPTH)
        return NULL;
    p = skip_ws(p + 1, end);
    if (p < end && *p == close)
        return p + 1;
    for (;;) {
        if (object) {
            if (p >= end || *p != '"' || (p = skip_string(p, end)) == NULL)
                return NULL;
            p = skip_ws(p, end);
            if (p >= end || *p != ':')
                return NULL;
            p = skip_ws(p + 1, end);
        }
        if ((p = skip_value(p, end, depth + 1)) == NULL)
            return NULL;
        p = skip_ws(p, end);
        if (p < end && *p == ',')
            p = skip_ws(p + 1, end);
        else
            return p < end && *p == close ? p + 1 : NULL;
    }
}

static const char *skip_value(const char *p, const char *end, int depth)
{
    if (p >= end)
        return NULL;
    switch (*p) {
    case '{':
    case '[':
        return skip_container(p, end, depth);
    case '"':
        return skip_string(p, end);
    case 't':
        return skip_literal(p, end, "true");
    case 'f':
        return skip_literal(p, end, "false");
    case 'n':
        return skip_literal(p, end, "null");
    default:
        return skip_number(p, end);
    }
}

int jscan_value(const char *text, size_t len, jscan_span *out)
{
    const char *end = text + len;
    const char *p = skip_ws(text, end);
    const char *after = skip_value(p, end, 0);
    if (after == NULL || skip_ws(after, end) != end)
        return -1;
    *out = (jscan_span){ p, (size_t)(after - p) };
    return 0;
}

int jscan_member(jscan_span obj, const char *key, jscan_span *out)
{
    const char *p = obj.p, *end = obj.p + obj.len;
    size_t keylen = strlen(key);
    if (obj.len == 0 || *p != '{')
        return -1;
    for (p = skip_ws(p + 1, end); p < end && *p == '"';) {
        const char *name = p + 1;
        p = skip_string(p, end);
        int match = p && (size_t)(p - 1 - name) == keylen && memcmp(name, key, keylen) == 0;
        p = skip_ws(skip_ws(p, end) + 1, end);   /* past ':' */
        const char *value = p;
        if ((p = skip_value(p, end, 1)) == NULL)
            return -1;
        if (match) {
            *out = (jscan_span){ value, (size_t)(p - value) };
            return 1;
        }
        p = skip_ws(p, end);
        if (p < end && *p == ',')
            p = skip_ws(p + 1, end);
    }
    return 0;
}

int jscan_array(jscan_iter *it, jscan_span arr)
{
    if (arr.len == 0 || *arr.p != '[')
        return -1;
    it->end = arr.p + arr.len;
    it->p = skip_ws(arr.p + 1, it->end);
    return 0;
}

int jscan_next(jscan_iter *it, jscan_span *item)
{
    if (it->p >= it->end || *it->p == ']')
        return 0;
    const char *value = it->p;
    const char *after = skip_value(value, it->end, 1);
    if (after == NULL)
        return 0;
    *item = (jscan_span){ value, (size_t)(after - value) };
    it->p = skip_ws(after, it->end);
    if (it->p < it->end && *it->p == ',')
        it->p = skip_ws(it->p + 1, it->end);
    return 1;
}

int jscan_object_empty(jscan_span obj)
{
    const char *p = skip_ws(obj.p + 1, obj.p + obj.len);
    return p < obj.p + obj.len && *p == '}';
}
