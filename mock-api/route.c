/* route: routing table and %XX decoding (see route.h). One table row per
 * endpoint; "{}" in a pattern matches one non-empty path segment. */
#include "route.h"

#include <string.h>

#include "hostile.h"

typedef struct route_row {
  const char *method;
  const char *pattern;
  route_id id;
} route_row;

static const route_row route_table[] = {
    {"GET", "/health", ROUTE_HEALTH},
    {"POST", "/auth/token", ROUTE_AUTH_TOKEN},
    {"GET", "/api/campaigns", ROUTE_LIST},
    {"POST", "/api/campaigns/{}/sync", ROUTE_SYNC},
    {"GET", "/admin/stats", ROUTE_STATS},
    {"POST", "/admin/reset", ROUTE_RESET},
    {"POST", "/admin/revoke-tokens", ROUTE_REVOKE},
    {"GET", "/admin/tokens", ROUTE_TOKENS},
    {"GET", HOSTILE_REDIRECT_PATH, ROUTE_REDIRECTED},
    {"POST", HOSTILE_REDIRECT_PATH, ROUTE_REDIRECTED},
};

/* True when path matches pattern; sets the {} segment if there is one. */
static int route_match_path(const char *pattern, const char *path, const char **param,
                            size_t *param_len) {
  const char *hole = strstr(pattern, "{}");
  if (!hole)
    return strcmp(pattern, path) == 0;
  size_t pre = (size_t)(hole - pattern);
  const char *post = hole + 2;
  if (strncmp(pattern, path, pre) != 0)
    return 0;
  const char *seg = path + pre;
  size_t seg_len = strcspn(seg, "/");
  if (seg_len == 0 || strcmp(seg + seg_len, post) != 0)
    return 0;
  *param = seg;
  *param_len = seg_len;
  return 1;
}

void route_find(const char *method, const char *path, route_match *out) {
  memset(out, 0, sizeof *out);
  out->status = 404;
  for (size_t i = 0; i < sizeof route_table / sizeof route_table[0]; i++) {
    const char *param = NULL;
    size_t param_len = 0;
    if (!route_match_path(route_table[i].pattern, path, &param, &param_len))
      continue;
    if (strcmp(route_table[i].method, method) != 0) {
      out->status = 405;
      continue;
    }
    out->id = route_table[i].id;
    out->status = 0;
    out->param = param;
    out->param_len = param_len;
    return;
  }
}

static int route_hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

long route_url_decode(const char *in, size_t n, char *out, size_t cap) {
  size_t o = 0;
  if (cap == 0)
    return -1;
  for (size_t i = 0; i < n; i++) {
    char c = in[i];
    if (c == '%') {
      int hi = i + 2 < n ? route_hex(in[i + 1]) : -1;
      int lo = i + 2 < n ? route_hex(in[i + 2]) : -1;
      if (hi < 0 || lo < 0)
        return -1;
      c = (char)(hi * 16 + lo);
      i += 2;
    }
    if (c == '\0' || o + 1 >= cap)
      return -1;
    out[o++] = c;
  }
  out[o] = '\0';
  return (long)o;
}
