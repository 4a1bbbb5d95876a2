/* Ensembles: a net (member 0) that owns further members whose probabilities inference averages
 * (net.c, ensemble_average) and which training and model files handle member by member. */
#include "net.h"

#include <stdlib.h>

dn_status dn_net_ensemble_add(dn_net *net, dn_net *member, dn_error *err)
{
    if (!net || !member)
        return dn_fail(err, DN_EARG, "dn_net_ensemble_add: NULL argument");
    if (member == net || member->n_members > 0)
        return dn_fail(err, DN_EARG, "dn_net_ensemble_add: a member must be a single network other than the ensemble");
    for (int m = 0; m < net->n_members; m++)
        if (net->members[m] == member)
            return dn_fail(err, DN_EARG, "dn_net_ensemble_add: the network is already a member");
    if (net->n_members + 1 >= DN_MAX_ENSEMBLE)
        return dn_fail(err, DN_EARG, "an ensemble holds at most %d members", DN_MAX_ENSEMBLE);
    dn_shape a = net->input, b = member->input;
    if (a.h != b.h || a.w != b.w || a.c != b.c)
        return dn_fail(err, DN_ESHAPE, "ensemble member %d expects %dx%dx%d images but member 0 expects %dx%dx%d",
                       net->n_members + 1, b.h, b.w, b.c, a.h, a.w, a.c);
    if (dn_net_n_classes(member) != dn_net_n_classes(net))
        return dn_fail(err, DN_ESHAPE, "ensemble member %d has %d classes but member 0 has %d", net->n_members + 1,
                       dn_net_n_classes(member), dn_net_n_classes(net));
    dn_net **grown = realloc(net->members, sizeof *grown * (size_t)(net->n_members + 1));
    if (!grown)
        return dn_fail(err, DN_ENOMEM, "out of memory for an ensemble member");
    net->members = grown;
    member->raw_max = net->raw_max;
    net->members[net->n_members++] = member;
    return DN_OK;
}

int dn_net_ensemble_size(const dn_net *net)
{
    return net ? net->n_members + 1 : 0;
}

const dn_net *dn_net_ensemble_member(const dn_net *net, int i)
{
    if (!net || i < 0 || i > net->n_members)
        return NULL;
    return i == 0 ? net : net->members[i - 1];
}
