/* libFuzzer target: the platform's answers as the worker reads them
 * (common/api.c): a list page, a sync answer, a login answer. The first
 * byte picks the parser; the rest is the body. */
#include <stdint.h>
#include <string.h>

#include "api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    char err[256], out[API_TOKEN_MAX];
    long expires = 0;
    switch (data[0] % 3) {
    case 0: {
        api_page page;
        if (api_parse_page(body, len, 1000, &page, err, sizeof err) == 0) {
            for (size_t i = 0; i < page.n; i++)
                if (page.items[i].id == NULL || page.items[i].json == NULL)
                    __builtin_trap();
            api_page_clear(&page);
        }
        break;
    }
    case 1:
        api_parse_sync(body, len, out, sizeof out, err, sizeof err);
        break;
    default:
        if (api_parse_token(body, len, out, sizeof out, &expires, err, sizeof err) == 0 &&
            strlen(out) >= sizeof out)
            __builtin_trap();
        break;
    }
    return 0;
}
