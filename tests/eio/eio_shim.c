/* LD_PRELOAD shim: fsync/fdatasync fail with EIO while the file named by
 * $OPSREG_EIO_CONTROL exists. Nothing else changes: the data stays in the page
 * cache, as after a real failed writeback that the kernel reported once. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static int failing(void) {
    const char *control = getenv("OPSREG_EIO_CONTROL");
    return control != NULL && access(control, F_OK) == 0;
}

int fsync(int fd) {
    static int (*real)(int);
    if (failing()) {
        errno = EIO;
        return -1;
    }
    if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (failing()) {
        errno = EIO;
        return -1;
    }
    if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return real(fd);
}
