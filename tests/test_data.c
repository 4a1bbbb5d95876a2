/* Data-set loaders and helpers: the real files in ../shared/data (counts and facts published with
 * them), and broken files written here, each asserting the status and the telling part of the
 * message. Run from the project root. */
#include "testutil.h"

#include <errno.h>
#include <zlib.h>

#define OPT_DIR DN_TEST_DATA "/optdigits"
#define MNIST_DIR DN_TEST_DATA "/mnist-10k"

/* ------------------------------------------------------------------ helpers */

/* The status, the same status in err, the message's telling part, one line, and (when path is not
 * NULL) the message starting with the file's path. */
static void check_error(dn_status got, const dn_error *err, dn_status want, const char *path,
                        const char *part)
{
    if (got != want || !strstr(err->msg, part))
        print_error("status %d (%s), message: %s\n", (int)got, dn_status_str(got), err->msg);
    assert_int_equal(got, want);
    assert_int_equal(err->status, want);
    assert_non_null(strstr(err->msg, part));
    assert_null(strchr(err->msg, '\n'));
    if (path)
        assert_memory_equal(err->msg, path, strlen(path));
}

/* A data set left zeroed, as every loader leaves it on failure. */
static void assert_empty(const dn_dataset *d)
{
    assert_int_equal(d->n, 0);
    assert_null(d->pixels);
    assert_null(d->labels);
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* An IDX images file of n rows x cols images whose pixel k is (k * 7 + image) % 256, of which only
 * the first n_written images are present. Returns the byte count; *out is malloc'd. */
static size_t idx_images(unsigned char **out, uint32_t magic, uint32_t n, uint32_t rows,
                         uint32_t cols, uint32_t n_written)
{
    size_t per = (size_t)rows * cols, len = 16 + (size_t)n_written * per;
    unsigned char *b = malloc(len);
    assert_non_null(b);
    put_be32(b, magic);
    put_be32(b + 4, n);
    put_be32(b + 8, rows);
    put_be32(b + 12, cols);
    for (size_t i = 0; i < n_written; i++)
        for (size_t k = 0; k < per; k++)
            b[16 + i * per + k] = (unsigned char)((k * 7 + i) % 256);
    *out = b;
    return len;
}

/* An IDX labels file claiming n labels with n_written present, label i being i % 10. */
static size_t idx_labels(unsigned char **out, uint32_t n, uint32_t n_written)
{
    size_t len = 8 + (size_t)n_written;
    unsigned char *b = malloc(len);
    assert_non_null(b);
    put_be32(b, 0x00000801);
    put_be32(b + 4, n);
    for (size_t i = 0; i < n_written; i++)
        b[8 + i] = (unsigned char)(i % 10);
    *out = b;
    return len;
}

static const char *write_gz(const char *name, const void *bytes, size_t len)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", dn_test_dir(), name);
    gzFile gz = gzopen(path, "wb");
    assert_non_null(gz);
    if (len)
        assert_int_equal(gzwrite(gz, bytes, (unsigned)len), (int)len);
    assert_int_equal(gzclose(gz), Z_OK);
    return path;
}

/* Good 10-image 4x3 labels, written once per call under a fixed name. */
static const char *good_labels_file(void)
{
    unsigned char *b;
    size_t len = idx_labels(&b, 10, 10);
    const char *path = dn_test_write_file("good-labels", b, len);
    free(b);
    assert_non_null(path);
    return path;
}

static const char *good_images_file(void)
{
    unsigned char *b;
    size_t len = idx_images(&b, 0x00000803, 10, 4, 3, 10);
    const char *path = dn_test_write_file("good-images", b, len);
    free(b);
    assert_non_null(path);
    return path;
}

static void make_dir(const char *path)
{
    assert_true(mkdir(path, 0700) == 0 || errno == EEXIST);
}

static void check_range_and_labels(const dn_dataset *d)
{
    size_t total = (size_t)d->n * d->h * d->w * d->c;
    float lo = 1, hi = 0;
    for (size_t i = 0; i < total; i++) {
        if ((d->pixels[i] / (float)d->raw_max) < lo)
            lo = (d->pixels[i] / (float)d->raw_max);
        if ((d->pixels[i] / (float)d->raw_max) > hi)
            hi = (d->pixels[i] / (float)d->raw_max);
    }
    assert_true(lo == 0.0f);
    assert_true(hi == 1.0f);
    for (int i = 0; i < d->n; i++)
        assert_in_range(d->labels[i], 0, 9);
}

static void assert_class_counts(const dn_dataset *d, const int want[10])
{
    int counts[10] = {0};
    for (int i = 0; i < d->n; i++)
        counts[d->labels[i]]++;
    for (int c = 0; c < 10; c++)
        assert_int_equal(counts[c], want[c]);
}

/* ------------------------------------------------------------------ real data */

static void test_optdigits_real(void **state)
{
    (void)state;
    static const int tra_counts[10] = {376, 389, 380, 389, 387, 376, 377, 387, 380, 382};
    static const int tes_counts[10] = {178, 182, 177, 183, 181, 182, 181, 179, 174, 180};
    dn_dataset d;
    dn_error err = {0};
    assert_int_equal(dn_optdigits_load(OPT_DIR "/optdigits.tra", &d, &err), DN_OK);
    assert_int_equal(d.n, 3823);
    assert_int_equal(d.h, 8);
    assert_int_equal(d.w, 8);
    assert_int_equal(d.c, 1);
    assert_int_equal(d.raw_max, 16);
    check_range_and_labels(&d);
    assert_class_counts(&d, tra_counts);
    /* First line: "0,1,6,15,12,1,0,0,..." class 0. */
    assert_true((d.pixels[0] / (float)d.raw_max) == 0.0f);
    assert_true((d.pixels[1] / (float)d.raw_max) == 1.0f / 16);
    assert_true((d.pixels[3] / (float)d.raw_max) == 15.0f / 16);
    assert_int_equal(d.labels[0], 0);
    dn_dataset_free(&d);
    assert_empty(&d);

    assert_int_equal(dn_optdigits_load(OPT_DIR "/optdigits.tes", &d, &err), DN_OK);
    assert_int_equal(d.n, 1797);
    assert_class_counts(&d, tes_counts);
    dn_dataset_free(&d);
}

static void test_idx_real_mnist10k(void **state)
{
    (void)state;
    static const int train_counts[10] = {1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978};
    static const int test_counts[10] = {980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009};
    dn_dataset d;
    dn_error err = {0};
    assert_int_equal(dn_idx_load(MNIST_DIR "/train-images-idx3-ubyte.gz",
                                 MNIST_DIR "/train-labels-idx1-ubyte.gz", &d, &err),
                     DN_OK);
    assert_int_equal(d.n, 10000);
    assert_int_equal(d.h, 28);
    assert_int_equal(d.w, 28);
    assert_int_equal(d.c, 1);
    assert_int_equal(d.raw_max, 255);
    check_range_and_labels(&d);
    assert_class_counts(&d, train_counts);
    dn_dataset_free(&d);

    assert_int_equal(dn_idx_load(MNIST_DIR "/t10k-images-idx3-ubyte.gz",
                                 MNIST_DIR "/t10k-labels-idx1-ubyte.gz", &d, &err),
                     DN_OK);
    assert_int_equal(d.n, 10000);
    assert_class_counts(&d, test_counts);
    /* The canonical test set begins 7, 2, 1, 0, 4; its first image's pixels sum to 18454. */
    static const uint8_t first[5] = {7, 2, 1, 0, 4};
    assert_memory_equal(d.labels, first, 5);
    double sum = 0;
    for (int k = 0; k < 28 * 28; k++)
        sum += (d.pixels[k] / (float)d.raw_max) * 255.0;
    assert_true(sum > 18454 - 0.5 && sum < 18454 + 0.5);
    dn_dataset_free(&d);
}

