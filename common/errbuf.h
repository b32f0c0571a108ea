/* errbuf: the one way common/ reports why something failed.
 *
 * Library code does not log (the caller decides what a failure means); it
 * fills a caller-supplied buffer with one line and returns -1, so a failing
 * check reads `return errbuf_set(err, errlen, "...", ...);`. */
#ifndef ADSYNC_ERRBUF_H
#define ADSYNC_ERRBUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

__attribute__((format(printf, 3, 4)))
static inline int errbuf_set(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

#endif
