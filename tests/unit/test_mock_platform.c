/* Unit tests of adsync-mock-api's pure core: accounts, platform decisions
 * (auth, tokens, rate limit, faults, list, sync, stats), routing, the CLI
 * and the JSON text builder. No sockets, no threads: time is passed in. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounts.h"
#include "cli.h"
#include "jsonw.h"
#include "platform.h"
#include "route.h"

/* ---- helpers ------------------------------------------------------------------ */

static plat_config default_config(void) {
  plat_config c;
  memset(&c, 0, sizeof c);
  c.rate_limit = 0;
  c.token_ttl_s = 3600;
  c.seed = 42;
  c.token_seed = 7;
  return c;
}

static plat *new_plat(const plat_config *c, uint32_t clients, uint32_t campaigns) {
  plat *p = plat_new(c, acct_list_generate(clients, campaigns));
  assert_non_null(p);
  return p;
}

static void b64(const char *in, char *out) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t n = strlen(in), o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)(unsigned char)in[i] << 16;
    if (i + 1 < n) v |= (uint32_t)(unsigned char)in[i + 1] << 8;
    if (i + 2 < n) v |= (unsigned char)in[i + 2];
    out[o++] = tab[(v >> 18) & 63];
    out[o++] = tab[(v >> 12) & 63];
    out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
    out[o++] = i + 2 < n ? tab[v & 63] : '=';
  }
  out[o] = '\0';
}

static void basic_header(const char *email, const char *pw, char *out) {
  char creds[256], enc[400];
  snprintf(creds, sizeof creds, "%s:%s", email, pw);
  b64(creds, enc);
  sprintf(out, "Basic %s", enc);
}

static plat_request req_at(int64_t mono_ms) {
  plat_request r;
  memset(&r, 0, sizeof r);
  r.mono_ms = mono_ms;
  r.wall_ms = 1767175200000LL + mono_ms;
  return r;
}

/* Authenticates client_<n> at time t and writes "Bearer <token>" to out. */
static void login(plat *p, int n, int64_t t, char *out) {
  char id[32], email[64], pw[64], hdr[512];
  snprintf(id, sizeof id, "client_%d", n);
  snprintf(email, sizeof email, "%s@example.test", id);
  snprintf(pw, sizeof pw, "secret-%s", id);
  basic_header(email, pw, hdr);
  plat_request rq = req_at(t);
  rq.authorization = hdr;
  plat_reply r;
  plat_auth(p, &rq, &r);
  assert_int_equal(r.status, 200);
  cJSON *j = cJSON_Parse(r.body);
  const cJSON *tok = cJSON_GetObjectItemCaseSensitive(j, "access_token");
  assert_true(cJSON_IsString(tok));
  sprintf(out, "Bearer %s", tok->valuestring);
  cJSON_Delete(j);
  plat_reply_clear(&r);
}

/* The "error" member of a reply body (static buffer). */
static const char *error_of(const plat_reply *r) {
  static char buf[128];
  cJSON *j = cJSON_Parse(r->body);
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
  snprintf(buf, sizeof buf, "%s", cJSON_IsString(e) ? e->valuestring : "");
  cJSON_Delete(j);
  return buf;
}

static int list_at(plat *p, const char *auth, const char *client, const char *page,
                   const char *limit, int64_t t, plat_reply *r) {
  plat_request rq = req_at(t);
  rq.authorization = auth;
  rq.client_id = client;
  rq.page = page;
  rq.limit = limit;
  plat_list(p, &rq, r);
  return r->status;
}

static int sync_at(plat *p, const char *auth, const char *client, const char *cid, int64_t t,
                   plat_reply *r) {
  char body[256];
  snprintf(body, sizeof body, "{\"campaign_id\":\"%s\"}", cid);
  plat_request rq = req_at(t);
  rq.authorization = auth;
  rq.client_id = client;
  rq.campaign_id = cid;
  rq.body = body;
  rq.body_len = strlen(body);
  plat_sync(p, &rq, r);
  return r->status;
}

static char *stats_of(plat *p) {
  plat_reply r;
  plat_stats(p, &r);
  char *s = r.body;
  r.body = NULL;
  plat_reply_clear(&r);
  return s;
}

