/* password: no-echo prompt on a terminal, one line from a pipe (see
 * password.h). */
#define _GNU_SOURCE
#include "password.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

/* The terminal state to put back if a signal arrives while echo is off. */
static struct termios saved_termios;
static volatile sig_atomic_t echo_off;

static void restore_and_reraise(int sig)
{
    if (echo_off)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_termios);
    signal(sig, SIG_DFL);
    raise(sig);
}

static const int guarded_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
#define N_GUARDED (sizeof guarded_signals / sizeof guarded_signals[0])

static int echo_disable(struct sigaction *old)
{
    if (tcgetattr(STDIN_FILENO, &saved_termios) < 0)
        return -1;
    struct sigaction sa = { 0 };
    sa.sa_handler = restore_and_reraise;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < N_GUARDED; i++)
        sigaction(guarded_signals[i], &sa, &old[i]);
    struct termios t = saved_termios;
    t.c_lflag &= ~(tcflag_t)ECHO;
    t.c_lflag |= ECHONL;
    echo_off = 1;
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) < 0) {
        echo_off = 0;
        return -1;
    }
    return 0;
}

static void echo_restore(const struct sigaction *old)
{
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_termios);
    echo_off = 0;
    for (size_t i = 0; i < N_GUARDED; i++)
        sigaction(guarded_signals[i], &old[i], NULL);
}

/* Reads up to the first '\n' (not stored) or EOF into buf. Returns the
 * length, or -1 with err. */
static long read_line(char *buf, size_t cap, char *err, size_t errlen)
{
    size_t n = 0;
    for (;;) {
        char c;
        ssize_t r = read(STDIN_FILENO, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "cannot read the password from stdin: %s", strerror(errno));
            return -1;
        }
        if (r == 0 || c == '\n')
            break;
        if (n + 1 >= cap) {
            snprintf(err, errlen, "the password is longer than %d bytes", PASSWORD_MAX - 1);
            return -1;
        }
        buf[n++] = c;
    }
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    return (long)n;
}

static int check_password(const char *pw, long len, char *err, size_t errlen)
{
    if (len == 0) {
        snprintf(err, errlen, "the password is empty (give it as one line on stdin)");
        return -1;
    }
    if (memchr(pw, '\0', (size_t)len)) {
        snprintf(err, errlen, "the password contains a NUL byte");
        return -1;
    }
    return 0;
}

char *password_read(const char *prompt, char *err, size_t errlen)
{
    char *buf = calloc(1, PASSWORD_MAX);
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    struct sigaction old[N_GUARDED];
    int tty = isatty(STDIN_FILENO) && echo_disable(old) == 0;
    if (tty) {
        fputs(prompt, stderr);
        fflush(stderr);
    }
    long len = read_line(buf, PASSWORD_MAX, err, errlen);
    if (tty)
        echo_restore(old);
    if (len < 0 || check_password(buf, len, err, errlen) < 0) {
        password_free(buf);
        return NULL;
    }
    return buf;
}

void password_free(char *pw)
{
    if (pw == NULL)
        return;
    explicit_bzero(pw, PASSWORD_MAX);
    free(pw);
}
