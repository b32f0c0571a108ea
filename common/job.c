/* job: parse, validate and serialize sync jobs (see job.h). */
#include "job.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "errbuf.h"
#include "jscan.h"

void job_clear(job *j)
{
    free(j->last_error);
    free(j->campaign);
    memset(j, 0, sizeof *j);
}

const char *job_campaign_id_problem(const char *id, size_t len)
{
    if (len == 0)
        return "campaign id is empty";
    if (len > JOB_CAMPAIGN_ID_MAX)
        return "campaign id is longer than 256 bytes";
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)id[i] < 0x20 || id[i] == 0x7f)
            return "campaign id contains control characters";
    return NULL;
}

int job_set_error(job *j, const char *msg)
{
    size_t n = strlen(msg);
    if (n > JOB_ERROR_MAX)
        n = JOB_ERROR_MAX;
    char *copy = malloc(n + 1);
    if (copy == NULL)
        return -1;
    memcpy(copy, msg, n);
    copy[n] = '\0';
    free(j->last_error);
    j->last_error = copy;
    return 0;
}

/* Validates a campaign object and takes its id and its text: raw, the bytes
 * it was written as (numbers a double cannot hold survive retries), or when
 * raw is empty (a job whose "campaign" key is written with escapes) the
 * tree printed compact. */
static int take_campaign(job *j, const cJSON *obj, jscan_span raw, char *err, size_t errlen)
{
    if (!cJSON_IsObject(obj))
        return errbuf_set(err, errlen, "\"campaign\" is not an object");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(obj, "id");
    if (!cJSON_IsString(id))
        return errbuf_set(err, errlen, "campaign has no string \"id\"");
    const char *problem = job_campaign_id_problem(id->valuestring, strlen(id->valuestring));
    if (problem)
        return errbuf_set(err, errlen, "%s", problem);
    char *text = raw.len ? strndup(raw.p, raw.len) : cJSON_PrintUnformatted(obj);
    if (text == NULL)
        return errbuf_set(err, errlen, "out of memory");
    free(j->campaign);
    j->campaign = text;          /* cJSON allocates with malloc by default */
    snprintf(j->campaign_id, sizeof j->campaign_id, "%s", id->valuestring);
    return 0;
}

int job_set_campaign(job *j, const char *campaign_json, size_t len, char *err, size_t errlen)
{
    jscan_span raw;
    len = strnlen(campaign_json, len);   /* a C string ends at its NUL, as cJSON reads it */
    cJSON *obj = jscan_value(campaign_json, len, &raw) == 0 ? cJSON_ParseWithLength(raw.p, raw.len) : NULL;
    if (obj == NULL)
        return errbuf_set(err, errlen, "campaign is not valid JSON");
    int rc = take_campaign(j, obj, raw, err, errlen);
    cJSON_Delete(obj);
    return rc;
}

/* Copies a required string member that must pass valid(). */
static int take_id(const cJSON *root, const char *name, int (*valid)(const char *),
                   char *out, size_t outlen, char *err, size_t errlen)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!cJSON_IsString(item))
        return errbuf_set(err, errlen, "missing or non-string \"%s\"", name);
    if (!valid(item->valuestring) || strlen(item->valuestring) >= outlen)
        return errbuf_set(err, errlen, "invalid \"%s\"", name);
    memcpy(out, item->valuestring, strlen(item->valuestring) + 1);
    return 0;
}

/* Reads an optional non-negative integer member (JSON numbers are doubles:
 * reject fractions, negatives and values past 2^53). */
static int take_uint(const cJSON *root, const char *name, double max, uint64_t *out,
                     char *err, size_t errlen)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, name);
    if (item == NULL) {
        *out = 0;
        return 0;
    }
    double d = cJSON_IsNumber(item) ? item->valuedouble : -1;
    if (d < 0 || d > max || floor(d) != d)
        return errbuf_set(err, errlen, "\"%s\" must be an integer from 0 to %.0f", name, max);
    *out = (uint64_t)d;
    return 0;
}

static int parse_type(const cJSON *root, job *j, char *err, size_t errlen)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "type");
    if (cJSON_IsString(type) && strcmp(type->valuestring, "client") == 0)
        j->type = JOB_CLIENT;
    else if (cJSON_IsString(type) && strcmp(type->valuestring, "campaign") == 0)
        j->type = JOB_CAMPAIGN;
    else
        return errbuf_set(err, errlen, "\"type\" must be \"client\" or \"campaign\"");
    return 0;
}

