/* Temporary-name-and-rename writing, so that an interrupted save never leaves a torn file. */
#include "util/atomic_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Temporary files of path left by processes that died mid-save (SIGKILL, power cut): NAME.tmp-PID-N
 * whose PID is no longer running. Removed after the next successful save of path. (A PID reused by
 * an unrelated process keeps its file until a later save; a PID on another machine sharing the
 * directory could look dead, which is why only our own naming pattern is matched.) */
static void remove_stale(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[1024];
    const char *base = slash ? slash + 1 : path;
    if (slash) {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof dir)
            return;
        memcpy(dir, path, n);
        dir[n] = 0;
        if (n == 0)
            strcpy(dir, "/");
    } else {
        strcpy(dir, ".");
    }
    DIR *d = opendir(dir);
    if (!d)
        return;
    size_t base_len = strlen(base);
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *name = e->d_name;
        if (strncmp(name, base, base_len) != 0 || strncmp(name + base_len, ".tmp-", 5) != 0)
            continue;
        char *end;
        errno = 0;
        long pid = strtol(name + base_len + 5, &end, 10);
        if (errno || pid <= 0 || *end != '-' || end[1] < '0' || end[1] > '9' || pid == (long)getpid())
            continue;
        strtoul(end + 1, &end, 10);
        if (*end || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char stale[2200];
        if (snprintf(stale, sizeof stale, "%s/%s", dir, name) < (int)sizeof stale)
            unlink(stale);
    }
    closedir(d);
}

dn_status dn_atomic_open(dn_atomic_file *af, const char *path, dn_error *err)
{
    memset(af, 0, sizeof *af);
    if (strlen(path) >= sizeof af->path)
        return dn_fail(err, DN_EARG, "%s: path too long", path);
    strcpy(af->path, path);
    /* O_EXCL with mode 0666: the kernel applies the umask, as for any ordinary file, and never
     * opens a file that already exists. The name is unique per process and call. */
    static _Atomic unsigned counter;
    int fd = -1;
    for (int attempt = 0; fd < 0 && attempt < 100; attempt++) {
        snprintf(af->tmp_path, sizeof af->tmp_path, "%s.tmp-%ld-%u", path, (long)getpid(), counter++);
        fd = open(af->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0)
        return dn_fail(err, DN_EIO, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
    af->file = fdopen(fd, "wb");
    if (!af->file) {
        int e = errno;
        close(fd);
        unlink(af->tmp_path);
        return dn_fail(err, DN_EIO, "%s: %s", path, strerror(e));
    }
    return DN_OK;
}

/* Fault injection for the torn-write test (tests/cli/checkpoint.sh), off unless the environment
 * sets DIGITNET_TEST_KILL_SAVE=K:N: the K-th commit of the process (1-based) leaves only the
 * first N bytes in its temporary file, synced, and then raises SIGKILL, as a crash in the middle of
 * that save would. Nothing is renamed, so the final name keeps what it held. */
static void kill_inside_save_if_asked(dn_atomic_file *af)
{
    static _Atomic unsigned commits;
    const char *spec = getenv("DIGITNET_TEST_KILL_SAVE");
    unsigned which = 0;
    long bytes = 0;
    if (!spec || sscanf(spec, "%u:%ld", &which, &bytes) != 2 || ++commits != which)
        return;
    fflush(af->file);
    int fd = fileno(af->file);
    struct stat st;
    if (fstat(fd, &st) == 0 && bytes >= 0 && bytes < st.st_size && ftruncate(fd, bytes) == 0)
        fsync(fd);
    raise(SIGKILL);
}

dn_status dn_atomic_commit(dn_atomic_file *af, dn_error *err)
{
    kill_inside_save_if_asked(af);
    int bad = fflush(af->file) != 0 || fsync(fileno(af->file)) != 0;
    int e = errno;
    bad |= fclose(af->file) != 0;
    af->file = NULL;
    if (bad) {
        unlink(af->tmp_path);
        return dn_fail(err, DN_EIO, "%s: write failed: %s", af->path, strerror(e));
    }
    if (rename(af->tmp_path, af->path) != 0) {
        e = errno;
        unlink(af->tmp_path);
        return dn_fail(err, DN_EIO, "%s: cannot rename into place: %s", af->path, strerror(e));
    }
    remove_stale(af->path);
    return DN_OK;
}

dn_status dn_atomic_abort(dn_atomic_file *af, dn_error *err, const char *why)
{
    if (af->file)
        fclose(af->file);
    af->file = NULL;
    unlink(af->tmp_path);
    return dn_fail(err, DN_EIO, "%s: %s", af->path, why);
}

dn_status dn_atomic_write_failed(dn_atomic_file *af, dn_error *err)
{
    char why[256];
    snprintf(why, sizeof why, "write failed: %s", strerror(errno ? errno : EIO));
    return dn_atomic_abort(af, err, why);
}

dn_status dn_atomic_write(const char *path, const void *bytes, size_t len, dn_error *err)
{
    dn_atomic_file af;
    dn_status st = dn_atomic_open(&af, path, err);
    if (st != DN_OK)
        return st;
    if (len && fwrite(bytes, 1, len, af.file) != len)
        return dn_atomic_write_failed(&af, err);
    return dn_atomic_commit(&af, err);
}
