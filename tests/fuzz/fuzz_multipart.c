/* libFuzzer harness: the multipart target of fuzz_targets.h (make fuzz). */
#include "fuzz_targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    dn_fuzz_multipart(data, len);
    return 0;
}
