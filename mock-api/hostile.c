/* hostile: the --hostile behaviours (see hostile.h). */
#include "hostile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOSTILE_MAX_PAGES 65536   /* first attempts are tracked up to this page */
#define HUGE_PAGE_ITEMS 200000
#define DEEP_OK 400
#define DEEP_HOSTILE 5000

typedef struct hostile_account {
  uint8_t *pages_seen;   /* bitmap of pages asked for at least once */
  int sync_seen;         /* campaign 1 was asked to sync before */
  unsigned logins;
} hostile_account;

struct hostile {
  size_t n;
  hostile_account *acct;
  uint64_t redirects_followed;
};

static const char *const kind_names[HOSTILE_KINDS] = {
    "odd-ids",   "numbers",   "nested",    "wrong-types", "oversized",
    "huge-page", "truncated", "slow-body", "redirect",    "bad-token"};

/* Campaign ids of an odd-ids account, campaign_1 first; LONG_ID is built. */
#define LONG_ID "\x01long"
static const char *const odd_ids[] = {
    ".", "..", "a/b", "%2F", "caf\xc3\xa9 \xe2\x98\x83", "?x=1#y", "", "bad\x01id", LONG_ID};
#define ODD_IDS (sizeof odd_ids / sizeof odd_ids[0])

hostile *hostile_new(size_t accounts) {
  hostile *h = calloc(1, sizeof *h);
  if (h && !(h->acct = calloc(accounts ? accounts : 1, sizeof *h->acct))) {
    free(h);
    return NULL;
  }
  if (h)
    h->n = accounts;
  return h;
}

void hostile_free(hostile *h) {
  if (!h)
    return;
  for (size_t i = 0; i < h->n; i++)
    free(h->acct[i].pages_seen);
  free(h->acct);
  free(h);
}

hostile_kind hostile_kind_of(size_t account) {
  return (hostile_kind)(account % HOSTILE_KINDS);
}

const char *hostile_kind_name(hostile_kind k) {
  return k < HOSTILE_KINDS ? kind_names[k] : "?";
}

const char *hostile_campaign_id(size_t a, uint32_t k, char *buf, size_t cap) {
  if (hostile_kind_of(a) == HK_ODD_IDS && k >= 1 && k <= ODD_IDS) {
    const char *id = odd_ids[k - 1];
    if (strcmp(id, LONG_ID) != 0)
      return id;
    memset(buf, 'L', 300);   /* over the 256 bytes a campaign id may have */
    buf[300] = '\0';
    return buf;
  }
  snprintf(buf, cap, "campaign_%u", k);
  return buf;
}

uint32_t hostile_campaign_k(size_t a, const char *id, uint32_t campaigns) {
  char buf[512];
  if (hostile_kind_of(a) != HK_ODD_IDS)
    return 0;
  for (uint32_t k = 1; k <= campaigns && k <= ODD_IDS; k++)
    if (strcmp(hostile_campaign_id(a, k, buf, sizeof buf), id) == 0)
      return k;
  if (strncmp(id, "campaign_", 9) != 0)
    return 0;
  uint32_t k = (uint32_t)strtoul(id + 9, NULL, 10);
  return k > ODD_IDS && k <= campaigns ? k : 0;
}

static void nested(jw *w, unsigned depth) {
  for (unsigned i = 0; i < depth; i++)
    jw_raw(w, "[");
  for (unsigned i = 0; i < depth; i++)
    jw_raw(w, "]");
}

static void blob(jw *w, const char *name, size_t bytes) {
  jw_fmt(w, ",\"%s\":\"", name);
  for (size_t i = 0; i < bytes; i++)
    jw_raw(w, "x");
  jw_raw(w, "\"");
}

void hostile_campaign_extra(jw *w, size_t a, uint32_t k) {
  switch (hostile_kind_of(a)) {
  case HK_NUMBERS:
    jw_raw(w, ",\"big\":9007199254740993,\"huge\":1e400,\"tiny\":-1e-400,"
              "\"precise\":0.1000000000000000055511151231257827");
    break;
  case HK_NESTED:
    jw_raw(w, ",\"deep\":");
    nested(w, DEEP_OK);
    break;
  case HK_WRONG_TYPES:
    jw_raw(w, ",\"labels\":null,\"spend\":\"lots\",\"flags\":{\"x\":[true,{},-0]},\"owner\":12");
    break;
  case HK_OVERSIZED:
    if (k == 1)
      blob(w, "blob", 100000);
    else if (k == 2)
      blob(w, "blob", 50000);
    break;
  default:
    break;
  }
}

/* 1 the first time account a asks for page, else 0. */
static int first_page_attempt(hostile *h, size_t a, uint32_t page) {
  hostile_account *acc = &h->acct[a];
  if (page == 0 || page > HOSTILE_MAX_PAGES)
    return 0;
  if (!acc->pages_seen && !(acc->pages_seen = calloc(HOSTILE_MAX_PAGES / 8 + 1, 1)))
    return 0;
  uint8_t bit = (uint8_t)(1u << (page % 8));
  if (acc->pages_seen[page / 8] & bit)
    return 0;
  acc->pages_seen[page / 8] |= bit;
  return 1;
}

