/* --report DIR: not available in this build yet. */
#include "cli.h"

int cli_write_report(const cli_report *r, dn_error *err)
{
    err->status = DN_EARG;
    snprintf(err->msg, sizeof err->msg, "%s: --report is not available in this build", r->dir);
    return DN_EARG;
}
