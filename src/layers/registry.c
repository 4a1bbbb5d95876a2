/* The table of layer operations, generated from layers.def. */
#include "layers/layer.h"

#include <string.h>

#define DN_LAYER(kind, name, ops) extern const dn_layer_ops ops;
#include "layers/layers.def"
#undef DN_LAYER

static const dn_layer_ops *const registry[] = {
#define DN_LAYER(kind, name, ops) &ops,
#include "layers/layers.def"
#undef DN_LAYER
};

_Static_assert(sizeof registry / sizeof registry[0] == DN_LAYER_COUNT,
               "layers.def and the registry disagree");

const dn_layer_ops *dn_layer_registry(dn_layer_kind kind)
{
    return (unsigned)kind < DN_LAYER_COUNT ? registry[kind] : NULL;
}

dn_layer_kind dn_layer_lookup(const char *name)
{
    for (int k = 0; k < DN_LAYER_COUNT; k++)
        if (strcmp(registry[k]->name, name) == 0)
            return (dn_layer_kind)k;
    return DN_LAYER_COUNT;
}
