/* accounts: the simulated platform's client accounts and their campaign
 * catalogue (ids, credentials, how many campaigns, optional name overrides).
 * Built once at start (generated or from a JSON file's text) and read-only
 * afterwards, so it needs no lock. No file I/O here: the caller reads files.
 * Campaign fields other than names are deterministic functions of K. */
#ifndef ADSYNC_MOCK_ACCOUNTS_H
#define ADSYNC_MOCK_ACCOUNTS_H

#include <stddef.h>
#include <stdint.h>

#define ACCT_MAX_CAMPAIGNS 10000000u
#define ACCT_MAX_ACCOUNTS 1000000u

typedef struct acct_list acct_list;

/* One account, owned by its list. */
typedef struct acct_info {
  const char *id;
  const char *email;
  const char *password;
  uint32_t campaigns; /* campaign_1 .. campaign_<campaigns> */
} acct_info;

/* A campaign as the list endpoint shows it; name points into the list (an
 * override) or at name_buf ("Campaign K"). */
typedef struct acct_campaign_info {
  uint32_t k;          /* campaign_<k> */
  const char *name;
  char name_buf[24];
  const char *status;  /* "active" (odd k) or "paused" */
  uint64_t budget, impressions, clicks, conversions;
  char created_at[32]; /* ISO-8601 UTC with milliseconds and Z */
} acct_campaign_info;

/* Accounts client_1..client_<n> with <campaigns> campaigns each, email
 * <id>@example.test, password secret-<id>. NULL on allocation failure. */
acct_list *acct_list_generate(uint32_t n, uint32_t campaigns);

/* Parses a JSON array of {"id","email","password"[,"campaigns":N]
 * [,"names":{"campaign_K":"..."}]} from text[0..len) (borrowed; copied);
 * accounts without "campaigns" get default_campaigns. Duplicate ids or
 * emails are errors. NULL on error with a one-line reason in err. */
acct_list *acct_list_from_json(const char *text, size_t len, uint32_t default_campaigns,
                               char *err, size_t errlen);

/* Frees the list; NULL is a no-op. */
void acct_list_free(acct_list *l);

size_t acct_count(const acct_list *l);

/* Account i (0-based, i < acct_count); owned by the list. */
const acct_info *acct_get(const acct_list *l, size_t i);

/* Index of the account with this id / email, or -1. */
long acct_find_id(const acct_list *l, const char *id);
long acct_find_email(const acct_list *l, const char *email);

/* K when cid is exactly "campaign_K" (no leading zeros) and 1 <= K <=
 * account i's campaigns, else 0. */
uint32_t acct_campaign_k(const acct_list *l, size_t i, const char *cid);

/* Fills *out with campaign K of account i (1 <= K <= campaigns). */
void acct_campaign(const acct_list *l, size_t i, uint32_t k, acct_campaign_info *out);

#endif
