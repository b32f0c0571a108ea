/* job: the JSON job codec of DESIGN.md §4.
 *
 *   {"v":1,"id":"…","type":"client","client":"acme","run":"…","attempt":0,"enqueued_at":…}
 *   {"v":1,"id":"…","type":"campaign","client":"acme","run":"…","campaign":{…},"attempt":3,
 *    "last_error":"…"}
 *
 * Parsing validates everything a worker relies on and explains a rejection in
 * one line; serializing writes the same shape back. Pure: no I/O. */
#ifndef ADSYNC_JOB_H
#define ADSYNC_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "keys.h"

#define JOB_MAX_BYTES (64 * 1024)
#define JOB_CAMPAIGN_ID_MAX 256
#define JOB_ERROR_MAX 512       /* last_error is truncated to this */
#define JOB_ID_LEN 32           /* hex chars of a generated id */

typedef enum { JOB_CLIENT, JOB_CAMPAIGN } job_type;

typedef struct job {
    job_type type;
    char id[KEYS_TOKEN_MAX + 1];
    char client[KEYS_ID_MAX + 1];
    char run[KEYS_TOKEN_MAX + 1];
    unsigned attempt;
    uint64_t enqueued_at;       /* ms since epoch; 0 if absent */
    char *last_error;           /* owned; NULL if none */
    char *campaign;             /* owned compact JSON object; campaign jobs only */
    char campaign_id[JOB_CAMPAIGN_ID_MAX + 1];
} job;

/* Parses buf[0..len) into out. On success returns 0 and out owns its
 * strings (release with job_clear). On failure returns -1, out is left
 * cleared, and err holds the reason. */
int job_parse(const char *buf, size_t len, job *out, char *err, size_t errlen);

/* Returns a malloc'd NUL-terminated JSON string (free with free()), or NULL
 * on allocation failure. */
char *job_serialize(const job *j);

/* Frees what the job owns and zeroes it. Safe on a zeroed job. */
void job_clear(job *j);

/* Replaces last_error with a copy of msg (truncated to JOB_ERROR_MAX).
 * 0 or -1 (out of memory; the old value is kept). */
int job_set_error(job *j, const char *msg);

/* Takes a copy of campaign_json (must be a JSON object with a valid "id").
 * 0, or -1 with err. */
int job_set_campaign(job *j, const char *campaign_json, size_t len, char *err, size_t errlen);

/* NULL if id may be used as a campaign id, else a static reason: empty,
 * longer than JOB_CAMPAIGN_ID_MAX, or containing control characters. */
const char *job_campaign_id_problem(const char *id, size_t len);

/* Writes JOB_ID_LEN random hex chars + NUL into out (>= JOB_ID_LEN + 1). */
void job_make_id(char *out);

#endif
