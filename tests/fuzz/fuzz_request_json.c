/* libFuzzer harness: the request_json target of fuzz_targets.h (make fuzz). */
#include "fuzz_targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    dn_fuzz_request_json(data, len);
    return 0;
}
