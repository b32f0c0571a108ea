/* server: the mock's HTTP side on libmicrohttpd (one epoll polling thread by
 * default): reads requests (bodies capped at 64 KiB), routes them, asks the
 * platform core for the answer and carries out its action: answer now, hold
 * the connection (suspend) until the timer thread resumes it, or hang it
 * until shutdown or until the client goes away (probed once a second).
 * Shutdown resumes every held connection before stopping the daemon. */
#ifndef ADSYNC_MOCK_SERVER_H
#define ADSYNC_MOCK_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "platform.h"

typedef struct srv srv;

typedef struct srv_options {
  uint16_t port;             /* on 127.0.0.1; 0 = any free port */
  unsigned threads;          /* polling threads (MHD thread pool when > 1) */
  unsigned max_connections;  /* held connections count too */
  unsigned cpu_cost_us;      /* CPU burnt per request before routing: a platform that costs something */
  int verbose;               /* one stderr line per request, MHD's own messages */
} srv_options;

#define SRV_MAX_BODY (64 * 1024)

/* Starts serving; p is borrowed and must outlive the server. NULL with a
 * one-line reason in err when the daemon or its timer thread cannot start. */
srv *srv_new(plat *p, const srv_options *o, char *err, size_t errlen);

/* The port actually bound. */
uint16_t srv_port(const srv *s);

/* Resumes every held connection (hung or delayed), stops the daemon (which
 * closes all connections) and frees everything; NULL is a no-op. */
void srv_free(srv *s);

#endif