static int parse_fields(const cJSON *root, const char *buf, size_t len, job *j, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "v");
    if (!cJSON_IsNumber(v) || v->valuedouble != 1)
        return errbuf_set(err, errlen, "unsupported version (expected \"v\":1)");
    uint64_t attempt = 0;
    if (parse_type(root, j, err, errlen) < 0 ||
        take_id(root, "id", keys_valid_segment, j->id, sizeof j->id, err, errlen) < 0 ||
        take_id(root, "client", keys_valid_client_id, j->client, sizeof j->client, err, errlen) < 0 ||
        take_id(root, "run", keys_valid_segment, j->run, sizeof j->run, err, errlen) < 0 ||
        take_uint(root, "attempt", 1e6, &attempt, err, errlen) < 0 ||
        take_uint(root, "enqueued_at", 9007199254740992.0, &j->enqueued_at, err, errlen) < 0)
        return -1;
    j->attempt = (unsigned)attempt;

    const cJSON *last_error = cJSON_GetObjectItemCaseSensitive(root, "last_error");
    if (last_error && !cJSON_IsNull(last_error)) {
        if (!cJSON_IsString(last_error))
            return errbuf_set(err, errlen, "\"last_error\" must be a string");
        if (job_set_error(j, last_error->valuestring) < 0)
            return errbuf_set(err, errlen, "out of memory");
    }
    const cJSON *campaign = cJSON_GetObjectItemCaseSensitive(root, "campaign");
    jscan_span whole, raw = { 0 };
    if (jscan_value(buf, len, &whole) < 0 || jscan_member(whole, "campaign", &raw) != 1)
        raw = (jscan_span){ 0 };
    if (j->type == JOB_CAMPAIGN)
        return take_campaign(j, campaign, raw, err, errlen);
    if (campaign != NULL)
        return errbuf_set(err, errlen, "a client job carries no \"campaign\"");
    return 0;
}

int job_parse(const char *buf, size_t len, job *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (len > JOB_MAX_BYTES)
        return errbuf_set(err, errlen, "job is %zu bytes, over the %d byte limit", len, JOB_MAX_BYTES);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (root == NULL)
        return errbuf_set(err, errlen, "job is not valid JSON");
    int rc = -1;
    while (end && end < buf + len && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
        end++;
    if (end != buf + len)
        errbuf_set(err, errlen, "trailing data after the job object");
    else if (!cJSON_IsObject(root))
        errbuf_set(err, errlen, "job is not a JSON object");
    else
        rc = parse_fields(root, buf, len, out, err, errlen);
    cJSON_Delete(root);
    if (rc < 0)
        job_clear(out);
    return rc;
}

char *job_serialize(const job *j)
{
    cJSON *root = cJSON_CreateObject();
    if (root == NULL)
        return NULL;
    cJSON_AddNumberToObject(root, "v", 1);
    cJSON_AddStringToObject(root, "id", j->id);
    cJSON_AddStringToObject(root, "type", j->type == JOB_CLIENT ? "client" : "campaign");
    cJSON_AddStringToObject(root, "client", j->client);
    cJSON_AddStringToObject(root, "run", j->run);
    cJSON_AddNumberToObject(root, "attempt", j->attempt);
    if (j->enqueued_at)
        cJSON_AddNumberToObject(root, "enqueued_at", (double)j->enqueued_at);
    if (j->type == JOB_CAMPAIGN && j->campaign) {
        if (!cJSON_AddRawToObject(root, "campaign", j->campaign)) {   /* validated when set */
            cJSON_Delete(root);
            return NULL;
        }
    }
    if (j->last_error)
        cJSON_AddStringToObject(root, "last_error", j->last_error);
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

void job_make_id(char *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[JOB_ID_LEN / 2];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        /* getrandom on Linux ≥ 3.17 does not fail for 16 bytes; fall back
         * to rand() rather than leave the id unset. */
        for (size_t i = 0; i < sizeof raw; i++)
            raw[i] = (unsigned char)rand();
    }
    for (size_t i = 0; i < sizeof raw; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[JOB_ID_LEN] = '\0';
}
