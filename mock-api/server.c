/* server: libmicrohttpd glue for the mock (see server.h).
 *
 * Per request (con_cls) a srv_req lives from the first handler call until
 * MHD's completion callback. Locking: s->mu guards `stopping` and the hung
 * list and is held around MHD_suspend_connection and MHD_resume_connection,
 * so a connection is always suspended before anyone can resume it, and
 * nothing is suspended once shutdown has begun. Lock order: s->mu, then the
 * timer queue's lock, then MHD's internal locks. */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "route.h"
#include "timerq.h"

#define SRV_HANG_PROBE_MS 1000
#define SRV_ID_MAX 1024     /* decoded {id}; longer ids cannot exist */
#define SRV_QUERY_MAX 32    /* decoded page / limit values */

typedef enum { REQ_NEW, REQ_WAITING, REQ_HUNG } req_phase;

typedef struct srv_req {
  struct MHD_Connection *conn;
  req_phase phase;
  char *body;                /* upload, NUL-terminated, at most SRV_MAX_BODY */
  size_t body_len, body_cap;
  int too_big;
  plat_reply reply;          /* the decided answer while REQ_WAITING */
  int fd;                    /* socket, for the hang probe */
  struct srv_req *prev, *next; /* hung list */
  int64_t started_ms;
} srv_req;

struct srv {
  plat *plat;
  struct MHD_Daemon *daemon;
  tq *timers;
  pthread_mutex_t mu;
  int stopping;
  srv_req *hung;
  int verbose;
  atomic_int started;        /* MHD messages are shown before this, or when verbose */
  uint16_t port;
  unsigned cpu_cost_us;
};

/* ---- small helpers ----------------------------------------------------------- */

/* Spends us microseconds of this thread's CPU (--cpu-cost-us): what a real
 * platform's request handling costs, so a benchmark can show the worker
 * against a platform that is the slow side. */
static void srv_burn_cpu(unsigned us) {
  if (us == 0)
    return;
  struct timespec t0, t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
  do {
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  } while ((t.tv_sec - t0.tv_sec) * 1000000L + (t.tv_nsec - t0.tv_nsec) / 1000 < (long)us);
}

static int64_t srv_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *srv_header(struct MHD_Connection *c, const char *name) {
  return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

/* The decoded query argument `name` in buf; "" when undecodable, NULL if absent. */
static const char *srv_query(struct MHD_Connection *c, const char *name, char *buf,
                             size_t cap) {
  const char *raw = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
  if (!raw)
    return NULL;
  if (route_url_decode(raw, strlen(raw), buf, cap) < 0)
    buf[0] = '\0';
  return buf;
}

static void srv_log_request(const srv *s, const char *method, const char *url,
                            const srv_req *rq, const char *outcome) {
  if (!s->verbose)
    return;
  const acct_list *l = plat_accounts(s->plat);
  const char *client = rq->reply.account >= 0 ? acct_get(l, (size_t)rq->reply.account)->id : "-";
  fprintf(stderr, "%s %s %s client=%s %lldms\n", method, url, outcome, client,
          (long long)(tq_now_ms() - rq->started_ms));
}

/* ---- answering --------------------------------------------------------------- */

/* A body sent in a hostile way (--hostile): cut half way, or trickled. */
typedef struct srv_drip {
  char *body;
  size_t len;
  hostile_delivery how;
} srv_drip;

#define SRV_TRICKLE_BYTES 16
#define SRV_TRICKLE_US 100000

/* Sends half of a truncated body, then makes MHD close the connection; a
 * trickled body goes out SRV_TRICKLE_BYTES at a time. The sleep holds this
 * polling thread, which is why --hostile runs more than one. */
static ssize_t srv_drip_read(void *cls, uint64_t pos, char *buf, size_t max) {
  srv_drip *d = cls;
  size_t end = d->how == HD_TRUNCATE ? d->len / 2 : d->len;
  if (pos >= end)
    return d->how == HD_TRUNCATE ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
  size_t n = end - (size_t)pos;
  if (n > max)
    n = max;
  if (d->how == HD_TRICKLE) {
    if (n > SRV_TRICKLE_BYTES)
      n = SRV_TRICKLE_BYTES;
    if (pos > 0)
      usleep(SRV_TRICKLE_US);
  }
  memcpy(buf, d->body + pos, n);
  return (ssize_t)n;
}

static void srv_drip_free(void *cls) {
  srv_drip *d = cls;
  free(d->body);
  free(d);
}

/* The MHD response for a reply; takes its body. */
static struct MHD_Response *srv_response(plat_reply *r) {
  if (!r->body)
    return MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
  if (r->delivery == HD_NORMAL) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(r->body_len, r->body, MHD_RESPMEM_MUST_FREE);
    if (resp)
      r->body = NULL;
    return resp;
  }
  srv_drip *d = malloc(sizeof *d);
  struct MHD_Response *resp =
      d ? MHD_create_response_from_callback(r->body_len, 4096, srv_drip_read, d, srv_drip_free) : NULL;
  if (!resp) {
    free(d);
    return NULL;
  }
  *d = (srv_drip){ r->body, r->body_len, r->delivery };
  r->body = NULL;
  return resp;
}

