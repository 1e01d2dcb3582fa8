/* dn_clock: monotonic seconds, for deadlines and time budgets (never wall-clock time,
 * which can jump). */
#ifndef DN_CLOCK_H
#define DN_CLOCK_H

#include <time.h>

static inline double dn_clock_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Whether a deadline (dn_clock_now() seconds; 0 = none) has passed. */
static inline int dn_clock_past(double deadline)
{
    return deadline > 0 && dn_clock_now() > deadline;
}

#endif
