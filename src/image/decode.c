/* Image files into grey float images: PNG (libpng's simplified API), JPEG (libjpeg), BMP and
 * PGM/PPM/PBM (headers parsed here, every field checked against the data before allocating), and
 * the 8-bit grey PNG writer used for "what the network saw". */
#include "internal.h"
#include "util/atomic_file.h"

#include <errno.h>
#include <limits.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
/* jpeglib.h needs size_t and FILE first. */
#include <jpeglib.h>
#include <jerror.h>

#define MAX_FILE_BYTES (512ul * 1024 * 1024)

/* ------------------------------------------------------------------ shared */

static dn_status check_size(const char *kind, unsigned long long w, unsigned long long h, size_t max_pixels,
                            dn_error *err)
{
    if (w == 0 || h == 0)
        return dn_fail(err, DN_EFORMAT, "%s: the header says %llux%llu pixels", kind, w, h);
    if (w > DN_IMAGE_MAX_SIDE || h > DN_IMAGE_MAX_SIDE || w * h > max_pixels)
        return dn_fail(err, DN_ELIMIT, "%s: %llux%llu pixels is over the limit of %zu pixels (%d per side)", kind, w, h,
                       max_pixels, DN_IMAGE_MAX_SIDE);
    return DN_OK;
}

static dn_status alloc_image(int w, int h, dn_image *out, dn_error *err)
{
    out->pixels = malloc(sizeof(float) * (size_t)w * (size_t)h);
    if (!out->pixels)
        return dn_fail(err, DN_ENOMEM, "out of memory for a %dx%d image", w, h);
    out->w = w;
    out->h = h;
    return DN_OK;
}

dn_status dn_image_new(int w, int h, float value, dn_image *out, dn_error *err)
{
    memset(out, 0, sizeof *out);
    if (w < 1 || h < 1)
        return dn_fail(err, DN_EARG, "an image of %dx%d pixels", w, h);
    dn_status st = check_size("image", (unsigned long long)w, (unsigned long long)h, DN_IMAGE_MAX_PIXELS, err);
    if (st == DN_OK)
        st = alloc_image(w, h, out, err);
    for (size_t i = 0; st == DN_OK && i < (size_t)w * (size_t)h; i++)
        out->pixels[i] = value;
    return st;
}

void dn_image_free(dn_image *img)
{
    if (!img)
        return;
    free(img->pixels);
    memset(img, 0, sizeof *img);
}

/* Luma of an 8-bit colour composited on white by its alpha, 0..1. */
static float grey_rgba(unsigned r, unsigned g, unsigned b, unsigned a)
{
    float luma = 0.299f * (float)r + 0.587f * (float)g + 0.114f * (float)b;
    return ((float)a * luma + (float)(255 - a) * 255.0f) / (255.0f * 255.0f);
}

/* ------------------------------------------------------------------ reduced decoding */

/* dn_preprocess works on at most 1024 pixels a side (it shrinks larger images first), so a large
 * image is decoded straight to a fraction of its size: JPEG by libjpeg's DCT scaling, PNG by
 * averaging f x f blocks of each band of rows as they are inflated. Either way the result keeps at
 * least DECODE_SIDE pixels on its longer side, and memory stays bounded whatever the header says. */
#define DECODE_SIDE 1024

/* The integer factor a w x h image is shrunk by while decoding: 1 below 2 * DECODE_SIDE. */
static int shrink_factor(unsigned long long w, unsigned long long h)
{
    unsigned long long side = w > h ? w : h;
    return side >= 2 * DECODE_SIDE ? (int)(side / DECODE_SIDE) : 1;
}

/* Rows of a w x h image in, averaged f x f blocks out into a ceil(w/f) x ceil(h/f) image. */
typedef struct shrinker {
    dn_image *out;
    int w, h, f, y;
    float *acc; /* (ceil(w/f)): sums of the current band */
} shrinker;

static dn_status shrink_begin(shrinker *s, int w, int h, int f, dn_image *out, dn_error *err)
{
    memset(s, 0, sizeof *s);
    s->out = out;
    s->w = w, s->h = h, s->f = f;
    int ow = (w + f - 1) / f, oh = (h + f - 1) / f;
    s->acc = calloc((size_t)ow, sizeof(float));
    if (!s->acc)
        return dn_fail(err, DN_ENOMEM, "out of memory for a %dx%d image", w, h);
    dn_status st = alloc_image(ow, oh, out, err);
    if (st != DN_OK) {
        free(s->acc);
        s->acc = NULL;
    }
    return st;
}

