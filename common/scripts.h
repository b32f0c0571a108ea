/* scripts: the Lua scripts of common/lua/, embedded at build time.
 *
 * Each multi-key step that must not be torn is one script (DESIGN.md §3);
 * the bodies are here so synchronous (enqueue) and asynchronous (worker)
 * callers load the same text. Add a script: drop common/lua/<name>.lua, list
 * it in common/CMakeLists.txt and declare script_<name> below. */
#ifndef ADSYNC_SCRIPTS_H
#define ADSYNC_SCRIPTS_H

extern const char script_enqueue_run[];      /* create a run, claim active_run, push the job */
extern const char script_dead_retry[];       /* move a dead letter back onto jobs, reopen its run */
extern const char script_progress[];         /* record a page / campaign outcome / job end of a run */
extern const char script_ratelimit[];        /* shared sliding-window check-and-record */
extern const char script_promote[];          /* due retries -> jobs */
extern const char script_reap[];             /* a worker's processing list -> jobs */
extern const char script_bury[];             /* a held job -> dead letters, run failed */
extern const char script_cad[];              /* compare-and-delete (tokens, locks, active_run) */
extern const char script_outbox_claim[];     /* PostgreSQL sink: outbox -> this worker's claim list */
extern const char script_outbox_ack[];       /* PostgreSQL sink: after COMMIT, drop the claim, bury refused rows */
extern const char script_unpop[];            /* one element of a processing list -> jobs, if still there */
extern const char script_synced[];            /* a batch of synced campaigns of one run */
extern const char script_cas_hset[];         /* compare-and-set of a hash field (secrets rotate/migrate) */

#endif
