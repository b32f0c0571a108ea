/* jobstate: the life of a held job as one state machine (used by flow.c).
 *
 * A pure table, so unit_worker_state can check every transition. flow.c
 * keeps, beside the state, only counts of work still out (a list request,
 * syncs whose outcome is not recorded, HTTP ops, store writes); its one
 * decision point (advance) acts on state and counts together.
 *
 *   state       what is going on                        events that move it
 *   STARTING    popped: delivery counted, cursor read   BEGIN_CLIENT → LISTING
 *                                                       BEGIN_CAMPAIGN → SYNCING
 *   LISTING     client job: pages still to list;       LAST_PAGE → SYNCING
 *               syncs of listed campaigns run beside    LIST_RETRY → FAILED
 *                                                       GIVE_UP → GIVEN_UP
 *   SYNCING     nothing left to list: outcomes to come  quiet: the end write
 *   FAILED      listing failed, the job is retried      quiet: the retry write
 *               later; open syncs land first            (or dead, as the policy says)
 *   GIVEN_UP    dead: a permanent failure, attempts     quiet: buried
 *               spent, a key of the wrong type, poison
 *   ABORTED     a step could not be carried out (out    quiet: handed back to the
 *               of memory) or shutdown aborted a call   queue (unpop.lua); at
 *                                                       shutdown the stop does it
 *   ENDING      its last write is on its way            END_LANDED → ENDED
 *                                                       END_REFUSED → GIVEN_UP
 *   ENDED       released
 *
 * From every state before ENDING, NO_MEMORY and SHUTDOWN lead to ABORTED
 * and END_SENT to ENDING; GIVE_UP leads to GIVEN_UP from LISTING, SYNCING
 * and FAILED, and GIVEN_UP keeps absorbing LIST_RETRY and LAST_PAGE (dead
 * wins). ABORTED absorbs every event but END_SENT (the hand-back); ENDING
 * is left only by END_LANDED and END_REFUSED. Any other pair leaves the
 * state as it is: js_next reports it, flow.c logs it as a bug. */
#ifndef ADSYNC_WORKER_JOBSTATE_H
#define ADSYNC_WORKER_JOBSTATE_H

typedef enum {
    JS_STARTING,
    JS_LISTING,
    JS_SYNCING,
    JS_FAILED,
    JS_GIVEN_UP,
    JS_ABORTED,
    JS_ENDING,
    JS_ENDED,
    JS_COUNT
} js_state;

typedef enum {
    JE_BEGIN_CLIENT,     /* a client job knows its cursor: listing starts */
    JE_BEGIN_CAMPAIGN,   /* a campaign job's one sync is submitted */
    JE_LAST_PAGE,        /* the last page's write landed */
    JE_LIST_RETRY,       /* a page fetch failed: retry the job later */
    JE_GIVE_UP,          /* the job is dead, its dead letter still to write */
    JE_NO_MEMORY,        /* a step could not be carried out */
    JE_SHUTDOWN,         /* the stop aborted one of its calls */
    JE_END_SENT,         /* its last write was queued */
    JE_END_LANDED,       /* ...and Redis confirmed it */
    JE_END_REFUSED,      /* ...and Redis refused it: a key of the wrong type */
    JE_COUNT
} js_event;

extern const char *const js_state_names[JS_COUNT];
extern const char *const js_event_names[JE_COUNT];

/* The state event e leads to from s. *ignored (may be NULL) is set to 1
 * when e does not apply to s, which then stays. */
js_state js_next(js_state s, js_event e, int *ignored);

#endif