/* ------------------------------------------------------------------ IDX: good and broken */

static void test_idx_small_raw_and_gzip(void **state)
{
    (void)state;
    unsigned char *img, *lab;
    size_t img_len = idx_images(&img, 0x00000803, 10, 4, 3, 10);
    size_t lab_len = idx_labels(&lab, 10, 10);
    char raw_img[512], raw_lab[512];
    snprintf(raw_img, sizeof raw_img, "%s", dn_test_write_file("s-images", img, img_len));
    snprintf(raw_lab, sizeof raw_lab, "%s", dn_test_write_file("s-labels", lab, lab_len));
    char gz_img[512], gz_lab[512];
    snprintf(gz_img, sizeof gz_img, "%s", write_gz("s-images.gz", img, img_len));
    snprintf(gz_lab, sizeof gz_lab, "%s", write_gz("s-labels.gz", lab, lab_len));

    dn_dataset a, b;
    dn_error err = {0};
    assert_int_equal(dn_idx_load(raw_img, raw_lab, &a, &err), DN_OK);
    assert_int_equal(a.n, 10);
    assert_int_equal(a.h, 4);
    assert_int_equal(a.w, 3);
    assert_int_equal(a.c, 1);
    assert_int_equal(a.raw_max, 255);
    for (int i = 0; i < 10 * 12; i++)
        assert_true((a.pixels[i] / (float)a.raw_max) == (float)img[16 + i] / 255.0f);
    assert_memory_equal(a.labels, lab + 8, 10);
    /* Gzip or not is decided by content; mixing the two is fine. */
    assert_int_equal(dn_idx_load(gz_img, raw_lab, &b, &err), DN_OK);
    assert_memory_equal(a.pixels, b.pixels, 10 * 12 * sizeof(uint8_t));
    dn_dataset_free(&b);
    assert_int_equal(dn_idx_load(raw_img, gz_lab, &b, &err), DN_OK);
    assert_memory_equal(a.labels, b.labels, 10);
    dn_dataset_free(&b);
    dn_dataset_free(&a);
    free(img);
    free(lab);
}

static void test_idx_truncated_raw(void **state)
{
    (void)state;
    unsigned char *b;
    size_t len = idx_images(&b, 0x00000803, 10, 28, 28, 5);
    const char *path = dn_test_write_file("trunc-images", b, len);
    free(b);
    dn_dataset d;
    dn_error err = {0};
    check_error(dn_idx_load(path, good_labels_file(), &d, &err), &err, DN_EFORMAT, path,
                ": truncated: expected 7840 bytes of pixels, got 3920");
    assert_empty(&d);
}

static void test_idx_truncated_gzip(void **state)
{
    (void)state;
    /* A complete gzip of an IDX file whose pixels stop early. */
    unsigned char *b;
    size_t len = idx_images(&b, 0x00000803, 10, 28, 28, 5);
    char path[512];
    snprintf(path, sizeof path, "%s", write_gz("trunc-images.gz", b, len));
    free(b);
    dn_dataset d;
    dn_error err = {0};
    check_error(dn_idx_load(path, good_labels_file(), &d, &err), &err, DN_EFORMAT, path,
                ": truncated: expected 7840 bytes of pixels, got 3920");

    /* A gzip stream cut in the middle, as an interrupted download leaves it. */
    FILE *f = fopen(MNIST_DIR "/t10k-images-idx3-ubyte.gz", "rb");
    assert_non_null(f);
    static unsigned char head[200000];
    assert_int_equal(fread(head, 1, sizeof head, f), sizeof head);
    fclose(f);
    const char *cut = dn_test_write_file("cut-images.gz", head, sizeof head);
    check_error(dn_idx_load(cut, MNIST_DIR "/t10k-labels-idx1-ubyte.gz", &d, &err), &err,
                DN_EFORMAT, cut, ": truncated: expected 7840000 bytes of pixels, got ");
    assert_non_null(strstr(err.msg, "gzip stream ends early"));
    assert_empty(&d);
}

static void test_idx_truncated_header_and_labels(void **state)
{
    (void)state;
    unsigned char *b;
    size_t len = idx_images(&b, 0x00000803, 10, 4, 3, 0);
    const char *path = dn_test_write_file("short-header", b, len - 6);
    dn_dataset d;
    dn_error err = {0};
    check_error(dn_idx_load(path, good_labels_file(), &d, &err), &err, DN_EFORMAT, path,
                ": truncated: expected a 16-byte header, got 10 bytes");
    free(b);

    len = idx_labels(&b, 10, 7);
    path = dn_test_write_file("short-labels", b, len);
    free(b);
    check_error(dn_idx_load(good_images_file(), path, &d, &err), &err, DN_EFORMAT, path,
                ": truncated: expected 10 bytes of labels, got 7");
    assert_empty(&d);
}

static void test_idx_wrong_magic(void **state)
{
    (void)state;
    unsigned char *b;
    size_t len = idx_images(&b, 0x00000804, 10, 4, 3, 10);
    const char *path = dn_test_write_file("magic-images", b, len);
    free(b);
    dn_dataset d;
    dn_error err = {0};
    check_error(dn_idx_load(path, good_labels_file(), &d, &err), &err, DN_EFORMAT, path,
                "magic 0x00000804, expected 0x00000803");
    assert_empty(&d);

    /* Labels given where images belong: the message says so. */
    const char *labels = good_labels_file();
    check_error(dn_idx_load(labels, labels, &d, &err), &err, DN_EFORMAT, labels, "swapped");
}

static void test_idx_html_page(void **state)
{
    (void)state;
    static const char html[] = "\n<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>"
                               "<body>Not Found</body></html>\n";
    const char *path = dn_test_write_file("train-images-idx3-ubyte.gz", html, sizeof html - 1);
    dn_dataset d;
    dn_error err = {0};
    check_error(dn_idx_load(path, good_labels_file(), &d, &err), &err, DN_EFORMAT, path,
                ": looks like an HTML page, not IDX data");
    const char *labels = dn_test_write_file("html-labels", html, sizeof html - 1);
    check_error(dn_idx_load(good_images_file(), labels, &d, &err), &err, DN_EFORMAT, labels,
                ": looks like an HTML page, not IDX data");
    assert_empty(&d);
}

