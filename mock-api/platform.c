/* platform: the simulated ad platform's state and decisions (see
 * platform.h). Layout: PRNG and small parsers, replies and bodies, per-client
 * state (tokens, rate window, counters), then one section per endpoint. */
#include "platform.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "jsonw.h"

enum { PLAT_EP_AUTH, PLAT_EP_LIST, PLAT_EP_SYNC, PLAT_EP_COUNT };
static const char *const plat_ep_names[PLAT_EP_COUNT] = {"auth", "list", "sync"};

/* Status codes the statistics know; PLAT_HANG_CODE stands for "hang". */
#define PLAT_HANG_CODE 0
static const int plat_codes[] = {200, 400, 401, 403, 404, 405, 413, 429, 500, 503,
                                 PLAT_HANG_CODE};
#define PLAT_SLOTS (sizeof plat_codes / sizeof plat_codes[0])

typedef struct plat_token {
  char text[PLAT_TOKEN_LEN + 1];
  int64_t expires_ms;  /* monotonic; INT64_MIN once revoked */
} plat_token;

/* Mutable state of one account; everything allocated on first use. */
typedef struct plat_client {
  plat_token *tokens;       /* ring of PLAT_TOKENS_PER_ACCOUNT */
  uint32_t token_next;
  int64_t *window;          /* ring of rate_limit accepted request times */
  uint32_t window_head;     /* oldest entry */
  uint32_t window_len;
  uint64_t list_seq;        /* list requests that passed the rate limit */
  uint64_t counts[PLAT_EP_COUNT][PLAT_SLOTS];
  uint32_t *synced;         /* per campaign, index k-1 */
} plat_client;

struct plat {
  pthread_mutex_t mu;
  plat_config cfg;
  acct_list *accounts;
  plat_client *clients;     /* one per account */
  uint64_t rng;             /* fault PRNG */
  uint64_t token_rng;
  uint64_t list_seq;        /* list requests of every client (faults_platform) */
  hostile *hostile;         /* --hostile, else NULL */
};

/* ---- PRNG (splitmix64) and parsers ----------------------------------------- */

static uint64_t plat_next(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* True with probability prob; draws nothing when prob <= 0. */
static int plat_roll(plat *p, double prob) {
  if (prob <= 0)
    return 0;
  return (double)(plat_next(&p->rng) >> 11) * 0x1.0p-53 < prob;
}

/* Strict decimal in [min, max]; NULL gives dflt. 0 on success. */
static int plat_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t dflt,
                          uint32_t *out) {
  if (!s) {
    *out = dflt;
    return 0;
  }
  uint64_t v = 0;
  size_t n = 0;
  for (; s[n] >= '0' && s[n] <= '9'; n++) {
    v = v * 10 + (uint64_t)(s[n] - '0');
    if (v > max)
      return -1;
  }
  if (n == 0 || s[n] != '\0' || v < min)
    return -1;
  *out = (uint32_t)v;
  return 0;
}

static int plat_b64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

/* Decodes standard base64 (padding optional) into out (NUL-terminated).
 * Returns the length, or -1 on bad input, embedded NUL or overflow. */
static long plat_b64_decode(const char *in, char *out, size_t cap) {
  uint32_t acc = 0;
  int bits = 0;
  size_t n = 0, i = 0;
  for (; in[i] && in[i] != '='; i++) {
    int v = plat_b64_value(in[i]);
    if (v < 0)
      return -1;
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits < 8)
      continue;
    bits -= 8;
    if (n + 1 >= cap)
      return -1;
    out[n++] = (char)((acc >> bits) & 0xff);
  }
  size_t data = i, pads = 0;
  for (; in[i] == '='; i++)
    pads++;
  if (in[i] != '\0' || data % 4 == 1 || (pads && (data + pads) % 4 != 0))
    return -1;
  out[n] = '\0';
  return memchr(out, '\0', n) ? -1 : (long)n;
}

/* After "<scheme> " (case-insensitive, spaces skipped), or NULL. */
static const char *plat_after_scheme(const char *header, const char *scheme) {
  size_t n = strlen(scheme);
  if (!header || strncasecmp(header, scheme, n) != 0 || header[n] != ' ')
    return NULL;
  header += n;
  while (*header == ' ')
    header++;
  return header;
}

