#include "dn_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