/* ---- accounts ----------------------------------------------------------------- */

static void test_accounts_generated(void **state) {
  (void)state;
  acct_list *l = acct_list_generate(3, 100);
  assert_non_null(l);
  assert_int_equal(acct_count(l), 3);
  assert_string_equal(acct_get(l, 2)->id, "client_3");
  assert_string_equal(acct_get(l, 2)->email, "client_3@example.test");
  assert_string_equal(acct_get(l, 2)->password, "secret-client_3");
  assert_int_equal(acct_find_id(l, "client_2"), 1);
  assert_int_equal(acct_find_id(l, "client_4"), -1);
  assert_int_equal(acct_find_email(l, "client_1@example.test"), 0);
  assert_int_equal(acct_find_email(l, "nobody@example.test"), -1);
  assert_int_equal(acct_campaign_k(l, 0, "campaign_1"), 1);
  assert_int_equal(acct_campaign_k(l, 0, "campaign_100"), 100);
  assert_int_equal(acct_campaign_k(l, 0, "campaign_101"), 0);
  assert_int_equal(acct_campaign_k(l, 0, "campaign_0"), 0);
  assert_int_equal(acct_campaign_k(l, 0, "campaign_01"), 0);
  assert_int_equal(acct_campaign_k(l, 0, "campaign_1x"), 0);
  assert_int_equal(acct_campaign_k(l, 0, "campaign_"), 0);
  assert_int_equal(acct_campaign_k(l, 0, "campaign_99999999999999999999"), 0);
  acct_campaign_info c;
  acct_campaign(l, 0, 1, &c);
  assert_string_equal(c.name, "Campaign 1");
  assert_string_equal(c.status, "active");
  assert_int_equal(c.budget, 1100);
  assert_int_equal(c.impressions, 42);
  assert_int_equal(c.clicks, 7);
  assert_int_equal(c.conversions, 1);
  assert_string_equal(c.created_at, "2025-12-31T10:00:00.000Z");
  acct_campaign(l, 0, 2, &c);
  assert_string_equal(c.status, "paused");
  assert_string_equal(c.created_at, "2025-12-31T09:00:00.137Z");
  acct_list_free(l);
}

static void test_accounts_json(void **state) {
  (void)state;
  const char *text =
      "[{\"id\":\"acme\",\"email\":\"a@x.test\",\"password\":\"pw\",\"campaigns\":3,"
      "\"names\":{\"campaign_2\":\"Q \\\"uoted\\\" \\u00e9\"}},"
      "{\"id\":\"beta\",\"email\":\"b@x.test\",\"password\":\"pw2\"}]";
  char err[200];
  acct_list *l = acct_list_from_json(text, strlen(text), 7, err, sizeof err);
  assert_non_null(l);
  assert_int_equal(acct_count(l), 2);
  assert_int_equal(acct_get(l, 0)->campaigns, 3);
  assert_int_equal(acct_get(l, 1)->campaigns, 7);
  acct_campaign_info c;
  acct_campaign(l, 0, 2, &c);
  assert_string_equal(c.name, "Q \"uoted\" \xc3\xa9");
  acct_campaign(l, 0, 3, &c);
  assert_string_equal(c.name, "Campaign 3");
  acct_list_free(l);

  static const char *bad[] = {
      "{}",
      "[{\"id\":\"a\",\"email\":\"a@x\"}]",
      "[{\"id\":\"a\",\"email\":\"a@x\",\"password\":\"p\"},{\"id\":\"a\",\"email\":\"b@x\",\"password\":\"p\"}]",
      "[{\"id\":\"a\",\"email\":\"a@x\",\"password\":\"p\",\"campaigns\":2,\"names\":{\"campaign_3\":\"x\"}}]",
      "[{\"id\":\"a\",\"email\":\"a@x\",\"password\":\"p\",\"campaigns\":-1}]",
      "[1]",
      "not json",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = '\0';
    assert_null(acct_list_from_json(bad[i], strlen(bad[i]), 5, err, sizeof err));
    assert_true(strlen(err) > 0);
  }
}

/* ---- auth and tokens ---------------------------------------------------------- */