static void shrink_row(shrinker *s, const float *row)
{
    int f = s->f, ow = s->out->w;
    for (int x = 0; x < s->w; x++)
        s->acc[x / f] += row[x];
    int y = s->y++;
    if ((y + 1) % f != 0 && y + 1 != s->h)
        return;
    int band = y % f + 1; /* rows in this band: f, or fewer for the last */
    float *dst = s->out->pixels + (size_t)(y / f) * (size_t)ow;
    for (int ox = 0; ox < ow; ox++) {
        int cols = ox == ow - 1 ? s->w - ox * f : f;
        dst[ox] = s->acc[ox] / (float)(band * cols);
        s->acc[ox] = 0.0f;
    }
}

static void shrink_end(shrinker *s)
{
    free(s->acc);
    s->acc = NULL;
}

/* ------------------------------------------------------------------ PNG */

/* Interlaced images are collected whole before they can be shrunk: a smaller size limit for them. */
#define PNG_INTERLACED_MAX_PIXELS (2048u * 2048u)

/* One PNG decode; lives in memory (its address is taken), so it survives libpng's longjmp. */
typedef struct png_job {
    const unsigned char *b;
    size_t len, pos;
    png_uint_32 w, h;
    int interlaced;
    unsigned long long rows_left; /* rows (of all passes) still to come */
    unsigned char *rgba;          /* interlaced: (h, w, 4), the passes put together */
    float *grey;                  /* (w): one row */
    shrinker sh;
    char msg[200];
} png_job;

static void png_read_mem(png_structp png, png_bytep dst, size_t n)
{
    png_job *j = png_get_io_ptr(png);
    /* The last row is in: libpng would now inflate whatever compressed data follows, to check that
     * the stream ends properly. That is where a bomb hides; stop instead (see decode_png). */
    if (j->rows_left == 0)
        png_error(png, "stopped after the last row");
    if (n > j->len - j->pos)
        png_error(png, "truncated (the data ends before the image does)");
    memcpy(dst, j->b + j->pos, n);
    j->pos += n;
}

