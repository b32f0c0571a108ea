/* policy: the failure table of policy.h. */
#include "policy.h"

#include "backoff.h"

pol_decision pol_decide(const pol_limits *l, pol_failure f, unsigned attempt, uint64_t retry_after_ms,
                        int relogged, double unit01)
{
    switch (f) {
    case POL_RATE_LIMITED:
        return (pol_decision){ POL_COOLDOWN, retry_after_ms };
    case POL_AUTH_REJECTED:
        return (pol_decision){ relogged ? POL_DEAD : POL_RELOGIN, 0 };
    case POL_TRANSIENT:
        if (attempt < l->max_attempts) {
            uint64_t backoff = backoff_ms(attempt, l->backoff_base_ms, l->backoff_max_ms, unit01);
            return (pol_decision){ POL_RETRY, backoff_due_ms(0, backoff, retry_after_ms) };
        }
        return (pol_decision){ POL_DEAD, 0 };
    case POL_PERMANENT:
    case POL_TOO_LARGE:
    case POL_POISON:
    case POL_WRONGTYPE:
        break;
    }
    return (pol_decision){ POL_DEAD, 0 };
}
