/* failalloc: an LD_PRELOAD shim for the out-of-memory test
 * (tests/integration/test_oom.py). Once the file named by
 * FAILALLOC_ARM_FILE exists, every FAILALLOC_EVERY-th call to malloc,
 * calloc, realloc, strdup or strndup made by the program itself (the worker
 * and adsync_common, not the libraries it links) returns NULL, counting
 * from the arming, so the allocations of the job path fail in turn while the
 * process goes on; after FAILALLOC_LIMIT failures memory is "back" and
 * nothing fails any more. FAILALLOC_EVERY=k with FAILALLOC_LIMIT=1 fails
 * exactly the k-th allocation after arming. At exit the number of
 * allocations counted after arming and the failures go to the file named by
 * FAILALLOC_REPORT, if set, as "calls failures".
 * Libraries are spared because some cannot survive it (hiredis 0.14 asserts
 * when a callback could not be queued); allocations before the file appears
 * (start-up) never fail. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static atomic_ulong calls;
static unsigned long every, limit;
static atomic_ulong failed;
static const char *arm_file;
static atomic_int armed, resolving;
static atomic_ulong armed_at;   /* calls when the arm file was seen */
static uintptr_t text_lo, text_hi;   /* the program's own executable segment */

static int find_text(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            text_lo = info->dlpi_addr + ph->p_vaddr;
            text_hi = text_lo + ph->p_memsz;
        }
    }
    return 1;   /* the first entry is the program */
}

/* dlsym may itself call calloc: those calls are served from here. */
static char early[4096];
static size_t early_used;

static void *early_alloc(size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (early_used + n > sizeof early)
        return NULL;
    void *p = early + early_used;
    early_used += n;
    return p;
}

static void resolve(void)
{
    if (real_malloc || atomic_exchange(&resolving, 1))
        return;
    real_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
    real_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    real_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    const char *e = getenv("FAILALLOC_EVERY");
    every = e ? strtoul(e, NULL, 10) : 0;
    const char *l = getenv("FAILALLOC_LIMIT");
    limit = l ? strtoul(l, NULL, 10) : (unsigned long)-1;
    arm_file = getenv("FAILALLOC_ARM_FILE");
    dl_iterate_phdr(find_text, NULL);
}

/* Whether this allocation, asked for from caller, fails. The arm file is
 * looked at every 64 calls. */
static int fail_now(const void *caller)
{
    if (every == 0 || arm_file == NULL || (uintptr_t)caller < text_lo || (uintptr_t)caller >= text_hi)
        return 0;
    unsigned long n = atomic_fetch_add(&calls, 1) + 1;
    if (!atomic_load(&armed)) {
        if (n % 64 == 0 && access(arm_file, F_OK) == 0) {
            atomic_store(&armed_at, n);
            atomic_store(&armed, 1);
        }
        return 0;
    }
    return (n - atomic_load(&armed_at)) % every == 0 && atomic_fetch_add(&failed, 1) < limit;
}

__attribute__((destructor)) static void report(void)
{
    const char *path = getenv("FAILALLOC_REPORT");
    if (path == NULL || !atomic_load(&armed))
        return;
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return;
    unsigned long failures = atomic_load(&failed);
    fprintf(f, "%lu %lu\n", atomic_load(&calls) - atomic_load(&armed_at), failures < limit ? failures : limit);
    fclose(f);
}

void *malloc(size_t n)
{
    resolve();
    if (!real_malloc)
        return early_alloc(n);
    return fail_now(__builtin_return_address(0)) ? NULL : real_malloc(n);
}

void *calloc(size_t k, size_t n)
{
    resolve();
    if (!real_calloc) {
        void *p = early_alloc(k * n);
        return p ? memset(p, 0, k * n) : NULL;
    }
    return fail_now(__builtin_return_address(0)) ? NULL : real_calloc(k, n);
}

void *realloc(void *p, size_t n)
{
    resolve();
    if (!real_realloc)
        return NULL;
    return fail_now(__builtin_return_address(0)) ? NULL : real_realloc(p, n);
}

static char *copy(const char *s, size_t n, const void *caller)
{
    resolve();
    if (fail_now(caller))
        return NULL;
    char *p = real_malloc ? real_malloc(n + 1) : early_alloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

char *strdup(const char *s)
{
    return copy(s, strlen(s), __builtin_return_address(0));
}

char *strndup(const char *s, size_t n)
{
    return copy(s, strnlen(s, n), __builtin_return_address(0));
}

void free(void *p)
{
    static void (*real_free)(void *);
    static atomic_int finding;
    if (p >= (void *)early && p < (void *)(early + sizeof early))
        return;
    if (!real_free) {
        /* dlsym may free an earlier error string through here: that one
         * is leaked rather than looked up again without end */
        if (atomic_exchange(&finding, 1))
            return;
        real_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    }
    real_free(p);
}
