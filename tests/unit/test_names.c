/* Names of codes and enums: every value named, names round-trip, unknowns are refused. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "rush/types.h"

Test(names, every_outcome_has_a_distinct_name_that_round_trips)
{
    for (int o = 0; o < RUSH_OUTCOME_COUNT_; o++) {
        if (o == RUSH_OUTCOME_RESERVED) { /* held for another branch: no name yet */
            cr_assert_str_eq(rush_outcome_name(o), "unknown");
            continue;
        }
        const char *name = rush_outcome_name(o);
        cr_assert_str_neq(name, "unknown", "outcome %d has no name", o);
        cr_assert_eq(rush_outcome_from_name(name), o);
    }
}

Test(names, every_op_round_trips_and_none_is_not_an_op)
{
    for (int op = 1; op < RUSH_OP_COUNT_; op++)
        cr_assert_eq(rush_op_from_name(rush_op_name(op)), op);
    cr_assert_eq(rush_op_from_name("none"), -1);
    cr_assert_eq(rush_op_from_name("reserve "), -1);
    cr_assert_eq(rush_op_from_name(""), -1);
}

Test(names, out_of_range_values_are_unknown_not_a_crash)
{
    cr_assert_str_eq(rush_outcome_name(200), "unknown");
    cr_assert_str_eq(rush_op_name(-1), "unknown");
    cr_assert_str_eq(rush_event_type_name(RUSH_EV_TYPE_COUNT_), "unknown");
    cr_assert_str_eq(rush_reason_name(RUSH_REASON_COUNT_), "unknown");
}

Test(names, errors_name_both_ranges)
{
    cr_assert_str_eq(rush_strerror(RUSH_EFULL), "a bounded table or ring is full");
    cr_assert_str_eq(rush_strerror(-ENOSPC), strerror(ENOSPC));
    cr_assert_str_eq(rush_strerror(-40000), "unknown error");
}