/* Queues rq->reply on c; the body moves into the MHD response. */
static enum MHD_Result srv_send(srv *s, struct MHD_Connection *c, srv_req *rq,
                                const char *method, const char *url) {
  plat_reply *r = &rq->reply;
  struct MHD_Response *resp = srv_response(r);
  if (!resp)
    return MHD_NO;
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  if (r->location)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, r->location);
  if (r->retry_after_s) {
    char v[16];
    snprintf(v, sizeof v, "%u", r->retry_after_s);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, v);
  }
  enum MHD_Result ok = MHD_queue_response(c, (unsigned)r->status, resp);
  MHD_destroy_response(resp);
  if (s->verbose) {
    char status[16];
    snprintf(status, sizeof status, "%d", r->status);
    srv_log_request(s, method, url, rq, status);
  }
  return ok;
}

/* Holds the connection until due_ms; answers at once when shutting down. */
static enum MHD_Result srv_hold(srv *s, struct MHD_Connection *c, srv_req *rq,
                                const char *method, const char *url) {
  int64_t due = tq_now_ms() + rq->reply.delay_ms;
  pthread_mutex_lock(&s->mu);
  if (s->stopping || tq_add(s->timers, due, rq) != 0) {
    pthread_mutex_unlock(&s->mu);
    return srv_send(s, c, rq, method, url);
  }
  rq->phase = REQ_WAITING;
  MHD_suspend_connection(c);
  pthread_mutex_unlock(&s->mu);
  return MHD_YES;
}

/* Never answers: parks the connection on the hung list. */
static enum MHD_Result srv_hang(srv *s, struct MHD_Connection *c, srv_req *rq,
                                const char *method, const char *url) {
  srv_log_request(s, method, url, rq, "hang");
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  rq->fd = ci ? ci->connect_fd : -1;
  pthread_mutex_lock(&s->mu);
  if (s->stopping) {
    pthread_mutex_unlock(&s->mu);
    return MHD_NO;
  }
  rq->phase = REQ_HUNG;
  rq->prev = NULL;
  rq->next = s->hung;
  if (s->hung)
    s->hung->prev = rq;
  s->hung = rq;
  MHD_suspend_connection(c);
  pthread_mutex_unlock(&s->mu);
  return MHD_YES;
}

static enum MHD_Result srv_act(srv *s, struct MHD_Connection *c, srv_req *rq,
                               const char *method, const char *url) {
  switch (rq->reply.action) {
  case PLAT_DELAY:
    return srv_hold(s, c, rq, method, url);
  case PLAT_HANG:
    return srv_hang(s, c, rq, method, url);
  case PLAT_NOW:
    break;
  }
  return srv_send(s, c, rq, method, url);
}

/* ---- routing ----------------------------------------------------------------- */

/* Fills the parts of a platform request every /api and auth call shares. */
static void srv_plat_request(struct MHD_Connection *c, const srv_req *rq, plat_request *pr) {
  memset(pr, 0, sizeof *pr);
  pr->authorization = srv_header(c, MHD_HTTP_HEADER_AUTHORIZATION);
  pr->client_id = srv_header(c, "X-Client-Id");
  pr->body = rq->body;
  pr->body_len = rq->body_len;
  pr->mono_ms = tq_now_ms();
  pr->wall_ms = srv_wall_ms();
}

static void srv_list(srv *s, struct MHD_Connection *c, srv_req *rq) {
  char page[SRV_QUERY_MAX], limit[SRV_QUERY_MAX];
  plat_request pr;
  srv_plat_request(c, rq, &pr);
  pr.page = srv_query(c, "page", page, sizeof page);
  pr.limit = srv_query(c, "limit", limit, sizeof limit);
  plat_list(s->plat, &pr, &rq->reply);
}

static void srv_sync(srv *s, struct MHD_Connection *c, srv_req *rq, const route_match *m) {
  char id[SRV_ID_MAX];
  if (route_url_decode(m->param, m->param_len, id, sizeof id) < 0) {
    plat_reply_error(&rq->reply, 400, "Bad request", "the campaign id in the URL is malformed");
    return;
  }
  plat_request pr;
  srv_plat_request(c, rq, &pr);
  pr.campaign_id = id;
  plat_sync(s->plat, &pr, &rq->reply);
}