/* ---- replies and bodies ---------------------------------------------------- */

void plat_reply_clear(plat_reply *r) {
  free(r->body);
  memset(r, 0, sizeof *r);
  r->account = -1;
}

/* Replaces *out by a hostile answer when r is 1 (a 500 when r is -1, out
 * of memory); r 0 leaves it alone. */
static void plat_take_hostile(plat_reply *out, int r, hostile_answer *h) {
  if (r == 0)
    return;
  free(out->body);
  if (r < 0) {
    plat_reply_error(out, 500, "Internal server error", "out of memory");
    return;
  }
  out->status = h->status;
  out->body = h->body;
  out->body_len = h->body_len;
  out->delivery = h->delivery;
  out->location = h->location;
}

/* Sets status and takes w's text as the body; action NOW. */
static void plat_reply_take(plat_reply *out, int status, jw *w) {
  out->status = status;
  out->action = PLAT_NOW;
  out->delay_ms = 0;
  out->retry_after_s = 0;
  out->body = jw_take(w, &out->body_len);
}

void plat_reply_error(plat_reply *out, int status, const char *error, const char *message) {
  jw w;
  jw_init(&w);
  jw_raw(&w, "{\"error\":");
  jw_str(&w, error);
  jw_raw(&w, ",\"message\":");
  jw_str(&w, message);
  jw_raw(&w, "}");
  plat_reply_take(out, status, &w);
}

void plat_redirect_followed(plat *p, plat_reply *out) {
  pthread_mutex_lock(&p->mu);
  if (p->hostile)
    hostile_redirect_followed(p->hostile);
  pthread_mutex_unlock(&p->mu);
  memset(out, 0, sizeof *out);
  out->account = -1;
  plat_reply_error(out, 404, "Not found", "a redirect of the hostile mode: never follow it");
}

void plat_health(plat_reply *out) {
  jw w;
  jw_init(&w);
  jw_raw(&w, "{\"status\":\"ok\"}");
  plat_reply_take(out, 200, &w);
}

/* ISO-8601 UTC with milliseconds, e.g. 2025-12-31T10:00:00.000Z. */
static void plat_iso8601(int64_t wall_ms, char out[32]) {
  time_t t = (time_t)(wall_ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + n, 32 - n, ".%03dZ", (int)(wall_ms % 1000));
}

/* Replaces a 200 body with a malformed one of the given variant:
 * 0 truncated JSON, 1 not JSON at all, 2 JSON with the wrong types. */
static void plat_malform(plat_reply *out, int variant, int ep) {
  static const char *const wrong[PLAT_EP_COUNT] = {
      "", "{\"data\":{\"id\":1},\"pagination\":\"none\"}",
      "{\"success\":\"yes\",\"campaign_id\":12345,\"synced_at\":false}"};
  if (variant == 0 && out->body && out->body_len > 1) {
    out->body_len /= 2;
    out->body[out->body_len] = '\0';
    return;
  }
  jw w;
  jw_init(&w);
  jw_raw(&w, variant == 2 ? wrong[ep] : "<html><body><h1>502 Bad Gateway</h1></body></html>");
  free(out->body);
  plat_reply_take(out, 200, &w);
}

/* ,"pad":"xxx…" of n bytes. */
static void plat_pad(jw *w, uint32_t n) {
  static const char xs[] = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
  jw_raw(w, ",\"pad\":\"");
  for (; n > 0; n -= n < sizeof xs - 1 ? n : (uint32_t)(sizeof xs - 1))
    jw_rawn(w, xs, n < sizeof xs - 1 ? n : sizeof xs - 1);
  jw_raw(w, "\"");
}

