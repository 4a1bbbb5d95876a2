/* The library's version at run time (dn_version). */
#include "digitnet.h"

const char *dn_version(void)
{
    return DN_VERSION;
}