static void test_auth(void **state) {
  (void)state;
  plat_config cfg = default_config();
  plat *p = new_plat(&cfg, 2, 10);
  char hdr[512];
  plat_request rq = req_at(0);
  plat_reply r;

  basic_header("client_1@example.test", "secret-client_1", hdr);
  rq.authorization = hdr;
  plat_auth(p, &rq, &r);
  assert_int_equal(r.status, 200);
  cJSON *j = cJSON_Parse(r.body);
  assert_int_equal(strlen(cJSON_GetObjectItem(j, "access_token")->valuestring), PLAT_TOKEN_LEN);
  assert_string_equal(cJSON_GetObjectItem(j, "token_type")->valuestring, "Bearer");
  assert_int_equal(cJSON_GetObjectItem(j, "expires_in")->valueint, 3600);
  assert_int_equal((long long)cJSON_GetObjectItem(j, "issued_at")->valuedouble, 1767175200LL);
  cJSON_Delete(j);
  plat_reply_clear(&r);

  basic_header("client_1@example.test", "wrong", hdr);
  plat_auth(p, &rq, &r);
  assert_int_equal(r.status, 401);
  assert_string_equal(error_of(&r), "Invalid credentials");
  plat_reply_clear(&r);

  basic_header("ghost@example.test", "x", hdr);
  plat_auth(p, &rq, &r);
  assert_int_equal(r.status, 401);
  plat_reply_clear(&r);

  static const char *garbled[] = {"Basic !!!!", "Basic", "Bearer abc", "Basic Zm9v",
                                  "Basic Zm9vOmJhcg=x", "Basic A"};
  for (size_t i = 0; i < sizeof garbled / sizeof garbled[0]; i++) {
    rq.authorization = garbled[i];
    plat_auth(p, &rq, &r);
    assert_int_equal(r.status, 400);
    plat_reply_clear(&r);
  }
  rq.authorization = NULL;
  plat_auth(p, &rq, &r);
  assert_int_equal(r.status, 401);
  plat_reply_clear(&r);

  char *s = stats_of(p);
  assert_non_null(strstr(s, "\"client_1\":{\"requests\":{\"auth\":{\"200\":1,\"401\":1}"));
  assert_non_null(strstr(s, "\"client_2\":{\"requests\":{\"auth\":{},"));
  free(s);
  plat_free(p);
}

static void test_token_checks(void **state) {
  (void)state;
  plat_config cfg = default_config();
  cfg.token_ttl_s = 1;
  plat *p = new_plat(&cfg, 2, 10);
  char t1[64], t2[64];
  plat_reply r;
  login(p, 1, 0, t1);
  login(p, 2, 0, t2);
  assert_string_not_equal(t1, t2);

  assert_int_equal(list_at(p, t1, "client_1", NULL, NULL, 10, &r), 200);
  plat_reply_clear(&r);
  assert_int_equal(list_at(p, t1, "client_2", NULL, NULL, 10, &r), 401);
  assert_string_equal(error_of(&r), "Invalid token");
  plat_reply_clear(&r);
  assert_int_equal(list_at(p, "Bearer 0123456789abcdef0123456789abcdef", "client_1", NULL,
                           NULL, 10, &r), 401);
  assert_string_equal(error_of(&r), "Invalid token");
  plat_reply_clear(&r);
  assert_int_equal(list_at(p, NULL, "client_1", NULL, NULL, 10, &r), 401);
  plat_reply_clear(&r);
  assert_int_equal(list_at(p, t1, NULL, NULL, NULL, 10, &r), 400);
  plat_reply_clear(&r);
  assert_int_equal(list_at(p, t1, "nobody", NULL, NULL, 10, &r), 401);
  plat_reply_clear(&r);
  /* expiry: ttl 1 s */
  assert_int_equal(list_at(p, t1, "client_1", NULL, NULL, 999, &r), 200);
  plat_reply_clear(&r);
  assert_int_equal(list_at(p, t1, "client_1", NULL, NULL, 1000, &r), 401);
  assert_string_equal(error_of(&r), "Token expired");
  plat_reply_clear(&r);
  /* revoke */
  login(p, 2, 2000, t2);
  assert_int_equal(list_at(p, t2, "client_2", NULL, NULL, 2001, &r), 200);
  plat_reply_clear(&r);
  plat_revoke_tokens(p, &r);
  plat_reply_clear(&r);
  assert_int_equal(list_at(p, t2, "client_2", NULL, NULL, 2002, &r), 401);
  assert_string_equal(error_of(&r), "Token expired");
  plat_reply_clear(&r);
  login(p, 2, 2003, t2);
  assert_int_equal(list_at(p, t2, "client_2", NULL, NULL, 2004, &r), 200);
  plat_reply_clear(&r);
  plat_free(p);
}

