/* Status names and the error-record helper. */
#include "internal.h"

#include <stdio.h>

const char *dn_status_str(dn_status status)
{
    switch (status) {
    case DN_OK: return "ok";
    case DN_ENOMEM: return "out of memory";
    case DN_EIO: return "input/output error";
    case DN_EFORMAT: return "bad format";
    case DN_ESHAPE: return "shape mismatch";
    case DN_EARG: return "bad argument";
    case DN_ENOTFOUND: return "not found";
    case DN_ENAN: return "loss is not a number";
    case DN_ELIMIT: return "size limit exceeded";
    case DN_ESTOPPED: return "stopped";
    case DN_ENET: return "download failed";
    }
    return "unknown error";
}

dn_status dn_fail(dn_error *err, dn_status status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}
