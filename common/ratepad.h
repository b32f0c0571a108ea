/* ratepad: how much longer than the platform's window the shared limiter's
 * window must be (DESIGN.md §6).
 *
 * ratelimit.lua records a request on Redis's clock when the check runs; the
 * platform counts it when it handles it. If request k reaches the platform d1
 * after its record and request k+limit only d2 after its own, the two are
 * (window + pad) - (d1 - d2) apart at the platform: the pad must cover the
 * spread of that delay. The pad is built from what the worker can measure on
 * every request:
 *   - the client-side lag: rate check sent -> request about to be written;
 *   - the platform-side wait: time to first byte above the endpoint's floor
 *     (the smallest recently seen), i.e. queueing in front of the handler;
 * holding the worst of the current and the previous window, doubled for
 * jitter, plus a floor for millisecond clocks. A 429 our limiter let through
 * shows a delay the measurements missed: an extra pad then doubles (once per
 * second at most) and halves after every calm window. The pad never exceeds
 * a tenth of the window.
 *
 * Pure: callers pass the clock. Embedded by value in its owner; no _free. */
#ifndef ADSYNC_RATEPAD_H
#define ADSYNC_RATEPAD_H

#include <stdint.h>

#define RL_PAD_FLOOR_MS 10
#define RL_PAD_EXTRA_MIN_MS 25
#define RL_PAD_ENDPOINTS 3            /* floors are kept per endpoint (api_endpoint: auth, list, sync) */

typedef struct rl_pad {
    uint64_t lag_us[2];               /* worst lag of this bucket [0] and the last [1] */
    uint64_t bucket_at_ms;            /* when [0] started */
    uint64_t server_floor_us[RL_PAD_ENDPOINTS];
    uint64_t extra_ms;
    uint64_t calm_at_ms;              /* halve extra_ms at this time */
    uint64_t bumped_at_ms;
} rl_pad;

void rl_pad_init(rl_pad *p);

/* One request that went through the limiter: client_lag_us from the rate
 * check to the request being written, server_us from then to the first
 * byte of the answer, endpoint < RL_PAD_ENDPOINTS. */
void rl_pad_note(rl_pad *p, uint64_t now_ms, uint64_t window_ms, unsigned endpoint,
                 uint64_t client_lag_us, uint64_t server_us);

/* The platform answered 429 although the limiter let the request go. */
void rl_pad_on_429(rl_pad *p, uint64_t now_ms, uint64_t window_ms);

/* The pad for a client whose window is window_ms. */
uint64_t rl_pad_ms(rl_pad *p, uint64_t now_ms, uint64_t window_ms);

#endif
