/* Telling a saved model from a spec by its first bytes, and opening either. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

dn_status dn_model_is_saved(const char *path, int *is_saved, dn_error *err)
{
    if (!path)
        return dn_fail(err, DN_EARG, "dn_model_is_saved: NULL path");
    /* A safetensors file starts with its header's length (8 bytes, little-endian, far below 2^48)
     * and then '{'; a spec is text, which never has zero bytes there. */
    unsigned char head[9] = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return dn_fail(err, DN_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t got = fread(head, 1, sizeof head, f);
    int failed = ferror(f);
    fclose(f);
    if (failed)
        return dn_fail(err, DN_EIO, "%s: read error", path);
    if (is_saved)
        *is_saved = got == sizeof head && head[8] == '{' && head[6] == 0 && head[7] == 0;
    return DN_OK;
}

dn_status dn_model_open(const char *path, uint64_t seed, dn_net **out, int *is_saved, dn_error *err)
{
    int saved = 0;
    dn_status st = dn_model_is_saved(path, &saved, err);
    if (st != DN_OK)
        return st;
    if (is_saved)
        *is_saved = saved;
    return saved ? dn_model_load(path, out, err) : dn_net_load_spec(path, seed, out, err);
}
