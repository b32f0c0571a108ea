/* accounts: client accounts and their deterministic campaign catalogue
 * (see accounts.h). Lookups by id and by email go through two small
 * open-addressing hash indexes built once. */
#include "accounts.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* 2025-12-31T10:00:00Z: created_at of campaign_1; campaign K is K-1 hours older. */
#define ACCT_EPOCH_S 1767175200LL

typedef struct acct_name {
  uint32_t k;
  char *name;
} acct_name;

typedef struct acct {
  acct_info info;     /* strings are heap copies owned here */
  acct_name *names;   /* overrides sorted by k */
  size_t n_names;
} acct;

struct acct_list {
  acct *v;
  size_t n;
  uint32_t *by_id;    /* slot = index + 1, 0 = empty */
  uint32_t *by_email;
  size_t mask;        /* table size - 1 (a power of two) */
};

/* ---- construction helpers ------------------------------------------------ */

static void acct_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void acct_errf(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static void acct_clear(acct *a) {
  free((char *)a->info.id);
  free((char *)a->info.email);
  free((char *)a->info.password);
  for (size_t i = 0; i < a->n_names; i++)
    free(a->names[i].name);
  free(a->names);
}

void acct_list_free(acct_list *l) {
  if (!l)
    return;
  for (size_t i = 0; i < l->n; i++)
    acct_clear(&l->v[i]);
  free(l->v);
  free(l->by_id);
  free(l->by_email);
  free(l);
}

static acct_list *acct_list_alloc(size_t n) {
  acct_list *l = calloc(1, sizeof *l);
  if (!l)
    return NULL;
  l->v = calloc(n ? n : 1, sizeof *l->v);
  if (!l->v) {
    free(l);
    return NULL;
  }
  return l;
}

/* Sets the three credential strings of a (copies); 0 or -1 on OOM. */
static int acct_set(acct *a, const char *id, const char *email, const char *password,
                    uint32_t campaigns) {
  a->info.id = strdup(id);
  a->info.email = strdup(email);
  a->info.password = strdup(password);
  a->info.campaigns = campaigns;
  return (a->info.id && a->info.email && a->info.password) ? 0 : -1;
}

/* ---- hash index ---------------------------------------------------------- */

static uint64_t acct_hash(const char *s) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ULL;
  }
  return h;
}

static const char *acct_key(const acct_list *l, size_t i, int by_email) {
  return by_email ? l->v[i].info.email : l->v[i].info.id;
}

static long acct_lookup(const acct_list *l, const uint32_t *table, int by_email, const char *key) {
  if (!key)
    return -1;
  for (size_t s = acct_hash(key) & l->mask;; s = (s + 1) & l->mask) {
    uint32_t slot = table[s];
    if (slot == 0)
      return -1;
    if (strcmp(acct_key(l, slot - 1, by_email), key) == 0)
      return (long)(slot - 1);
  }
}

/* Inserts account i; -1 if its key is already present. */
static int acct_insert(acct_list *l, uint32_t *table, int by_email, size_t i) {
  const char *key = acct_key(l, i, by_email);
  if (acct_lookup(l, table, by_email, key) >= 0)
    return -1;
  size_t s = acct_hash(key) & l->mask;
  while (table[s] != 0)
    s = (s + 1) & l->mask;
  table[s] = (uint32_t)(i + 1);
  return 0;
}

/* Builds both indexes; -1 with err set on OOM or a duplicate. */
static int acct_index(acct_list *l, char *err, size_t errlen) {
  size_t size = 16;
  while (size < l->n * 2)
    size *= 2;
  l->mask = size - 1;
  l->by_id = calloc(size, sizeof *l->by_id);
  l->by_email = calloc(size, sizeof *l->by_email);
  if (!l->by_id || !l->by_email) {
    acct_errf(err, errlen, "out of memory");
    return -1;
  }
  for (size_t i = 0; i < l->n; i++) {
    if (acct_insert(l, l->by_id, 0, i) != 0) {
      acct_errf(err, errlen, "duplicate account id \"%s\"", l->v[i].info.id);
      return -1;
    }
    if (acct_insert(l, l->by_email, 1, i) != 0) {
      acct_errf(err, errlen, "duplicate email \"%s\"", l->v[i].info.email);
      return -1;
    }
  }
  return 0;
}