/* ---- rate limit ----------------------------------------------------------------- */

static void test_rate_limit(void **state) {
  (void)state;
  plat_config cfg = default_config();
  cfg.rate_limit = 3;
  cfg.rate_window_ms = 1000;
  plat *p = new_plat(&cfg, 2, 10);
  char t1[64], t2[64];
  plat_reply r;
  login(p, 1, 0, t1);
  login(p, 2, 0, t2);
  assert_int_equal(list_at(p, t1, "client_1", NULL, NULL, 0, &r), 200);
  plat_reply_clear(&r);
  assert_int_equal(sync_at(p, t1, "client_1", "campaign_1", 100, &r), 200);
  plat_reply_clear(&r);
  assert_int_equal(list_at(p, t1, "client_1", NULL, NULL, 200, &r), 200);
  plat_reply_clear(&r);
  assert_int_equal(list_at(p, t1, "client_1", NULL, NULL, 300, &r), 429);
  assert_int_equal(r.retry_after_s, 1);
  cJSON *j = cJSON_Parse(r.body);
  assert_string_equal(cJSON_GetObjectItem(j, "error")->valuestring, "Rate limit exceeded");
  assert_int_equal(cJSON_GetObjectItem(j, "retry_after")->valueint, 1);
  cJSON_Delete(j);
  plat_reply_clear(&r);
  /* another client has its own window */
  assert_int_equal(list_at(p, t2, "client_2", NULL, NULL, 300, &r), 200);
  plat_reply_clear(&r);
  /* the oldest entry (t=0) leaves at t=1000; 429s were not recorded */
  assert_int_equal(sync_at(p, t1, "client_1", "campaign_1", 999, &r), 429);
  plat_reply_clear(&r);
  assert_int_equal(list_at(p, t1, "client_1", NULL, NULL, 1000, &r), 200);
  plat_reply_clear(&r);
  assert_int_equal(list_at(p, t1, "client_1", NULL, NULL, 1001, &r), 429);
  plat_reply_clear(&r);
  /* 401s are answered before the rate limit */
  assert_int_equal(list_at(p, "Bearer nope", "client_1", NULL, NULL, 1002, &r), 401);
  plat_reply_clear(&r);
  plat_free(p);

  /* a long window: retry_after rounds up to whole seconds */
  cfg.rate_limit = 1;
  cfg.rate_window_ms = 60000;
  p = new_plat(&cfg, 1, 10);
  login(p, 1, 0, t1);
  assert_int_equal(list_at(p, t1, "client_1", NULL, NULL, 0, &r), 200);
  plat_reply_clear(&r);
  assert_int_equal(list_at(p, t1, "client_1", NULL, NULL, 500, &r), 429);
  assert_int_equal(r.retry_after_s, 60);
  plat_reply_clear(&r);
  plat_free(p);
}

/* ---- list ------------------------------------------------------------------------ */