static void png_fatal(png_structp png, png_const_charp msg)
{
    png_job *j = png_get_error_ptr(png);
    snprintf(j->msg, sizeof j->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_quiet(png_structp png, png_const_charp msg)
{
    (void)png, (void)msg; /* the library never prints */
}

/* Called by libpng on each row as soon as it is decoded (8-bit RGBA by then), before libpng looks
 * for more data: the row is used here, so that the last one is in before reading stops. */
static void png_take_row(png_structp png, png_row_infop row, png_bytep data)
{
    png_job *j = png_get_user_transform_ptr(png);
    const unsigned char *p = data;
    if (j->interlaced) {
        int pass = png_get_current_pass_number(png);
        png_uint_32 y = PNG_ROW_FROM_PASS_ROW(png_get_current_row_number(png), pass);
        for (png_uint_32 x = 0; x < row->width; x++)
            memcpy(j->rgba + ((size_t)y * j->w + PNG_COL_FROM_PASS_COL(x, pass)) * 4, p + 4 * x, 4);
    } else {
        for (png_uint_32 x = 0; x < j->w; x++)
            j->grey[x] = grey_rgba(p[4 * x], p[4 * x + 1], p[4 * x + 2], p[4 * x + 3]);
        shrink_row(&j->sh, j->grey);
    }
    j->rows_left--;
}

/* Rows are decoded one at a time into the (possibly shrunk) image, and nothing after the last one is
 * inflated: a file whose compressed data goes on past the image (a "decompression bomb", 900 MB of
 * zeros in under 1 MB) costs only the image. */
static dn_status decode_png(const unsigned char *b, size_t len, size_t max_pixels, dn_image *out, dn_error *err)
{
    png_job j;
    memset(&j, 0, sizeof j);
    j.b = b, j.len = len, j.rows_left = 1;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &j, png_fatal, png_quiet);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return dn_fail(err, DN_ENOMEM, "PNG: out of memory");
    }
    volatile dn_status st = DN_OK; /* read after a longjmp */
    if (setjmp(png_jmpbuf(png))) {
        if (j.rows_left != 0) /* else: stopped after the last row on purpose */
            st = dn_fail(err, DN_EFORMAT, "PNG: %s", j.msg);
        goto done;
    }
    png_set_read_fn(png, &j, png_read_mem);
    png_set_user_limits(png, DN_IMAGE_MAX_SIDE, DN_IMAGE_MAX_SIDE);
    png_set_chunk_malloc_max(png, 8u << 20); /* text and ICC chunks */
    png_read_info(png, info);
    j.w = png_get_image_width(png, info), j.h = png_get_image_height(png, info);
    j.interlaced = png_get_interlace_type(png, info) != PNG_INTERLACE_NONE;
    st = check_size("PNG", j.w, j.h, max_pixels, err);
    if (st == DN_OK && j.interlaced)
        st = check_size("interlaced PNG", j.w, j.h,
                        max_pixels < PNG_INTERLACED_MAX_PIXELS ? max_pixels : PNG_INTERLACED_MAX_PIXELS, err);
    if (st != DN_OK)
        goto done;
    /* Any colour type and depth to 8-bit RGBA, alpha not premultiplied. */
    png_set_expand(png);
    png_set_strip_16(png);
    png_set_gray_to_rgb(png);
    png_set_add_alpha(png, 0xff, PNG_FILLER_AFTER);
    png_set_read_user_transform_fn(png, png_take_row);
    png_set_user_transform_info(png, &j, 8, 4);
    png_read_update_info(png, info);
    /* Without png_set_interlace_handling, each pass comes as its own small image. */
    unsigned long long rows = 0;
    for (int pass = 0; pass < (j.interlaced ? 7 : 1); pass++)
        if (!j.interlaced)
            rows = j.h;
        else if (PNG_PASS_COLS(j.w, pass) > 0)
            rows += PNG_PASS_ROWS(j.h, pass);
    j.rgba = j.interlaced ? calloc((size_t)j.w * j.h, 4) : NULL;
    j.grey = malloc(sizeof(float) * j.w);
    st = (j.rgba || !j.interlaced) && j.grey ? shrink_begin(&j.sh, (int)j.w, (int)j.h, shrink_factor(j.w, j.h), out, err)
                                             : dn_fail(err, DN_ENOMEM, "PNG: out of memory for %ux%u pixels", j.w, j.h);
    if (st != DN_OK)
        goto done;
    j.rows_left = rows;
    for (unsigned long long r = 0; r < rows; r++)
        png_read_row(png, NULL, NULL);

done:
    if (st == DN_OK && j.interlaced) /* the passes are all in: shrink the whole */
        for (png_uint_32 y = 0; y < j.h; y++) {
            const unsigned char *p = j.rgba + (size_t)y * j.w * 4;
            for (png_uint_32 x = 0; x < j.w; x++)
                j.grey[x] = grey_rgba(p[4 * x], p[4 * x + 1], p[4 * x + 2], p[4 * x + 3]);
            shrink_row(&j.sh, j.grey);
        }
    if (st != DN_OK)
        dn_image_free(out);
    shrink_end(&j.sh);
    png_destroy_read_struct(&png, &info, NULL);
    free(j.rgba);
    free(j.grey);
    return st;
}

