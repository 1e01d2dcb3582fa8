#include "dn_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int dn_file_read(const char *path, size_t max, unsigned char **out, size_t *len, dn_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return dn_error_set(err, DN_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    unsigned char *buf = NULL;
    int rc = DN_OK;
    if (fstat(fileno(f), &st) != 0)
        rc = dn_error_set(err, DN_EIO, "cannot stat %s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = dn_error_set(err, DN_EIO, "%s is not a regular file", path);
    else if ((unsigned long long)st.st_size > max)
        rc = dn_error_set(err, DN_ETOOBIG, "%s has %lld bytes, over the limit of %zu", path,
                          (long long)st.st_size, max);
    else if (!(buf = malloc((size_t)st.st_size + 1)))
        rc = dn_error_set(err, DN_ENOMEM, "out of memory reading %s", path);
    else if (fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
        rc = dn_error_set(err, DN_EIO, "cannot read %s: %s", path,
                          ferror(f) ? strerror(errno) : "file shrank while reading");
    fclose(f);
    if (rc != DN_OK) {
        free(buf);
        return rc;
    }
    buf[st.st_size] = '\0';
    *out = buf;
    *len = (size_t)st.st_size;
    return DN_OK;
}

int dn_file_io_error(dn_error *err, int e, const char *what, const char *path)
{
    int code = e == ENOSPC || e == EDQUOT ? DN_ENOSPC : DN_EIO;
    return dn_error_set(err, code, "%s %s: %s", what, path, strerror(e));
}

int dn_file_write_all(int fd, const void *p, size_t n)
{
    const unsigned char *b = p;
    while (n) {
        ssize_t k = write(fd, b, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return k < 0 ? errno : EIO;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

int dn_file_sync_dir(const char *dir, dn_error *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int e = fd < 0 || fsync(fd) != 0 ? errno : 0;
    if (fd >= 0)
        close(fd);
    return e ? dn_file_io_error(err, e, "cannot sync folder", dir) : DN_OK;
}

int dn_file_make_dir(const char *path, const char *parent, dn_error *err)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return dn_file_io_error(err, errno, "cannot create folder", path);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return dn_error_set(err, DN_EIO, "%s exists and is not a folder", path);
    return dn_file_sync_dir(parent, err);
}

int dn_file_sync_parent(const char *path, dn_error *err)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir)
        return dn_error_set(err, DN_ENOMEM, "no memory for a folder name");
    int rc = dn_file_sync_dir(dir, err);
    free(dir);
    return rc;
}

int dn_file_write_atomic(const char *path, const void *data, size_t len, dn_error *err)
{
    size_t cap = strlen(path) + 32;
    char *tmp = malloc(cap);
    if (!tmp)
        return dn_error_set(err, DN_ENOMEM, "no memory for a temporary name");
    snprintf(tmp, cap, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int e = fd < 0 ? errno : dn_file_write_all(fd, data, len);
    if (fd >= 0 && !e && fsync(fd) != 0)
        e = errno;
    if (fd >= 0 && close(fd) != 0 && !e)
        e = errno;
    if (!e && rename(tmp, path) != 0)
        e = errno;
    int rc = e ? dn_file_io_error(err, e, "cannot write", path) : dn_file_sync_parent(path, err);
    if (e)
        unlink(tmp);
    free(tmp);
    return rc;
}

int dn_file_remove_stale(const char *dir, const char *marker, double max_age_s)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    time_t now = time(NULL);
    struct dirent *de;
    struct stat st;
    int removed = 0;
    while ((de = readdir(d)))
        if (strstr(de->d_name, marker) && fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISREG(st.st_mode) && difftime(now, st.st_mtime) > max_age_s &&
            unlinkat(dirfd(d), de->d_name, 0) == 0)
            removed++;
    closedir(d);
    return removed;
}
