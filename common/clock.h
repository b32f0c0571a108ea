/* clock: the two time sources adsync uses.
 *
 * Monotonic milliseconds measure durations and drive timers; wall-clock
 * milliseconds since the Unix epoch are what goes into Redis (job due times,
 * run timestamps) because every process and redis-server must agree on them. */
#ifndef ADSYNC_CLOCK_H
#define ADSYNC_CLOCK_H

#include <stdint.h>

uint64_t clock_mono_ms(void);   /* never goes backwards; arbitrary origin */
uint64_t clock_wall_ms(void);   /* ms since 1970-01-01T00:00:00Z */

/* Formats wall time ms as ISO-8601 UTC with milliseconds
 * ("2025-12-31T10:00:00.000Z") into out (at least 25 bytes). Returns out. */
char *clock_iso8601(uint64_t wall_ms, char *out, unsigned outlen);

#endif