static void plat_campaign_json(jw *w, const acct_list *l, size_t a, uint32_t k, int odd,
                               uint32_t pad) {
  acct_campaign_info c;
  char id[512];
  acct_campaign(l, a, k, &c);
  jw_raw(w, "{\"id\":");
  if (odd)
    jw_str(w, hostile_campaign_id(a, k, id, sizeof id));
  else
    jw_fmt(w, "\"campaign_%u\"", k);
  jw_raw(w, ",\"name\":");
  jw_str(w, c.name);
  jw_fmt(w, ",\"status\":\"%s\",\"budget\":%llu,\"impressions\":%llu,\"clicks\":%llu,"
         "\"conversions\":%llu,\"created_at\":\"%s\"}", c.status,
         (unsigned long long)c.budget, (unsigned long long)c.impressions,
         (unsigned long long)c.clicks, (unsigned long long)c.conversions, c.created_at);
  if ((odd || pad) && !w->failed && w->len > 0) {
    w->len--;   /* reopen the object for more members */
    if (odd)
      hostile_campaign_extra(w, a, k);
    if (pad)
      plat_pad(w, pad);
    jw_raw(w, "}");
  }
}

/* The list page body; reads only the immutable accounts (no lock needed). */
static void plat_list_body(const acct_list *l, size_t a, uint32_t page, uint32_t limit,
                           int odd, uint32_t pad, plat_reply *out) {
  uint64_t total = acct_get(l, a)->campaigns;
  uint64_t start = (uint64_t)(page - 1) * limit;
  uint64_t end = start + limit < total ? start + limit : total;
  jw w;
  jw_init(&w);
  jw_raw(&w, "{\"data\":[");
  for (uint64_t i = start; i < end; i++) {
    if (i > start)
      jw_raw(&w, ",");
    plat_campaign_json(&w, l, a, (uint32_t)(i + 1), odd, pad);
  }
  jw_fmt(&w, "],\"pagination\":{\"page\":%u,\"limit\":%u,\"total\":%llu,\"has_more\":%s}}",
         page, limit, (unsigned long long)total, end < total ? "true" : "false");
  plat_reply_take(out, 200, &w);
}

/* ---- per-client state ------------------------------------------------------ */

static size_t plat_slot(int code) {
  for (size_t i = 0; i < PLAT_SLOTS; i++)
    if (plat_codes[i] == code)
      return i;
  return PLAT_SLOTS;
}

/* Counts the finished decision *out under account a (if any). Locked. */
static void plat_count(plat *p, long a, int ep, const plat_reply *out) {
  if (a < 0)
    return;
  size_t s = plat_slot(out->action == PLAT_HANG ? PLAT_HANG_CODE : out->status);
  if (s < PLAT_SLOTS)
    p->clients[a].counts[ep][s]++;
}

/* Applies the endpoint latency to a decision that passed the rate limit. */
static void plat_delay(plat_reply *out, uint32_t latency_ms) {
  if (out->action != PLAT_NOW || latency_ms == 0)
    return;
  out->action = PLAT_DELAY;
  out->delay_ms = latency_ms;
}

static void plat_random_token(plat *p, char out[PLAT_TOKEN_LEN + 1]) {
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < PLAT_TOKEN_LEN; i += 16) {
    uint64_t r = plat_next(&p->token_rng);
    for (int j = 0; j < 16; j++, r >>= 4)
      out[i + j] = hex[r & 15];
  }
  out[PLAT_TOKEN_LEN] = '\0';
}

/* Issues a token for account a into out (locked); -1 on OOM. */
static int plat_issue(plat *p, long a, int64_t now_ms, char out[PLAT_TOKEN_LEN + 1]) {
  plat_client *c = &p->clients[a];
  if (!c->tokens && !(c->tokens = calloc(PLAT_TOKENS_PER_ACCOUNT, sizeof *c->tokens)))
    return -1;
  plat_token *t = &c->tokens[c->token_next++ % PLAT_TOKENS_PER_ACCOUNT];
  plat_random_token(p, t->text);
  t->expires_ms = now_ms + (int64_t)p->cfg.token_ttl_s * 1000;
  memcpy(out, t->text, sizeof t->text);
  return 0;
}

/* The token entry of account a matching text, or NULL. Locked. */
static const plat_token *plat_find_token(const plat *p, long a, const char *text) {
  const plat_client *c = &p->clients[a];
  if (!c->tokens || strlen(text) != PLAT_TOKEN_LEN)
    return NULL;
  for (int i = 0; i < PLAT_TOKENS_PER_ACCOUNT; i++)
    if (memcmp(c->tokens[i].text, text, PLAT_TOKEN_LEN) == 0)
      return &c->tokens[i];
  return NULL;
}

