/* Finds a data set on disk and loads it. A name ("mnist", "optdigits", ...) is looked up as
 * <root>/<name> under a fixed list of roots; anything else is taken as a directory holding the
 * standard file names. The first directory that holds the files wins, and if those files turn out
 * to be broken the loader's error is returned rather than quietly trying the next copy: a user who
 * put files somewhere wants to hear what is wrong with them. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define LOC_PATH 4096 /* longest path we build */
#define LOC_MAX_ROOTS 5
#define LOC_MAX_PLACES (LOC_MAX_ROOTS + 1) /* the roots, plus data_dir itself */

typedef enum set_kind { KIND_IDX, KIND_OPTDIGITS, KIND_ANY } set_kind;

typedef struct named_set {
    const char *name;
    set_kind kind;
    int fetchable; /* `digitnet fetch NAME` can download it (mnist-10k is a local subset only) */
} named_set;

static const named_set known_sets[] = {
    {"optdigits", KIND_OPTDIGITS, 1},
    {"mnist", KIND_IDX, 1},
    {"mnist-10k", KIND_IDX, 0},
    {"fashion-mnist", KIND_IDX, 1},
};

/* The four IDX files in load order, each under its two spellings (Yann LeCun's site uses the dash;
 * some mirrors and Kaggle copies use a dot). Each spelling may also carry ".gz". */
static const char *const idx_files[4][2] = {
    {"train-images-idx3-ubyte", "train-images.idx3-ubyte"},
    {"train-labels-idx1-ubyte", "train-labels.idx1-ubyte"},
    {"t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"},
    {"t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"},
};

static const char idx_hint[] = "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                               "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz";
static const char optdigits_hint[] = "optdigits.tra and optdigits.tes (or UCI's data.csv)";

typedef enum found_kind { FOUND_NONE, FOUND_IDX, FOUND_OPT_PAIR, FOUND_OPT_CSV } found_kind;

typedef struct found {
    found_kind kind;
    char paths[4][LOC_PATH]; /* IDX: train images, train labels, test images, test labels;
                                optdigits: .tra and .tes, or data.csv alone */
} found;

/* Scratch for one search; some 40 KiB of paths, too much for a library's stack frame. */
typedef struct search {
    found f;
    char tried[LOC_MAX_PLACES][LOC_PATH];
} search;

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Anything but a directory counts: the loader will say if it cannot read it. */
static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && !S_ISDIR(st.st_mode);
}

/* buf = dir/name+suffix, or dir alone when name is NULL. */
static dn_status join(char *buf, const char *dir, const char *name, const char *suffix, dn_error *err)
{
    int n = name ? snprintf(buf, LOC_PATH, "%s/%s%s", dir, name, suffix)
                 : snprintf(buf, LOC_PATH, "%s", dir);
    if (n < 0 || n >= LOC_PATH)
        return dn_fail(err, DN_EARG, "%.200s...: path too long", dir);
    return DN_OK;
}

/* Looks for the four IDX files in dir. Some but not all of them is an error, not a miss: it is a
 * half-finished download or a typo in a name, which searching on would only hide. */
static dn_status probe_idx(const char *dir, found *f, dn_error *err)
{
    static const char *const suffixes[2] = {".gz", ""};
    int n_found = 0;
    const char *missing[4];
    int n_missing = 0;
    for (int file = 0; file < 4; file++) {
        int ok = 0;
        for (int spelling = 0; spelling < 2 && !ok; spelling++)
            for (int s = 0; s < 2 && !ok; s++) {
                dn_status st = join(f->paths[file], dir, idx_files[file][spelling], suffixes[s], err);
                if (st)
                    return st;
                ok = is_file(f->paths[file]);
            }
        if (ok)
            n_found++;
        else
            missing[n_missing++] = idx_files[file][0];
    }
    if (n_found == 4) {
        f->kind = FOUND_IDX;
        return DN_OK;
    }
    if (n_found > 0) {
        char list[256] = "";
        for (int i = 0; i < n_missing; i++) {
            size_t used = strlen(list);
            snprintf(list + used, sizeof list - used, "%s%s[.gz]", i ? ", " : "", missing[i]);
        }
        return dn_fail(err, DN_ENOTFOUND, "%s: incomplete IDX data set: missing %s", dir, list);
    }
    f->kind = FOUND_NONE;
    return DN_OK;
}

