/* The augmentation options as text: "shift=2 rotate=12 elastic=34", the form of a spec's `augment`
 * line and of the CLI's --augment. One table names every key, its field and its range. */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct augment_key {
    const char *name;
    size_t offset; /* of the float in dn_augment */
    float min, max;
    float fallback; /* the value that means "off" (printing skips it) */
} augment_key;

static const augment_key keys[] = {
    {"shift", offsetof(dn_augment, shift), 0.0f, 64.0f, 0.0f},
    {"rotate", offsetof(dn_augment, rotate), 0.0f, 180.0f, 0.0f},
    {"scale", offsetof(dn_augment, scale), 0.0f, 0.9f, 0.0f},
    {"shear", offsetof(dn_augment, shear), 0.0f, 60.0f, 0.0f},
    {"elastic", offsetof(dn_augment, elastic), 0.0f, 100.0f, 0.0f},
    {"elastic_sigma", offsetof(dn_augment, elastic_sigma), 0.0f, 32.0f, 0.0f},
    {"noise", offsetof(dn_augment, noise), 0.0f, 1.0f, 0.0f},
    {"flip", offsetof(dn_augment, flip), 0.0f, 1.0f, 0.0f},
    {"mixup", offsetof(dn_augment, mixup), 0.0f, 10.0f, 0.0f},
    {"p", offsetof(dn_augment, prob), 0.01f, 1.0f, 1.0f},
};
#define N_KEYS (int)(sizeof keys / sizeof keys[0])

static float *field(dn_augment *a, const augment_key *k)
{
    return (float *)((char *)a + k->offset);
}

static float value_of(const dn_augment *a, const augment_key *k)
{
    float v = *(const float *)((const char *)a + k->offset);
    /* p = 0 in a zeroed struct means the default, 1 */
    return k->fallback == 1.0f && v == 0.0f ? 1.0f : v;
}

dn_status dn_augment_parse(const char *text, dn_augment *a, dn_error *err)
{
    if (!text || !a)
        return dn_fail(err, DN_EARG, "dn_augment_parse: NULL argument");
    const char *cursor = text, *word;
    int len;
    while (dn_next_word(&cursor, &word, &len)) {
        const char *eq = memchr(word, '=', (size_t)len);
        if (!eq)
            return dn_fail(err, DN_EFORMAT, "augment option '%.*s' is not key=value (e.g. shift=2 rotate=10)", len,
                           word);
        int key_len = (int)(eq - word);
        const augment_key *k = NULL;
        for (int i = 0; i < N_KEYS; i++)
            if ((int)strlen(keys[i].name) == key_len && strncmp(word, keys[i].name, (size_t)key_len) == 0)
                k = &keys[i];
        if (!k)
            return dn_fail(err, DN_EFORMAT,
                           "unknown augment option '%.*s' (known: shift, rotate, scale, shear, elastic, "
                           "elastic_sigma, noise, flip, mixup, p)",
                           key_len, word);
        char number[64];
        int num_len = len - key_len - 1;
        if (num_len <= 0 || num_len >= (int)sizeof number)
            return dn_fail(err, DN_EFORMAT, "augment option %s needs a number", k->name);
        memcpy(number, eq + 1, (size_t)num_len);
        number[num_len] = '\0';
        char *end = NULL;
        errno = 0;
        double v = strtod(number, &end);
        if (errno || *end || !isfinite(v))
            return dn_fail(err, DN_EFORMAT, "augment option %s: '%s' is not a number", k->name, number);
        if (v < k->min || v > k->max)
            return dn_fail(err, DN_EFORMAT, "augment option %s=%s is outside %g..%g", k->name, number, k->min,
                           k->max);
        *field(a, k) = (float)v;
    }
    return DN_OK;
}

int dn_augment_print(const dn_augment *a, char *buf, size_t size)
{
    int used = 0;
    if (size)
        buf[0] = '\0';
    for (int i = 0; a && i < N_KEYS; i++) {
        float v = value_of(a, &keys[i]);
        if (v == keys[i].fallback)
            continue;
        size_t room = (size_t)used < size ? size - (size_t)used : 0;
        used += snprintf(room ? buf + used : NULL, room, "%s%s=%g", used ? " " : "", keys[i].name, (double)v);
    }
    return used;
}

int dn_augment_active(const dn_augment *a)
{
    if (!a)
        return 0;
    for (int i = 0; i < N_KEYS; i++)
        if (keys[i].fallback == 0.0f && value_of(a, &keys[i]) != 0.0f)
            return 1;
    return 0;
}
