/* backoff: retry delays for failed campaigns and page fetches (DESIGN.md §4).
 *
 *   backoff(n) = min(max_ms, base_ms * 2^(n-1)) * f,  f uniform in [0.5, 1.0]
 *
 * Pure: the random factor comes in as a parameter so tests can pin it. */
#ifndef ADSYNC_BACKOFF_H
#define ADSYNC_BACKOFF_H

#include <stdint.h>

/* Delay before attempt number `attempt` (1 = first retry). attempt 0 is
 * treated as 1. unit01 is a uniform random number in [0, 1]; values outside
 * are clamped. Never overflows, whatever attempt is. */
uint64_t backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t max_ms, double unit01);

/* Due time for a retry: now + backoff, but never earlier than
 * now + retry_after_ms (what a 429 asked for; 0 if none). */
uint64_t backoff_due_ms(uint64_t now_ms, uint64_t backoff, uint64_t retry_after_ms);

/* A uniform random number in [0, 1) from a per-process generator seeded
 * from the clock and pid at first use. Not for secrets. */
double backoff_unit_random(void);

#endif