/* Decides the answer to a complete request into rq->reply. */
static void srv_route(srv *s, struct MHD_Connection *c, srv_req *rq, const char *method,
                      const char *url) {
  route_match m;
  route_find(method, url, &m);
  plat_request pr;
  if (rq->too_big) {
    plat_reply_error(&rq->reply, 413, "Payload too large", "request bodies are limited to 64 KiB");
    return;
  }
  switch (m.id) {
  case ROUTE_HEALTH: plat_health(&rq->reply); return;
  case ROUTE_AUTH_TOKEN:
    srv_plat_request(c, rq, &pr);
    plat_auth(s->plat, &pr, &rq->reply);
    return;
  case ROUTE_LIST: srv_list(s, c, rq); return;
  case ROUTE_SYNC: srv_sync(s, c, rq, &m); return;
  case ROUTE_STATS: plat_stats(s->plat, &rq->reply); return;
  case ROUTE_RESET: plat_reset(s->plat, &rq->reply); return;
  case ROUTE_REVOKE: plat_revoke_tokens(s->plat, &rq->reply); return;
  case ROUTE_TOKENS: plat_tokens(s->plat, &rq->reply); return;
  case ROUTE_REDIRECTED: plat_redirect_followed(s->plat, &rq->reply); return;
  case ROUTE_NONE: break;
  }
  if (m.status == 405)
    plat_reply_error(&rq->reply, 405, "Method not allowed", "this path takes another method");
  else
    plat_reply_error(&rq->reply, 404, "Not found", "no such endpoint");
}

/* ---- MHD callbacks ----------------------------------------------------------- */

/* Appends upload bytes, or drops them once the body is over the cap. */
static void srv_append(srv_req *rq, const char *data, size_t n) {
  if (rq->too_big)
    return;
  if (n > SRV_MAX_BODY - rq->body_len) {
    rq->too_big = 1;
    free(rq->body);
    rq->body = NULL;
    rq->body_len = rq->body_cap = 0;
    return;
  }
  if (rq->body_len + n + 1 > rq->body_cap) {
    size_t cap = rq->body_cap ? rq->body_cap : 256;
    while (cap < rq->body_len + n + 1)
      cap *= 2;
    char *nb = realloc(rq->body, cap);
    if (!nb) {
      rq->too_big = 1; /* answered 413: the closest honest answer to OOM here */
      return;
    }
    rq->body = nb;
    rq->body_cap = cap;
  }
  memcpy(rq->body + rq->body_len, data, n);
  rq->body_len += n;
  rq->body[rq->body_len] = '\0';
}

static enum MHD_Result srv_begin(srv *s, struct MHD_Connection *c, void **con_cls) {
  srv_req *rq = calloc(1, sizeof *rq);
  if (!rq)
    return MHD_NO;
  rq->conn = c;
  rq->fd = -1;
  rq->reply.account = -1;
  rq->started_ms = s->verbose ? tq_now_ms() : 0;
  *con_cls = rq;
  return MHD_YES;
}

static enum MHD_Result srv_handle(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls) {
  srv *s = cls;
  srv_req *rq = *con_cls;
  (void)version;
  if (!rq)
    return srv_begin(s, c, con_cls);
  if (*upload_size) {
    srv_append(rq, upload, *upload_size);
    *upload_size = 0;
    return MHD_YES;
  }
  if (rq->phase == REQ_WAITING)
    return srv_send(s, c, rq, method, url);
  if (rq->phase == REQ_HUNG)
    return MHD_NO; /* resumed only to be closed (shutdown or client gone) */
  srv_burn_cpu(s->cpu_cost_us);
  srv_route(s, c, rq, method, url);
  return srv_act(s, c, rq, method, url);
}

static void srv_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                          enum MHD_RequestTerminationCode toe) {
  srv_req *rq = *con_cls;
  (void)cls;
  (void)c;
  (void)toe;
  if (!rq)
    return;
  plat_reply_clear(&rq->reply);
  free(rq->body);
  free(rq);
  *con_cls = NULL;
}

/* Keeps the URL and query arguments raw: %XX is decoded per segment by us,
 * so an escaped '/' inside a campaign id cannot change the route. */
static size_t srv_no_unescape(void *cls, struct MHD_Connection *c, char *s) {
  (void)cls;
  (void)c;
  return strlen(s);
}

static void srv_mhd_log(void *cls, const char *fmt, va_list ap) {
  srv *s = cls;
  if (atomic_load(&s->started) && !s->verbose)
    return;
  fputs("adsync-mock-api: libmicrohttpd: ", stderr);
  vfprintf(stderr, fmt, ap);
}