static void test_idx_gzip_of_text(void **state)
{
    (void)state;
    static const char text[] = "0,1,6,15,12,1,0,0,0,7,16,6,6,10,0,0\n1,2,3\n";
    const char *path = write_gz("text.gz", text, sizeof text - 1);
    dn_dataset d;
    dn_error err = {0};
    check_error(dn_idx_load(path, good_labels_file(), &d, &err), &err, DN_EFORMAT, path,
                ": a gzip of something else, not IDX images (magic 0x302c312c");
    /* The same text not compressed. */
    path = dn_test_write_file("text.raw", text, sizeof text - 1);
    check_error(dn_idx_load(path, good_labels_file(), &d, &err), &err, DN_EFORMAT, path,
                ": looks like a text file, not IDX images (magic 0x302c312c");
    assert_empty(&d);
}

static void test_idx_count_mismatch(void **state)
{
    (void)state;
    unsigned char *b;
    size_t len = idx_labels(&b, 9, 9);
    const char *path = dn_test_write_file("nine-labels", b, len);
    free(b);
    dn_dataset d;
    dn_error err = {0};
    check_error(dn_idx_load(good_images_file(), path, &d, &err), &err, DN_EFORMAT, path,
                ": header says 9 labels, but ");
    assert_non_null(strstr(err.msg, "has 10 images"));
    assert_empty(&d);
}

static void test_idx_label_out_of_range(void **state)
{
    (void)state;
    unsigned char *b;
    size_t len = idx_labels(&b, 10, 10);
    b[8 + 3] = 12;
    const char *path = dn_test_write_file("label-12", b, len);
    free(b);
    dn_dataset d;
    dn_error err = {0};
    check_error(dn_idx_load(good_images_file(), path, &d, &err), &err, DN_EFORMAT, path,
                ": label 12 at index 3 is out of range 0..9");
    assert_empty(&d);
}

static void test_idx_absurd_header(void **state)
{
    (void)state;
    unsigned char *b;
    dn_dataset d;
    dn_error err = {0};
    /* A billion images in a 16-byte file: refused from the header, nothing allocated. */
    size_t len = idx_images(&b, 0x00000803, 1000000000u, 28, 28, 0);
    const char *path = dn_test_write_file("billion", b, len);
    free(b);
    check_error(dn_idx_load(path, good_labels_file(), &d, &err), &err, DN_ELIMIT, path,
                ": header claims 1000000000 images, more than the limit of 10000000");

    len = idx_images(&b, 0x00000803, 10, 5000, 28, 0);
    path = dn_test_write_file("tall", b, len);
    free(b);
    check_error(dn_idx_load(path, good_labels_file(), &d, &err), &err, DN_ELIMIT, path,
                "5000x28 images, beyond the limit of 4096x4096");

    /* Each size within its limit, but together 8e10 pixels. */
    len = idx_images(&b, 0x00000803, 5000000, 4000, 4000, 0);
    path = dn_test_write_file("huge", b, len);
    free(b);
    check_error(dn_idx_load(path, good_labels_file(), &d, &err), &err, DN_ELIMIT, path,
                "pixels in all");

    len = idx_labels(&b, 4000000000u, 0);
    path = dn_test_write_file("many-labels", b, len);
    free(b);
    check_error(dn_idx_load(good_images_file(), path, &d, &err), &err, DN_ELIMIT, path,
                "header claims 4000000000 labels");

    len = idx_images(&b, 0x00000803, 0, 28, 28, 0);
    path = dn_test_write_file("no-images", b, len);
    free(b);
    check_error(dn_idx_load(path, good_labels_file(), &d, &err), &err, DN_EFORMAT, path,
                "holds no images");
    assert_empty(&d);
}

static void test_idx_trailing_bytes_rejected(void **state)
{
    (void)state;
    unsigned char *b;
    size_t len = idx_images(&b, 0x00000803, 10, 4, 3, 10);
    unsigned char *longer = malloc(len + 5);
    assert_non_null(longer);
    memcpy(longer, b, len);
    memset(longer + len, 0, 5);
    const char *path = dn_test_write_file("trailing", longer, len + 5);
    free(b);
    free(longer);
    dn_dataset d;
    dn_error err = {0};
    check_error(dn_idx_load(path, good_labels_file(), &d, &err), &err, DN_EFORMAT, path,
                ": unexpected data after the 10 images the header declares");
    assert_empty(&d);
}

static void test_idx_empty_and_missing(void **state)
{
    (void)state;
    const char *path = dn_test_write_file("empty", "", 0);
    dn_dataset d;
    dn_error err = {0};
    check_error(dn_idx_load(path, good_labels_file(), &d, &err), &err, DN_EFORMAT, path,
                ": empty file");
    const char *missing = "/nonexistent/digitnet/train-images-idx3-ubyte.gz";
    check_error(dn_idx_load(missing, good_labels_file(), &d, &err), &err, DN_EIO, missing,
                ": cannot open: No such file or directory");
    check_error(dn_idx_load(good_images_file(), missing, &d, &err), &err, DN_EIO, missing,
                ": cannot open: No such file or directory");
    /* A directory opens but cannot be read. */
    check_error(dn_idx_load(dn_test_dir(), good_labels_file(), &d, &err), &err, DN_EIO,
                dn_test_dir(), ": read error: Is a directory");
    assert_empty(&d);
    check_error(dn_idx_load(NULL, NULL, &d, &err), &err, DN_EARG, NULL, "NULL");
}

/* ------------------------------------------------------------------ optdigits: good and broken */

/* A valid 65-value line for digit `digit` with pixel k = (k + digit) % 17. */
static void opt_line(char *buf, size_t size, int digit)
{
    size_t used = 0;
    for (int k = 0; k < 64; k++)
        used += (size_t)snprintf(buf + used, size - used, "%d,", (k + digit) % 17);
    snprintf(buf + used, size - used, "%d", digit);
}

static const char *write_text(const char *name, const char *text)
{
    const char *path = dn_test_write_file(name, text, strlen(text));
    assert_non_null(path);
    return path;
}

static void test_optdigits_csv_with_header(void **state)
{
    (void)state;
    char text[8192], line[512];
    size_t used = 0;
    used += (size_t)snprintf(text, sizeof text, "\xEF\xBB\xBF");
    for (int k = 1; k <= 64; k++)
        used += (size_t)snprintf(text + used, sizeof text - used, "Attribute%d,", k);
    used += (size_t)snprintf(text + used, sizeof text - used, "class\r\n");
    for (int i = 0; i < 3; i++) {
        opt_line(line, sizeof line, 7 - i);
        /* Windows line endings, the last one missing. */
        used += (size_t)snprintf(text + used, sizeof text - used, "%s%s", line, i < 2 ? "\r\n" : "");
    }
    used += (size_t)snprintf(text + used, sizeof text - used, "\r\n\n   \n\n");
    dn_dataset d;
    dn_error err = {0};
    const char *path;
    path = write_text("data.csv", text);
    assert_int_equal(dn_optdigits_load(path, &d, &err), DN_OK);
    assert_int_equal(d.n, 3);
    assert_int_equal(d.raw_max, 16);
    assert_int_equal(d.labels[0], 7);
    assert_int_equal(d.labels[2], 5);
    assert_true((d.pixels[64 + 10] / (float)d.raw_max) == (float)((10 + 6) % 17) / 16.0f);
    dn_dataset_free(&d);

    /* A first row with one damaged field is a bad row, not a header to skip. */
    opt_line(line, sizeof line, 3);
    snprintf(text, sizeof text, "x%s\n%s\n", line, line);
    path = write_text("damaged-first.tra", text);
    check_error(dn_optdigits_load(path, &d, &err), &err, DN_EFORMAT, path,
                " line 1: value 1 ('x3') is not an integer");

    /* A header with the wrong number of columns is some other CSV. */
    path = write_text("other.csv", "sepal_length,sepal_width,species\n1,2,3\n");
    check_error(dn_optdigits_load(path, &d, &err), &err, DN_EFORMAT, path,
                " line 1: header row has 3 columns, expected 65");
    assert_empty(&d);
}

