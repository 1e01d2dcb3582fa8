/* dn_file: the few POSIX file steps that durable writes share (the safetensors writer,
 * the feedback store, the model registry): whole writes, folder syncs, folder creation,
 * and errno turned into an error code (a full disk is DN_ENOSPC, not DN_EIO). */
#ifndef DN_FILE_H
#define DN_FILE_H

#include "dn_error.h"

#include <stddef.h>

/* Reads a whole regular file of at most max bytes (else DN_ETOOBIG) into a malloc'd
 * buffer with a NUL after its len bytes. DN_EIO when it cannot be opened or read. */
int dn_file_read(const char *path, size_t max, unsigned char **out, size_t *len, dn_error *err);
/* Replaces path with len bytes of data so that a reader sees the old file or the whole new
 * one, and the new one survives a power loss: path.tmp.PID written, synced, renamed, the
 * folder synced. On failure the temporary file is gone. */
int dn_file_write_atomic(const char *path, const void *data, size_t len, dn_error *err);
/* Removes the files of dir whose name contains marker and that were last modified over
 * max_age_s seconds ago: temporary files a killed process left (a live writer renames or
 * removes its own within seconds). Failures only leave files behind; returns how many went. */
int dn_file_remove_stale(const char *dir, const char *marker, double max_age_s);
/* Records errno e about path as DN_ENOSPC (ENOSPC, EDQUOT) or DN_EIO; returns the code. */
int dn_file_io_error(dn_error *err, int e, const char *what, const char *path);
/* Writes all n bytes (retrying EINTR); 0 or the errno of the failure. */
int dn_file_write_all(int fd, const void *p, size_t n);
/* A creation, rename or link in dir is durable only once dir itself is synced. */
int dn_file_sync_dir(const char *dir, dn_error *err);
/* dn_file_sync_dir on the folder that holds path ("." for a bare name). */
int dn_file_sync_parent(const char *path, dn_error *err);
/* mkdir that accepts an existing folder; parent is synced either way, since a folder found
 * here may have been made by a process that died before syncing it. */
int dn_file_make_dir(const char *path, const char *parent, dn_error *err);

#endif
