/* libFuzzer target: the mock platform's request parsing (mock-api/route.c):
 * routing a method and path, and decoding a path segment. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1), out[512];
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    route_match m;
    route_find(size % 2 ? "POST" : "GET", s, &m);
    long n = route_url_decode(s, size, out, sizeof out);
    if (n >= (long)sizeof out)
        abort();
    free(s);
    return 0;
}
