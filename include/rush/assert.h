/*
 * rush/assert.h — assertions that stay on in production builds.
 *
 * RUSH_ASSERT checks arguments, post-conditions and invariants and aborts with the place and the
 * expression; a broken invariant in a money-handling engine must stop it, not be shipped.
 * RUSH_ASSERT_DEBUG is for O(n) checks, compiled in only when RUSH_DEBUG_CHECKS is defined.
 *
 * An assertion has no side effects: it only reads (a rule checked by the tree's tests, so that
 * RUSH_ASSERT could be compiled out, or moved, without changing what a program does). A call
 * that does work and must succeed is made on its own line and its result asserted, or, in test
 * and benchmark set-up where failing means the program cannot go on, written RUSH_VERIFY(call):
 * always evaluated, exactly once, side effects intended (the VERIFY of illumos/ZFS).
 */
#ifndef RUSH_ASSERT_H
#define RUSH_ASSERT_H

#include <stdio.h>
#include <stdlib.h>

#define RUSH_ASSERT(condition)                                                                     \
    do {                                                                                           \
        if (__builtin_expect(!(condition), 0)) {                                                   \
            fprintf(stderr, "%s:%d: %s: assertion failed: %s\n", __FILE__, __LINE__, __func__,     \
                    #condition);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define RUSH_VERIFY(condition) RUSH_ASSERT(condition)

#ifdef RUSH_DEBUG_CHECKS
#define RUSH_ASSERT_DEBUG(condition) RUSH_ASSERT(condition)
#else
#define RUSH_ASSERT_DEBUG(condition) ((void)0)
#endif

#endif
