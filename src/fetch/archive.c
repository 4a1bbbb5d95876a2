/* Unpacking UCI's zip archive with libzip. The archive's own bytes have no published checksum (and
 * UCI may rebuild it), so what is verified is each member we keep: its size before unpacking, its
 * CRC-32 while unpacking (libzip), and its pinned SHA-256 afterwards. Members are written to
 * temporary names and renamed only once every wanted member has passed. */
#include "fetch/fetch.h"

#include <errno.h>

#include "util/atomic_file.h"

#include <stdlib.h>
#include <string.h>
#include <zip.h>

#define MAX_MEMBERS 8

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* The member whose base name is name (UCI's archives have no folders, but a re-packed copy may). */
static zip_int64_t find_member(zip_t *za, const char *name)
{
    zip_int64_t n = zip_get_num_entries(za, 0);
    for (zip_int64_t i = 0; i < n; i++) {
        const char *entry = zip_get_name(za, (zip_uint64_t)i, ZIP_FL_ENC_GUESS);
        if (entry && strcmp(base_name(entry), name) == 0)
            return i;
    }
    return -1;
}

/* Unpacks one member into af (already open), hashing as it goes. */
static dn_status unpack_member(zip_t *za, zip_int64_t index, const fetch_file *f, const char *zip_path,
                               dn_atomic_file *af, unsigned char *buf, size_t buf_size, dn_error *err)
{
    zip_stat_t zs;
    zip_stat_init(&zs);
    if (zip_stat_index(za, (zip_uint64_t)index, 0, &zs) != 0)
        return dn_fail(err, DN_EFORMAT, "%s: %s: %s", zip_path, f->name, zip_strerror(za));
    if ((zs.valid & ZIP_STAT_SIZE) && zs.size != (zip_uint64_t)f->size)
        return dn_fail(err, DN_EFORMAT, "%s: member %s is %llu bytes, expected %lld", zip_path, f->name,
                       (unsigned long long)zs.size, (long long)f->size);
    zip_file_t *zf = zip_fopen_index(za, (zip_uint64_t)index, 0);
    if (!zf)
        return dn_fail(err, DN_EFORMAT, "%s: cannot open member %s: %s", zip_path, f->name, zip_strerror(za));
    fetch_hasher *h = fetch_hasher_new();
    dn_status st = h ? DN_OK : dn_fail(err, DN_ENOMEM, "out of memory");
    int64_t total = 0;
    while (st == DN_OK) {
        zip_int64_t n = zip_fread(zf, buf, buf_size);
        if (n < 0) { /* a CRC error lands here */
            st = dn_fail(err, DN_EFORMAT, "%s: member %s is damaged: %s", zip_path, f->name, zip_file_strerror(zf));
            break;
        }
        if (n == 0)
            break;
        total += n;
        if (total > f->size) {
            st = dn_fail(err, DN_EFORMAT, "%s: member %s holds more than the %lld bytes expected", zip_path, f->name,
                         (long long)f->size);
            break;
        }
        if (fwrite(buf, 1, (size_t)n, af->file) != (size_t)n)
            st = dn_fail(err, DN_EIO, "%s: write failed: %s", af->tmp_path, strerror(errno));
        else if (fetch_hasher_update(h, buf, (size_t)n) != 0)
            st = dn_fail(err, DN_EIO, "checksum computation failed");
    }
    zip_fclose(zf);
    fetch_digest d;
    if (st == DN_OK && fetch_hasher_final(h, &d) != 0)
        st = dn_fail(err, DN_EIO, "checksum computation failed");
    fetch_hasher_free(h);
    if (st == DN_OK) {
        char what[FETCH_PATH + 64];
        snprintf(what, sizeof what, "%s: member %s", zip_path, f->name);
        st = fetch_check_digest(f, &d, what, err);
    }
    return st;
}

dn_status fetch_unpack_zip(const fetch_set *set, const char *zip_path, const char *dir, const int *wanted,
                           dn_error *err)
{
    if (set->n_files > MAX_MEMBERS)
        return dn_fail(err, DN_EARG, "%s: too many members to unpack", set->name);
    int zerr = 0;
    zip_t *za = zip_open(zip_path, ZIP_RDONLY, &zerr);
    if (!za) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, zerr);
        dn_status st = dn_fail(err, DN_EFORMAT, "%s: not a usable zip archive: %s", zip_path, zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return st;
    }
    size_t buf_size = 1 << 16;
    unsigned char *buf = malloc(buf_size);
    dn_atomic_file af[MAX_MEMBERS];
    int opened[MAX_MEMBERS] = {0};
    dn_status st = buf ? DN_OK : dn_fail(err, DN_ENOMEM, "out of memory");
    for (int i = 0; st == DN_OK && i < set->n_files; i++) {
        if (!wanted[i])
            continue;
        const fetch_file *f = &set->files[i];
        zip_int64_t index = find_member(za, f->name);
        if (index < 0) {
            st = dn_fail(err, DN_EFORMAT, "%s: the archive holds no %s", zip_path, f->name);
            break;
        }
        char path[FETCH_PATH];
        if (snprintf(path, sizeof path, "%s/%s", dir, f->name) >= (int)sizeof path) {
            st = dn_fail(err, DN_EARG, "%s: path too long", dir);
            break;
        }
        st = dn_atomic_open(&af[i], path, err);
        if (st != DN_OK)
            break;
        opened[i] = 1;
        st = unpack_member(za, index, f, zip_path, &af[i], buf, buf_size, err);
    }
    /* All or nothing: a verified .tra beside a missing .tes would only confuse the data loader. */
    for (int i = 0; i < set->n_files; i++) {
        if (!opened[i])
            continue;
        if (st == DN_OK)
            st = dn_atomic_commit(&af[i], err);
        else
            dn_atomic_abort(&af[i], NULL, "");
    }
    free(buf);
    zip_discard(za);
    return st;
}
