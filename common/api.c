/* api: ad platform request building, response parsing, classification
 * (see api.h). */
#include "api.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "job.h"
#include "jscan.h"

api_verdict api_classify(http_error error, long status)
{
    if (error != HTTP_OK)
        return API_RETRY;
    if (status >= 200 && status < 300)
        return API_OK;
    if (status == 401)
        return API_REAUTH;
    if (status == 429)
        return API_RATE_LIMITED;
    if (status >= 400 && status < 500)
        return API_PERMANENT;
    return API_RETRY;    /* 5xx, and 1xx/3xx we never asked for */
}

void api_describe_failure(const http_result *res, const char *parse_error, char *out, size_t outlen)
{
    if (res->error != HTTP_OK)
        snprintf(out, outlen, "%s", res->detail ? res->detail : "transport error");
    else if (parse_error)
        snprintf(out, outlen, "malformed body (HTTP %ld): %s", res->status, parse_error);
    else
        snprintf(out, outlen, "HTTP %ld", res->status);
}

/* Parses a whole body as one JSON object; NULL with err otherwise. */
/* The body as a JSON object into *root: 0, -1 (err says what is wrong with
 * it) or API_NOMEM. */
static int parse_object(const char *body, size_t len, cJSON **root, char *err, size_t errlen)
{
    jscan_span whole;
    if (body == NULL || len == 0)
        return errbuf_set(err, errlen, "empty body");
    if ((*root = cJSON_ParseWithLength(body, len)) == NULL) {
        if (jscan_value(body, len, &whole) < 0)
            return errbuf_set(err, errlen, "not JSON");
        errbuf_set(err, errlen, "out of memory");   /* valid JSON that cJSON could not hold */
        return API_NOMEM;
    }
    if (!cJSON_IsObject(*root)) {
        cJSON_Delete(*root);
        *root = NULL;
        return errbuf_set(err, errlen, "not a JSON object");
    }
    return 0;
}

int api_parse_token(const char *body, size_t len, char *token, size_t toklen, long *expires_in,
                    char *err, size_t errlen)
{
    cJSON *root;
    if (parse_object(body, len, &root, err, errlen) < 0)
        return -1;
    int rc = -1;
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(root, "access_token");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(root, "expires_in");
    if (!cJSON_IsString(tok) || tok->valuestring[0] == '\0')
        errbuf_set(err, errlen, "no access_token");
    else if (strlen(tok->valuestring) >= toklen || strpbrk(tok->valuestring, "\r\n"))
        errbuf_set(err, errlen, "unusable access_token");
    else if (!cJSON_IsNumber(exp) || exp->valuedouble < 1 || exp->valuedouble > 1e8)
        errbuf_set(err, errlen, "expires_in missing or out of range");
    else {
        memcpy(token, tok->valuestring, strlen(tok->valuestring) + 1);
        *expires_in = (long)exp->valuedouble;
        rc = 0;
    }
    cJSON_Delete(root);
    return rc;
}

static size_t base64_encode(const unsigned char *in, size_t n, char *out)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tbl[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

int api_basic_auth_header(const char *email, const char *password, char *out, size_t outlen)
{
    static const char prefix[] = "Authorization: Basic ";
    char creds[API_CREDENTIALS_MAX + 1];
    int n = snprintf(creds, sizeof creds, "%s:%s", email, password);
    size_t need = sizeof prefix + ((size_t)n + 2) / 3 * 4;
    if (n < 0 || (size_t)n >= sizeof creds || need > outlen)
        return -1;
    memcpy(out, prefix, sizeof prefix - 1);
    base64_encode((const unsigned char *)creds, (size_t)n, out + sizeof prefix - 1);
    explicit_bzero(creds, sizeof creds);   /* memset could be optimised away */
    return 0;
}

void api_page_clear(api_page *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->items[i].id);
        free(p->items[i].json);
    }
    free(p->items);
    memset(p, 0, sizeof *p);
}

/* One item of "data": its id from a parse of the item alone, its text as
 * the platform wrote it. */
static int take_campaign(jscan_span item, api_campaign *c, char *err, size_t errlen)
{
    cJSON *obj = cJSON_ParseWithLength(item.p, item.len);
    const cJSON *id = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, "id") : NULL;
    int rc = API_NOMEM;
    if (obj == NULL)
        errbuf_set(err, errlen, "out of memory");   /* jscan validated it */
    else if (!cJSON_IsString(id))
        rc = errbuf_set(err, errlen, "a campaign has no string id");
    else if ((c->id = strdup(id->valuestring)) == NULL || (c->json = strndup(item.p, item.len)) == NULL)
        errbuf_set(err, errlen, "out of memory");
    else {
        c->json_len = item.len;
        c->id_len = strlen(c->id);
        c->problem = job_campaign_id_problem(c->id, c->id_len);
        rc = 0;
    }
    cJSON_Delete(obj);
    return rc;
}

