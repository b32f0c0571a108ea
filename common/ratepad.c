/* ratepad: the limiter's window padding, from measured lag (see ratepad.h). */
#include "ratepad.h"

#include <string.h>

#define EXTRA_MAX_MS 60000
#define BUMP_SPACING_MS 1000   /* the 429s of one burst arrive together: one doubling */

void rl_pad_init(rl_pad *p)
{
    memset(p, 0, sizeof *p);
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

/* The smallest time to first byte recently seen on an endpoint: its own
 * processing time. It creeps up by 1/256 per sample so that a platform that
 * got slower for good is not counted as queueing forever. */
static uint64_t excess_over_floor(rl_pad *p, unsigned endpoint, uint64_t server_us)
{
    uint64_t *floor = &p->server_floor_us[endpoint % RL_PAD_ENDPOINTS];
    if (*floor == 0 || server_us < *floor)
        *floor = server_us;
    else
        *floor += (*floor >> 8) + 1;
    return server_us > *floor ? server_us - *floor : 0;
}

void rl_pad_note(rl_pad *p, uint64_t now_ms, uint64_t window_ms, unsigned endpoint,
                 uint64_t client_lag_us, uint64_t server_us)
{
    if (now_ms - p->bucket_at_ms >= window_ms) {
        p->lag_us[1] = now_ms - p->bucket_at_ms >= 2 * window_ms ? 0 : p->lag_us[0];
        p->lag_us[0] = 0;
        p->bucket_at_ms = now_ms;
    }
    uint64_t lag = client_lag_us + excess_over_floor(p, endpoint, server_us);
    p->lag_us[0] = max_u64(p->lag_us[0], lag);
}

void rl_pad_on_429(rl_pad *p, uint64_t now_ms, uint64_t window_ms)
{
    if (p->bumped_at_ms != 0 && now_ms - p->bumped_at_ms < BUMP_SPACING_MS)
        return;
    uint64_t extra = max_u64(2 * p->extra_ms, RL_PAD_EXTRA_MIN_MS);
    p->extra_ms = extra > EXTRA_MAX_MS ? EXTRA_MAX_MS : extra;
    p->bumped_at_ms = now_ms;
    p->calm_at_ms = now_ms + window_ms;
}

uint64_t rl_pad_ms(rl_pad *p, uint64_t now_ms, uint64_t window_ms)
{
    if (p->extra_ms > 0 && now_ms >= p->calm_at_ms) {
        p->extra_ms /= 2;
        p->calm_at_ms = now_ms + window_ms;
    }
    uint64_t lag_ms = (max_u64(p->lag_us[0], p->lag_us[1]) + 999) / 1000;
    uint64_t pad = RL_PAD_FLOOR_MS + 2 * lag_ms + p->extra_ms;
    uint64_t cap = max_u64(window_ms / 10, RL_PAD_FLOOR_MS);
    return pad < cap ? pad : cap;
}