dn_status dn_image_encode_png(const dn_image *img, void **png, size_t *len, dn_error *err)
{
    *png = NULL;
    *len = 0;
    if (!img || !img->pixels || img->w < 1 || img->h < 1)
        return dn_fail(err, DN_EARG, "PNG: no image to encode");
    size_t n = (size_t)img->w * (size_t)img->h;
    unsigned char *grey = malloc(n);
    if (!grey)
        return dn_fail(err, DN_ENOMEM, "PNG: out of memory");
    for (size_t i = 0; i < n; i++) {
        float v = img->pixels[i];
        v = v > 0.0f ? (v < 1.0f ? v : 1.0f) : 0.0f; /* NaN -> 0 */
        grey[i] = (unsigned char)(v * 255.0f + 0.5f);
    }
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    pi.width = (png_uint_32)img->w;
    pi.height = (png_uint_32)img->h;
    pi.format = PNG_FORMAT_GRAY;
    png_alloc_size_t size = 0;
    dn_status st = DN_OK;
    void *mem = NULL;
    if (!png_image_write_to_memory(&pi, NULL, &size, 0, grey, 0, NULL))
        st = dn_fail(err, DN_EFORMAT, "PNG: %s", pi.message);
    else if (!(mem = malloc(size)))
        st = dn_fail(err, DN_ENOMEM, "PNG: out of memory");
    else if (!png_image_write_to_memory(&pi, mem, &size, 0, grey, 0, NULL))
        st = dn_fail(err, DN_EFORMAT, "PNG: %s", pi.message);
    png_image_free(&pi);
    free(grey);
    if (st != DN_OK) {
        free(mem);
        return st;
    }
    *png = mem;
    *len = size;
    return DN_OK;
}

dn_status dn_image_save_png(const dn_image *img, const char *path, dn_error *err)
{
    void *png;
    size_t len;
    dn_status st = dn_image_encode_png(img, &png, &len, err);
    if (st != DN_OK)
        return st;
    st = dn_atomic_write(path, png, len, err);
    free(png);
    return st;
}

/* ------------------------------------------------------------------ JPEG */

typedef struct jpeg_errors {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    int truncated;
    char msg[JMSG_LENGTH_MAX];
} jpeg_errors;

static void jpeg_fatal(j_common_ptr c)
{
    jpeg_errors *e = (jpeg_errors *)c->err;
    c->err->format_message(c, e->msg);
    longjmp(e->jump, 1);
}

/* Warnings are not printed (the library never prints). Running out of data is one, and is an error
 * at once: libjpeg would otherwise go on decoding the rest of the image from nothing, which for a
 * few hundred bytes claiming 4096x4096 pixels is most of the work. */
static void jpeg_note(j_common_ptr c, int level)
{
    jpeg_errors *e = (jpeg_errors *)c->err;
    if (level < 0) {
        c->err->num_warnings++;
        if (c->err->msg_code == JWRN_JPEG_EOF) {
            e->truncated = 1;
            snprintf(e->msg, sizeof e->msg, "truncated (the data ends before the image does)");
            longjmp(e->jump, 1);
        }
    }
}

/* A progressive JPEG may hold any number of scans, each a pass over the whole image: a small file
 * could keep a server busy for minutes. Real encoders write about ten. */
#define JPEG_MAX_SCANS 200

static void jpeg_watch(j_common_ptr c)
{
    if (c->is_decompressor && ((j_decompress_ptr)c)->input_scan_number > JPEG_MAX_SCANS) {
        c->err->msg_code = JERR_BAD_PROGRESSION; /* any code: the message is replaced below */
        jpeg_errors *e = (jpeg_errors *)c->err;
        snprintf(e->msg, sizeof e->msg, "more than %d scans", JPEG_MAX_SCANS);
        longjmp(e->jump, 1);
    }
}