static void test_optdigits_wrong_count(void **state)
{
    (void)state;
    char text[4096], line[512];
    opt_line(line, sizeof line, 3);
    snprintf(text, sizeof text, "%s\n1,2,3,4,5,6,7,8,9,10,11,12\n%s\n", line, line);
    dn_dataset d;
    dn_error err = {0};
    const char *path;
    path = write_text("count.tra", text);
    check_error(dn_optdigits_load(path, &d, &err), &err, DN_EFORMAT, path,
                " line 2: expected 65 values, found 12");
    assert_empty(&d);

    /* A very long line: getline has no length limit, and the count is still right. */
    size_t n_values = 100000, len = n_values * 2;
    char *big = malloc(len + 1);
    assert_non_null(big);
    for (size_t i = 0; i < n_values; i++) {
        big[2 * i] = '1';
        big[2 * i + 1] = i + 1 < n_values ? ',' : '\n';
    }
    big[len] = '\0';
    path = write_text("long.tra", big);
    check_error(dn_optdigits_load(path, &d, &err), &err, DN_EFORMAT, path,
                " line 1: expected 65 values, found 100000");
    free(big);

    /* An empty field, and a trailing comma. */
    path = write_text("empty-field.tra", "1,,2\n");
    check_error(dn_optdigits_load(path, &d, &err), &err, DN_EFORMAT, path,
                " line 1: value 2 is empty");
    snprintf(text, sizeof text, "%s,\n", line);
    path = write_text("trailing-comma.tra", text);
    check_error(dn_optdigits_load(path, &d, &err), &err, DN_EFORMAT, path,
                " line 1: value 66 is empty");
}

static void test_optdigits_value_out_of_range(void **state)
{
    (void)state;
    char text[4096], line[512], bad[512];
    opt_line(line, sizeof line, 1);
    opt_line(bad, sizeof bad, 2);
    /* Pixel 0 of digit 2 is "2"; line 3 makes it 23. */
    snprintf(text, sizeof text, "%s\n%s\n23%s\n", line, line, bad + 1);
    dn_dataset d;
    dn_error err = {0};
    const char *path;
    path = write_text("range.tra", text);
    check_error(dn_optdigits_load(path, &d, &err), &err, DN_EFORMAT, path,
                " line 3: value 23 out of range 0..16");
    assert_empty(&d);

    snprintf(text, sizeof text, "-1%s\n", line + 1); /* pixel 0 of digit 1 is "1" */
    path = write_text("negative.tra", text);
    check_error(dn_optdigits_load(path, &d, &err), &err, DN_EFORMAT, path,
                " line 1: value -1 out of range 0..16");
    snprintf(text, sizeof text, "99999999999999999999999%s\n", line + 1);
    path = write_text("huge.tra", text);
    check_error(dn_optdigits_load(path, &d, &err), &err, DN_EFORMAT, path,
                " line 1: value 99999999999999999999999 out of range 0..16");
}

static void test_optdigits_class_out_of_range(void **state)
{
    (void)state;
    char text[4096], line[512];
    opt_line(line, sizeof line, 4);
    size_t used = 0;
    for (int i = 0; i < 4; i++)
        used += (size_t)snprintf(text + used, sizeof text - used, "%s\n", line);
    /* Line 5: the same pixels, class 11 in place of the last digit. */
    snprintf(text + used, sizeof text - used, "%.*s11\n", (int)strlen(line) - 1, line);
    dn_dataset d;
    dn_error err = {0};
    const char *path;
    path = write_text("class.tra", text);
    check_error(dn_optdigits_load(path, &d, &err), &err, DN_EFORMAT, path,
                " line 5: class 11 out of range 0..9");
    assert_empty(&d);
}

static void test_optdigits_non_numeric(void **state)
{
    (void)state;
    char text[4096], line[512];
    opt_line(line, sizeof line, 5);
    snprintf(text, sizeof text, "%s\n%s\n0,abc%s\n", line, line, line + 1);
    dn_dataset d;
    dn_error err = {0};
    const char *path;
    path = write_text("alpha.tra", text);
    check_error(dn_optdigits_load(path, &d, &err), &err, DN_EFORMAT, path,
                " line 3: value 2 ('abc') is not an integer");
    snprintf(text, sizeof text, "%s\n3.5,%s\n", line, line + 2);
    path = write_text("float.tra", text);
    check_error(dn_optdigits_load(path, &d, &err), &err, DN_EFORMAT, path,
                " line 2: value 1 ('3.5') is not an integer");
    /* A control byte in a token is masked, so the message stays one line. */
    snprintf(text, sizeof text, "%s\n0,\rx%s\n", line, line + 1);
    path = write_text("control.tra", text);
    check_error(dn_optdigits_load(path, &d, &err), &err, DN_EFORMAT, path,
                " line 2: value 2 ('?x') is not an integer");
    assert_empty(&d);
}

static void test_optdigits_empty_html_binary_missing(void **state)
{
    (void)state;
    dn_dataset d;
    dn_error err = {0};
    const char *path;
    path = write_text("empty.tra", "");
    check_error(dn_optdigits_load(path, &d, &err), &err, DN_EFORMAT, path, ": no rows");
    path = write_text("blank.tra", "\n\r\n  \n");
    check_error(dn_optdigits_load(path, &d, &err), &err, DN_EFORMAT, path,
                ": no rows");
    char header[1024] = "";
    for (int k = 1; k <= 64; k++)
        snprintf(header + strlen(header), sizeof header - strlen(header), "a%d,", k);
    strcat(header, "class\n");
    path = write_text("header-only.csv", header);
    check_error(dn_optdigits_load(path, &d, &err), &err, DN_EFORMAT, path,
                ": no rows");
    path = write_text("page.tra", "<html><body>Moved</body></html>\n");
    check_error(dn_optdigits_load(path, &d, &err), &err,
                DN_EFORMAT, path, ": looks like an HTML page, not optdigits data");
    check_error(dn_optdigits_load(MNIST_DIR "/t10k-labels-idx1-ubyte.gz", &d, &err), &err,
                DN_EFORMAT, MNIST_DIR, ": binary data, not optdigits text");
    /* Two rows with CR line ends (classic Mac), and a row of tab-separated values: said as such. */
    char row[512] = "", tabbed[512] = "", two[1100];
    for (int k = 0; k < 64; k++) {
        strcat(row, "1,");
        strcat(tabbed, "1\t");
    }
    strcat(row, "3");
    strcat(tabbed, "3\n");
    snprintf(two, sizeof two, "%s\r%s\r", row, row);
    path = write_text("mac.tra", two);
    check_error(dn_optdigits_load(path, &d, &err), &err, DN_EFORMAT, path,
                ": lines end in a bare CR (old Mac line ends)");
    path = write_text("tabs.tra", tabbed);
    check_error(dn_optdigits_load(path, &d, &err), &err, DN_EFORMAT, path,
                " line 1: values separated by tabs; optdigits files separate them with commas");
    const char *missing = "/nonexistent/optdigits.tra";
    check_error(dn_optdigits_load(missing, &d, &err), &err, DN_EIO, missing,
                ": cannot open: No such file or directory");
    assert_empty(&d);
}

