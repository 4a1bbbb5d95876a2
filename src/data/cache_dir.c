/* Where downloaded data sets live: the XDG cache, or $DIGITNET_DATA when the user chose a place. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

int dn_cache_dir(char *buf, size_t size)
{
    /* The XDG spec says a relative $XDG_CACHE_HOME is invalid and to be ignored. */
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    int n;
    if (xdg && xdg[0] == '/')
        n = snprintf(buf, size, "%s/digitnet", xdg);
    else if (home && home[0])
        n = snprintf(buf, size, "%s/.cache/digitnet", home);
    else
        return -1;
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

dn_status dn_data_default_dir(char *buf, size_t size, dn_error *err)
{
    if (!buf || size == 0)
        return dn_fail(err, DN_EARG, "dn_data_default_dir: no buffer");
    const char *env = getenv("DIGITNET_DATA");
    if (env && env[0]) {
        int n = snprintf(buf, size, "%s", env);
        return n < 0 || (size_t)n >= size ? dn_fail(err, DN_EARG, "$DIGITNET_DATA is too long") : DN_OK;
    }
    if (dn_cache_dir(buf, size) != 0)
        return dn_fail(err, DN_ENOTFOUND,
                       "no place for downloads: set DIGITNET_DATA (or HOME), or give a directory");
    return DN_OK;
}
