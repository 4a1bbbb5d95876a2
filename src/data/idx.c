/* IDX loader (the MNIST / Fashion-MNIST file format): a big-endian header, then unsigned bytes.
 * Files are read through zlib, which decompresses gzip and passes raw files through unchanged, so
 * both forms work whatever the file is called. Every size in a header is checked against a limit
 * before anything is allocated, and the pixel buffer grows only as pixels actually arrive, so a
 * small hostile or damaged file cannot make us allocate gigabytes. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define IDX_IMAGES_MAGIC 0x00000803u /* unsigned bytes, 3 dimensions (n, rows, cols) */
#define IDX_LABELS_MAGIC 0x00000801u /* unsigned bytes, 1 dimension (n) */
#define IDX_MAX_ITEMS 10000000u      /* images or labels in one file */
#define IDX_MAX_SIDE 4096u           /* rows or columns of one image */
/* Keeps n * rows * cols (and every offset into the images) inside an int; that is 2 GiB of pixels. */
#define IDX_MAX_PIXELS 2147483647ull
#define IDX_CHUNK 65536u             /* bytes decompressed per read */
#define IDX_SNIFF 512u               /* bytes looked at to say what a non-IDX file is */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static dn_status open_gz(const char *path, gzFile *gz, dn_error *err)
{
    errno = 0;
    *gz = gzopen(path, "rb");
    if (!*gz) {
        /* gzopen leaves errno at 0 when it is its own allocation that failed. */
        int e = errno;
        if (!e)
            return dn_fail(err, DN_ENOMEM, "%s: cannot open: out of memory", path);
        return dn_fail(err, DN_EIO, "%s: cannot open: %s", path, strerror(e));
    }
    gzbuffer(*gz, 1u << 17); /* fewer, larger reads than the 8 KiB default */
    return DN_OK;
}

/* Turns a failed gzread into a status: a system read error or damaged compressed data. */
static dn_status gz_read_error(gzFile gz, const char *path, dn_error *err)
{
    int code = Z_OK;
    const char *what = gzerror(gz, &code);
    if (code == Z_ERRNO)
        return dn_fail(err, DN_EIO, "%s: read error: %s", path, strerror(errno));
    if (code == Z_MEM_ERROR)
        return dn_fail(err, DN_ENOMEM, "%s: out of memory while decompressing", path);
    return dn_fail(err, DN_EFORMAT, "%s: corrupt gzip data: %s", path, what ? what : "unknown error");
}

/* Reads up to want bytes; *got < want means the data ended. */
static dn_status read_some(gzFile gz, const char *path, void *buf, size_t want, size_t *got,
                           dn_error *err)
{
    *got = 0;
    while (*got < want) {
        size_t ask = want - *got;
        if (ask > IDX_CHUNK)
            ask = IDX_CHUNK;
        int n = gzread(gz, (unsigned char *)buf + *got, (unsigned)ask);
        if (n < 0)
            return gz_read_error(gz, path, err);
        if (n == 0)
            break;
        *got += (size_t)n;
    }
    return DN_OK;
}

/* zlib reports a gzip stream cut short as a plain end of data plus Z_BUF_ERROR; saying so tells the
 * user it was the download, not the header, that went wrong. */
static const char *gzip_cut_note(gzFile gz)
{
    int code = Z_OK;
    gzerror(gz, &code);
    return code == Z_BUF_ERROR ? " (the gzip stream ends early)" : "";
}

static int looks_like_html(const unsigned char *p, size_t n)
{
    size_t i = 0;
    if (n >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF) /* UTF-8 byte-order mark */
        i = 3;
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    /* An IDX file starts with two zero bytes, so a leading '<' is never IDX; it is what a server's
     * error page or a login redirect saved under the data file's name looks like. */
    return i < n && p[i] == '<';
}

static int looks_like_text(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= 0x20 && p[i] < 0x7F) || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
            return 0;
    return n > 0;
}

