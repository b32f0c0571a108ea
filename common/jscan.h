/* jscan: where values are in JSON text, without building a tree.
 *
 * cJSON turns every number into a double, so a campaign re-printed from its
 * tree loses what a double cannot hold (9007199254740993 comes back as
 * 9.00719925474099e+15, 1e400 as null), and a page of half a million tiny
 * items costs a tree node per value before anything can refuse it. jscan
 * validates JSON text (RFC 8259 grammar, nesting up to JSCAN_MAX_DEPTH) and
 * hands out spans of the original bytes: the api parser keeps each listed
 * campaign exactly as the platform wrote it and counts items before it
 * parses any, and the job codec carries a campaign through retries
 * unchanged. Pure; spans point into the caller's buffer. */
#ifndef ADSYNC_JSCAN_H
#define ADSYNC_JSCAN_H

#include <stddef.h>

#define JSCAN_MAX_DEPTH 512

typedef struct jscan_span {
    const char *p;   /* first byte of the value (no leading whitespace) */
    size_t len;
} jscan_span;

/* 0 when text[0..len) is exactly one JSON value with optional whitespace
 * around it, with *out its span; -1 otherwise. */
int jscan_value(const char *text, size_t len, jscan_span *out);

/* In a valid object span: the value of the first member whose key is
 * written exactly as key (no escapes are decoded). 1 found, 0 absent, -1 obj
 * is not an object. */
int jscan_member(jscan_span obj, const char *key, jscan_span *out);

/* Walks the items of a valid array span:
 *     jscan_iter it; jscan_span item;
 *     if (jscan_array(&it, arr) == 0) while (jscan_next(&it, &item)) ...
 * jscan_array is -1 when arr is not an array. */
typedef struct jscan_iter {
    const char *p, *end;
} jscan_iter;
int jscan_array(jscan_iter *it, jscan_span arr);
int jscan_next(jscan_iter *it, jscan_span *item);

/* Whether an object span has no members. */
int jscan_object_empty(jscan_span obj);

#endif