/* ---- generated accounts -------------------------------------------------- */

acct_list *acct_list_generate(uint32_t n, uint32_t campaigns) {
  acct_list *l = acct_list_alloc(n);
  if (!l)
    return NULL;
  for (uint32_t i = 0; i < n; i++) {
    char id[32], email[64], pw[48];
    snprintf(id, sizeof id, "client_%u", i + 1);
    snprintf(email, sizeof email, "%s@example.test", id);
    snprintf(pw, sizeof pw, "secret-%s", id);
    l->n = i + 1;
    if (acct_set(&l->v[i], id, email, pw, campaigns) != 0)
      goto fail;
  }
  if (acct_index(l, NULL, 0) != 0)
    goto fail;
  return l;
fail:
  acct_list_free(l);
  return NULL;
}

/* ---- accounts from JSON -------------------------------------------------- */

static uint32_t acct_parse_k(const char *cid, uint32_t max);

/* The string member `key` of o, or NULL. */
static const char *acct_json_str(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int acct_name_cmp(const void *a, const void *b) {
  uint32_t x = ((const acct_name *)a)->k, y = ((const acct_name *)b)->k;
  return (x > y) - (x < y);
}

/* Copies the "names" object of entry `idx` into a; -1 with err set. */
static int acct_load_names(acct *a, const cJSON *names, size_t idx, char *err, size_t errlen) {
  if (!names)
    return 0;
  if (!cJSON_IsObject(names)) {
    acct_errf(err, errlen, "entry %zu: \"names\" must be an object", idx);
    return -1;
  }
  size_t n = (size_t)cJSON_GetArraySize(names);
  a->names = calloc(n ? n : 1, sizeof *a->names);
  if (!a->names) {
    acct_errf(err, errlen, "out of memory");
    return -1;
  }
  const cJSON *it;
  cJSON_ArrayForEach(it, names) {
    uint32_t k = acct_parse_k(it->string, a->info.campaigns);
    if (k == 0 || !cJSON_IsString(it)) {
      acct_errf(err, errlen, "entry %zu: names key \"%s\" must be campaign_1..campaign_%u "
                "with a string value", idx, it->string, a->info.campaigns);
      return -1;
    }
    a->names[a->n_names].k = k;
    a->names[a->n_names].name = strdup(it->valuestring);
    if (!a->names[a->n_names++].name) {
      acct_errf(err, errlen, "out of memory");
      return -1;
    }
  }
  qsort(a->names, a->n_names, sizeof *a->names, acct_name_cmp);
  for (size_t i = 1; i < a->n_names; i++) {
    if (a->names[i].k == a->names[i - 1].k) {
      acct_errf(err, errlen, "entry %zu: duplicate name for campaign_%u", idx, a->names[i].k);
      return -1;
    }
  }
  return 0;
}

/* Reads the optional "campaigns" count; -1 with err set when invalid. */
static int acct_load_count(const cJSON *o, uint32_t dflt, size_t idx, uint32_t *out,
                           char *err, size_t errlen) {
  const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "campaigns");
  *out = dflt;
  if (!c)
    return 0;
  double d = cJSON_IsNumber(c) ? c->valuedouble : -1;
  if (d < 0 || d > ACCT_MAX_CAMPAIGNS || d != (double)(uint32_t)d) {
    acct_errf(err, errlen, "entry %zu: \"campaigns\" must be an integer 0..%u", idx,
              ACCT_MAX_CAMPAIGNS);
    return -1;
  }
  *out = (uint32_t)d;
  return 0;
}

/* Loads array entry idx into a; -1 with err set. */
static int acct_load_one(acct *a, const cJSON *o, uint32_t dflt, size_t idx, char *err,
                         size_t errlen) {
  if (!cJSON_IsObject(o)) {
    acct_errf(err, errlen, "entry %zu: not an object", idx);
    return -1;
  }
  const char *id = acct_json_str(o, "id");
  const char *email = acct_json_str(o, "email");
  const char *pw = acct_json_str(o, "password");
  if (!id || !*id || !email || !*email || !pw) {
    acct_errf(err, errlen, "entry %zu: needs string \"id\", \"email\" and \"password\"", idx);
    return -1;
  }
  uint32_t campaigns;
  if (acct_load_count(o, dflt, idx, &campaigns, err, errlen) != 0)
    return -1;
  if (acct_set(a, id, email, pw, campaigns) != 0) {
    acct_errf(err, errlen, "out of memory");
    return -1;
  }
  return acct_load_names(a, cJSON_GetObjectItemCaseSensitive(o, "names"), idx, err, errlen);
}