/* ---- timer thread callbacks -------------------------------------------------- */

/* A delayed answer is due: let MHD call the handler again. */
static void srv_due(void *cls, void *item) {
  srv *s = cls;
  srv_req *rq = item;
  pthread_mutex_lock(&s->mu);
  MHD_resume_connection(rq->conn);
  pthread_mutex_unlock(&s->mu);
}

/* True when the peer of fd has closed or reset the connection. */
static int srv_peer_gone(int fd) {
  char b;
  if (fd < 0)
    return 0;
  ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static void srv_unlink_hung(srv *s, srv_req *rq) {
  if (rq->prev)
    rq->prev->next = rq->next;
  else
    s->hung = rq->next;
  if (rq->next)
    rq->next->prev = rq->prev;
  rq->prev = rq->next = NULL;
}

/* Once a second: hung connections whose client left are resumed to be closed,
 * so abandoned hangs do not pile up against the connection limit. */
static void srv_probe(void *cls) {
  srv *s = cls;
  pthread_mutex_lock(&s->mu);
  srv_req *next;
  for (srv_req *rq = s->hung; rq; rq = next) {
    next = rq->next;
    if (!srv_peer_gone(rq->fd))
      continue;
    srv_unlink_hung(s, rq);
    MHD_resume_connection(rq->conn); /* the handler closes it */
  }
  pthread_mutex_unlock(&s->mu);
}

/* ---- lifecycle --------------------------------------------------------------- */

static struct MHD_Daemon *srv_start_daemon(srv *s, const srv_options *o) {
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons(o->port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  /* One thread: poll(). With edge-triggered epoll, libmicrohttpd 0.9.75's
   * single polling thread stops reading connections once a few hundred are
   * busy and each request takes a while (--cpu-cost-us): every client then
   * waits forever with its request unread in the socket. The pool keeps
   * epoll, which it needs to spread connections over threads. */
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | (o->threads > 1 ? MHD_USE_EPOLL : MHD_USE_POLL) |
                   MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
  struct MHD_OptionItem pool[] = {
      {MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)o->threads, NULL},
      {MHD_OPTION_END, 0, NULL},
  };
  return MHD_start_daemon(
      flags, o->port, NULL, NULL, srv_handle, s,
      MHD_OPTION_EXTERNAL_LOGGER, srv_mhd_log, s, /* first, so it catches everything */
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned int)o->max_connections,
      MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int)1024,
      MHD_OPTION_NOTIFY_COMPLETED, srv_completed, s,
      MHD_OPTION_UNESCAPE_CALLBACK, srv_no_unescape, NULL,
      MHD_OPTION_ARRAY, o->threads > 1 ? pool : pool + 1,
      MHD_OPTION_END);
}

srv *srv_new(plat *p, const srv_options *o, char *err, size_t errlen) {
  srv *s = calloc(1, sizeof *s);
  if (!s || pthread_mutex_init(&s->mu, NULL) != 0) {
    free(s);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  s->plat = p;
  s->verbose = o->verbose;
  s->cpu_cost_us = o->cpu_cost_us;
  s->timers = tq_new(srv_due, srv_probe, SRV_HANG_PROBE_MS, s);
  if (s->timers)
    s->daemon = srv_start_daemon(s, o);
  if (!s->daemon) {
    snprintf(err, errlen, s->timers ? "cannot listen on 127.0.0.1:%u" : "cannot start the "
             "timer thread", (unsigned)o->port);
    tq_free(s->timers);
    pthread_mutex_destroy(&s->mu);
    free(s);
    return NULL;
  }
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
  s->port = di ? di->port : o->port;
  atomic_store(&s->started, 1);
  return s;
}

uint16_t srv_port(const srv *s) {
  return s->port;
}

/* Resumes every hung connection. */
static void srv_release_hung(srv *s) {
  pthread_mutex_lock(&s->mu);
  while (s->hung) {
    srv_req *rq = s->hung;
    srv_unlink_hung(s, rq);
    MHD_resume_connection(rq->conn);
  }
  pthread_mutex_unlock(&s->mu);
}

void srv_free(srv *s) {
  if (!s)
    return;
  pthread_mutex_lock(&s->mu);
  s->stopping = 1; /* from here on nothing new is suspended */
  pthread_mutex_unlock(&s->mu);
  tq_stop(s->timers);
  srv_req *rq;
  while ((rq = tq_take(s->timers)))
    MHD_resume_connection(rq->conn);
  srv_release_hung(s);
  MHD_stop_daemon(s->daemon);
  tq_free(s->timers);
  pthread_mutex_destroy(&s->mu);
  free(s);
}
