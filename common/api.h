/* api: what adsync knows about the ad platform's HTTP API (DESIGN.md §2),
 * without doing any I/O: request paths and bodies, response parsing with
 * validation, and the retry classification. The worker feeds it bodies that
 * came from the network, so every parser treats its input as hostile. */
#ifndef ADSYNC_API_H
#define ADSYNC_API_H

#include <stddef.h>

#include "http.h"

#define API_TOKEN_MAX 512

/* The platform's endpoints (DESIGN.md §2), one row of api_endpoints each:
 * a new endpoint is one row and one parser (api_parse_<name>). */
typedef enum { API_EP_AUTH, API_EP_LIST, API_EP_SYNC, API_EP_COUNT } api_endpoint;

/* What one request needs besides the base URL. */
typedef struct api_call {
    unsigned page, limit;          /* API_EP_LIST */
    const char *id;                /* API_EP_SYNC: the campaign id, id_len bytes, NUL-terminated */
    size_t id_len;
} api_call;

typedef struct api_endpoint_def {
    const char *name;              /* "auth", "list", "sync": metric label, log name */
    const char *method;
    const char *path;              /* as DESIGN.md §2 writes it */
    int budgeted;                  /* its answers count against ADSYNC_BODY_BUDGET_BYTES */
    int (*url)(const char *base, const api_call *call, char *out, size_t outlen);   /* 0 or -1 */
    char *(*body)(const api_call *call);   /* malloc'd JSON (NULL on OOM); NULL member: no body */
} api_endpoint_def;

extern const api_endpoint_def api_endpoints[API_EP_COUNT];

/* ep's request for call: its URL into url, its body into *body (malloc'd,
 * or NULL when the endpoint sends none). 0, or -1 (too long, out of
 * memory). */
int api_request(api_endpoint ep, const char *base, const api_call *call, char *url, size_t urllen, char **body);

/* What to do after a response. */
typedef enum {
    API_OK,            /* success: use the body */
    API_REAUTH,        /* 401: drop the token, authenticate once, retry the call */
    API_RATE_LIMITED,  /* 429: cooldown, retry later, not an attempt failure */
    API_RETRY,         /* timeout, connection error, 5xx, malformed body */
    API_PERMANENT,     /* other 4xx, success:false with a 4xx: dead letter */
} api_verdict;

/* Classifies transport outcome + status (a body that failed to parse is
 * classified by the caller as API_RETRY). */
api_verdict api_classify(http_error error, long status);

/* One line describing a failure for last_error/logs, e.g. "HTTP 503",
 * "timeout after 30000 ms", "malformed body: …". Writes into out. */
void api_describe_failure(const http_result *res, const char *parse_error, char *out, size_t outlen);

/* POST /auth/token answer. 0 with token (NUL-terminated) and expires_in
 * seconds; -1 with err. */
int api_parse_token(const char *body, size_t len, char *token, size_t toklen, long *expires_in,
                    char *err, size_t errlen);

/* "Authorization: Basic base64(email:password)" into out. -1 if too small. */
#define API_CREDENTIALS_MAX (320 + 1 + 1023)   /* "email:password" as client add accepts them */
#define API_BASIC_HEADER_MAX 2048   /* fits their Basic header */
int api_basic_auth_header(const char *email, const char *password, char *out, size_t outlen);

typedef struct api_campaign {
    char *id;             /* owned; may be invalid (check problem) */
    size_t id_len;
    char *json;           /* owned: the campaign's JSON text as listed */
    size_t json_len;
    const char *problem;  /* NULL, or why the id must not be sent (static) */
} api_campaign;

typedef struct api_page {
    api_campaign *items;  /* owned array */
    size_t n;
    int has_more;
    long long total;      /* pagination.total, or -1 when absent or not a count */
} api_page;

/* A parse that failed for want of memory, not because of what it read:
 * nothing is wrong with the body, so it is not the platform's failure. */
#define API_NOMEM (-2)

/* GET /api/campaigns answer. 0 and out filled (release with
 * api_page_clear); -1 with err and out empty, API_NOMEM likewise. Items whose "id" is not a
 * string make the whole page malformed, and so do more than max_items items
 * (counted before any is parsed: the worker's memory follows its settings,
 * not the platform); items with an unusable id are kept with problem set so
 * they can be counted and dead-lettered. Each item's json is the platform's
 * own text (jscan.h), so numbers are kept digit for digit. */
int api_parse_page(const char *body, size_t len, size_t max_items, api_page *out, char *err, size_t errlen);
void api_page_clear(api_page *p);

/* Whether `page` (asked for with `limit` items) is the last one. The
 * pagination fields of a real platform can disagree with each other and
 * with the page size asked for (DESIGN.md §2): the tightest bound wins —
 * has_more false, an empty page, a page shorter than limit, or
 * pagination.total reached by the pages so far. Pure. */
int api_page_is_last(const api_page *p, unsigned page, unsigned limit);

/* POST /api/campaigns/{id}/sync answer with status 200. 0 and synced_at
 * copied (<= outlen); -1 with err (not JSON, success not true, no
 * synced_at), or API_NOMEM. */
int api_parse_sync(const char *body, size_t len, char *synced_at, size_t outlen, char *err, size_t errlen);

/* The stored form: the campaign as listed, byte for byte, plus "synced_at"
 * and "run" (replacing its own, if it had such members). Returns malloc'd
 * JSON (free()), NULL on error. */
char *api_stored_campaign(const char *campaign_json, const char *synced_at, const char *run);


/* retry_after from a 429: the header (seconds) if set, else the body's
 * "retry_after", else 60. Capped to one hour. Milliseconds. */
unsigned long api_retry_after_ms(long header_s, const char *body, size_t len);

#endif