/* ------------------------------------------------------------------ data-set helpers */

static void test_dataset_concat(void **state)
{
    (void)state;
    dn_dataset tra, tes, all, mn;
    dn_error err = {0};
    assert_int_equal(dn_optdigits_load(OPT_DIR "/optdigits.tra", &tra, &err), DN_OK);
    assert_int_equal(dn_optdigits_load(OPT_DIR "/optdigits.tes", &tes, &err), DN_OK);
    assert_int_equal(dn_dataset_concat(&tra, &tes, &all, &err), DN_OK);
    assert_int_equal(all.n, 5620); /* the instances of UCI's data.csv */
    assert_int_equal(all.raw_max, 16);
    assert_memory_equal(all.pixels, tra.pixels, (size_t)tra.n * 64 * sizeof(uint8_t));
    assert_memory_equal(all.pixels + (size_t)tra.n * 64, tes.pixels, (size_t)tes.n * 64 * sizeof(uint8_t));
    assert_memory_equal(all.labels + tra.n, tes.labels, (size_t)tes.n);

    /* An empty side joins with anything. */
    dn_dataset none = {0}, copy;
    assert_int_equal(dn_dataset_concat(&none, &tes, &copy, &err), DN_OK);
    assert_int_equal(copy.n, tes.n);
    assert_int_equal(copy.h, 8);
    assert_memory_equal(copy.pixels, tes.pixels, (size_t)tes.n * 64 * sizeof(uint8_t));
    dn_dataset_free(&copy);

    /* Shapes or scales that differ do not. */
    assert_int_equal(dn_idx_load(good_images_file(), good_labels_file(), &mn, &err), DN_OK);
    check_error(dn_dataset_concat(&tra, &mn, &copy, &err), &err, DN_ESHAPE, NULL,
                "image shapes differ: 8x8x1 and 4x3x1");
    assert_empty(&copy);
    dn_dataset scaled = tes;
    scaled.raw_max = 255;
    check_error(dn_dataset_concat(&tra, &scaled, &copy, &err), &err, DN_EARG, NULL,
                "raw_max 16 and 255");
    check_error(dn_dataset_concat(NULL, &tes, &copy, &err), &err, DN_EARG, NULL, "NULL");
    dn_dataset bad = tes;
    bad.pixels = NULL;
    check_error(dn_dataset_concat(&tra, &bad, &copy, &err), &err, DN_EARG, NULL, "no arrays");

    dn_dataset_free(&mn);
    dn_dataset_free(&all);
    dn_dataset_free(&tra);
    dn_dataset_free(&tes);
    dn_dataset_free(NULL); /* a no-op */
    dn_dataset_free(&tes); /* freeing twice is safe: the first free zeroed it */
}

static void test_dataset_take_and_slice(void **state)
{
    (void)state;
    dn_dataset tes, part, picked;
    dn_error err = {0};
    assert_int_equal(dn_optdigits_load(OPT_DIR "/optdigits.tes", &tes, &err), DN_OK);

    int perm[1797];
    dn_permutation(42, tes.n, perm);
    assert_int_equal(dn_dataset_take(&tes, perm, tes.n, &picked, &err), DN_OK);
    assert_int_equal(picked.n, tes.n);
    for (int i = 0; i < tes.n; i += 97) {
        assert_int_equal(picked.labels[i], tes.labels[perm[i]]);
        assert_memory_equal(picked.pixels + (size_t)i * 64, tes.pixels + (size_t)perm[i] * 64,
                            64 * sizeof(uint8_t));
    }
    dn_dataset_free(&picked);

    int bad_indices[3] = {0, 1797, 2};
    check_error(dn_dataset_take(&tes, bad_indices, 3, &picked, &err), &err, DN_EARG, NULL,
                "indices[1] = 1797 is outside 0..1796");
    assert_empty(&picked);
    bad_indices[1] = -1;
    check_error(dn_dataset_take(&tes, bad_indices, 3, &picked, &err), &err, DN_EARG, NULL,
                "indices[1] = -1");
    check_error(dn_dataset_take(&tes, NULL, 3, &picked, &err), &err, DN_EARG, NULL,
                "indices is NULL");
    check_error(dn_dataset_take(&tes, perm, -1, &picked, &err), &err, DN_EARG, NULL,
                "negative count");
    assert_int_equal(dn_dataset_take(&tes, NULL, 0, &picked, &err), DN_OK);
    assert_int_equal(picked.n, 0);
    assert_int_equal(picked.h, 8);
    dn_dataset_free(&picked);

    assert_int_equal(dn_dataset_slice(&tes, 1000, 797, &part, &err), DN_OK);
    assert_int_equal(part.n, 797);
    assert_memory_equal(part.pixels, tes.pixels + 1000 * 64, 797 * 64 * sizeof(uint8_t));
    assert_memory_equal(part.labels, tes.labels + 1000, 797);
    dn_dataset_free(&part);
    assert_int_equal(dn_dataset_slice(&tes, 1797, 0, &part, &err), DN_OK);
    assert_int_equal(part.n, 0);
    dn_dataset_free(&part);
    check_error(dn_dataset_slice(&tes, 1000, 798, &part, &err), &err, DN_EARG, NULL,
                "798 rows from row 1000 do not fit in 1797 rows");
    check_error(dn_dataset_slice(&tes, -1, 5, &part, &err), &err, DN_EARG, NULL, "do not fit");
    check_error(dn_dataset_slice(&tes, 5, 2147483647, &part, &err), &err, DN_EARG, NULL,
                "do not fit");
    check_error(dn_dataset_slice(&tes, 0, 5, NULL, &err), &err, DN_EARG, NULL, "out is NULL");
    assert_empty(&part);

    /* out may be the source: on failure it is left alone. */
    dn_dataset same = tes;
    check_error(dn_dataset_slice(&same, 0, 5000, &same, &err), &err, DN_EARG, NULL, "do not fit");
    assert_ptr_equal(same.pixels, tes.pixels);
    dn_dataset_free(&tes);
}

/* ------------------------------------------------------------------ locating data sets */

