/* libFuzzer harness: the service target of fuzz_targets.h (make fuzz). One service for the
 * whole run, made before the first input and removed at exit. */
#include "fuzz_targets.h"

#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (dn_fuzz_service_setup() != 0)
        exit(1);
    atexit(dn_fuzz_service_teardown);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    dn_fuzz_service(data, len);
    return 0;
}