static dn_status probe_optdigits(const char *dir, found *f, dn_error *err)
{
    dn_status st = join(f->paths[0], dir, "optdigits.tra", "", err);
    if (!st)
        st = join(f->paths[1], dir, "optdigits.tes", "", err);
    if (!st)
        st = join(f->paths[2], dir, "data.csv", "", err);
    if (st)
        return st;
    int tra = is_file(f->paths[0]), tes = is_file(f->paths[1]);
    if (tra && tes) {
        f->kind = FOUND_OPT_PAIR;
        return DN_OK;
    }
    if (is_file(f->paths[2])) {
        memmove(f->paths[0], f->paths[2], LOC_PATH);
        f->kind = FOUND_OPT_CSV;
        return DN_OK;
    }
    if (tra || tes)
        return dn_fail(err, DN_ENOTFOUND, "%s: has %s but not %s (or put UCI's data.csv there)", dir,
                       tra ? "optdigits.tra" : "optdigits.tes", tra ? "optdigits.tes" : "optdigits.tra");
    f->kind = FOUND_NONE;
    return DN_OK;
}

static dn_status probe(const char *dir, set_kind kind, found *f, dn_error *err)
{
    f->kind = FOUND_NONE;
    dn_status st = DN_OK;
    if (kind == KIND_IDX || kind == KIND_ANY)
        st = probe_idx(dir, f, err);
    if (!st && f->kind == FOUND_NONE && (kind == KIND_OPTDIGITS || kind == KIND_ANY))
        st = probe_optdigits(dir, f, err);
    return st;
}

static dn_status load_found(const found *f, dn_dataset *train, dn_dataset *test, dn_error *err)
{
    dn_status st;
    switch (f->kind) {
    case FOUND_IDX:
        st = dn_idx_load(f->paths[0], f->paths[1], train, err);
        if (!st)
            st = dn_idx_load(f->paths[2], f->paths[3], test, err);
        /* A model is trained on one image size and tested on the same. */
        if (!st && (test->h != train->h || test->w != train->w))
            st = dn_fail(err, DN_EFORMAT, "%s: images are %dx%d, but %s has %dx%d", f->paths[2],
                         test->h, test->w, f->paths[0], train->h, train->w);
        break;
    case FOUND_OPT_PAIR:
        st = dn_optdigits_load(f->paths[0], train, err);
        if (!st)
            st = dn_optdigits_load(f->paths[1], test, err);
        break;
    case FOUND_OPT_CSV:
        st = dn_optdigits_load(f->paths[0], train, err);
        /* No test rows, but the shape and scale of the set, so that it concatenates and checks. */
        test->h = train->h;
        test->w = train->w;
        test->c = train->c;
        test->raw_max = train->raw_max;
        break;
    case FOUND_NONE:
    default:
        st = dn_fail(err, DN_ENOTFOUND, "no data set found");
        break;
    }
    if (st) {
        dn_dataset_free(train);
        dn_dataset_free(test);
    }
    return st;
}

