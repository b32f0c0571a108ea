/* password: reads a client password from stdin, never from argv or the
 * environment (so it cannot show up in ps or /proc/<pid>/environ).
 *
 * On a terminal it prompts on stderr and turns echo off while the line is
 * typed (restored on return and on SIGINT/SIGTERM/SIGHUP/SIGQUIT); from a
 * pipe it reads exactly one line. The bytes are read with read(2), so no
 * stdio buffer keeps a copy, and password_free wipes the memory. */
#ifndef ADSYNC_ENQUEUE_PASSWORD_H
#define ADSYNC_ENQUEUE_PASSWORD_H

#include <stddef.h>

#define PASSWORD_MAX 1024

/* Returns a malloc'd password without its line end ("\n" or "\r\n"), to be
 * released with password_free; or NULL with err (empty, too long, contains
 * a NUL byte, read error). prompt is only shown on a terminal. */
char *password_read(const char *prompt, char *err, size_t errlen);

/* Zeroes and frees; NULL is a no-op. */
void password_free(char *pw);

#endif
