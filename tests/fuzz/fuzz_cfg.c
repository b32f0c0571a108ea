/* libFuzzer target: the configuration's URL parsers (common/cfg.c), which
 * read REDIS_URL, AD_PLATFORM_URL, a client's api_url and listen addresses.
 * A refused value never echoes a password into the error line. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    char err[CFG_ERR_LEN];
    cfg_redis_url r;
    cfg_http_url h;
    cfg_hostport hp;
    if (cfg_parse_redis_url("REDIS_URL", s, &r, err, sizeof err) == 0) {
        if (r.port < 1 || r.port > 65535 || r.db < 0 || r.db > 15)
            abort();
    } else if (strlen(s) > 16 && strstr(err, s)) {
        abort();   /* the whole value (and so any password) echoed */
    }
    if (cfg_parse_http_url("AD_PLATFORM_URL", s, &h, err, sizeof err) == 0 && (h.port < 1 || h.port > 65535))
        abort();
    cfg_parse_hostport("ADSYNC_METRICS_ADDR", s, &hp, err, sizeof err);
    free(s);
    return 0;
}