dn_status dn_data_open(const char *name_or_dir, const char *data_dir, dn_dataset *train,
                       dn_dataset *test, dn_error *err)
{
    if (!train || !test)
        return dn_fail(err, DN_EARG, "dn_data_open: train or test is NULL");
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    if (!name_or_dir || !name_or_dir[0])
        return dn_fail(err, DN_EARG, "dn_data_open: no data set name or directory given");

    search *sr = malloc(sizeof *sr);
    if (!sr)
        return dn_fail(err, DN_ENOMEM, "dn_data_open: out of memory");
    found *f = &sr->f;
    char(*tried)[LOC_PATH] = sr->tried;

    const named_set *known = NULL;
    for (size_t i = 0; i < sizeof known_sets / sizeof known_sets[0]; i++)
        if (strcmp(name_or_dir, known_sets[i].name) == 0)
            known = &known_sets[i];

    dn_status st;
    if (!known && is_dir(name_or_dir)) {
        st = probe(name_or_dir, KIND_ANY, f, err);
        if (!st && f->kind == FOUND_NONE)
            st = dn_fail(err, DN_ENOTFOUND, "no data set in %s; put %s, or %s, there", name_or_dir,
                         idx_hint, optdigits_hint);
        if (!st)
            st = load_found(f, train, test, err);
        free(sr);
        return st;
    }
    if (!known && strchr(name_or_dir, '/')) {
        free(sr);
        return dn_fail(err, DN_ENOTFOUND,
                       "%s: no such directory, and not a known data set (optdigits, mnist, "
                       "mnist-10k, fashion-mnist)",
                       name_or_dir);
    }

    /* A plain name that is not one of ours may still be a folder under a root, e.g. "kmnist". */
    set_kind kind = known ? known->kind : KIND_ANY;
    char cache[LOC_PATH];
    const char *roots[LOC_MAX_ROOTS] = {data_dir, getenv("DIGITNET_DATA"),
                                        dn_cache_dir(cache, sizeof cache) == 0 ? cache : NULL,
                                        "./data", "/usr/share/datasets"};
    int n_tried = 0;
    for (int r = 0; r < LOC_MAX_ROOTS; r++) {
        if (!roots[r] || !roots[r][0])
            continue;
        /* --data-dir may also name the set's own folder (`--data-dir ~/Downloads/mnist`). */
        for (int itself = 0; itself < (r == 0 ? 2 : 1); itself++) {
            char *dir = tried[n_tried];
            st = join(dir, roots[r], itself ? NULL : name_or_dir, "", err);
            if (st) {
                free(sr);
                return st;
            }
            int seen = 0; /* a root given twice (--data-dir and $DIGITNET_DATA) is looked at once */
            for (int i = 0; i < n_tried; i++)
                seen |= strcmp(tried[i], dir) == 0;
            if (seen)
                continue;
            n_tried++;
            if (!is_dir(dir))
                continue;
            st = probe(dir, kind, f, err);
            if (!st && f->kind != FOUND_NONE)
                st = load_found(f, train, test, err);
            if (st || f->kind != FOUND_NONE) {
                free(sr);
                return st;
            }
        }
    }
    const char *files = kind == KIND_IDX         ? idx_hint
                        : kind == KIND_OPTDIGITS ? optdigits_hint
                                                 : "the four IDX files (train-images-idx3-ubyte.gz, "
                                                   "...) or optdigits.tra and optdigits.tes";
    char fetch_hint[96] = "";
    if (known && known->fetchable)
        snprintf(fetch_hint, sizeof fetch_hint, " (dn_fetch can download it)");
    /* The list of places gets what room the one-line message has left, so that the advice at its
     * end is never cut off. */
    size_t fixed = strlen(name_or_dir) + strlen(files) + strlen(fetch_hint) + 160;
    size_t room = fixed < sizeof err->msg ? sizeof err->msg - fixed : 0;
    char places[1024] = "";
    if (room > sizeof places)
        room = sizeof places;
    for (int i = 0; i < n_tried; i++) {
        size_t used = strlen(places), len = strlen(tried[i]) + (i ? 2 : 0);
        if (used + len + 4 >= room) {
            if (used + 4 <= room)
                strcat(places, "...");
            break;
        }
        snprintf(places + used, sizeof places - used, "%s%s", i ? ", " : "", tried[i]);
    }
    free(sr);
    return dn_fail(err, DN_ENOTFOUND,
                   "data set '%s' not found%s; looked in: %s; put %s in one of them or in a data "
                   "directory%s",
                   name_or_dir,
                   known ? "" : " (known names: optdigits, mnist, mnist-10k, fashion-mnist)", places,
                   files, fetch_hint);
}
