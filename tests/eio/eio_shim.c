/* LD_PRELOAD shim for disk-fault tests; nothing changes while its control files are absent.
 *
 * $OPSREG_EIO_CONTROL   while this file exists, fsync and fdatasync fail with EIO. The
 *                       data stays in the page cache: a failed writeback the kernel
 *                       reported once, which is exactly when SQLite has already written
 *                       its commit frame.
 * $OPSREG_EROFS_CONTROL while this file exists, the file system behaves as if remounted
 *                       read-only: writes to regular files, opening for writing and
 *                       truncating fail with EROFS. (A real `mount -o remount,ro` is
 *                       refused with EBUSY while a process holds files open for writing,
 *                       as the server does.)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define REAL(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

static int active(const char *variable) {
    const char *control = getenv(variable);
    return control != NULL && access(control, F_OK) == 0;
}

static int read_only_file(int fd) {
    struct stat st;
    return active("OPSREG_EROFS_CONTROL") && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

static int fail(int code) {
    errno = code;
    return -1;
}

int fsync(int fd) {
    return active("OPSREG_EIO_CONTROL") ? fail(EIO) : REAL(fsync)(fd);
}

int fdatasync(int fd) {
    return active("OPSREG_EIO_CONTROL") ? fail(EIO) : REAL(fdatasync)(fd);
}

ssize_t write(int fd, const void *buf, size_t n) {
    return read_only_file(fd) ? fail(EROFS) : REAL(write)(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    return read_only_file(fd) ? fail(EROFS) : REAL(pwrite)(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off) {
    return read_only_file(fd) ? fail(EROFS) : REAL(pwrite64)(fd, buf, n, off);
}

int ftruncate(int fd, off_t length) {
    return read_only_file(fd) ? fail(EROFS) : REAL(ftruncate)(fd, length);
}

static int writing(int flags) {
    return (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)) && active("OPSREG_EROFS_CONTROL");
}

int open(const char *path, int flags, ...) {
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    return writing(flags) ? fail(EROFS) : REAL(open)(path, flags, mode);
}

int open64(const char *path, int flags, ...) {
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    return writing(flags) ? fail(EROFS) : REAL(open64)(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...) {
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    return writing(flags) ? fail(EROFS) : REAL(openat)(dirfd, path, flags, mode);
}
