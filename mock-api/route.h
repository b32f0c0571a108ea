/* route: the mock's routing table and URL helpers, pure (no MHD): maps a
 * method and a raw (still %-escaped) path to an endpoint, tells 404 from
 * 405, and hands back the raw {id} segment; plus %XX decoding. */
#ifndef ADSYNC_MOCK_ROUTE_H
#define ADSYNC_MOCK_ROUTE_H

#include <stddef.h>

typedef enum route_id {
  ROUTE_NONE = 0,
  ROUTE_HEALTH,
  ROUTE_AUTH_TOKEN,
  ROUTE_LIST,
  ROUTE_SYNC,
  ROUTE_STATS,
  ROUTE_RESET,
  ROUTE_REVOKE,
  ROUTE_TOKENS,
  ROUTE_REDIRECTED,   /* hostile.h's redirect target, any method */
} route_id;

typedef struct route_match {
  route_id id;        /* ROUTE_NONE unless status is 0 */
  int status;         /* 0 matched, 404 no such path, 405 path exists for another method */
  const char *param;  /* the raw {id} segment inside path (not terminated), or NULL */
  size_t param_len;
} route_match;

/* Matches method and path (both borrowed; path without the query string). */
void route_find(const char *method, const char *path, route_match *out);

/* Decodes %XX escapes of in[0..n) into out (capacity cap, NUL-terminated);
 * '+' stays '+'. Returns the decoded length, or -1 on a bad escape, an
 * escaped NUL, or when the result does not fit. */
long route_url_decode(const char *in, size_t n, char *out, size_t cap);

#endif
