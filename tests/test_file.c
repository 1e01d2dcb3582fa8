/* dn_file: whole-file reads, atomic replacement, and the removal of stale temporary files. */
#include "test_util.h"

#include "dn_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

/* Sets a file's modification time age_s seconds into the past. */
static void age(const char *path, int age_s)
{
    struct timespec t[2];
    clock_gettime(CLOCK_REALTIME, &t[0]);
    t[0].tv_sec -= age_s;
    t[1] = t[0];
    cr_assert_eq(utimensat(AT_FDCWD, path, t, 0), 0, "%s", path);
}

Test(file, read_takes_whole_files_within_the_limit)
{
    char dir[64], path[96];
    dn_test_mkdtemp(dir, "dn_file_");
    snprintf(path, sizeof path, "%s/a.txt", dir);
    write_text(path, "hello");
    unsigned char *data = NULL;
    size_t len = 0;
    dn_error err;
    cr_assert_eq(dn_file_read(path, 5, &data, &len, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(len, 5);
    cr_assert_str_eq((char *)data, "hello", "NUL-terminated");
    free(data);
    cr_assert_eq(dn_file_read(path, 4, &data, &len, &err), DN_ETOOBIG);
    cr_assert(strstr(err.msg, path), "%s", err.msg);
    cr_assert_eq(dn_file_read(dir, 100, &data, &len, &err), DN_EIO, "a folder is not a file");
    snprintf(path, sizeof path, "%s/missing", dir);
    cr_assert_eq(dn_file_read(path, 100, &data, &len, &err), DN_EIO);
    dn_test_rmtree(dir);
}

Test(file, write_atomic_replaces_and_leaves_no_temporary_file)
{
    char dir[64], path[96];
    dn_test_mkdtemp(dir, "dn_file_");
    snprintf(path, sizeof path, "%s/state", dir);
    write_text(path, "old");
    dn_error err;
    cr_assert_eq(dn_file_write_atomic(path, "new one", 7, &err), DN_OK, "%s", err.msg);
    unsigned char *data = NULL;
    size_t len = 0;
    cr_assert_eq(dn_file_read(path, 100, &data, &len, &err), DN_OK);
    cr_assert_str_eq((char *)data, "new one");
    free(data);
    cr_assert_eq(dn_file_remove_stale(dir, ".tmp.", -1), 0, "a temporary file was left");
    snprintf(path, sizeof path, "%s/no/such/folder/x", dir);
    cr_assert_eq(dn_file_write_atomic(path, "x", 1, &err), DN_EIO);
    dn_test_rmtree(dir);
}

Test(file, remove_stale_takes_only_old_files_with_the_marker)
{
    char dir[64], old_tmp[96], new_tmp[96], old_other[96];
    dn_test_mkdtemp(dir, "dn_file_");
    snprintf(old_tmp, sizeof old_tmp, "%s/x.safetensors.tmp.123", dir);
    snprintf(new_tmp, sizeof new_tmp, "%s/y.safetensors.tmp.456", dir);
    snprintf(old_other, sizeof old_other, "%s/z.safetensors", dir);
    write_text(old_tmp, "a");
    write_text(new_tmp, "b");
    write_text(old_other, "c");
    age(old_tmp, 7200);
    age(old_other, 7200);
    cr_assert_eq(dn_file_remove_stale(dir, ".tmp.", 3600), 1);
    cr_assert_neq(access(old_tmp, F_OK), 0, "the stale temporary file stayed");
    cr_assert_eq(access(new_tmp, F_OK), 0, "a recent temporary file (a live writer's) went");
    cr_assert_eq(access(old_other, F_OK), 0, "a file without the marker went");
    cr_assert_eq(dn_file_remove_stale("/nonexistent-dir", ".tmp.", 0), 0);
    dn_test_rmtree(dir);
}