static void test_open_named_sets(void **state)
{
    (void)state;
    /* The tests' data comes from their environment ($DIGITNET_DATA, set by the Makefile), never
     * from a path of this repository built into the library. */
    setenv("DIGITNET_DATA", DN_TEST_DATA, 1);
    dn_dataset train, test;
    dn_error err = {0};
    assert_int_equal(dn_data_open("optdigits", NULL, &train, &test, &err), DN_OK);
    assert_int_equal(train.n, 3823);
    assert_int_equal(test.n, 1797);
    dn_dataset_free(&train);
    dn_dataset_free(&test);

    assert_int_equal(dn_data_open("mnist-10k", DN_TEST_DATA, &train, &test, &err), DN_OK);
    assert_int_equal(train.n, 10000);
    assert_int_equal(test.n, 10000);
    assert_int_equal(train.h, 28);
    assert_int_equal(test.w, 28);
    dn_dataset_free(&train);
    dn_dataset_free(&test);

    /* --data-dir may also be the set's own folder. */
    assert_int_equal(dn_data_open("mnist", MNIST_DIR, &train, &test, &err), DN_OK);
    assert_int_equal(train.n, 10000);
    dn_dataset_free(&train);
    dn_dataset_free(&test);

    /* $DIGITNET_DATA is a root like the others. */
    setenv("DIGITNET_DATA", DN_TEST_DATA, 1);
    assert_int_equal(dn_data_open("optdigits", "/nonexistent", &train, &test, &err), DN_OK);
    assert_int_equal(train.n + test.n, 5620);
    dn_dataset_free(&train);
    dn_dataset_free(&test);
    unsetenv("DIGITNET_DATA");
}

static void test_open_fashion_mnist(void **state)
{
    (void)state;
    struct stat st;
    if (stat("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", &st) != 0)
        skip(); /* Debian's dataset-fashion-mnist is not installed here */
    unsetenv("DIGITNET_DATA");
    dn_dataset train, test;
    dn_error err = {0};
    assert_int_equal(dn_data_open("fashion-mnist", NULL, &train, &test, &err), DN_OK);
    assert_int_equal(train.n, 60000);
    assert_int_equal(test.n, 10000);
    assert_int_equal(train.h, 28);
    static const int six_thousand[10] = {6000, 6000, 6000, 6000, 6000, 6000, 6000, 6000, 6000, 6000};
    assert_class_counts(&train, six_thousand);
    dn_dataset_free(&train);
    dn_dataset_free(&test);
}