static int plat_rate_enabled(const plat *p) {
  return p->cfg.rate_limit > 0 && p->cfg.rate_window_ms > 0;
}

/* Records an accepted request in a's window, or returns the whole seconds
 * until a slot frees (>= 1). 0 = accepted, -1 = OOM. Locked. */
static long plat_rate_take(plat *p, long a, int64_t now) {
  if (!plat_rate_enabled(p))
    return 0;
  plat_client *c = &p->clients[a];
  uint32_t cap = p->cfg.rate_limit;
  int64_t window = p->cfg.rate_window_ms;
  if (!c->window && !(c->window = calloc(cap, sizeof *c->window)))
    return -1;
  while (c->window_len && c->window[c->window_head] + window <= now) {
    c->window_head = (c->window_head + 1) % cap;
    c->window_len--;
  }
  if (c->window_len < cap) {
    c->window[(c->window_head + c->window_len++) % cap] = now;
    return 0;
  }
  int64_t wait_ms = c->window[c->window_head] + window - now;
  long s = (long)((wait_ms + 999) / 1000);
  return s < 1 ? 1 : s;
}

/* ---- lifecycle ------------------------------------------------------------- */

plat *plat_new(const plat_config *cfg, acct_list *accounts) {
  plat *p = accounts ? calloc(1, sizeof *p) : NULL;
  if (!p) {
    acct_list_free(accounts);
    return NULL;
  }
  p->cfg = *cfg;
  p->accounts = accounts;
  p->rng = cfg->seed;
  p->token_rng = cfg->token_seed;
  p->clients = calloc(acct_count(accounts) ? acct_count(accounts) : 1, sizeof *p->clients);
  p->hostile = cfg->hostile ? hostile_new(acct_count(accounts)) : NULL;
  if (!p->clients || (cfg->hostile && !p->hostile) || pthread_mutex_init(&p->mu, NULL) != 0) {
    hostile_free(p->hostile);
    free(p->clients);
    acct_list_free(accounts);
    free(p);
    return NULL;
  }
  return p;
}