static void test_list_pages(void **state) {
  (void)state;
  plat_config cfg = default_config();
  plat *p = new_plat(&cfg, 1, 25);
  char t[64];
  plat_reply r;
  login(p, 1, 0, t);
  assert_int_equal(list_at(p, t, "client_1", "3", "10", 1, &r), 200);
  cJSON *j = cJSON_Parse(r.body);
  assert_non_null(j);
  const cJSON *data = cJSON_GetObjectItem(j, "data");
  assert_int_equal(cJSON_GetArraySize(data), 5);
  assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(data, 0), "id")->valuestring,
                      "campaign_21");
  const cJSON *pg = cJSON_GetObjectItem(j, "pagination");
  assert_int_equal(cJSON_GetObjectItem(pg, "page")->valueint, 3);
  assert_int_equal(cJSON_GetObjectItem(pg, "limit")->valueint, 10);
  assert_int_equal(cJSON_GetObjectItem(pg, "total")->valueint, 25);
  assert_true(cJSON_IsFalse(cJSON_GetObjectItem(pg, "has_more")));
  cJSON_Delete(j);
  plat_reply_clear(&r);

  assert_int_equal(list_at(p, t, "client_1", NULL, NULL, 1, &r), 200);
  assert_non_null(strstr(r.body, "\"has_more\":true"));
  assert_non_null(strstr(r.body, "{\"id\":\"campaign_1\",\"name\":\"Campaign 1\",\"status\":"
                                 "\"active\",\"budget\":1100,\"impressions\":42,\"clicks\":7,"
                                 "\"conversions\":1,\"created_at\":\"2025-12-31T10:00:00.000Z\"}"));
  plat_reply_clear(&r);

  assert_int_equal(list_at(p, t, "client_1", "4", "10", 1, &r), 200);
  assert_non_null(strstr(r.body, "\"data\":[]"));
  assert_non_null(strstr(r.body, "\"has_more\":false"));
  plat_reply_clear(&r);

  static const char *bad[][2] = {{"0", "10"}, {"1", "0"}, {"1", "1001"}, {"x", "1"},
                                 {"1", "-1"}, {"", "5"}, {"1", "10 "}, {"99999999999", "1"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(list_at(p, t, "client_1", bad[i][0], bad[i][1], 1, &r), 400);
    plat_reply_clear(&r);
  }
  assert_int_equal(list_at(p, t, "client_1", "1", "1000", 1, &r), 200);
  plat_reply_clear(&r);
  plat_free(p);
}

static void test_list_faults(void **state) {
  (void)state;
  plat_config cfg = default_config();
  cfg.fail_every = 5;
  cfg.hang_every = 10;
  cfg.list_latency_ms = 50;
  plat *p = new_plat(&cfg, 2, 10);
  char t[64];
  plat_reply r;
  login(p, 1, 0, t);
  for (int n = 1; n <= 20; n++) {
    int status = list_at(p, t, "client_1", NULL, NULL, n, &r);
    if (n % 10 == 0) {
      assert_int_equal(r.action, PLAT_HANG);
    } else if (n % 5 == 0) {
      assert_int_equal(status, 503);
      assert_string_equal(error_of(&r), "Service unavailable");
      assert_int_equal(r.action, PLAT_DELAY);
    } else {
      assert_int_equal(status, 200);
      assert_int_equal(r.action, PLAT_DELAY);
      assert_int_equal(r.delay_ms, 50);
    }
    plat_reply_clear(&r);
  }
  /* bad parameters do not advance the fault counter */
  assert_int_equal(list_at(p, t, "client_1", "0", NULL, 30, &r), 400);
  plat_reply_clear(&r);
  char *s = stats_of(p);
  assert_non_null(strstr(s, "\"list\":{\"200\":16,\"400\":1,\"503\":2,\"hang\":2}"));
  free(s);
  plat_reset(p, &r);
  plat_reply_clear(&r);
  s = stats_of(p);
  assert_non_null(strstr(s, "\"client_1\":{\"requests\":{\"auth\":{},\"list\":{},\"sync\":{}},"
                            "\"synced\":{}}"));
  free(s);
  for (int n = 1; n <= 4; n++) {
    assert_int_equal(list_at(p, t, "client_1", NULL, NULL, 40 + n, &r), 200);
    plat_reply_clear(&r);
  }
  assert_int_equal(list_at(p, t, "client_1", NULL, NULL, 45, &r), 503);
  plat_reply_clear(&r);
  plat_free(p);
}

/* ---- sync ------------------------------------------------------------------------ */