static int answer(hostile_answer *out, int status, jw *w, hostile_delivery d, const char *location) {
  memset(out, 0, sizeof *out);
  out->body = jw_take(w, &out->body_len);
  if (!out->body)
    return -1;
  out->status = status;
  out->delivery = d;
  out->location = location;
  return 1;
}

static int answer_copy(hostile_answer *out, const char *body, size_t len, hostile_delivery d) {
  jw w;
  jw_init(&w);
  jw_rawn(&w, body, len);
  return answer(out, 200, &w, d, NULL);
}

static int redirect(hostile_answer *out, int status) {
  jw w;
  jw_init(&w);
  jw_raw(&w, "{\"message\":\"moved\"}");
  return answer(out, status, &w, HD_NORMAL, HOSTILE_REDIRECT_PATH);
}

static int huge_page(hostile_answer *out) {
  jw w;
  jw_init(&w);
  jw_raw(&w, "{\"data\":[");
  for (unsigned i = 0; i < HUGE_PAGE_ITEMS; i++)
    jw_fmt(&w, "%s{\"id\":\"t%u\"}", i ? "," : "", i);
  jw_raw(&w, "],\"pagination\":{\"has_more\":false}}");
  return answer(out, 200, &w, HD_NORMAL, NULL);
}

static int deep_page(hostile_answer *out) {
  jw w;
  jw_init(&w);
  jw_raw(&w, "{\"data\":[{\"id\":\"campaign_1\",\"deep\":");
  nested(&w, DEEP_HOSTILE);
  jw_raw(&w, "}],\"pagination\":{\"has_more\":false}}");
  return answer(out, 200, &w, HD_NORMAL, NULL);
}

static int wrong_types_page(hostile_answer *out) {
  jw w;
  jw_init(&w);
  jw_raw(&w, "{\"data\":[{\"id\":1}],\"pagination\":{\"has_more\":\"yes\",\"total\":\"many\"}}");
  return answer(out, 200, &w, HD_NORMAL, NULL);
}

int hostile_list(hostile *h, size_t a, uint32_t page, uint32_t limit, const char *page_body,
                 size_t page_len, hostile_answer *out) {
  (void)limit;
  if (!first_page_attempt(h, a, page))
    return 0;
  switch (hostile_kind_of(a)) {
  case HK_NESTED: return deep_page(out);
  case HK_WRONG_TYPES: return wrong_types_page(out);
  case HK_HUGE_PAGE: return page == 1 ? huge_page(out) : 0;
  case HK_TRUNCATED: return answer_copy(out, page_body, page_len, HD_TRUNCATE);
  case HK_SLOW_BODY: return answer_copy(out, page_body, page_len, HD_TRICKLE);
  case HK_REDIRECT: return redirect(out, 302);
  default: return 0;
  }
}

int hostile_sync(hostile *h, size_t a, uint32_t k, const char *ok_body, size_t ok_len,
                 hostile_answer *out) {
  hostile_kind kind = hostile_kind_of(a);
  if (k != 1)
    return 0;
  if (kind == HK_OVERSIZED) {
    jw w;
    jw_init(&w);
    jw_raw(&w, "{\"error\":\"Internal server error\",\"message\":\"too big to sync\"}");
    return answer(out, 500, &w, HD_NORMAL, NULL);
  }
  if (h->acct[a].sync_seen)
    return 0;
  h->acct[a].sync_seen = 1;
  switch (kind) {
  case HK_WRONG_TYPES: {
    jw w;
    jw_init(&w);
    jw_raw(&w, "{\"success\":\"yes\",\"campaign_id\":1,\"synced_at\":12}");
    return answer(out, 200, &w, HD_NORMAL, NULL);
  }
  case HK_TRUNCATED: return answer_copy(out, ok_body, ok_len, HD_TRUNCATE);
  case HK_REDIRECT: return redirect(out, 307);
  default: return 0;
  }
}

int hostile_auth(hostile *h, size_t a, hostile_answer *out) {
  if (hostile_kind_of(a) != HK_BAD_TOKEN || h->acct[a].logins >= 2)
    return 0;
  jw w;
  jw_init(&w);
  if (h->acct[a].logins++ == 0) {
    jw_raw(&w, "{\"access_token\":\"abc\\r\\nX-Injected: 1\",\"token_type\":\"Bearer\",\"expires_in\":3600}");
  } else {
    jw_raw(&w, "{\"access_token\":\"");
    for (int i = 0; i < 600; i++)
      jw_raw(&w, "t");
    jw_raw(&w, "\",\"token_type\":\"Bearer\",\"expires_in\":3600}");
  }
  return answer(out, 200, &w, HD_NORMAL, NULL);
}

void hostile_redirect_followed(hostile *h) {
  h->redirects_followed++;
}

uint64_t hostile_redirects_followed(const hostile *h) {
  return h->redirects_followed;
}
