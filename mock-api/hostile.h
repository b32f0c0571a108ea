/* hostile: the mock's --hostile mode, a platform that misbehaves in ways no
 * contract describes (the hardening issue's list). Account i gets behaviour
 * i % HOSTILE_KINDS, so `--clients 10 --hostile` covers every one, and each
 * behaviour keeps the run finishable: what breaks a whole answer breaks only
 * the first attempt of each page (or of campaign 1's sync, or of a login),
 * so a client that retries ends its run with every campaign synced or dead
 * with a reason; a client that does not, stalls or loses campaigns.
 *
 *   odd-ids       campaign ids ".", "..", "a/b", "%2F", UTF-8, "?x=1#y" (must
 *                 sync), "", a control byte, 300 bytes (must end dead)
 *   numbers       9007199254740993, 1e400, -1e-400 and 34 significant
 *                 digits in every campaign (must be stored digit for digit)
 *   nested        400 nested arrays in every campaign; a first attempt whose
 *                 item nests 5,000 deep
 *   wrong-types   fields of surprising types in every campaign; a first
 *                 attempt with a numeric id, has_more "yes", total "many";
 *                 campaign 1's first sync answers success "yes"
 *   oversized     campaign 1 carries 100 KB and its sync always answers 500;
 *                 campaign 2 carries 50 KB
 *   huge-page     a first attempt of page 1 with 200,000 tiny items
 *   truncated     first attempts (list, campaign 1's sync) stop half way and
 *                 close the connection
 *   slow-body     first list attempts send 16 bytes every 100 ms
 *   redirect      first attempts (list, campaign 1's sync) answer 302/307 to
 *                 /redirected, which counts anyone following it
 *   bad-token     the first login answers a token with CR LF in it, the
 *                 second one 600 characters long
 *
 * Called with the platform's lock held; plain data, no I/O. */
#ifndef ADSYNC_MOCK_HOSTILE_H
#define ADSYNC_MOCK_HOSTILE_H

#include <stddef.h>
#include <stdint.h>

#include "jsonw.h"

typedef enum hostile_kind {
  HK_ODD_IDS,
  HK_NUMBERS,
  HK_NESTED,
  HK_WRONG_TYPES,
  HK_OVERSIZED,
  HK_HUGE_PAGE,
  HK_TRUNCATED,
  HK_SLOW_BODY,
  HK_REDIRECT,
  HK_BAD_TOKEN,
  HOSTILE_KINDS
} hostile_kind;

/* What a hostile answer asks of the server beyond status and body. */
typedef enum hostile_delivery {
  HD_NORMAL,
  HD_TRUNCATE,   /* announce the whole body, send half, close */
  HD_TRICKLE,    /* send the body 16 bytes per 100 ms */
} hostile_delivery;

/* One hostile answer; body is heap memory for the caller (free()). */
typedef struct hostile_answer {
  int status;
  char *body;
  size_t body_len;
  hostile_delivery delivery;
  const char *location;   /* static; a redirect's Location, or NULL */
} hostile_answer;

#define HOSTILE_REDIRECT_PATH "/redirected"

typedef struct hostile hostile;

/* State for `accounts` accounts (first-attempt bookkeeping); NULL on OOM. */
hostile *hostile_new(size_t accounts);
void hostile_free(hostile *h);

hostile_kind hostile_kind_of(size_t account);
const char *hostile_kind_name(hostile_kind k);

/* The id of campaign k of account a, written into buf (cap >= 512). */
const char *hostile_campaign_id(size_t a, uint32_t k, char *buf, size_t cap);

/* K for a campaign id of account a as the sync path decodes it, or 0. */
uint32_t hostile_campaign_k(size_t a, const char *id, uint32_t campaigns);

/* Extra members for campaign k of account a, each preceded by a comma. */
void hostile_campaign_extra(jw *w, size_t a, uint32_t k);

/* A list request of account a for page (limit items) that passed the gate:
 * 1 with *out filled when this attempt gets a hostile answer, else 0 (the
 * page, rendered with the hooks above). -1 on OOM. */
int hostile_list(hostile *h, size_t a, uint32_t page, uint32_t limit, const char *page_body,
                 size_t page_len, hostile_answer *out);

/* The same for a sync of campaign k whose normal answer is ok_body. */
int hostile_sync(hostile *h, size_t a, uint32_t k, const char *ok_body, size_t ok_len,
                 hostile_answer *out);

/* The same for a login whose normal answer would be made of token. */
int hostile_auth(hostile *h, size_t a, hostile_answer *out);

/* A request reached HOSTILE_REDIRECT_PATH; counted for /admin/stats. */
void hostile_redirect_followed(hostile *h);
uint64_t hostile_redirects_followed(const hostile *h);

#endif