static void test_sync(void **state) {
  (void)state;
  static const char *fail[] = {"campaign_3"};
  static const char *reject[] = {"campaign_4"};
  plat_config cfg = default_config();
  cfg.sync_latency_ms = 2000;
  cfg.fail_campaigns = fail;
  cfg.n_fail_campaigns = 1;
  cfg.reject_campaigns = reject;
  cfg.n_reject_campaigns = 1;
  plat *p = new_plat(&cfg, 1, 10);
  char t[64];
  plat_reply r;
  login(p, 1, 0, t);
  assert_int_equal(sync_at(p, t, "client_1", "campaign_1", 1, &r), 200);
  assert_int_equal(r.action, PLAT_DELAY);
  assert_int_equal(r.delay_ms, 2000);
  cJSON *j = cJSON_Parse(r.body);
  assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "success")));
  assert_string_equal(cJSON_GetObjectItem(j, "campaign_id")->valuestring, "campaign_1");
  assert_string_equal(cJSON_GetObjectItem(j, "synced_at")->valuestring,
                      "2025-12-31T10:00:00.001Z");
  cJSON_Delete(j);
  plat_reply_clear(&r);
  assert_int_equal(sync_at(p, t, "client_1", "campaign_1", 2, &r), 200);
  plat_reply_clear(&r);
  assert_int_equal(sync_at(p, t, "client_1", "campaign_2", 2, &r), 200);
  plat_reply_clear(&r);
  assert_int_equal(sync_at(p, t, "client_1", "campaign_11", 3, &r), 404);
  plat_reply_clear(&r);
  assert_int_equal(sync_at(p, t, "client_1", "campaign_3", 3, &r), 500);
  assert_string_equal(error_of(&r), "Internal server error");
  plat_reply_clear(&r);
  assert_int_equal(sync_at(p, t, "client_1", "campaign_4", 3, &r), 400);
  j = cJSON_Parse(r.body);
  assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "success")));
  assert_string_equal(cJSON_GetObjectItem(j, "error")->valuestring, "Campaign rejected");
  cJSON_Delete(j);
  plat_reply_clear(&r);

  /* body must be JSON naming the same campaign */
  static const char *bodies[] = {"", "nope", "{\"campaign_id\":\"campaign_2\"}",
                                 "{\"campaign_id\":5}", "[]", "{\"Campaign_id\":\"campaign_1\"}"};
  for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
    plat_request rq = req_at(4);
    rq.authorization = t;
    rq.client_id = "client_1";
    rq.campaign_id = "campaign_1";
    rq.body = bodies[i];
    rq.body_len = strlen(bodies[i]);
    plat_sync(p, &rq, &r);
    assert_int_equal(r.status, 400);
    plat_reply_clear(&r);
  }
  char *s = stats_of(p);
  assert_string_equal(s, "{\"clients\":{\"client_1\":{\"requests\":{\"auth\":{\"200\":1},"
                         "\"list\":{},\"sync\":{\"200\":3,\"400\":7,\"404\":1,\"500\":1}},"
                         "\"synced\":{\"campaign_1\":2,\"campaign_2\":1}}}}");
  free(s);
  plat_free(p);
}

static void test_random_faults_deterministic(void **state) {
  (void)state;
  plat_config cfg = default_config();
  cfg.error_rate = 0.5;
  char seq[2][65];
  for (int run = 0; run < 2; run++) {
    plat *p = new_plat(&cfg, 1, 10);
    char t[64];
    plat_reply r;
    login(p, 1, 0, t);
    for (int i = 0; i < 64; i++) {
      seq[run][i] = sync_at(p, t, "client_1", "campaign_1", 1, &r) == 200 ? '.' : 'E';
      plat_reply_clear(&r);
    }
    seq[run][64] = '\0';
    plat_free(p);
  }
  assert_string_equal(seq[0], seq[1]);
  assert_non_null(strchr(seq[0], '.'));
  assert_non_null(strchr(seq[0], 'E'));
}

static void test_malformed(void **state) {
  (void)state;
  plat_config cfg = default_config();
  cfg.malformed_rate = 1.0;
  plat *p = new_plat(&cfg, 1, 10);
  char t[64];
  plat_reply r;
  login(p, 1, 0, t);
  for (int i = 0; i < 12; i++) {
    assert_int_equal(sync_at(p, t, "client_1", "campaign_1", 1, &r), 200);
    cJSON *j = cJSON_ParseWithLength(r.body, r.body_len);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(j, "success")));
    cJSON_Delete(j);
    plat_reply_clear(&r);
    assert_int_equal(list_at(p, t, "client_1", NULL, NULL, 1, &r), 200);
    j = cJSON_ParseWithLength(r.body, r.body_len);
    assert_false(cJSON_IsArray(cJSON_GetObjectItem(j, "data")));
    cJSON_Delete(j);
    plat_reply_clear(&r);
  }
  char *s = stats_of(p);
  assert_non_null(strstr(s, "\"synced\":{}"));
  free(s);
  plat_free(p);
}

