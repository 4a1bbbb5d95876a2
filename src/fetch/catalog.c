/* The data sets dn_fetch can download: their files with pinned sizes and checksums, and the mirrors
 * that serve them, in the order they are tried.
 *
 * Where the numbers come from:
 *  - MNIST: sizes and MD5 as published with the data set (also in ../shared/data/README.md). The
 *    SHA-256 of the two t10k files was computed here from the canonical copies in
 *    ../shared/data/mnist-10k (their MD5 matches the published one). Only a 10,000-image subset of
 *    the training set is on these machines, so the SHA-256 of the two full training files is the
 *    value in wide use (TensorFlow Datasets, torchvision's prototype datasets); a download must
 *    match it and the published MD5 and size, so a wrong pin could only refuse good data, never
 *    accept bad data.
 *  - Fashion-MNIST: sizes and MD5 as published in the data set's README. Debian's
 *    dataset-fashion-mnist holds the same deflate streams but its gzip headers were rewritten (no
 *    file name, a 2020 time stamp), so its files are 23-24 bytes shorter than the mirror's. The
 *    mirror's exact bytes were rebuilt from them by putting the original header back (name, and
 *    the 2017 time stamp found by matching the published MD5), and their SHA-256 computed; see
 *    tests/fetch/server.py, which serves those rebuilt files to the tests.
 *  - optdigits: SHA-256 of optdigits.tra and optdigits.tes computed from ../shared/data/optdigits
 *    (UCI's files; the same values are in that folder's README). UCI publishes no checksum for its
 *    zip archive and its bytes cannot be known offline, so the archive is not checked as a whole:
 *    the two members taken from it are, after unpacking (libzip checks each member's CRC-32 too).
 */
#include "fetch/fetch.h"

#include <string.h>

static const fetch_file mnist_files[] = {
    {"train-images-idx3-ubyte.gz", 9912422, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
     "f68b3c2dcbeaaa9fbdd348bbdeb94873"},
    {"train-labels-idx1-ubyte.gz", 28881, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
     "d53e105ee54ea40749a09fcbcd1e9432"},
    {"t10k-images-idx3-ubyte.gz", 1648877, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
     "9fb629c4189551a2d022fa330f9573f3"},
    {"t10k-labels-idx1-ubyte.gz", 4542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
     "ec29112dd5afa0611ce80d1b7f02629c"},
};

/* The commonly used copies of Yann LeCun's original files (his own site now asks for a login). */
static const fetch_mirror mnist_mirrors[] = {
    {"https://ossci-datasets.s3.amazonaws.com/mnist/", LAYOUT_FILES},
    {"https://storage.googleapis.com/cvdf-datasets/mnist/", LAYOUT_FILES},
};

static const fetch_file fashion_files[] = {
    {"train-images-idx3-ubyte.gz", 26421880, "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
     "8d4fb7e6c68d591d4c3dfef9ec88bf0d"},
    {"train-labels-idx1-ubyte.gz", 29515, "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
     "25c81989df183df01b3e8a0aad5dffbe"},
    {"t10k-images-idx3-ubyte.gz", 4422102, "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
     "bef4ecab320f06d8554ea6380940ec79"},
    {"t10k-labels-idx1-ubyte.gz", 5148, "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
     "bb300cfdad3c16e7a12a480ee83cd310"},
};

/* The data set's own bucket (plain HTTP only: the checksums are what make it safe), then its
 * repository. */
static const fetch_mirror fashion_mirrors[] = {
    {"http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", LAYOUT_FILES},
    {"https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/", LAYOUT_FILES},
};

static const fetch_file optdigits_files[] = {
    {"optdigits.tra", 563639, "e1b683cc211604fe8fd8c4417e6a69f31380e0c61d4af22e93cc21e9257ffedd", NULL},
    {"optdigits.tes", 264712, "6ebb3d2fee246a4e99363262ddf8a00a3c41bee6014c373ed9d9216ba7f651b8", NULL},
};

/* UCI's archive for data set 80, then the same files in UCI's older static folder. */
static const fetch_mirror optdigits_mirrors[] = {
    {"https://archive.ics.uci.edu/static/public/80/", LAYOUT_ARCHIVE},
    {"https://archive.ics.uci.edu/ml/machine-learning-databases/optdigits/", LAYOUT_FILES},
};

#define COUNT(a) ((int)(sizeof(a) / sizeof(a)[0]))
#define IDX_FILES                                                                                          \
    "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "              \
    "t10k-labels-idx1-ubyte.gz"

static const fetch_set sets[] = {
    {"optdigits", "optdigits.tra and optdigits.tes", optdigits_files, COUNT(optdigits_files), "optical+recognition+of+handwritten+digits.zip",
     64 << 20, optdigits_mirrors, COUNT(optdigits_mirrors)},
    {"mnist", IDX_FILES, mnist_files, COUNT(mnist_files), NULL, 0, mnist_mirrors, COUNT(mnist_mirrors)},
    {"fashion-mnist", IDX_FILES, fashion_files, COUNT(fashion_files), NULL, 0, fashion_mirrors, COUNT(fashion_mirrors)},
};

const fetch_set *fetch_find_set(const char *name)
{
    for (int i = 0; name && i < COUNT(sets); i++)
        if (strcmp(name, sets[i].name) == 0)
            return &sets[i];
    return NULL;
}

int dn_fetch_known(const char *name)
{
    return fetch_find_set(name) != NULL;
}

const char *dn_fetch_file_list(const char *name)
{
    const fetch_set *set = fetch_find_set(name);
    return set ? set->file_list : NULL;
}