/* Copies the first n_lines lines of src to dst (all when n_lines < 0). */
static void copy_lines(const char *src, const char *dst, int n_lines)
{
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    assert_non_null(in);
    assert_non_null(out);
    int c, lines = 0;
    while ((n_lines < 0 || lines < n_lines) && (c = fgetc(in)) != EOF) {
        assert_int_not_equal(fputc(c, out), EOF);
        lines += c == '\n';
    }
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

/* The download cache ($XDG_CACHE_HOME/digitnet, else ~/.cache/digitnet) comes after --data-dir and
 * $DIGITNET_DATA and before ./data and ../shared/data. A 100-row optdigits.tra there tells which
 * copy was loaded. */
static void test_open_download_cache(void **state)
{
    (void)state;
    char xdg[512], dir[600], path[700];
    snprintf(xdg, sizeof xdg, "%s/xdg", dn_test_dir());
    snprintf(dir, sizeof dir, "%s/digitnet", xdg);
    make_dir(xdg);
    make_dir(dir);
    snprintf(dir, sizeof dir, "%s/digitnet/optdigits", xdg);
    make_dir(dir);
    snprintf(path, sizeof path, "%s/optdigits.tra", dir);
    copy_lines(OPT_DIR "/optdigits.tra", path, 100);
    snprintf(path, sizeof path, "%s/optdigits.tes", dir);
    copy_lines(OPT_DIR "/optdigits.tes", path, -1);

    unsetenv("DIGITNET_DATA");
    setenv("XDG_CACHE_HOME", xdg, 1);
    dn_dataset train, test;
    dn_error err = {0};
    assert_int_equal(dn_data_open("optdigits", NULL, &train, &test, &err), DN_OK);
    assert_int_equal(train.n, 100); /* the cache's copy, not ../shared/data's */
    assert_int_equal(test.n, 1797);
    dn_dataset_free(&train);
    dn_dataset_free(&test);

    /* $DIGITNET_DATA comes first. */
    setenv("DIGITNET_DATA", DN_TEST_DATA, 1);
    assert_int_equal(dn_data_open("optdigits", NULL, &train, &test, &err), DN_OK);
    assert_int_equal(train.n, 3823);
    dn_dataset_free(&train);
    dn_dataset_free(&test);
    unsetenv("DIGITNET_DATA");

    /* Without XDG_CACHE_HOME (or with a relative one, which the XDG spec says to ignore), the cache
     * is ~/.cache/digitnet. */
    char home[512];
    snprintf(home, sizeof home, "%s/home", dn_test_dir());
    const char *old_home = getenv("HOME");
    char saved_home[1024] = "";
    if (old_home)
        snprintf(saved_home, sizeof saved_home, "%s", old_home);
    setenv("HOME", home, 1);
    setenv("XDG_CACHE_HOME", "relative/cache", 1);
    check_error(dn_data_open("mnist", "/nonexistent/made-up", &train, &test, &err), &err, DN_ENOTFOUND, NULL,
                "/nonexistent/made-up, ");
    char want[700];
    snprintf(want, sizeof want, ", %s/.cache/digitnet/mnist, ./data/mnist", home);
    assert_non_null(strstr(err.msg, want));

    /* dn_data_default_dir: $DIGITNET_DATA, else the cache. */
    char buf[700];
    assert_int_equal(dn_data_default_dir(buf, sizeof buf, &err), DN_OK);
    snprintf(want, sizeof want, "%s/.cache/digitnet", home);
    assert_string_equal(buf, want);
    setenv("XDG_CACHE_HOME", xdg, 1);
    assert_int_equal(dn_data_default_dir(buf, sizeof buf, &err), DN_OK);
    snprintf(want, sizeof want, "%s/digitnet", xdg);
    assert_string_equal(buf, want);
    setenv("DIGITNET_DATA", "/srv/digits", 1);
    assert_int_equal(dn_data_default_dir(buf, sizeof buf, &err), DN_OK);
    assert_string_equal(buf, "/srv/digits");
    check_error(dn_data_default_dir(buf, 5, &err), &err, DN_EARG, NULL, "too long");
    unsetenv("DIGITNET_DATA");
    unsetenv("XDG_CACHE_HOME");
    unsetenv("HOME");
    check_error(dn_data_default_dir(buf, sizeof buf, &err), &err, DN_ENOTFOUND, NULL,
                "no place for downloads: set DIGITNET_DATA (or HOME)");

    if (saved_home[0])
        setenv("HOME", saved_home, 1);
    setenv("XDG_CACHE_HOME", "/nonexistent/xdg", 1);
}

static void test_open_directory_path(void **state)
{
    (void)state;
    dn_dataset train, test;
    dn_error err = {0};
    assert_int_equal(dn_data_open(MNIST_DIR, NULL, &train, &test, &err), DN_OK);
    assert_int_equal(train.n, 10000);
    assert_int_equal(test.n, 10000);
    dn_dataset_free(&train);
    dn_dataset_free(&test);
    assert_int_equal(dn_data_open(OPT_DIR "/", NULL, &train, &test, &err), DN_OK);
    assert_int_equal(train.n, 3823);
    dn_dataset_free(&train);
    dn_dataset_free(&test);
}

static void test_open_not_found(void **state)
{
    (void)state;
    setenv("DIGITNET_DATA", "/nonexistent/env-root", 1);
    dn_dataset train, test;
    dn_error err = {0};
    check_error(dn_data_open("mnist", "/nonexistent/made-up", &train, &test, &err), &err,
                DN_ENOTFOUND, NULL,
                "data set 'mnist' not found; looked in: /nonexistent/made-up/mnist, "
                "/nonexistent/made-up, /nonexistent/env-root/mnist, /nonexistent/xdg/digitnet/mnist, "
                "./data/mnist, /usr/share/datasets/mnist; put "
                "train-images-idx3-ubyte.gz, ");
    assert_non_null(strstr(err.msg, "in one of them or in a data directory (dn_fetch can download it)"));
    assert_null(strstr(err.msg, "--")); /* no flag of the CLI: it adds its own hint */
    assert_empty(&train);
    assert_empty(&test);
    unsetenv("DIGITNET_DATA");

    check_error(dn_data_open("digitnet-no-such-set", NULL, &train, &test, &err), &err,
                DN_ENOTFOUND, NULL,
                "data set 'digitnet-no-such-set' not found (known names: optdigits, mnist");
    assert_non_null(strstr(err.msg, "./data/digitnet-no-such-set"));
    assert_null(strstr(err.msg, "../shared/data"));
    assert_null(strstr(err.msg, "dn_fetch")); /* nothing to download for a name we do not know */

    /* Long places: the list is cut short, never the advice at the end of the message. */
    char long_root[400];
    memset(long_root, 'x', sizeof long_root - 1);
    long_root[0] = '/';
    long_root[sizeof long_root - 1] = '\0';
    setenv("DIGITNET_DATA", long_root, 1);
    check_error(dn_data_open("mnist", "/nonexistent/made-up", &train, &test, &err), &err,
                DN_ENOTFOUND, NULL, "data set 'mnist' not found; looked in: /nonexistent/made-up/");
    assert_non_null(strstr(err.msg, "..."));
    size_t len = strlen(err.msg);
    static const char tail[] = "(dn_fetch can download it)";
    assert_true(len > sizeof tail && strcmp(err.msg + len - (sizeof tail - 1), tail) == 0);
    unsetenv("DIGITNET_DATA");

    /* A made-up directory, and one that exists but holds nothing we know. */
    check_error(dn_data_open("/nonexistent/made-up/dir", NULL, &train, &test, &err), &err,
                DN_ENOTFOUND, "/nonexistent/made-up/dir", ": no such directory");
    char empty_dir[512];
    snprintf(empty_dir, sizeof empty_dir, "%s/empty-dir", dn_test_dir());
    make_dir(empty_dir);
    check_error(dn_data_open(empty_dir, NULL, &train, &test, &err), &err, DN_ENOTFOUND, NULL,
                "no data set in ");
    assert_non_null(strstr(err.msg, empty_dir));
    assert_non_null(strstr(err.msg, "optdigits.tra"));
    check_error(dn_data_open(NULL, NULL, &train, &test, &err), &err, DN_EARG, NULL, "no data set");
}

/* Copies images [0, n) and their labels from a real IDX pair into raw (uncompressed) files. */
static void copy_idx_subset(const char *images_src, const char *labels_src, int n,
                            const char *images_dst, const char *labels_dst)
{
    dn_dataset d;
    dn_error err = {0};
    assert_int_equal(dn_idx_load(images_src, labels_src, &d, &err), DN_OK);
    size_t per = (size_t)d.h * d.w;
    size_t img_len = 16 + (size_t)n * per, lab_len = 8 + (size_t)n;
    unsigned char *img = malloc(img_len), *lab = malloc(lab_len);
    assert_non_null(img);
    assert_non_null(lab);
    put_be32(img, 0x00000803);
    put_be32(img + 4, (uint32_t)n);
    put_be32(img + 8, (uint32_t)d.h);
    put_be32(img + 12, (uint32_t)d.w);
    for (size_t k = 0; k < (size_t)n * per; k++)
        img[16 + k] = (unsigned char)((d.pixels[k] / (float)d.raw_max) * 255.0f + 0.5f);
    put_be32(lab, 0x00000801);
    put_be32(lab + 4, (uint32_t)n);
    memcpy(lab + 8, d.labels, (size_t)n);
    FILE *f = fopen(images_dst, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(img, 1, img_len, f), img_len);
    assert_int_equal(fclose(f), 0);
    f = fopen(labels_dst, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(lab, 1, lab_len, f), lab_len);
    assert_int_equal(fclose(f), 0);
    free(img);
    free(lab);
    dn_dataset_free(&d);
}

static void test_open_dotted_spelling(void **state)
{
    (void)state;
    char root[512], dir[600], p[4][700];
    snprintf(root, sizeof root, "%s/root-dotted", dn_test_dir());
    snprintf(dir, sizeof dir, "%s/mnist", root);
    make_dir(root);
    make_dir(dir);
    static const char *const names[4] = {"train-images.idx3-ubyte", "train-labels.idx1-ubyte",
                                         "t10k-images.idx3-ubyte", "t10k-labels.idx1-ubyte"};
    for (int i = 0; i < 4; i++)
        snprintf(p[i], sizeof p[i], "%s/%s", dir, names[i]);
    copy_idx_subset(MNIST_DIR "/train-images-idx3-ubyte.gz", MNIST_DIR "/train-labels-idx1-ubyte.gz",
                    50, p[0], p[1]);
    copy_idx_subset(MNIST_DIR "/t10k-images-idx3-ubyte.gz", MNIST_DIR "/t10k-labels-idx1-ubyte.gz",
                    20, p[2], p[3]);

    dn_dataset train, test, real_train, real_test;
    dn_error err = {0};
    /* By name under a root, and by directory. */
    assert_int_equal(dn_data_open("mnist", root, &train, &test, &err), DN_OK);
    assert_int_equal(train.n, 50);
    assert_int_equal(test.n, 20);
    assert_int_equal(dn_data_open("mnist-10k", DN_TEST_DATA, &real_train, &real_test, &err), DN_OK);
    assert_memory_equal(train.pixels, real_train.pixels, 50 * 784 * sizeof(uint8_t));
    assert_memory_equal(train.labels, real_train.labels, 50);
    assert_memory_equal(test.pixels, real_test.pixels, 20 * 784 * sizeof(uint8_t));
    assert_memory_equal(test.labels, real_test.labels, 20);
    dn_dataset_free(&train);
    dn_dataset_free(&test);
    dn_dataset_free(&real_train);
    dn_dataset_free(&real_test);
    assert_int_equal(dn_data_open(dir, NULL, &train, &test, &err), DN_OK);
    assert_int_equal(train.n, 50);
    dn_dataset_free(&train);
    dn_dataset_free(&test);

    /* A missing test half is reported, not skipped over to another root. */
    assert_int_equal(unlink(p[3]), 0);
    check_error(dn_data_open("mnist", root, &train, &test, &err), &err, DN_ENOTFOUND, dir,
                ": incomplete IDX data set: missing t10k-labels-idx1-ubyte[.gz]");

    /* A broken file is the loader's error, even though ../shared/data has a good copy. */
    char bad_root[512], bad_dir[600], q[4][700];
    snprintf(bad_root, sizeof bad_root, "%s/root-broken", dn_test_dir());
    snprintf(bad_dir, sizeof bad_dir, "%s/mnist-10k", bad_root);
    make_dir(bad_root);
    make_dir(bad_dir);
    static const char *const std_names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte.gz",
                                             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    for (int i = 0; i < 4; i++)
        snprintf(q[i], sizeof q[i], "%s/%s", bad_dir, std_names[i]);
    copy_idx_subset(MNIST_DIR "/t10k-images-idx3-ubyte.gz", MNIST_DIR "/t10k-labels-idx1-ubyte.gz",
                    20, q[2], q[3]);
    copy_idx_subset(MNIST_DIR "/t10k-images-idx3-ubyte.gz", MNIST_DIR "/t10k-labels-idx1-ubyte.gz",
                    20, q[0], q[1]);
    FILE *f = fopen(q[1], "wb"); /* the labels become an HTML page */
    assert_non_null(f);
    fputs("<!DOCTYPE html><html><body>rate limited</body></html>", f);
    assert_int_equal(fclose(f), 0);
    check_error(dn_data_open("mnist-10k", bad_root, &train, &test, &err), &err, DN_EFORMAT, q[1],
                ": looks like an HTML page");
    assert_empty(&train);
    assert_empty(&test);
}

static void test_open_optdigits_csv(void **state)
{
    (void)state;
    char root[512], dir[600], path[700];
    snprintf(root, sizeof root, "%s/root-csv", dn_test_dir());
    snprintf(dir, sizeof dir, "%s/optdigits", root);
    make_dir(root);
    make_dir(dir);
    snprintf(path, sizeof path, "%s/data.csv", dir);

    /* data.csv = a header row, then .tra and .tes rows. */
    FILE *out = fopen(path, "wb");
    assert_non_null(out);
    for (int k = 0; k < 64; k++)
        fprintf(out, "Attribute%d,", k + 1);
    fputs("class\n", out);
    static const char *const parts[2] = {OPT_DIR "/optdigits.tra", OPT_DIR "/optdigits.tes"};
    for (int i = 0; i < 2; i++) {
        FILE *in = fopen(parts[i], "rb");
        assert_non_null(in);
        char buf[65536];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, in)) > 0)
            assert_int_equal(fwrite(buf, 1, n, out), n);
        fclose(in);
    }
    assert_int_equal(fclose(out), 0);

    dn_dataset train, test, both;
    dn_error err = {0};
    assert_int_equal(dn_data_open("optdigits", root, &train, &test, &err), DN_OK);
    assert_int_equal(train.n, 5620);
    assert_int_equal(test.n, 0);
    assert_null(test.pixels);
    assert_int_equal(test.h, 8);
    assert_int_equal(test.raw_max, 16);
    /* The empty test half still concatenates. */
    assert_int_equal(dn_dataset_concat(&train, &test, &both, &err), DN_OK);
    assert_int_equal(both.n, 5620);
    dn_dataset_free(&both);
    dn_dataset_free(&train);
    dn_dataset_free(&test);

    /* With only .tra beside it, data.csv is still used; with neither, .tra alone is reported. */
    assert_int_equal(unlink(path), 0);
    snprintf(path, sizeof path, "%s/optdigits.tra", dir);
    out = fopen(path, "wb");
    assert_non_null(out);
    assert_int_equal(fclose(out), 0);
    check_error(dn_data_open("optdigits", root, &train, &test, &err), &err, DN_ENOTFOUND, dir,
                ": has optdigits.tra but not optdigits.tes");
}