static void test_names_escaped(void **state) {
  (void)state;
  const char *text = "[{\"id\":\"c\\\"1\",\"email\":\"e@x\",\"password\":\"p\",\"campaigns\":2,"
                     "\"names\":{\"campaign_1\":\"say \\\"hi\\\"\\n\\u00fc\"}}]";
  char err[200];
  plat_config cfg = default_config();
  plat *p = plat_new(&cfg, acct_list_from_json(text, strlen(text), 1, err, sizeof err));
  assert_non_null(p);
  char hdr[256], t[64];
  basic_header("e@x", "p", hdr);
  plat_request rq = req_at(0);
  rq.authorization = hdr;
  plat_reply r;
  plat_auth(p, &rq, &r);
  cJSON *j = cJSON_Parse(r.body);
  sprintf(t, "Bearer %s", cJSON_GetObjectItem(j, "access_token")->valuestring);
  cJSON_Delete(j);
  plat_reply_clear(&r);
  assert_int_equal(list_at(p, t, "c\"1", NULL, NULL, 1, &r), 200);
  j = cJSON_Parse(r.body);
  assert_non_null(j);
  const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "data"), 0);
  assert_string_equal(cJSON_GetObjectItem(c0, "name")->valuestring, "say \"hi\"\n\xc3\xbc");
  cJSON_Delete(j);
  plat_reply_clear(&r);
  char *s = stats_of(p);
  j = cJSON_Parse(s);
  assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "clients"), "c\"1"));
  cJSON_Delete(j);
  free(s);
  plat_free(p);
}

/* ---- route, jsonw, cli ------------------------------------------------------------ */

static void test_route(void **state) {
  (void)state;
  route_match m;
  route_find("GET", "/health", &m);
  assert_int_equal(m.status, 0);
  assert_int_equal(m.id, ROUTE_HEALTH);
  route_find("POST", "/health", &m);
  assert_int_equal(m.status, 405);
  route_find("GET", "/nope", &m);
  assert_int_equal(m.status, 404);
  route_find("POST", "/api/campaigns/campaign%2F1/sync", &m);
  assert_int_equal(m.id, ROUTE_SYNC);
  assert_int_equal(m.param_len, strlen("campaign%2F1"));
  assert_memory_equal(m.param, "campaign%2F1", m.param_len);
  route_find("GET", "/api/campaigns/x/sync", &m);
  assert_int_equal(m.status, 405);
  route_find("POST", "/api/campaigns//sync", &m);
  assert_int_equal(m.status, 404);
  route_find("POST", "/api/campaigns/a/b/sync", &m);
  assert_int_equal(m.status, 404);
  route_find("GET", "/api/campaigns", &m);
  assert_int_equal(m.id, ROUTE_LIST);
  route_find("POST", "/admin/revoke-tokens", &m);
  assert_int_equal(m.id, ROUTE_REVOKE);

  char out[16];
  assert_int_equal(route_url_decode("a%2Fb%c3%A9", 11, out, sizeof out), 5);
  assert_string_equal(out, "a/b\xc3\xa9");
  assert_int_equal(route_url_decode("a%2", 3, out, sizeof out), -1);
  assert_int_equal(route_url_decode("a%zz", 4, out, sizeof out), -1);
  assert_int_equal(route_url_decode("a%00", 4, out, sizeof out), -1);
  assert_int_equal(route_url_decode("0123456789abcdef", 16, out, sizeof out), -1);
}

