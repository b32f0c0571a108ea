/* libFuzzer target: the job codec (common/job.c). Any bytes parse or are
 * refused with a reason; what parses serialises and parses back the same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    job j, again;
    char err[256];
    if (job_parse((const char *)data, size, &j, err, sizeof err) < 0) {
        if (err[0] == '\0')
            abort();   /* a refusal always says why */
        return 0;
    }
    char *text = job_serialize(&j);
    if (text && job_parse(text, strlen(text), &again, err, sizeof err) == 0) {
        if (strcmp(again.id, j.id) != 0 || strcmp(again.run, j.run) != 0 || again.attempt != j.attempt ||
            again.type != j.type || strcmp(again.campaign_id, j.campaign_id) != 0)
            abort();
        job_clear(&again);
    } else if (text) {
        abort();   /* what we write we must read back */
    }
    free(text);
    job_clear(&j);
    return 0;
}