/* Rows come out as floats 0..1 whichever way they are asked for: a range, a gather, a copy. */
static void test_rows_as_floats(void **state)
{
    (void)state;
    dn_dataset tes = {0};
    dn_error err = {0};
    assert_int_equal(dn_optdigits_load(OPT_DIR "/optdigits.tes", &tes, &err), DN_OK);
    float range[3 * 64], gathered[2 * 64], *copy = NULL;
    dn_dataset_rows(&tes, 10, 3, range);
    for (int k = 0; k < 3 * 64; k++)
        assert_true(range[k] == tes.pixels[10 * 64 + k] / 16.0f);
    int rows[2] = {1796, 11};
    dn_dataset_gather(&tes, rows, 2, gathered);
    for (int k = 0; k < 64; k++) {
        assert_true(gathered[k] == tes.pixels[1796 * 64 + k] / 16.0f);
        assert_true(gathered[64 + k] == range[64 + k]);
    }
    assert_int_equal(dn_dataset_floats(&tes, 10, 3, &copy, &err), DN_OK);
    assert_memory_equal(copy, range, sizeof range);
    free(copy);
    assert_int_equal(dn_dataset_floats(&tes, 1796, 2, &copy, &err), DN_EARG);
    assert_non_null(strstr(err.msg, "outside the 1797 rows"));
    dn_dataset_free(&tes);
}

int main(void)
{
    /* Whoever runs the tests may have a download cache; the search must not find it. */
    setenv("XDG_CACHE_HOME", "/nonexistent/xdg", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_optdigits_real),
        cmocka_unit_test(test_idx_real_mnist10k),
        cmocka_unit_test(test_idx_small_raw_and_gzip),
        cmocka_unit_test(test_idx_truncated_raw),
        cmocka_unit_test(test_idx_truncated_gzip),
        cmocka_unit_test(test_idx_truncated_header_and_labels),
        cmocka_unit_test(test_idx_wrong_magic),
        cmocka_unit_test(test_idx_html_page),
        cmocka_unit_test(test_idx_gzip_of_text),
        cmocka_unit_test(test_idx_count_mismatch),
        cmocka_unit_test(test_idx_label_out_of_range),
        cmocka_unit_test(test_idx_absurd_header),
        cmocka_unit_test(test_idx_trailing_bytes_rejected),
        cmocka_unit_test(test_idx_empty_and_missing),
        cmocka_unit_test(test_optdigits_csv_with_header),
        cmocka_unit_test(test_optdigits_wrong_count),
        cmocka_unit_test(test_optdigits_value_out_of_range),
        cmocka_unit_test(test_optdigits_class_out_of_range),
        cmocka_unit_test(test_optdigits_non_numeric),
        cmocka_unit_test(test_optdigits_empty_html_binary_missing),
        cmocka_unit_test(test_dataset_concat),
        cmocka_unit_test(test_dataset_take_and_slice),
        cmocka_unit_test(test_open_named_sets),
        cmocka_unit_test(test_open_fashion_mnist),
        cmocka_unit_test(test_open_directory_path),
        cmocka_unit_test(test_open_not_found),
        cmocka_unit_test(test_open_download_cache),
        cmocka_unit_test(test_open_dotted_spelling),
        cmocka_unit_test(test_open_optdigits_csv),
        cmocka_unit_test(test_rows_as_floats),
    };
    /* The files written here are kept when something failed, to look at. */
    return dn_test_finish(cmocka_run_group_tests(tests, NULL, NULL));
}