acct_list *acct_list_from_json(const char *text, size_t len, uint32_t default_campaigns,
                               char *err, size_t errlen) {
  cJSON *root = cJSON_ParseWithLength(text, len);
  if (!cJSON_IsArray(root)) {
    acct_errf(err, errlen, root ? "not a JSON array" : "not valid JSON");
    cJSON_Delete(root);
    return NULL;
  }
  size_t n = (size_t)cJSON_GetArraySize(root);
  acct_list *l = n > ACCT_MAX_ACCOUNTS ? NULL : acct_list_alloc(n);
  if (!l) {
    acct_errf(err, errlen, n > ACCT_MAX_ACCOUNTS ? "too many accounts" : "out of memory");
    goto fail;
  }
  const cJSON *o;
  cJSON_ArrayForEach(o, root) {
    l->n++;
    if (acct_load_one(&l->v[l->n - 1], o, default_campaigns, l->n - 1, err, errlen) != 0)
      goto fail;
  }
  if (acct_index(l, err, errlen) != 0)
    goto fail;
  cJSON_Delete(root);
  return l;
fail:
  acct_list_free(l);
  cJSON_Delete(root);
  return NULL;
}

/* ---- queries ------------------------------------------------------------- */

size_t acct_count(const acct_list *l) {
  return l->n;
}

const acct_info *acct_get(const acct_list *l, size_t i) {
  return &l->v[i].info;
}

long acct_find_id(const acct_list *l, const char *id) {
  return acct_lookup(l, l->by_id, 0, id);
}

long acct_find_email(const acct_list *l, const char *email) {
  return acct_lookup(l, l->by_email, 1, email);
}

/* K of "campaign_K" when 1 <= K <= max (no sign, no leading zero), else 0. */
static uint32_t acct_parse_k(const char *cid, uint32_t max) {
  static const char prefix[] = "campaign_";
  if (!cid || strncmp(cid, prefix, sizeof prefix - 1) != 0)
    return 0;
  const char *p = cid + sizeof prefix - 1;
  if (*p < '1' || *p > '9')
    return 0;
  uint64_t k = 0;
  for (; *p >= '0' && *p <= '9'; p++) {
    k = k * 10 + (uint64_t)(*p - '0');
    if (k > max)
      return 0;
  }
  return *p == '\0' ? (uint32_t)k : 0;
}

uint32_t acct_campaign_k(const acct_list *l, size_t i, const char *cid) {
  return acct_parse_k(cid, l->v[i].info.campaigns);
}

static const char *acct_name_override(const acct *a, uint32_t k) {
  acct_name key = {.k = k, .name = NULL};
  const acct_name *hit = a->n_names
      ? bsearch(&key, a->names, a->n_names, sizeof *a->names, acct_name_cmp) : NULL;
  return hit ? hit->name : NULL;
}

void acct_campaign(const acct_list *l, size_t i, uint32_t k, acct_campaign_info *out) {
  out->k = k;
  out->name = acct_name_override(&l->v[i], k);
  if (!out->name) {
    snprintf(out->name_buf, sizeof out->name_buf, "Campaign %u", k);
    out->name = out->name_buf;
  }
  out->status = (k % 2) ? "active" : "paused";
  out->budget = 1000 + 100 * (uint64_t)k;
  out->impressions = ((uint64_t)k * 37 + 5) % 1000;
  out->clicks = out->impressions / 6;
  out->conversions = out->clicks / 5;
  time_t t = (time_t)(ACCT_EPOCH_S - 3600LL * (k - 1));
  struct tm tm;
  gmtime_r(&t, &tm);
  size_t n = strftime(out->created_at, sizeof out->created_at, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out->created_at + n, sizeof out->created_at - n, ".%03uZ",
           (unsigned)(((uint64_t)(k - 1) * 137) % 1000));
}