void plat_free(plat *p) {
  if (!p)
    return;
  for (size_t i = 0; i < acct_count(p->accounts); i++) {
    free(p->clients[i].tokens);
    free(p->clients[i].window);
    free(p->clients[i].synced);
  }
  free(p->clients);
  hostile_free(p->hostile);
  acct_list_free(p->accounts);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

const acct_list *plat_accounts(const plat *p) {
  return p->accounts;
}

/* ---- POST /auth/token ------------------------------------------------------ */

#define PLAT_CRED_MAX 2048   /* a 320-byte e-mail and a 1023-byte password, decoded */

/* Splits a Basic header into email and password inside buf.
 * 0 ok, 1 header missing, -1 malformed. */
static int plat_basic(const char *header, char *buf, size_t cap, char **email, char **pw) {
  if (!header)
    return 1;
  const char *b64 = plat_after_scheme(header, "Basic");
  if (!b64 || plat_b64_decode(b64, buf, cap) < 0)
    return -1;
  char *colon = strchr(buf, ':');
  if (!colon)
    return -1;
  *colon = '\0';
  *email = buf;
  *pw = colon + 1;
  return 0;
}

static void plat_token_body(plat *p, const char *token, int64_t wall_ms, plat_reply *out) {
  jw w;
  jw_init(&w);
  jw_fmt(&w, "{\"access_token\":\"%s\",\"token_type\":\"Bearer\",\"expires_in\":%u,"
         "\"issued_at\":%lld}", token, p->cfg.token_ttl_s, (long long)(wall_ms / 1000));
  plat_reply_take(out, 200, &w);
}

/* Checks credentials and issues a token. Locked. */
static void plat_auth_locked(plat *p, const char *email, const char *pw, int64_t mono,
                             int64_t wall, plat_reply *out) {
  long a = acct_find_email(p->accounts, email);
  out->account = a;
  char token[PLAT_TOKEN_LEN + 1];
  if (a < 0 || strcmp(acct_get(p->accounts, (size_t)a)->password, pw) != 0)
    plat_reply_error(out, 401, "Invalid credentials", "email or password is wrong");
  else if (plat_issue(p, a, mono, token) != 0)
    plat_reply_error(out, 500, "Internal server error", "out of memory");
  else {
    plat_token_body(p, token, wall, out);
    hostile_answer h;
    if (p->hostile)
      plat_take_hostile(out, hostile_auth(p->hostile, (size_t)a, &h), &h);
  }
  plat_count(p, a, PLAT_EP_AUTH, out);
}

void plat_auth(plat *p, const plat_request *rq, plat_reply *out) {
  char buf[PLAT_CRED_MAX];
  char *email = NULL, *pw = NULL;
  memset(out, 0, sizeof *out);
  out->account = -1;
  int r = plat_basic(rq->authorization, buf, sizeof buf, &email, &pw);
  if (r > 0) {
    plat_reply_error(out, 401, "Missing credentials",
                     "send Authorization: Basic base64(email:password)");
    return;
  }
  if (r < 0) {
    plat_reply_error(out, 400, "Malformed Authorization header",
                     "expected Basic base64(email:password)");
    return;
  }
  pthread_mutex_lock(&p->mu);
  plat_auth_locked(p, email, pw, rq->mono_ms, rq->wall_ms, out);
  pthread_mutex_unlock(&p->mu);
}

/* ---- the /api gate: token, client binding, rate limit ---------------------- */

/* 0 when account a may make another request now (recorded); else *out is
 * the 429 (or a 500 on OOM) and -1 is returned. Locked. */
static int plat_rate_check(plat *p, long a, int64_t now, plat_reply *out) {
  long wait = plat_rate_take(p, a, now);
  if (wait == 0)
    return 0;
  if (wait < 0) {
    plat_reply_error(out, 500, "Internal server error", "out of memory");
    return -1;
  }
  jw w;
  jw_init(&w);
  jw_fmt(&w, "{\"error\":\"Rate limit exceeded\",\"message\":\"at most %u requests per "
         "%u ms per client\",\"retry_after\":%ld}", p->cfg.rate_limit,
         p->cfg.rate_window_ms, wait);
  plat_reply_take(out, 429, &w);
  out->retry_after_s = (uint32_t)wait;
  return -1;
}

/* Authenticates an /api request (401/400 answers), then applies the rate
 * limit (429). Returns the account index, or -1 with *out filled. Locked. */
static long plat_gate(plat *p, const plat_request *rq, plat_reply *out) {
  long a = rq->client_id ? acct_find_id(p->accounts, rq->client_id) : -1;
  const char *token = plat_after_scheme(rq->authorization, "Bearer");
  const plat_token *t = NULL;
  out->account = a;
  if (!rq->authorization)
    plat_reply_error(out, 401, "Missing token", "send Authorization: Bearer <token>");
  else if (!token)
    plat_reply_error(out, 401, "Invalid token", "expected Authorization: Bearer <token>");
  else if (!rq->client_id)
    plat_reply_error(out, 400, "Missing client id", "send X-Client-Id: <client id>");
  else if (a < 0 || !(t = plat_find_token(p, a, token)))
    plat_reply_error(out, 401, "Invalid token", "the token is not valid for this client");
  else if (t->expires_ms <= rq->mono_ms)
    plat_reply_error(out, 401, "Token expired", "authenticate again");
  else
    return plat_rate_check(p, a, rq->mono_ms, out) == 0 ? a : -1;
  return -1;
}

/* ---- GET /api/campaigns ---------------------------------------------------- */

/* What the list decision asks the unlocked part to render. */
typedef enum { PLAT_LIST_DONE, PLAT_LIST_PAGE, PLAT_LIST_MALFORMED } plat_list_kind;

/* Applies the fault schedule and the malformed rate to a well-formed list
 * request of client c. Returns what still has to be rendered. Locked. */
static plat_list_kind plat_list_faults(plat *p, plat_client *c, plat_reply *out, int *variant) {
  uint64_t seq = p->cfg.faults_platform ? ++p->list_seq : ++c->list_seq;
  out->status = 200;
  if (p->cfg.hang_every && seq % p->cfg.hang_every == 0) {
    out->action = PLAT_HANG;
    return PLAT_LIST_DONE;
  }
  if (p->cfg.fail_every && seq % p->cfg.fail_every == 0) {
    plat_reply_error(out, 503, "Service unavailable", "try again later");
    return PLAT_LIST_DONE;
  }
  if (!plat_roll(p, p->cfg.malformed_rate))
    return PLAT_LIST_PAGE;
  *variant = (int)(plat_next(&p->rng) % 3);
  return PLAT_LIST_MALFORMED;
}

/* Decides a list request that passed the gate: bad parameters (which do not
 * advance the fault counter), hang, 503, malformed or a page. Locked. */
static plat_list_kind plat_list_locked(plat *p, long a, int params_ok, plat_reply *out,
                                       int *variant) {
  plat_list_kind kind = PLAT_LIST_DONE;
  if (params_ok)
    kind = plat_list_faults(p, &p->clients[a], out, variant);
  else
    plat_reply_error(out, 400, "Bad request",
                     "page must be an integer >= 1 and limit an integer 1..1000");
  plat_count(p, a, PLAT_EP_LIST, out);
  plat_delay(out, p->cfg.list_latency_ms);
  return kind;
}

void plat_list(plat *p, const plat_request *rq, plat_reply *out) {
  uint32_t page = 0, limit = 0;
  int params_ok = plat_parse_u32(rq->page, 1, 1000000000u, 1, &page) == 0 &&
                  plat_parse_u32(rq->limit, 1, PLAT_LIST_MAX_LIMIT, 10, &limit) == 0;
  int variant = 0;
  plat_list_kind kind = PLAT_LIST_DONE;
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&p->mu);
  long a = plat_gate(p, rq, out);
  if (a < 0)
    plat_count(p, out->account, PLAT_EP_LIST, out);
  else
    kind = plat_list_locked(p, a, params_ok, out, &variant);
  pthread_mutex_unlock(&p->mu);
  if (kind == PLAT_LIST_DONE)
    return;
  plat_reply page_reply = {0};
  plat_list_body(p->accounts, (size_t)a, page, limit, p->hostile != NULL, p->cfg.campaign_bytes,
                 &page_reply);
  free(out->body);
  out->body = page_reply.body;
  out->body_len = page_reply.body_len;
  if (kind == PLAT_LIST_MALFORMED)
    plat_malform(out, variant, PLAT_EP_LIST);
  else if (p->hostile && out->body) {
    hostile_answer h;
    pthread_mutex_lock(&p->mu);
    int r = hostile_list(p->hostile, (size_t)a, page, limit, out->body, out->body_len, &h);
    pthread_mutex_unlock(&p->mu);
    plat_take_hostile(out, r, &h);
  }
}

