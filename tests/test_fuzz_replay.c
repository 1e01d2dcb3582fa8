/* Regression replay of the fuzz targets: every file of tests/fuzz/corpus/<target>/ (the
 * seeds) and tests/fuzz/regress/<target>/ (inputs that once found a bug) goes through the
 * code the libFuzzer harnesses run, included here whole. A crash or a broken invariant
 * (an abort) fails the test; under make asan, so does any sanitizer report. Paths are
 * relative to the project root, where make test runs. */
#include "test_util.h"

#include "fuzz/fuzz_targets.c"

#include <dirent.h>

/* Feeds every file of tests/fuzz/<kind>/<target>/ to fn, in name order; returns how many. */
static int replay_dir(const char *kind, const char *target, dn_fuzz_fn fn)
{
    char dir[256];
    snprintf(dir, sizeof dir, "tests/fuzz/%s/%s", kind, target);
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort), fed = 0;
    for (int i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        struct stat st;
        if (names[i]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            size_t len = 0;
            uint8_t *data = dn_test_read_file(path, &len);
            cr_assert_not_null(data, "cannot read %s", path);
            fn(data, len);
            free(data);
            fed++;
        }
        free(names[i]);
    }
    if (n >= 0)
        free(names);
    return fed;
}

static void replay(const char *target, dn_fuzz_fn fn)
{
    int n = replay_dir("corpus", target, fn) + replay_dir("regress", target, fn);
    cr_assert_gt(n, 0, "no inputs in tests/fuzz/corpus/%s (run from the project root)", target);
}

Test(fuzz_replay, image)
{
    replay("image", dn_fuzz_image);
}

Test(fuzz_replay, model)
{
    replay("model", dn_fuzz_model);
}

Test(fuzz_replay, tflite)
{
    replay("tflite", dn_fuzz_tflite);
}

Test(fuzz_replay, request_json)
{
    replay("request_json", dn_fuzz_request_json);
}

Test(fuzz_replay, multipart)
{
    replay("multipart", dn_fuzz_multipart);
}

Test(fuzz_replay, service)
{
    DN_REQUIRE_BACKBONE(backbone);
    (void)backbone;
    cr_assert_eq(dn_fuzz_service_setup(), 0, "the service did not start (see stderr)");
    replay("service", dn_fuzz_service);
    dn_fuzz_service_teardown();
}
