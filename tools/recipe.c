/* Training recipes on the command line: the schedule and regularisation flags, the precedence
 * defaults < the spec's `train` / `augment` lines < command-line flags, the recipe line printed at
 * the start of training and the "train" / "augment" notes a trained model keeps. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const struct {
    const char *flag, *key;
} recipe_flags[] = {
    {"--schedule", "schedule"},       {"--warmup", "warmup"},
    {"--step-every", "step_every"},   {"--step-gamma", "step_gamma"},
    {"--min-lr", "min_lr"},           {"--weight-decay", "weight_decay"},
    {"--label-smoothing", "label_smoothing"}, {"--patience", "patience"},
};

int cli_recipe_flag(cli_options *o, const char *flag, const char *value)
{
    for (size_t i = 0; i < sizeof recipe_flags / sizeof recipe_flags[0]; i++) {
        if (strcmp(flag, recipe_flags[i].flag) != 0)
            continue;
        char item[256];
        snprintf(item, sizeof item, "%s=%s", recipe_flags[i].key, value);
        dn_train_params check = dn_train_default_params();
        dn_error err = {0};
        if (strchr(value, ' ') || strchr(value, '=') || dn_train_parse(item, &check, NULL, &err) != DN_OK)
            return cli_failf("%s: '%s' is not valid (%s)", flag, value, err.msg[0] ? err.msg : "one value"), -1;
        size_t used = strlen(o->train_flags);
        if (used + strlen(item) + 2 > sizeof o->train_flags)
            return cli_failf("%s: too many recipe flags", flag), -1;
        snprintf(o->train_flags + used, sizeof o->train_flags - used, "%s%s", used ? " " : "", item);
        return 1;
    }
    return 0;
}

dn_status cli_apply_recipe(cli_options *o, const dn_net *net, dn_error *err)
{
    /* o holds the command line's defaults, its flags and, with --resume, the checkpoint's settings */
    dn_train_params p = dn_train_default_params();
    p.epochs = o->epochs, p.batch_size = o->batch, p.momentum = (float)o->momentum, p.lr = (float)o->lr;
    p.optimizer = o->optimizer && !strcmp(o->optimizer, "sgd") ? DN_OPT_SGD : DN_OPT_ADAM;
    double val_split = 0.0;
    dn_status st = DN_OK;
    const char *noted = net ? dn_net_note(net, "train") : NULL;
    if (o->resume && noted) {
        /* a checkpoint continues with the recipe its run recorded */
        st = dn_train_parse(noted, &p, &val_split, err);
        const char *aug = dn_net_note(net, "augment");
        if (st == DN_OK && aug)
            st = dn_augment_parse(aug, &p.augment, err);
    } else if (net) {
        st = dn_net_recipe(net, &p, &val_split, err);
    }
    if (st != DN_OK)
        return st;
    /* the flags of the command line win */
    if (o->have_epochs)
        p.epochs = o->epochs;
    if (o->have_batch)
        p.batch_size = o->batch;
    if (o->lr != 0)
        p.lr = (float)o->lr;
    if (o->optimizer)
        p.optimizer = strcmp(o->optimizer, "sgd") == 0 ? DN_OPT_SGD : DN_OPT_ADAM;
    if (o->have_momentum)
        p.momentum = (float)o->momentum;
    if (o->val_split != 0)
        val_split = o->val_split;
    if (o->train_flags[0] && (st = dn_train_parse(o->train_flags, &p, NULL, err)) != DN_OK)
        return st;
    if (o->augment && dn_augment_parse(o->augment, &p.augment, err) != DN_OK) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        snprintf(err->msg, sizeof err->msg, "--augment: %.*s", (int)sizeof err->msg - 16, msg);
        return err->status = DN_EARG;
    }
    if (o->ensemble)
        p.ensemble = o->ensemble;
    /* Write the effective settings back, so the rest of the command (progress, notes, resume) sees them. */
    o->epochs = p.epochs;
    o->batch = p.batch_size;
    o->lr = p.lr;
    o->momentum = p.momentum;
    o->optimizer = p.optimizer == DN_OPT_SGD ? "sgd" : "adam";
    o->val_split = val_split;
    o->ensemble = p.ensemble;
    o->recipe = p;
    o->have_recipe = 1;
    return DN_OK;
}

void cli_recipe_params(const cli_options *o, dn_train_params *p)
{
    if (!o->have_recipe)
        return;
    const dn_train_params *r = &o->recipe;
    p->schedule = r->schedule;
    p->warmup = r->warmup;
    p->step_every = r->step_every;
    p->step_gamma = r->step_gamma;
    p->min_lr = r->min_lr;
    p->weight_decay = r->weight_decay;
    p->label_smoothing = r->label_smoothing;
    p->patience = r->patience;
    p->ensemble = r->ensemble;
    p->augment = r->augment;
}

/* The effective recipe as the `train` line's text and dn_augment_print's. */
static void recipe_texts(const cli_options *o, char *train, size_t train_size, char *aug, size_t aug_size)
{
    dn_train_params p = o->recipe;
    p.epochs = o->epochs, p.batch_size = o->batch, p.lr = (float)o->lr, p.momentum = (float)o->momentum;
    p.optimizer = o->optimizer && !strcmp(o->optimizer, "sgd") ? DN_OPT_SGD : DN_OPT_ADAM;
    dn_train_print(&p, o->val_split, train, train_size);
    dn_augment_print(&o->recipe.augment, aug, aug_size);
}

void cli_print_recipe(FILE *f, const cli_options *o)
{
    char train[1024], aug[512];
    recipe_texts(o, train, sizeof train, aug, sizeof aug);
    fprintf(f, "Recipe: %s%s%s\n", train, aug[0] ? "; augment " : "", aug);
}

dn_status cli_note_recipe(dn_net *net, const cli_options *o, dn_error *err)
{
    char train[1024], aug[512];
    recipe_texts(o, train, sizeof train, aug, sizeof aug);
    dn_status st = dn_net_set_note(net, "train", train, err);
    if (st == DN_OK && aug[0])
        st = dn_net_set_note(net, "augment", aug, err);
    return st;
}
