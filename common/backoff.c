/* backoff: exponential backoff with jitter (see backoff.h). */
#include "backoff.h"

#include <time.h>
#include <unistd.h>

uint64_t backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t max_ms, double unit01)
{
    if (attempt == 0)
        attempt = 1;
    if (unit01 < 0.0)
        unit01 = 0.0;
    if (unit01 > 1.0)
        unit01 = 1.0;

    /* Double until the cap instead of shifting, so a huge attempt count
     * cannot overflow. */
    uint64_t delay = base_ms;
    for (unsigned i = 1; i < attempt && delay < max_ms; i++)
        delay = delay > UINT64_MAX / 2 ? UINT64_MAX : delay * 2;
    if (delay > max_ms)
        delay = max_ms;

    double factor = 0.5 + 0.5 * unit01;
    return (uint64_t)((double)delay * factor);
}

uint64_t backoff_due_ms(uint64_t now_ms, uint64_t backoff, uint64_t retry_after_ms)
{
    uint64_t wait = backoff > retry_after_ms ? backoff : retry_after_ms;
    return now_ms + wait;
}

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double backoff_unit_random(void)
{
    static uint64_t state;
    if (state == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        state = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40);
    }
    return (double)(splitmix64(&state) >> 11) / (double)(1ull << 53);
}
