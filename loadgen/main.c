/*
 * rush-loadgen — drives rushd with Double-11 traffic and reports what it measured.
 * (Placeholder until the load generator lands: prints its usage.)
 */
#include <stdio.h>

int main(void)
{
    fprintf(stderr, "rush-loadgen: not built yet\n");
    return 2;
}
