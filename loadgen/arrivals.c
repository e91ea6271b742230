/*
 * arrivals.c — the open-loop send schedule (see arrivals.h).
 */
#include "arrivals.h"

#include <math.h>

#include "drive.h"
#include "rush/assert.h"

void rush_arrivals_init(struct rush_arrivals *arrivals, enum rush_loadgen_arrivals kind,
                        double rate_per_s, uint32_t batch, int64_t start_ns, uint64_t seed)
{
    RUSH_ASSERT(arrivals != NULL && rate_per_s > 0 && batch >= 1);
    *arrivals = (struct rush_arrivals){
        .kind = kind,
        .gap_ns = (double)batch * 1e9 / rate_per_s,
        .next_ns = (double)start_ns,
        .random = seed * 0xd1342543de82ef95u + 0x9e3779b97f4a7c15u,
    };
    arrivals->random = arrivals->random != 0 ? arrivals->random : 1;
    RUSH_ASSERT(arrivals->gap_ns > 0);
}

int64_t rush_arrivals_take(struct rush_arrivals *arrivals)
{
    double intended = arrivals->next_ns;
    double gap = arrivals->gap_ns;
    switch (arrivals->kind) {
    case RUSH_ARRIVALS_FIXED:
        break;
    case RUSH_ARRIVALS_POISSON: {
        /* u in (0, 1]: -log(u) is finite, an exponential draw of mean 1. */
        double u = (double)((rush_drive_random(&arrivals->random) >> 11) + 1) * 0x1.0p-53;
        gap = -log(u) * arrivals->gap_ns;
        break;
    }
    }
    arrivals->next_ns = intended + gap;
    arrivals->count++;
    RUSH_ASSERT(arrivals->next_ns >= intended);
    return (int64_t)intended;
}
