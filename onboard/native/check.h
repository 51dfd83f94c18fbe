/* The ctest unit tests' one assertion: CHECK(cond, printf-style message) counts a failure and
 * says where, and the test's main returns check_report(). */
#ifndef ORBITLITE_CHECK_H
#define ORBITLITE_CHECK_H

#include <stdio.h>

static int failures = 0;

#define CHECK(cond, ...)                                        \
    do {                                                        \
        if (!(cond)) {                                          \
            ++failures;                                         \
            fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);     \
            fprintf(stderr, __VA_ARGS__);                       \
            fputc('\n', stderr);                                \
        }                                                       \
    } while (0)

static int check_report(const char *suite) {
    if (failures) fprintf(stderr, "%s: %d check(s) failed\n", suite, failures);
    else printf("%s: all checks passed\n", suite);
    return failures != 0;
}

#endif