static void test_jsonw(void **state) {
  (void)state;
  jw w;
  jw_init(&w);
  jw_raw(&w, "[");
  jw_str(&w, "a\"b\\c\n\x01\xc3\xa9");
  jw_raw(&w, ",");
  jw_u64(&w, 18446744073709551615ULL);
  jw_raw(&w, ",");
  jw_str(&w, NULL);
  jw_fmt(&w, ",%d]", 7);
  size_t n;
  char *s = jw_take(&w, &n);
  assert_string_equal(s, "[\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\",18446744073709551615,null,7]");
  assert_int_equal(n, strlen(s));
  free(s);
  jw_init(&w);
  for (int i = 0; i < 1000; i++)
    jw_fmt(&w, "%0300d", i);
  s = jw_take(&w, &n);
  assert_int_equal(n, 300000);
  free(s);
  jw_init(&w);
  s = jw_take(&w, &n);
  assert_string_equal(s, "");
  free(s);
}

static int parse(cli_options *o, char *err, int argc, ...) {
  char *argv[32];
  va_list ap;
  va_start(ap, argc);
  argv[0] = "adsync-mock-api";
  for (int i = 1; i < argc; i++)
    argv[i] = va_arg(ap, char *);
  va_end(ap);
  err[0] = '\0';
  return cli_parse(argc, argv, o, err, 200);
}

static void test_cli(void **state) {
  (void)state;
  cli_options o;
  char err[200];
  assert_int_equal(parse(&o, err, 1), 0);
  assert_int_equal(o.port, 3001);
  assert_int_equal(o.clients, 1);
  assert_int_equal(o.campaigns, 100);
  assert_int_equal(o.plat.sync_latency_ms, 2000);
  assert_int_equal(o.plat.rate_limit, 10);
  assert_int_equal(o.plat.rate_window_ms, 60000);
  assert_int_equal(o.plat.fail_every, 5);
  assert_int_equal(o.plat.hang_every, 10);
  assert_int_equal(o.plat.token_ttl_s, 3600);
  assert_false(o.seed_given);
  cli_options_free(&o);

  assert_int_equal(parse(&o, err, 12, "--port", "0", "--clients=3", "--error-rate", "0.25",
                         "--seed", "18446744073709551615", "--fail-campaign", "campaign_1",
                         "--fail-campaign=campaign_2", "--verbose"), 0);
  assert_int_equal(o.port, 0);
  assert_int_equal(o.clients, 3);
  assert_true(o.plat.error_rate == 0.25);
  assert_true(o.seed_given);
  assert_true(o.plat.seed == UINT64_MAX);
  assert_int_equal(o.plat.n_fail_campaigns, 2);
  assert_string_equal(o.plat.fail_campaigns[1], "campaign_2");
  assert_true(o.verbose);
  cli_options_free(&o);

  assert_int_equal(parse(&o, err, 2, "--help"), 0);
  assert_true(o.help);
  cli_options_free(&o);

  static const char *bad[][3] = {
      {"--port", "65536", "--port"},     {"--port", "-1", "--port"},
      {"--clients", "0", "--clients"},   {"--error-rate", "1.5", "--error-rate"},
      {"--error-rate", "nan", "--error-rate"}, {"--bogus", "1", "--bogus"},
      {"--token-ttl", "0", "--token-ttl"}, {"--rate-limit", "ten", "--rate-limit"},
      {"--seed", "x", "--seed"},          {"--hang-every", "", "--hang-every"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(parse(&o, err, 3, bad[i][0], bad[i][1]), -1);
    assert_non_null(strstr(err, bad[i][2]));
    cli_options_free(&o);
  }
  assert_int_equal(parse(&o, err, 2, "--port"), -1);
  assert_non_null(strstr(err, "--port"));
  cli_options_free(&o);
  assert_int_equal(parse(&o, err, 2, "--verbose=1"), -1);
  cli_options_free(&o);
  assert_int_equal(parse(&o, err, 2, "stray"), -1);
  cli_options_free(&o);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_accounts_generated),
      cmocka_unit_test(test_accounts_json),
      cmocka_unit_test(test_auth),
      cmocka_unit_test(test_token_checks),
      cmocka_unit_test(test_rate_limit),
      cmocka_unit_test(test_list_pages),
      cmocka_unit_test(test_list_faults),
      cmocka_unit_test(test_sync),
      cmocka_unit_test(test_random_faults_deterministic),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_names_escaped),
      cmocka_unit_test(test_route),
      cmocka_unit_test(test_jsonw),
      cmocka_unit_test(test_cli),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