/* Counts the items first, so a page of half a million tiny items is refused
 * before anything is allocated for it. */
static int take_items(jscan_span data, size_t max_items, api_page *out, char *err, size_t errlen)
{
    jscan_iter it;
    jscan_span item;
    size_t n = 0;
    if (jscan_array(&it, data) < 0)
        return errbuf_set(err, errlen, "\"data\" is not an array");
    for (jscan_iter count = it; jscan_next(&count, &item);)
        if (++n > max_items)
            return errbuf_set(err, errlen, "page has more than %zu items", max_items);
    if (n == 0)
        return 0;
    if ((out->items = calloc(n, sizeof *out->items)) == NULL) {
        errbuf_set(err, errlen, "out of memory");
        return API_NOMEM;
    }
    int rc = 0;
    while (rc == 0 && jscan_next(&it, &item))
        rc = take_campaign(item, &out->items[out->n++], err, errlen);
    return rc;
}

/* pagination.has_more (required) and pagination.total (a count, or -1). */
static int take_pagination(const jscan_span *pagination, api_page *out, char *err, size_t errlen)
{
    cJSON *obj = pagination ? cJSON_ParseWithLength(pagination->p, pagination->len) : NULL;
    const cJSON *has_more = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, "has_more") : NULL;
    const cJSON *total = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, "total") : NULL;
    int rc = -1;
    if (pagination && obj == NULL) {   /* jscan validated it */
        errbuf_set(err, errlen, "out of memory");
        rc = API_NOMEM;
    } else if (!cJSON_IsBool(has_more))
        errbuf_set(err, errlen, "\"pagination.has_more\" is not a boolean");
    else {
        out->has_more = cJSON_IsTrue(has_more);
        out->total = cJSON_IsNumber(total) && total->valuedouble >= 0 && total->valuedouble <= 9007199254740992.0 &&
                             total->valuedouble == (double)(long long)total->valuedouble
                         ? (long long)total->valuedouble : -1;
        rc = 0;
    }
    cJSON_Delete(obj);
    return rc;
}

int api_parse_page(const char *body, size_t len, size_t max_items, api_page *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    jscan_span root, data, pagination;
    if (body == NULL || len == 0)
        return errbuf_set(err, errlen, "empty body");
    if (jscan_value(body, len, &root) < 0)
        return errbuf_set(err, errlen, "not JSON");
    if (*root.p != '{')
        return errbuf_set(err, errlen, "not a JSON object");
    int has_pagination = jscan_member(root, "pagination", &pagination) == 1;
    if (jscan_member(root, "data", &data) != 1)
        return errbuf_set(err, errlen, "\"data\" is not an array");
    int rc = take_pagination(has_pagination ? &pagination : NULL, out, err, errlen);
    if (rc == 0)
        rc = take_items(data, max_items, out, err, errlen);
    if (rc < 0)
        api_page_clear(out);
    return rc;
}

int api_page_is_last(const api_page *p, unsigned page, unsigned limit)
{
    if (!p->has_more || p->n == 0 || (limit > 0 && p->n < limit))
        return 1;
    unsigned long long seen = (unsigned long long)(page > 0 ? page - 1 : 0) * limit + p->n;
    return p->total >= 0 && seen >= (unsigned long long)p->total;
}

int api_parse_sync(const char *body, size_t len, char *synced_at, size_t outlen, char *err, size_t errlen)
{
    cJSON *root;
    int rc = parse_object(body, len, &root, err, errlen);
    if (rc < 0)
        return rc;
    rc = -1;
    const cJSON *success = cJSON_GetObjectItemCaseSensitive(root, "success");
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(root, "synced_at");
    if (!cJSON_IsTrue(success))
        errbuf_set(err, errlen, "\"success\" is not true");
    else if (!cJSON_IsString(at) || at->valuestring[0] == '\0' || strlen(at->valuestring) >= outlen)
        errbuf_set(err, errlen, "\"synced_at\" missing or not a string");
    else {
        memcpy(synced_at, at->valuestring, strlen(at->valuestring) + 1);
        rc = 0;
    }
    cJSON_Delete(root);
    return rc;
}

/* The stored form through a tree: only for a campaign that already has a
 * "synced_at" or "run" of its own, which the worker's values replace. */
