/* ctx: the environment the parts of a worker share (see ctx.h), and the
 * HTTP counters every part that calls the platform moves. */
#include "ctx.h"

#include <stdio.h>
#include <string.h>

const uint64_t wk_duration_bounds_ms[WK_DURATION_BOUNDS] = { 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000 };

void ctx_init(wctx *x, uv_loop_t *loop, const cfg *c, const seal_keyring *seal, const char *id)
{
    memset(x, 0, sizeof *x);
    x->loop = loop;
    x->cfg = *c;
    x->seal = seal;
    snprintf(x->id, sizeof x->id, "%s", id);
    keys_init(&x->keys, c->prefix);
    keys_processing_key(&x->keys, x->id, x->processing_key, sizeof x->processing_key);
    for (int k = 0; k < KEYS_GLOBAL_COUNT; k++)
        keys_global_key(&x->keys, (keys_global)k, x->global_keys[k], sizeof x->global_keys[k]);
    snprintf(x->retention, sizeof x->retention, "%llu", (unsigned long long)c->retention_ms);
    snprintf(x->dead_max, sizeof x->dead_max, "%u", c->dead_max);
    x->policy = (pol_limits){ c->max_attempts, c->backoff_base_ms, c->backoff_max_ms };
}

static int http_class(const http_result *res)
{
    if (res->error == HTTP_ERR_TIMEOUT)
        return WK_HTTP_TIMEOUT;
    if (res->error != HTTP_OK || res->status < 100 || res->status > 599)
        return WK_HTTP_ERROR;
    return (int)(res->status / 100) - 1;
}

void ctx_count_http(wctx *x, api_endpoint ep, const http_result *res)
{
    wk_counters *n = &x->n;
    n->http_requests++;
    n->http_by[ep][http_class(res)]++;
    if (res->error == HTTP_ERR_TIMEOUT)
        n->http_timeouts++;
    else if (res->error == HTTP_OK && res->status == 429)
        n->http_429++;
    else if (res->error == HTTP_OK && res->status >= 500)
        n->http_5xx++;
    n->http_ms_sum[ep] += res->duration_ms;
    size_t b = 0;
    while (b < WK_DURATION_BOUNDS && res->duration_ms > wk_duration_bounds_ms[b])
        b++;
    n->http_ms_buckets[ep][b]++;
}
