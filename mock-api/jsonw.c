/* jsonw: growable text buffer for JSON bodies (see jsonw.h). */
#include "jsonw.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jw_init(jw *w) {
  w->buf = NULL;
  w->len = 0;
  w->cap = 0;
  w->failed = 0;
}

void jw_free(jw *w) {
  free(w->buf);
  jw_init(w);
}

/* Makes room for `extra` more bytes plus the terminator; 0 on success. */
static int jw_reserve(jw *w, size_t extra) {
  if (w->failed)
    return -1;
  size_t need = w->len + extra + 1;
  if (need <= w->cap)
    return 0;
  size_t cap = w->cap ? w->cap : 256;
  while (cap < need)
    cap *= 2;
  char *nb = realloc(w->buf, cap);
  if (!nb) {
    w->failed = 1;
    return -1;
  }
  w->buf = nb;
  w->cap = cap;
  return 0;
}

void jw_rawn(jw *w, const char *s, size_t n) {
  if (jw_reserve(w, n) != 0)
    return;
  memcpy(w->buf + w->len, s, n);
  w->len += n;
  w->buf[w->len] = '\0';
}

void jw_raw(jw *w, const char *s) {
  jw_rawn(w, s, strlen(s));
}

/* The escape for byte c, or NULL when c goes out as is. */
static const char *jw_escape(unsigned char c, char tmp[8]) {
  switch (c) {
  case '"': return "\\\"";
  case '\\': return "\\\\";
  case '\n': return "\\n";
  case '\r': return "\\r";
  case '\t': return "\\t";
  case '\b': return "\\b";
  case '\f': return "\\f";
  default: break;
  }
  if (c >= 0x20 && c != 0x7f)
    return NULL;
  snprintf(tmp, 8, "\\u%04x", c);
  return tmp;
}

void jw_str(jw *w, const char *s) {
  if (!s) {
    jw_raw(w, "null");
    return;
  }
  jw_rawn(w, "\"", 1);
  const char *run = s; /* start of the pending unescaped run */
  for (const char *p = s; *p; p++) {
    char tmp[8];
    const char *esc = jw_escape((unsigned char)*p, tmp);
    if (!esc)
      continue;
    jw_rawn(w, run, (size_t)(p - run));
    jw_raw(w, esc);
    run = p + 1;
  }
  jw_raw(w, run);
  jw_rawn(w, "\"", 1);
}

void jw_fmt(jw *w, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char small[256];
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) {
    w->failed = 1;
    return;
  }
  if ((size_t)n < sizeof small) {
    jw_rawn(w, small, (size_t)n);
    return;
  }
  if (jw_reserve(w, (size_t)n) != 0)
    return;
  va_start(ap, fmt);
  vsnprintf(w->buf + w->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  w->len += (size_t)n;
}

void jw_u64(jw *w, uint64_t v) {
  char tmp[24];
  size_t i = sizeof tmp;
  do {
    tmp[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  jw_rawn(w, tmp + i, sizeof tmp - i);
}

char *jw_take(jw *w, size_t *out_len) {
  if (!w->failed && !w->buf)
    jw_reserve(w, 0);
  if (w->failed) {
    jw_free(w);
    *out_len = 0;
    return NULL;
  }
  w->buf[w->len] = '\0';
  char *b = w->buf;
  *out_len = w->len;
  jw_init(w);
  return b;
}