/* ---- POST /api/campaigns/{id}/sync ----------------------------------------- */

/* True when the body is a JSON object whose "campaign_id" equals the id. */
static int plat_sync_body_ok(const plat_request *rq) {
  if (!rq->body || !rq->campaign_id)
    return 0;
  cJSON *root = cJSON_ParseWithLength(rq->body, rq->body_len);
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "campaign_id");
  int ok = cJSON_IsObject(root) && cJSON_IsString(id) &&
           strcmp(id->valuestring, rq->campaign_id) == 0;
  cJSON_Delete(root);
  return ok;
}

static int plat_listed(const char *const *ids, size_t n, const char *id) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(ids[i], id) == 0)
      return 1;
  return 0;
}

static void plat_sync_ok_body(const char *id, int64_t wall_ms, plat_reply *out) {
  char now[32];
  plat_iso8601(wall_ms, now);
  jw w;
  jw_init(&w);
  jw_raw(&w, "{\"success\":true,\"campaign_id\":");
  jw_str(&w, id);
  jw_fmt(&w, ",\"synced_at\":\"%s\",\"message\":\"Campaign synced\"}", now);
  plat_reply_take(out, 200, &w);
}

static void plat_reject_body(const char *id, plat_reply *out) {
  jw w;
  jw_init(&w);
  jw_raw(&w, "{\"success\":false,\"error\":\"Campaign rejected\",\"message\":");
  jw_str(&w, "the platform rejected this campaign");
  jw_raw(&w, ",\"campaign_id\":");
  jw_str(&w, id);
  jw_raw(&w, "}");
  plat_reply_take(out, 400, &w);
}