/* Explains a file whose first four bytes are not the expected magic. */
static dn_status bad_magic(gzFile gz, const char *path, const unsigned char *head, size_t head_len,
                           uint32_t want, dn_error *err)
{
    /* Read a little more than the header so that the verdict does not rest on 8 bytes. */
    unsigned char sniff[IDX_SNIFF];
    size_t n = head_len < IDX_SNIFF ? head_len : IDX_SNIFF;
    memcpy(sniff, head, n);
    size_t more = 0;
    if (n < IDX_SNIFF && read_some(gz, path, sniff + n, IDX_SNIFF - n, &more, NULL) == DN_OK)
        n += more;

    const char *kind = want == IDX_IMAGES_MAGIC ? "images" : "labels";
    uint32_t magic = head_len >= 4 ? be32(head) : 0;
    int gzipped = !gzdirect(gz);
    if (looks_like_html(sniff, n))
        return dn_fail(err, DN_EFORMAT, "%s: looks like an HTML page, not IDX data%s", path,
                       gzipped ? " (inside gzip)" : "");
    if (head_len < 4)
        return dn_fail(err, DN_EFORMAT, "%s: truncated: %zu bytes, too short for an IDX header",
                       path, head_len);
    if (magic == IDX_IMAGES_MAGIC || magic == IDX_LABELS_MAGIC)
        return dn_fail(err, DN_EFORMAT,
                       "%s: is an IDX %s file (magic 0x%08x), expected IDX %s (0x%08x); are the "
                       "image and label files swapped?",
                       path, magic == IDX_IMAGES_MAGIC ? "images" : "labels", (unsigned)magic, kind,
                       (unsigned)want);
    if (gzipped)
        return dn_fail(err, DN_EFORMAT,
                       "%s: a gzip of something else, not IDX %s (magic 0x%08x after decompressing, "
                       "expected 0x%08x)%s",
                       path, kind, (unsigned)magic, (unsigned)want,
                       looks_like_text(sniff, n) ? "; the content is text" : "");
    if (looks_like_text(sniff, n))
        return dn_fail(err, DN_EFORMAT,
                       "%s: looks like a text file, not IDX %s (magic 0x%08x, expected 0x%08x)", path,
                       kind, (unsigned)magic, (unsigned)want);
    return dn_fail(err, DN_EFORMAT, "%s: not an IDX %s file (magic 0x%08x, expected 0x%08x)", path,
                   kind, (unsigned)magic, (unsigned)want);
}

/* Reads and checks the magic and the n_dims sizes that follow it. */
static dn_status read_header(gzFile gz, const char *path, uint32_t want_magic, uint32_t *dims,
                             int n_dims, dn_error *err)
{
    unsigned char head[16];
    size_t want = 4 + 4 * (size_t)n_dims, got = 0;
    dn_status st = read_some(gz, path, head, want, &got, err);
    if (st)
        return st;
    if (got == 0)
        return dn_fail(err, DN_EFORMAT, "%s: empty file, not IDX data%s", path, gzip_cut_note(gz));
    if (got < 4 || be32(head) != want_magic)
        return bad_magic(gz, path, head, got, want_magic, err);
    if (got < want)
        return dn_fail(err, DN_EFORMAT, "%s: truncated: expected a %zu-byte header, got %zu bytes%s",
                       path, want, got, gzip_cut_note(gz));
    for (int i = 0; i < n_dims; i++)
        dims[i] = be32(head + 4 + 4 * i);
    return DN_OK;
}

/* After the last item the header declares there must be nothing: extra bytes mean the header's
 * count disagrees with the content, i.e. the file is not what it says it is. */
static dn_status check_end(gzFile gz, const char *path, uint32_t n, const char *items, dn_error *err)
{
    unsigned char extra;
    int r = gzread(gz, &extra, 1);
    if (r < 0)
        return gz_read_error(gz, path, err);
    if (r > 0)
        return dn_fail(err, DN_EFORMAT,
                       "%s: unexpected data after the %u %s the header declares", path, (unsigned)n,
                       items);
    return DN_OK;
}

/* Reads the raw pixel bytes. The buffer grows as pixels arrive (see file comment). */
static dn_status read_pixels(gzFile gz, const char *path, size_t total, uint8_t **out, dn_error *err)
{
    unsigned char *chunk = malloc(IDX_CHUNK);
    if (!chunk)
        return dn_fail(err, DN_ENOMEM, "%s: out of memory", path);
    uint8_t *pixels = NULL; /* (total) once complete */
    size_t cap = 0, got = 0;
    dn_status st = DN_OK;
    while (got < total) {
        size_t want = total - got < IDX_CHUNK ? total - got : IDX_CHUNK, n = 0;
        st = read_some(gz, path, chunk, want, &n, err);
        if (st)
            break;
        if (got + n > cap) {
            size_t new_cap = cap ? cap * 2 : (size_t)1 << 20;
            if (new_cap > total)
                new_cap = total;
            uint8_t *grown = realloc(pixels, new_cap * sizeof *grown);
            if (!grown) {
                st = dn_fail(err, DN_ENOMEM, "%s: out of memory for %zu pixels", path, total);
                break;
            }
            pixels = grown;
            cap = new_cap;
        }
        if (n) /* no data at all leaves pixels NULL, and NULL + 0 is undefined */
            memcpy(pixels + got, chunk, n);
        got += n;
        if (n < want) {
            st = dn_fail(err, DN_EFORMAT, "%s: truncated: expected %zu bytes of pixels, got %zu%s",
                         path, total, got, gzip_cut_note(gz));
            break;
        }
    }
    free(chunk);
    if (st) {
        free(pixels);
        return st;
    }
    *out = pixels;
    return DN_OK;
}

