/* test_common.h: includes every cmocka test file needs, in the order cmocka
 * 1.1.5 requires, plus a fake environment for cfg tests. */
#ifndef ADSYNC_TEST_COMMON_H
#define ADSYNC_TEST_COMMON_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#endif