/* Adds one sync of campaign k to account a; -1 on OOM. Locked. */
static int plat_mark_synced(plat *p, long a, uint32_t k) {
  plat_client *c = &p->clients[a];
  uint32_t n = acct_get(p->accounts, (size_t)a)->campaigns;
  if (!c->synced && !(c->synced = calloc(n, sizeof *c->synced)))
    return -1;
  c->synced[k - 1]++;
  return 0;
}

/* K of a campaign id of account a (with --hostile, its odd ids too). */
static uint32_t plat_campaign_k(const plat *p, size_t a, const char *id) {
  uint32_t k = p->hostile ? hostile_campaign_k(a, id, acct_get(p->accounts, a)->campaigns) : 0;
  return k ? k : acct_campaign_k(p->accounts, a, id);
}

/* A sync the platform accepts: 200 and counted, unless --hostile answers
 * this attempt otherwise. Locked. */
static void plat_sync_ok(plat *p, long a, uint32_t k, const plat_request *rq, plat_reply *out) {
  hostile_answer h;
  plat_sync_ok_body(rq->campaign_id, rq->wall_ms, out);
  int r = p->hostile ? hostile_sync(p->hostile, (size_t)a, k, out->body, out->body_len, &h) : 0;
  if (r != 0) {
    plat_take_hostile(out, r, &h);
  } else if (plat_mark_synced(p, a, k) != 0) {
    free(out->body);
    plat_reply_error(out, 500, "Internal server error", "out of memory");
  }
}

/* Decides a sync request that passed the gate. Locked. */
static void plat_sync_locked(plat *p, long a, const plat_request *rq, int body_ok,
                             plat_reply *out) {
  const char *id = rq->campaign_id;
  uint32_t k = body_ok ? plat_campaign_k(p, (size_t)a, id) : 0;
  if (!body_ok)
    plat_reply_error(out, 400, "Bad request",
                     "body must be {\"campaign_id\":\"<the id in the URL>\"}");
  else if (k == 0)
    plat_reply_error(out, 404, "Campaign not found", "no such campaign for this client");
  else if (plat_listed(p->cfg.reject_campaigns, p->cfg.n_reject_campaigns, id))
    plat_reject_body(id, out);
  else if (plat_listed(p->cfg.fail_campaigns, p->cfg.n_fail_campaigns, id) ||
           plat_roll(p, p->cfg.error_rate))
    plat_reply_error(out, 500, "Internal server error", "the sync failed, try again");
  else if (plat_roll(p, p->cfg.malformed_rate)) {
    plat_sync_ok_body(id, rq->wall_ms, out);
    plat_malform(out, (int)(plat_next(&p->rng) % 3), PLAT_EP_SYNC);
  } else
    plat_sync_ok(p, a, k, rq, out);
  plat_count(p, a, PLAT_EP_SYNC, out);
  plat_delay(out, p->cfg.sync_latency_ms);
}

void plat_sync(plat *p, const plat_request *rq, plat_reply *out) {
  int body_ok = plat_sync_body_ok(rq);
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&p->mu);
  long a = plat_gate(p, rq, out);
  if (a < 0)
    plat_count(p, out->account, PLAT_EP_SYNC, out);
  else
    plat_sync_locked(p, a, rq, body_ok, out);
  pthread_mutex_unlock(&p->mu);
}

/* ---- admin ------------------------------------------------------------------ */

static void plat_stats_requests(jw *w, const plat_client *c) {
  jw_raw(w, "\"requests\":{");
  for (int ep = 0; ep < PLAT_EP_COUNT; ep++) {
    jw_fmt(w, "%s\"%s\":{", ep ? "," : "", plat_ep_names[ep]);
    const char *sep = "";
    for (size_t s = 0; s < PLAT_SLOTS; s++) {
      if (!c->counts[ep][s])
        continue;
      if (plat_codes[s] == PLAT_HANG_CODE)
        jw_fmt(w, "%s\"hang\":%llu", sep, (unsigned long long)c->counts[ep][s]);
      else
        jw_fmt(w, "%s\"%d\":%llu", sep, plat_codes[s], (unsigned long long)c->counts[ep][s]);
      sep = ",";
    }
    jw_raw(w, "}");
  }
  jw_raw(w, "}");
}