static dn_status decode_jpeg(const unsigned char *b, size_t len, size_t max_pixels, dn_image *out, dn_error *err)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_errors je;
    unsigned char *volatile row = NULL;
    memset(&je, 0, sizeof je);
    cinfo.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = jpeg_fatal;
    je.pub.emit_message = jpeg_note;
    if (setjmp(je.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(row);
        dn_image_free(out);
        return dn_fail(err, DN_EFORMAT, "JPEG: %s", je.msg);
    }
    jpeg_create_decompress(&cinfo);
    struct jpeg_progress_mgr progress = {.progress_monitor = jpeg_watch};
    cinfo.progress = &progress;
    jpeg_mem_src(&cinfo, b, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    dn_status st = check_size("JPEG", cinfo.image_width, cinfo.image_height, max_pixels, err);
    if (st != DN_OK) {
        jpeg_destroy_decompress(&cinfo);
        return st;
    }
    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_GRAYSCALE;
    /* DCT scaling: 1/2, 1/4 or 1/8, keeping at least DECODE_SIDE pixels on the longer side. */
    int f = shrink_factor(cinfo.image_width, cinfo.image_height);
    cinfo.scale_num = 1;
    cinfo.scale_denom = f >= 8 ? 8 : f >= 4 ? 4 : f >= 2 ? 2 : 1;
    jpeg_start_decompress(&cinfo);
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height, nc = cinfo.output_components;
    row = malloc((size_t)w * (size_t)nc);
    st = row ? alloc_image(w, h, out, err) : dn_fail(err, DN_ENOMEM, "JPEG: out of memory");
    if (st != DN_OK) {
        jpeg_destroy_decompress(&cinfo);
        free(row);
        return st;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW rows[1] = {row};
        int y = (int)cinfo.output_scanline;
        if (jpeg_read_scanlines(&cinfo, rows, 1) != 1)
            break;
        float *dst = out->pixels + (size_t)y * (size_t)w;
        for (int x = 0; x < w; x++) {
            if (!cmyk) {
                dst[x] = row[x] / 255.0f;
                continue;
            }
            /* Adobe writes CMYK inverted (0 = full ink); the light left is (1 - C)(1 - K). */
            const unsigned char *p = row + 4 * x;
            float c = p[0] / 255.0f, m = p[1] / 255.0f, yy = p[2] / 255.0f, k = p[3] / 255.0f;
            if (!cinfo.saw_Adobe_marker)
                c = 1 - c, m = 1 - m, yy = 1 - yy, k = 1 - k;
            dst[x] = (0.299f * c + 0.587f * m + 0.114f * yy) * k;
        }
    }
    int complete = cinfo.output_scanline == cinfo.output_height;
    if (complete)
        jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(row);
    if (!complete || je.truncated) {
        dn_image_free(out);
        return dn_fail(err, DN_EFORMAT, "JPEG: truncated (the data ends before the image does)");
    }
    return DN_OK;
}

/* ------------------------------------------------------------------ BMP */

static uint32_t le16(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A channel described by a bit mask: where it starts and its largest value. */
typedef struct bmp_channel {
    uint32_t mask;
    int shift;
    uint32_t max;
} bmp_channel;

static int channel_init(bmp_channel *c, uint32_t mask)
{
    c->mask = mask;
    c->shift = 0;
    c->max = 0;
    if (!mask)
        return 0;
    while (!(mask & 1u))
        mask >>= 1, c->shift++;
    if (mask & (mask + 1)) /* the ones must be contiguous */
        return -1;
    c->max = mask;
    return 0;
}

static unsigned channel_get(const bmp_channel *c, uint32_t px)
{
    if (!c->max)
        return 0;
    return (unsigned)(((uint64_t)((px & c->mask) >> c->shift) * 255u + c->max / 2) / c->max);
}

static dn_status decode_bmp(const unsigned char *b, size_t len, size_t max_pixels, dn_image *out, dn_error *err)
{
    if (len < 14 + 12)
        return dn_fail(err, DN_EFORMAT, "BMP: truncated header (%zu bytes)", len);
    uint32_t data_offset = le32(b + 10), hdr = le32(b + 14);
    if (hdr != 12 && hdr != 40 && hdr != 52 && hdr != 56 && hdr != 108 && hdr != 124)
        return dn_fail(err, DN_EFORMAT, "BMP: unsupported header size %u", hdr);
    if (len < 14 + (size_t)hdr)
        return dn_fail(err, DN_EFORMAT, "BMP: truncated header (%zu bytes, header of %u)", len, hdr);
    const unsigned char *h = b + 14;
    int64_t w, ht;
    uint32_t planes, bpp, compression = 0, colors_used = 0;
    if (hdr == 12) {
        w = le16(h + 4);
        ht = le16(h + 6);
        planes = le16(h + 8);
        bpp = le16(h + 10);
    } else {
        w = (int32_t)le32(h + 4);
        ht = (int32_t)le32(h + 8);
        planes = le16(h + 12);
        bpp = le16(h + 14);
        compression = le32(h + 16);
        colors_used = le32(h + 32);
    }
    int top_down = ht < 0;
    if (top_down)
        ht = -ht;
    if (planes != 1)
        return dn_fail(err, DN_EFORMAT, "BMP: %u planes (must be 1)", planes);
    if (bpp != 1 && bpp != 4 && bpp != 8 && bpp != 16 && bpp != 24 && bpp != 32)
        return dn_fail(err, DN_EFORMAT, "BMP: unsupported %u bits per pixel", bpp);
    if (w <= 0 || ht <= 0)
        return dn_fail(err, DN_EFORMAT, "BMP: the header says %lldx%lld pixels", (long long)w, (long long)ht);
    dn_status st = check_size("BMP", (unsigned long long)w, (unsigned long long)ht, max_pixels, err);
    if (st != DN_OK)
        return st;

    /* Colour masks: in the header (52 bytes and up) or just after a 40-byte one. */
    bmp_channel ch[4]; /* r, g, b, a */
    size_t after_header = 14 + hdr;
    uint32_t masks[4] = {0, 0, 0, 0};
    int has_alpha = 0;
    if (compression == 3 || compression == 6) {
        if (bpp != 16 && bpp != 32)
            return dn_fail(err, DN_EFORMAT, "BMP: bit-field compression with %u bits per pixel", bpp);
        int n_masks = compression == 6 ? 4 : 3;
        const unsigned char *m = h + 40;
        if (hdr == 40) {
            if (len < after_header + 4 * (size_t)n_masks)
                return dn_fail(err, DN_EFORMAT, "BMP: truncated colour masks");
            after_header += 4 * (size_t)n_masks;
        } else if (hdr < 52 || (n_masks == 4 && hdr < 56)) {
            return dn_fail(err, DN_EFORMAT, "BMP: colour masks missing from a %u-byte header", hdr);
        }
        for (int i = 0; i < n_masks; i++)
            masks[i] = le32(m + 4 * i);
        if (n_masks == 3 && hdr >= 56)
            masks[3] = le32(m + 12);
    } else if (compression == 0) {
        if (bpp == 16)
            masks[0] = 0x7c00, masks[1] = 0x03e0, masks[2] = 0x001f;
        else if (bpp == 32)
            masks[0] = 0xff0000, masks[1] = 0x00ff00, masks[2] = 0x0000ff; /* the fourth byte is unused */
    } else {
        return dn_fail(err, DN_EFORMAT, "BMP: unsupported compression %u (only uncompressed and bit fields)",
                       compression);
    }
    for (int i = 0; i < 4; i++)
        if (channel_init(&ch[i], masks[i]) != 0)
            return dn_fail(err, DN_EFORMAT, "BMP: colour mask 0x%08x is not one run of bits", masks[i]);

    /* Palette. */
    uint32_t n_colors = 0, entry = hdr == 12 ? 3 : 4;
    if (bpp <= 8) {
        n_colors = colors_used ? colors_used : 1u << bpp;
        if (n_colors > 1u << bpp)
            return dn_fail(err, DN_EFORMAT, "BMP: %u palette colours for %u bits per pixel", n_colors, bpp);
        if ((uint64_t)after_header + (uint64_t)n_colors * entry > len)
            return dn_fail(err, DN_EFORMAT, "BMP: truncated palette");
    }
    const unsigned char *palette = b + after_header;
    uint64_t stride = ((uint64_t)w * bpp + 31) / 32 * 4;
    if (data_offset < after_header + (uint64_t)n_colors * entry || data_offset > len)
        return dn_fail(err, DN_EFORMAT, "BMP: pixel data offset %u is outside the file", data_offset);
    if (stride * (uint64_t)ht > len - data_offset)
        return dn_fail(err, DN_EFORMAT, "BMP: truncated pixel data (%llu bytes needed, %zu present)",
                       (unsigned long long)(stride * (uint64_t)ht), len - data_offset);

    int iw = (int)w, ih = (int)ht;
    st = alloc_image(iw, ih, out, err);
    if (st != DN_OK)
        return st;
    /* 32-bit images with an alpha mask but alpha 0 everywhere are written by tools that do not use
     * alpha: read them as opaque. */
    if (ch[3].max) {
        for (int y = 0; y < ih && !has_alpha; y++) {
            const unsigned char *r = b + data_offset + (size_t)y * stride;
            for (int x = 0; x < iw && !has_alpha; x++) {
                uint32_t px = bpp == 32 ? le32(r + 4 * x) : le16(r + 2 * x);
                has_alpha = channel_get(&ch[3], px) != 0;
            }
        }
    }
    for (int y = 0; y < ih; y++) {
        const unsigned char *r = b + data_offset + (size_t)y * stride;
        float *dst = out->pixels + (size_t)(top_down ? y : ih - 1 - y) * (size_t)iw;
        for (int x = 0; x < iw; x++) {
            unsigned cr, cg, cb, ca = 255;
            if (bpp <= 8) {
                unsigned bit = (unsigned)x * bpp;
                unsigned index = (r[bit / 8] >> (8 - bpp - bit % 8)) & ((1u << bpp) - 1);
                if (index >= n_colors) {
                    dn_image_free(out);
                    return dn_fail(err, DN_EFORMAT, "BMP: pixel (%d, %d) uses colour %u of a %u-colour palette", x, y,
                                   index, n_colors);
                }
                const unsigned char *c = palette + (size_t)index * entry;
                cb = c[0], cg = c[1], cr = c[2];
            } else if (bpp == 24) {
                cb = r[3 * x], cg = r[3 * x + 1], cr = r[3 * x + 2];
            } else {
                uint32_t px = bpp == 32 ? le32(r + 4 * x) : le16(r + 2 * x);
                cr = channel_get(&ch[0], px), cg = channel_get(&ch[1], px), cb = channel_get(&ch[2], px);
                if (has_alpha)
                    ca = channel_get(&ch[3], px);
            }
            dst[x] = grey_rgba(cr, cg, cb, ca);
        }
    }
    return DN_OK;
}

/* ------------------------------------------------------------------ PNM */

typedef struct pnm_reader {
    const unsigned char *b;
    size_t len, pos;
} pnm_reader;

static void pnm_skip_space(pnm_reader *r)
{
    while (r->pos < r->len) {
        unsigned char c = r->b[r->pos];
        if (c == '#') {
            while (r->pos < r->len && r->b[r->pos] != '\n' && r->b[r->pos] != '\r')
                r->pos++;
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') {
            r->pos++;
        } else {
            break;
        }
    }
}

/* A decimal number up to max, after whitespace and comments. digits_max limits it to one digit for
 * P1 bitmaps, whose bits need not be separated. Returns -1 when there is none or it is too big. */
static long long pnm_number(pnm_reader *r, long long max, int digits_max)
{
    pnm_skip_space(r);
    long long v = 0;
    int digits = 0;
    while (r->pos < r->len && r->b[r->pos] >= '0' && r->b[r->pos] <= '9' && digits < digits_max) {
        v = v * 10 + (r->b[r->pos++] - '0');
        if (v > max)
            return -1;
        digits++;
    }
    return digits ? v : -1;
}

static dn_status decode_pnm(const unsigned char *b, size_t len, size_t max_pixels, dn_image *out, dn_error *err)
{
    int kind = b[1] - '0';
    int ascii = kind <= 3, channels = (kind == 3 || kind == 6) ? 3 : 1, bits = kind == 1 || kind == 4;
    const char *name = bits ? "PBM" : channels == 3 ? "PPM" : "PGM";
    pnm_reader r = {b, len, 2};
    if (len < 3 || !(b[2] == ' ' || b[2] == '\t' || b[2] == '\n' || b[2] == '\r' || b[2] == '#'))
        return dn_fail(err, DN_EFORMAT, "%s: bad magic", name);
    long long w = pnm_number(&r, INT_MAX, 10), h = pnm_number(&r, INT_MAX, 10);
    if (w < 0 || h < 0)
        return dn_fail(err, DN_EFORMAT, "%s: width and height missing or too large", name);
    long long maxval = 1;
    if (!bits && (maxval = pnm_number(&r, 65535, 10)) < 1)
        return dn_fail(err, DN_EFORMAT, "%s: maximum value missing or not in 1..65535", name);
    dn_status st = check_size(name, (unsigned long long)w, (unsigned long long)h, max_pixels, err);
    if (st != DN_OK)
        return st;
    size_t n = (size_t)w * (size_t)h, samples = n * (size_t)channels;
    int wide = maxval > 255;
    if (!ascii) {
        /* Exactly one whitespace byte separates the header from the raster. */
        if (r.pos >= len || !(b[r.pos] == ' ' || b[r.pos] == '\t' || b[r.pos] == '\n' || b[r.pos] == '\r'))
            return dn_fail(err, DN_EFORMAT, "%s: no whitespace after the header", name);
        r.pos++;
        size_t need = bits ? (size_t)(w + 7) / 8 * (size_t)h : samples * (wide ? 2 : 1);
        if (len - r.pos < need)
            return dn_fail(err, DN_EFORMAT, "%s: truncated pixel data (%zu bytes needed, %zu present)", name, need,
                           len - r.pos);
    }
    st = alloc_image((int)w, (int)h, out, err);
    if (st != DN_OK)
        return st;
    for (size_t i = 0; i < n; i++) {
        float sample[3];
        for (int c = 0; c < channels; c++) {
            long long v;
            if (ascii) {
                v = pnm_number(&r, maxval, bits ? 1 : 10);
            } else if (bits) {
                size_t x = i % (size_t)w, y = i / (size_t)w, row = (size_t)(w + 7) / 8;
                v = (b[r.pos + y * row + x / 8] >> (7 - x % 8)) & 1;
            } else if (wide) {
                const unsigned char *p = b + r.pos + 2 * (i * (size_t)channels + (size_t)c);
                v = (long long)p[0] << 8 | p[1];
                if (v > maxval)
                    v = -1;
            } else {
                v = b[r.pos + i * (size_t)channels + (size_t)c];
                if (v > maxval)
                    v = -1;
            }
            if (v < 0) {
                dn_image_free(out);
                return dn_fail(err, DN_EFORMAT, "%s: pixel %zu: value missing, or over the maximum %lld", name, i,
                               maxval);
            }
            sample[c] = bits ? (float)(1 - v) : (float)v / (float)maxval; /* in PBM, 1 is black */
        }
        out->pixels[i] = channels == 3 ? 0.299f * sample[0] + 0.587f * sample[1] + 0.114f * sample[2] : sample[0];
    }
    return DN_OK;
}

/* ------------------------------------------------------------------ entry points */

dn_status dn_image_decode(const void *bytes, size_t len, size_t max_pixels, dn_image *out, dn_error *err)
{
    memset(out, 0, sizeof *out);
    const unsigned char *b = bytes;
    if (max_pixels == 0 || max_pixels > DN_IMAGE_MAX_PIXELS)
        max_pixels = DN_IMAGE_MAX_PIXELS;
    if (!b && len)
        return dn_fail(err, DN_EARG, "no image data");
    static const unsigned char png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len >= 8 && !memcmp(b, png_magic, 8))
        return decode_png(b, len, max_pixels, out, err);
    if (len >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff)
        return decode_jpeg(b, len, max_pixels, out, err);
    if (len >= 2 && b[0] == 'B' && b[1] == 'M')
        return decode_bmp(b, len, max_pixels, out, err);
    if (len >= 2 && b[0] == 'P' && b[1] >= '1' && b[1] <= '6')
        return decode_pnm(b, len, max_pixels, out, err);
    return dn_fail(err, DN_EFORMAT, "not a PNG, JPEG, BMP or PGM/PPM image (%zu bytes)", len);
}

dn_status dn_image_load(const char *path, size_t max_pixels, dn_image *out, dn_error *err)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return dn_fail(err, DN_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return dn_fail(err, DN_EIO, "%s: not a regular file", path);
    }
    if ((unsigned long long)sb.st_size > MAX_FILE_BYTES) {
        fclose(f);
        return dn_fail(err, DN_ELIMIT, "%s: %lld bytes is over the limit of %lu for an image file", path,
                       (long long)sb.st_size, MAX_FILE_BYTES);
    }
    size_t len = (size_t)sb.st_size;
    unsigned char *bytes = malloc(len ? len : 1);
    if (!bytes) {
        fclose(f);
        return dn_fail(err, DN_ENOMEM, "%s: out of memory reading %zu bytes", path, len);
    }
    size_t got = fread(bytes, 1, len, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != len) {
        free(bytes);
        return dn_fail(err, DN_EIO, "%s: read error", path);
    }
    dn_error inner = {0};
    dn_status st = dn_image_decode(bytes, len, max_pixels, out, &inner);
    free(bytes);
    if (st != DN_OK)
        dn_fail(err, st, "%s: %s", path, inner.msg);
    return st;
}
