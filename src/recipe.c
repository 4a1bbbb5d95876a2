/* Training recipes: the learning-rate schedule (a pure function of the step's place in the run) and
 * the `train key=value ...` text of a spec's recipe line, the "train" model note and the CLI's
 * recipe line. */
#include "net.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ONECYCLE_RISE 0.3  /* one-cycle: fraction of the run spent rising (PyTorch's pct_start) */
#define ONECYCLE_START 25.0 /* one-cycle: it starts at lr / 25 (PyTorch's div_factor) */

static double cosine_between(double from, double to, double x) /* x in [0, 1]: from at 0, to at 1 */
{
    return to + (from - to) * 0.5 * (1.0 + cos(M_PI * x));
}

float dn_schedule_lr(const dn_train_params *p, int epoch, double done, int total_epochs)
{
    float lr = p->lr != 0.0f ? p->lr : p->optimizer == DN_OPT_SGD ? DN_SGD_DEFAULT_LR : DN_ADAM_DEFAULT_LR;
    if (p->schedule == DN_SCHEDULE_CONSTANT && !(p->warmup > 0.0f))
        return lr; /* exactly as before schedules existed */
    const double t = epoch + done, total = total_epochs > 0 ? total_epochs : 1;
    const double x = t / total < 1.0 ? t / total : 1.0;
    const double floor_lr = p->min_lr;
    double f = 1.0;
    switch (p->schedule) {
    case DN_SCHEDULE_STEP: {
        const int every = p->step_every > 0 ? p->step_every : 10;
        const double gamma = p->step_gamma > 0.0f ? p->step_gamma : 0.1;
        f = pow(gamma, epoch / every);
        break;
    }
    case DN_SCHEDULE_COSINE:
        f = cosine_between(1.0, floor_lr, x);
        break;
    case DN_SCHEDULE_ONECYCLE:
        f = x < ONECYCLE_RISE ? cosine_between(1.0 / ONECYCLE_START, 1.0, x / ONECYCLE_RISE)
                              : cosine_between(1.0, floor_lr, (x - ONECYCLE_RISE) / (1.0 - ONECYCLE_RISE));
        break;
    default:
        break;
    }
    if (p->warmup > 0.0f && t < p->warmup)
        f *= t / p->warmup;
    return (float)(lr * f);
}

static const char *const schedule_names[] = {"constant", "step", "cosine", "onecycle"};

typedef enum { K_INT, K_FLOAT, K_DOUBLE, K_OPTIMIZER, K_SCHEDULE } key_type;
typedef struct train_key {
    const char *name;
    key_type type;
    size_t offset; /* into dn_train_params; val_split is not in it */
    double min, max;
} train_key;

#define VAL_SPLIT ((size_t)-1)
static const train_key keys[] = {
    {"epochs", K_INT, offsetof(dn_train_params, epochs), 0, 1e6},
    {"batch", K_INT, offsetof(dn_train_params, batch_size), 1, 1e6},
    {"lr", K_FLOAT, offsetof(dn_train_params, lr), 0, 10},
    {"optimizer", K_OPTIMIZER, offsetof(dn_train_params, optimizer), 0, 0},
    {"momentum", K_FLOAT, offsetof(dn_train_params, momentum), 0, 1},
    {"schedule", K_SCHEDULE, offsetof(dn_train_params, schedule), 0, 0},
    {"warmup", K_FLOAT, offsetof(dn_train_params, warmup), 0, 1e6},
    {"step_every", K_INT, offsetof(dn_train_params, step_every), 1, 1e6},
    {"step_gamma", K_FLOAT, offsetof(dn_train_params, step_gamma), 1e-9, 1},
    {"min_lr", K_FLOAT, offsetof(dn_train_params, min_lr), 0, 1},
    {"weight_decay", K_FLOAT, offsetof(dn_train_params, weight_decay), 0, 1},
    {"label_smoothing", K_FLOAT, offsetof(dn_train_params, label_smoothing), 0, 0.99},
    {"patience", K_INT, offsetof(dn_train_params, patience), 0, 1e6},
    {"ensemble", K_INT, offsetof(dn_train_params, ensemble), 0, 1000},
    {"val_split", K_DOUBLE, VAL_SPLIT, 0, 0.99},
};
#define N_KEYS (int)(sizeof keys / sizeof keys[0])

static dn_status set_key(const train_key *k, const char *value, dn_train_params *p, double *val_split, dn_error *err)
{
    void *at = (char *)p + k->offset;
    if (k->type == K_OPTIMIZER || k->type == K_SCHEDULE) {
        const char *const adam_sgd[] = {"adam", "sgd"};
        const char *const *names = k->type == K_OPTIMIZER ? adam_sgd : schedule_names;
        const int n = k->type == K_OPTIMIZER ? 2 : 4;
        for (int i = 0; i < n; i++)
            if (strcmp(value, names[i]) == 0) {
                if (k->type == K_OPTIMIZER)
                    p->optimizer = (dn_optimizer)i;
                else
                    p->schedule = (dn_schedule)i;
                return DN_OK;
            }
        return dn_fail(err, DN_EFORMAT, "%s=%s: expected %s", k->name, value,
                       k->type == K_OPTIMIZER ? "adam or sgd" : "constant, step, cosine or onecycle");
    }
    char *end;
    double v = strtod(value, &end);
    if (end == value || *end || !isfinite(v) || (k->type == K_INT && v != floor(v)))
        return dn_fail(err, DN_EFORMAT, "%s=%s: expected %s", k->name, value, k->type == K_INT ? "a whole number" : "a number");
    if (v < k->min || v > k->max)
        return dn_fail(err, DN_EFORMAT, "%s=%s: out of range %g..%g", k->name, value, k->min, k->max);
    if (k->offset == VAL_SPLIT) {
        if (val_split)
            *val_split = v;
    } else if (k->type == K_INT)
        *(int *)at = (int)v;
    else
        *(float *)at = (float)v;
    return DN_OK;
}