static void plat_stats_synced(jw *w, const plat_client *c, uint32_t campaigns) {
  jw_raw(w, "\"synced\":{");
  const char *sep = "";
  for (uint32_t k = 1; c->synced && k <= campaigns; k++) {
    if (!c->synced[k - 1])
      continue;
    jw_fmt(w, "%s\"campaign_%u\":%u", sep, k, c->synced[k - 1]);
    sep = ",";
  }
  jw_raw(w, "}");
}

void plat_stats(plat *p, plat_reply *out) {
  jw w;
  jw_init(&w);
  jw_raw(&w, "{\"clients\":{");
  pthread_mutex_lock(&p->mu);
  for (size_t i = 0; i < acct_count(p->accounts); i++) {
    const acct_info *ai = acct_get(p->accounts, i);
    jw_raw(&w, i ? "," : "");
    jw_str(&w, ai->id);
    jw_raw(&w, ":{");
    plat_stats_requests(&w, &p->clients[i]);
    jw_raw(&w, ",");
    plat_stats_synced(&w, &p->clients[i], ai->campaigns);
    jw_raw(&w, "}");
  }
  jw_raw(&w, "}");
  if (p->hostile)
    jw_fmt(&w, ",\"hostile\":{\"redirects_followed\":%llu}",
           (unsigned long long)hostile_redirects_followed(p->hostile));
  pthread_mutex_unlock(&p->mu);
  jw_raw(&w, "}");
  memset(out, 0, sizeof *out);
  out->account = -1;
  plat_reply_take(out, 200, &w);
}

static void plat_ok(plat_reply *out) {
  memset(out, 0, sizeof *out);
  out->account = -1;
  jw w;
  jw_init(&w);
  jw_raw(&w, "{\"ok\":true}");
  plat_reply_take(out, 200, &w);
}

void plat_reset(plat *p, plat_reply *out) {
  pthread_mutex_lock(&p->mu);
  for (size_t i = 0; i < acct_count(p->accounts); i++) {
    plat_client *c = &p->clients[i];
    memset(c->counts, 0, sizeof c->counts);
    if (c->synced)
      memset(c->synced, 0, acct_get(p->accounts, i)->campaigns * sizeof *c->synced);
    c->list_seq = 0;
    c->window_head = 0;
    c->window_len = 0;
  }
  pthread_mutex_unlock(&p->mu);
  plat_ok(out);
}

void plat_tokens(plat *p, plat_reply *out) {
  jw w;
  jw_init(&w);
  jw_raw(&w, "{\"tokens\":{");
  pthread_mutex_lock(&p->mu);
  for (size_t i = 0; i < acct_count(p->accounts); i++) {
    const plat_token *t = p->clients[i].tokens;
    jw_raw(&w, i ? "," : "");
    jw_str(&w, acct_get(p->accounts, i)->id);
    jw_raw(&w, ":[");
    for (int j = 0, n = 0; t && j < PLAT_TOKENS_PER_ACCOUNT; j++) {
      if (t[j].text[0] == '\0')
        continue;
      jw_raw(&w, n++ ? "," : "");
      jw_str(&w, t[j].text);
    }
    jw_raw(&w, "]");
  }
  pthread_mutex_unlock(&p->mu);
  jw_raw(&w, "}}");
  memset(out, 0, sizeof *out);
  out->account = -1;
  plat_reply_take(out, 200, &w);
}

void plat_revoke_tokens(plat *p, plat_reply *out) {
  pthread_mutex_lock(&p->mu);
  for (size_t i = 0; i < acct_count(p->accounts); i++) {
    plat_token *t = p->clients[i].tokens;
    for (int j = 0; t && j < PLAT_TOKENS_PER_ACCOUNT; j++)
      t[j].expires_ms = INT64_MIN;
  }
  pthread_mutex_unlock(&p->mu);
  plat_ok(out);
}