static char *restamp_tree(const char *campaign_json, const char *synced_at, const char *run)
{
    cJSON *obj = cJSON_Parse(campaign_json);
    if (!cJSON_IsObject(obj)) {
        cJSON_Delete(obj);
        return NULL;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(obj, "synced_at");
    cJSON_DeleteItemFromObjectCaseSensitive(obj, "run");
    char *out = NULL;
    if (cJSON_AddStringToObject(obj, "synced_at", synced_at) && cJSON_AddStringToObject(obj, "run", run))
        out = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    return out;
}

/* Writes s as a JSON string (quotes included) at out, which has room for
 * 6 bytes per byte of s + 3; returns the bytes written. */
static size_t quote_into(char *out, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    out[o++] = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            memcpy(out + o, "\\u00", 4);
            out[o + 4] = hex[c >> 4];
            out[o + 5] = hex[c & 15];
            o += 6;
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    return o;
}

char *api_stored_campaign(const char *campaign_json, const char *synced_at, const char *run)
{
    jscan_span obj, own;
    if (jscan_value(campaign_json, strlen(campaign_json), &obj) < 0 || *obj.p != '{')
        return NULL;
    if (jscan_member(obj, "synced_at", &own) == 1 || jscan_member(obj, "run", &own) == 1)
        return restamp_tree(campaign_json, synced_at, run);
    /* The campaign's own bytes, then the two stamps before its closing brace. */
    static const char at_name[] = "\"synced_at\":", run_name[] = ",\"run\":";
    char *out = malloc(obj.len + 6 * (strlen(synced_at) + strlen(run)) + sizeof at_name + sizeof run_name + 8);
    if (out == NULL)
        return NULL;
    size_t o = obj.len - 1;
    memcpy(out, obj.p, o);
    if (!jscan_object_empty(obj))
        out[o++] = ',';
    memcpy(out + o, at_name, sizeof at_name - 1);
    o += quote_into(out + o + sizeof at_name - 1, synced_at) + sizeof at_name - 1;
    memcpy(out + o, run_name, sizeof run_name - 1);
    o += quote_into(out + o + sizeof run_name - 1, run) + sizeof run_name - 1;
    out[o++] = '}';
    out[o] = '\0';
    return out;
}

/* ---- the endpoints ------------------------------------------------------------ */

static int auth_url(const char *base, const api_call *call, char *out, size_t outlen)
{
    (void)call;
    int n = snprintf(out, outlen, "%s/auth/token", base);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

static int list_url(const char *base, const api_call *call, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "%s/api/campaigns?page=%u&limit=%u", base, call->page, call->limit);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* The id as one escaped path segment. */
static int sync_url(const char *base, const api_call *call, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "%s/api/campaigns/", base);
    if (n < 0 || (size_t)n >= outlen)
        return -1;
    int e = http_escape_segment(call->id, call->id_len, out + n, outlen - (size_t)n);
    if (e < 0)
        return -1;
    size_t used = (size_t)n + (size_t)e;
    if (outlen - used < sizeof "/sync")
        return -1;
    memcpy(out + used, "/sync", sizeof "/sync");
    return 0;
}

static char *sync_body(const api_call *call)
{
    cJSON *obj = cJSON_CreateObject();
    char *out = NULL;
    if (obj && cJSON_AddStringToObject(obj, "campaign_id", call->id))
        out = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    return out;
}

const api_endpoint_def api_endpoints[API_EP_COUNT] = {
    [API_EP_AUTH] = { "auth", "POST", "/auth/token", 0, auth_url, NULL },
    [API_EP_LIST] = { "list", "GET", "/api/campaigns?page={page}&limit={limit}", 1, list_url, NULL },
    [API_EP_SYNC] = { "sync", "POST", "/api/campaigns/{id}/sync", 0, sync_url, sync_body },
};

int api_request(api_endpoint ep, const char *base, const api_call *call, char *url, size_t urllen, char **body)
{
    const api_endpoint_def *d = &api_endpoints[ep];
    *body = NULL;
    if (d->url(base, call, url, urllen) < 0)
        return -1;
    if (d->body && (*body = d->body(call)) == NULL)
        return -1;
    return 0;
}

unsigned long api_retry_after_ms(long header_s, const char *body, size_t len)
{
    double s = 60;
    if (header_s > 0) {
        s = (double)header_s;
    } else if (body && len) {
        cJSON *root = cJSON_ParseWithLength(body, len);
        const cJSON *ra = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "retry_after") : NULL;
        if (cJSON_IsNumber(ra) && ra->valuedouble > 0)
            s = ra->valuedouble;
        cJSON_Delete(root);
    }
    if (s > 3600)
        s = 3600;
    return (unsigned long)(s * 1000.0);
}