static dn_status read_labels(gzFile gz, const char *path, uint32_t n, uint8_t **out, dn_error *err)
{
    /* n already equals the image count, whose pixels have arrived, so n bytes is a fair size. */
    uint8_t *labels = malloc(n);
    if (!labels)
        return dn_fail(err, DN_ENOMEM, "%s: out of memory for %u labels", path, (unsigned)n);
    size_t got = 0;
    dn_status st = read_some(gz, path, labels, n, &got, err);
    if (!st && got < n)
        st = dn_fail(err, DN_EFORMAT, "%s: truncated: expected %u bytes of labels, got %zu%s", path,
                     (unsigned)n, got, gzip_cut_note(gz));
    for (uint32_t i = 0; !st && i < n; i++)
        if (labels[i] > 9)
            st = dn_fail(err, DN_EFORMAT, "%s: label %u at index %u is out of range 0..9", path,
                         (unsigned)labels[i], (unsigned)i);
    if (st) {
        free(labels);
        return st;
    }
    *out = labels;
    return DN_OK;
}

static dn_status check_image_header(const char *path, const uint32_t *dims, dn_error *err)
{
    uint32_t n = dims[0], rows = dims[1], cols = dims[2];
    if (n > IDX_MAX_ITEMS)
        return dn_fail(err, DN_ELIMIT, "%s: header claims %u images, more than the limit of %u", path,
                       (unsigned)n, IDX_MAX_ITEMS);
    if (rows > IDX_MAX_SIDE || cols > IDX_MAX_SIDE)
        return dn_fail(err, DN_ELIMIT, "%s: header claims %ux%u images, beyond the limit of %ux%u",
                       path, (unsigned)rows, (unsigned)cols, IDX_MAX_SIDE, IDX_MAX_SIDE);
    if ((uint64_t)n * rows * cols > IDX_MAX_PIXELS)
        return dn_fail(err, DN_ELIMIT,
                       "%s: header claims %u images of %ux%u, more than the limit of %llu pixels in all",
                       path, (unsigned)n, (unsigned)rows, (unsigned)cols, IDX_MAX_PIXELS);
    if (n == 0)
        return dn_fail(err, DN_EFORMAT, "%s: header says the file holds no images", path);
    if (rows == 0 || cols == 0)
        return dn_fail(err, DN_EFORMAT, "%s: header says the images are %ux%u", path, (unsigned)rows,
                       (unsigned)cols);
    return DN_OK;
}

dn_status dn_idx_load(const char *images_path, const char *labels_path, dn_dataset *out, dn_error *err)
{
    if (!out)
        return dn_fail(err, DN_EARG, "dn_idx_load: out is NULL");
    memset(out, 0, sizeof *out);
    if (!images_path || !labels_path)
        return dn_fail(err, DN_EARG, "dn_idx_load: a file path is NULL");

    gzFile images_gz = NULL, labels_gz = NULL;
    uint8_t *pixels = NULL;
    uint8_t *labels = NULL;
    uint32_t image_dims[3], label_dims[1];

    /* Both headers first, so a count mismatch is reported before the long read of the pixels. */
    dn_status st = open_gz(images_path, &images_gz, err);
    if (!st)
        st = read_header(images_gz, images_path, IDX_IMAGES_MAGIC, image_dims, 3, err);
    if (!st)
        st = check_image_header(images_path, image_dims, err);
    if (!st)
        st = open_gz(labels_path, &labels_gz, err);
    if (!st)
        st = read_header(labels_gz, labels_path, IDX_LABELS_MAGIC, label_dims, 1, err);
    if (!st && label_dims[0] > IDX_MAX_ITEMS)
        st = dn_fail(err, DN_ELIMIT, "%s: header claims %u labels, more than the limit of %u",
                     labels_path, (unsigned)label_dims[0], IDX_MAX_ITEMS);
    if (!st && label_dims[0] != image_dims[0])
        st = dn_fail(err, DN_EFORMAT, "%s: header says %u labels, but %s has %u images", labels_path,
                     (unsigned)label_dims[0], images_path, (unsigned)image_dims[0]);
    if (!st)
        st = read_pixels(images_gz, images_path, (size_t)image_dims[0] * image_dims[1] * image_dims[2],
                         &pixels, err);
    if (!st)
        st = check_end(images_gz, images_path, image_dims[0], "images", err);
    if (!st)
        st = read_labels(labels_gz, labels_path, label_dims[0], &labels, err);
    if (!st)
        st = check_end(labels_gz, labels_path, label_dims[0], "labels", err);

    if (images_gz)
        gzclose(images_gz);
    if (labels_gz)
        gzclose(labels_gz);
    if (st) {
        free(pixels);
        free(labels);
        return st;
    }
    out->n = (int)image_dims[0];
    out->h = (int)image_dims[1];
    out->w = (int)image_dims[2];
    out->c = 1;
    out->pixels = pixels;
    out->labels = labels;
    out->raw_max = 255;
    return DN_OK;
}