dn_status dn_train_parse(const char *text, dn_train_params *p, double *val_split, dn_error *err)
{
    if (!text || !p)
        return dn_fail(err, DN_EARG, "dn_train_parse: NULL argument");
    const char *cursor = text, *word;
    int len;
    while (dn_next_word(&cursor, &word, &len)) {
        char item[128];
        if (len >= (int)sizeof item)
            return dn_fail(err, DN_EFORMAT, "'%.40s...': too long for a key=value option", word);
        snprintf(item, sizeof item, "%.*s", len, word);
        char *eq = strchr(item, '=');
        if (!eq || eq == item || !eq[1])
            return dn_fail(err, DN_EFORMAT, "'%s': expected key=value", item);
        *eq = '\0';
        int i = 0;
        while (i < N_KEYS && strcmp(keys[i].name, item) != 0)
            i++;
        if (i == N_KEYS)
            return dn_fail(err, DN_EFORMAT, "unknown key '%s' (known: epochs batch lr optimizer momentum schedule warmup "
                                            "step_every step_gamma min_lr weight_decay label_smoothing patience ensemble val_split)",
                           item);
        dn_status st = set_key(&keys[i], eq + 1, p, val_split, err);
        if (st != DN_OK)
            return st;
    }
    return DN_OK;
}

/* The shortest text of f that reads back as the same float ("0.002", not "0.00200000009"). */
static const char *short_float(double f, char *buf)
{
    for (int digits = 6; digits <= 17; digits++) {
        snprintf(buf, 32, "%.*g", digits, f);
        if ((float)strtod(buf, NULL) == (float)f)
            break;
    }
    return buf;
}

int dn_train_print(const dn_train_params *p, double val_split, char *buf, size_t size)
{
    char f1[32], f2[32];
    const float lr = p->lr != 0.0f ? p->lr : p->optimizer == DN_OPT_SGD ? DN_SGD_DEFAULT_LR : DN_ADAM_DEFAULT_LR;
    char text[1024];
    int n = snprintf(text, sizeof text, "epochs=%d batch=%d lr=%s optimizer=%s", p->epochs, p->batch_size, short_float(lr, f1),
                     p->optimizer == DN_OPT_SGD ? "sgd" : "adam");
#define ADD(...) n += snprintf(text + n, sizeof text - (size_t)n, __VA_ARGS__)
    if (p->optimizer == DN_OPT_SGD)
        ADD(" momentum=%s", short_float(p->momentum, f1));
    if (p->schedule != DN_SCHEDULE_CONSTANT && (unsigned)p->schedule < 4)
        ADD(" schedule=%s", schedule_names[p->schedule]);
    if (p->warmup > 0.0f)
        ADD(" warmup=%s", short_float(p->warmup, f1));
    if (p->schedule == DN_SCHEDULE_STEP)
        ADD(" step_every=%d step_gamma=%s", p->step_every > 0 ? p->step_every : 10,
            short_float(p->step_gamma > 0.0f ? p->step_gamma : 0.1f, f2));
    if (p->min_lr > 0.0f)
        ADD(" min_lr=%s", short_float(p->min_lr, f1));
    if (p->weight_decay > 0.0f)
        ADD(" weight_decay=%s", short_float(p->weight_decay, f1));
    if (p->label_smoothing > 0.0f)
        ADD(" label_smoothing=%s", short_float(p->label_smoothing, f1));
    if (p->patience > 0)
        ADD(" patience=%d", p->patience);
    if (p->ensemble > 1)
        ADD(" ensemble=%d", p->ensemble);
    if (val_split > 0.0)
        ADD(" val_split=%s", short_float(val_split, f1));
#undef ADD
    return snprintf(buf, size, "%s", text);
}

dn_status dn_net_recipe(const dn_net *net, dn_train_params *params, double *val_split, dn_error *err)
{
    if (!net || !params)
        return dn_fail(err, DN_EARG, "dn_net_recipe: NULL argument");
    for (int i = 0; i < net->n_recipe; i++) {
        const char *line = net->recipe[i];
        const char *values = line + strcspn(line, " "); /* after the keyword, whatever its length */
        dn_status st = line[0] == 't' ? dn_train_parse(values, params, val_split, err)
                                      : dn_augment_parse(values, &params->augment, err);
        if (st != DN_OK)
            return st; /* parsing the spec checked these lines already */
    }
    return DN_OK;
}
