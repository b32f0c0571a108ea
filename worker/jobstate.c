/* jobstate: the held job's transition table (see jobstate.h). */
#include "jobstate.h"

#include <stddef.h>

const char *const js_state_names[JS_COUNT] = {
    [JS_STARTING] = "starting", [JS_LISTING] = "listing", [JS_SYNCING] = "syncing",
    [JS_FAILED] = "failed",     [JS_GIVEN_UP] = "given_up", [JS_ABORTED] = "aborted",
    [JS_ENDING] = "ending",     [JS_ENDED] = "ended",
};

const char *const js_event_names[JE_COUNT] = {
    [JE_BEGIN_CLIENT] = "begin_client", [JE_BEGIN_CAMPAIGN] = "begin_campaign",
    [JE_LAST_PAGE] = "last_page",       [JE_LIST_RETRY] = "list_retry",
    [JE_GIVE_UP] = "give_up",           [JE_NO_MEMORY] = "no_memory",
    [JE_SHUTDOWN] = "shutdown",         [JE_END_SENT] = "end_sent",
    [JE_END_LANDED] = "end_landed",     [JE_END_REFUSED] = "end_refused",
};

/* 0 in a cell: the event does not apply (the state stays). States are
 * stored + 1 so that 0 can mean that. */
#define TO(s) ((unsigned char)((s) + 1))

static const unsigned char table[JS_COUNT][JE_COUNT] = {
    [JS_STARTING] = {
        [JE_BEGIN_CLIENT] = TO(JS_LISTING), [JE_BEGIN_CAMPAIGN] = TO(JS_SYNCING),
        [JE_NO_MEMORY] = TO(JS_ABORTED),    [JE_SHUTDOWN] = TO(JS_ABORTED),
        [JE_END_SENT] = TO(JS_ENDING),      /* buried at once: unparseable, poison */
    },
    [JS_LISTING] = {
        [JE_LAST_PAGE] = TO(JS_SYNCING),    [JE_LIST_RETRY] = TO(JS_FAILED),
        [JE_GIVE_UP] = TO(JS_GIVEN_UP),     [JE_NO_MEMORY] = TO(JS_ABORTED),
        [JE_SHUTDOWN] = TO(JS_ABORTED),     [JE_END_SENT] = TO(JS_ENDING),
    },
    [JS_SYNCING] = {
        [JE_GIVE_UP] = TO(JS_GIVEN_UP),     [JE_NO_MEMORY] = TO(JS_ABORTED),
        [JE_SHUTDOWN] = TO(JS_ABORTED),     [JE_END_SENT] = TO(JS_ENDING),
    },
    [JS_FAILED] = {
        [JE_LIST_RETRY] = TO(JS_FAILED),    [JE_GIVE_UP] = TO(JS_GIVEN_UP),
        [JE_NO_MEMORY] = TO(JS_ABORTED),    [JE_SHUTDOWN] = TO(JS_ABORTED),
        [JE_END_SENT] = TO(JS_ENDING),
    },
    [JS_GIVEN_UP] = {   /* dead wins over a retry; a page write that was on its way still lands */
        [JE_GIVE_UP] = TO(JS_GIVEN_UP),     [JE_LIST_RETRY] = TO(JS_GIVEN_UP),
        [JE_LAST_PAGE] = TO(JS_GIVEN_UP),   [JE_NO_MEMORY] = TO(JS_ABORTED),
        [JE_SHUTDOWN] = TO(JS_ABORTED),     [JE_END_SENT] = TO(JS_ENDING),
    },
    [JS_ABORTED] = {
        [JE_NO_MEMORY] = TO(JS_ABORTED),    [JE_SHUTDOWN] = TO(JS_ABORTED),
        [JE_LIST_RETRY] = TO(JS_ABORTED),   [JE_GIVE_UP] = TO(JS_ABORTED),
        [JE_LAST_PAGE] = TO(JS_ABORTED),    [JE_END_SENT] = TO(JS_ENDING),
    },
    [JS_ENDING] = {
        [JE_END_LANDED] = TO(JS_ENDED),     [JE_END_REFUSED] = TO(JS_GIVEN_UP),
    },
};

js_state js_next(js_state s, js_event e, int *ignored)
{
    unsigned char to = (unsigned)s < JS_COUNT && (unsigned)e < JE_COUNT ? table[s][e] : 0;
    if (ignored)
        *ignored = to == 0;
    return to ? (js_state)(to - 1) : s;
}
