/* jsonw: a growable text buffer for building JSON bodies with snprintf-like
 * calls. Cheap on purpose (the mock answers thousands of requests a second):
 * no tree, no parsing. It does not validate structure; callers write the
 * punctuation. A jw is a value type embedded by its owner (like a libuv
 * handle); its heap buffer belongs to it until jw_take hands it over. */
#ifndef ADSYNC_MOCK_JSONW_H
#define ADSYNC_MOCK_JSONW_H

#include <stddef.h>
#include <stdint.h>

typedef struct jw {
  char *buf;   /* heap, NUL-terminated once anything was written */
  size_t len;
  size_t cap;
  int failed;  /* set on allocation failure; later writes are ignored */
} jw;

/* An empty builder; allocates nothing until the first write. */
void jw_init(jw *w);

/* Frees the buffer and resets *w to empty. */
void jw_free(jw *w);

/* Appends n raw bytes / a raw C string. */
void jw_rawn(jw *w, const char *s, size_t n);
void jw_raw(jw *w, const char *s);

/* Appends s as a quoted JSON string: escapes '"', '\\' and control bytes;
 * other bytes (UTF-8) pass through. NULL is written as null. */
void jw_str(jw *w, const char *s);

/* Appends printf-formatted text. */
void jw_fmt(jw *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends an unsigned decimal number. */
void jw_u64(jw *w, uint64_t v);

/* Hands the buffer to the caller (free with free()) and resets *w.
 * Returns NULL if an allocation failed; *out_len gets the length. An empty
 * builder yields an allocated "". */
char *jw_take(jw *w, size_t *out_len);

#endif
