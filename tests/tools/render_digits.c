/* Test helper: turns real MNIST test digits into the pictures a user would give digitnet.
 *
 *   render_digits canvases DIR N SEED   N 280x280 white PNGs DIR/NNNN.png of test images 0..N-1 drawn
 *                                       as dark ink at random positions and sizes; DIR/labels.txt
 *   render_digits formats DIR INDEX     test image INDEX as JPEG, 24-bit BMP, PPM, PGM and an RGBA PNG
 *                                       with a transparent background (DIR/digit.{jpg,bmp,ppm,pgm,png})
 *   render_digits pixels DIR N          DIR/NNNN.json: {"pixels": [784 values 0..255]} of test images
 *                                       0..N-1, odd ones inverted (dark on light); DIR/labels.txt
 *   render_digits photo OUT.png INDEX SEED  a photo-like picture: the digit in grey pencil on unevenly
 *                                       lit grey paper with noise and blur
 *   render_digits bombs DIR             decompression bombs for the server's tests: DIR/bomb.jpg, 584
 *                                       bytes of a 4096x4096 JPEG (the header and the start of its
 *                                       data), and DIR/bomb.png, a 1000x1000 grey PNG whose compressed
 *                                       data carries 900 MB of zeros past the image's last row (~900 KB)
 * Run from the project root (the data are read from ../shared/data/mnist-10k). */
#include "digitnet.h"

#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <jpeglib.h> /* after stdio.h: it needs FILE */

#define MNIST_DIR "../shared/data/mnist-10k"
#define CANVAS 280

static uint64_t rng_state;

static double uniform(void) /* splitmix64 -> [0, 1) */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}

static double gaussian(void)
{
    double u = uniform() + 1e-12, v = uniform();
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

static int die(const char *what, const dn_error *err)
{
    fprintf(stderr, "render_digits: %s: %s\n", what, err ? err->msg : "failed");
    exit(1);
}

static float *test_images; /* (10000, 28, 28) floats 0..1, filled by load_test */

static void load_test(dn_dataset *d)
{
    dn_error err = {0};
    if (dn_idx_load(MNIST_DIR "/t10k-images-idx3-ubyte.gz", MNIST_DIR "/t10k-labels-idx1-ubyte.gz", d, &err) != DN_OK ||
        dn_dataset_floats(d, 0, d->n, &test_images, &err) != DN_OK)
        die("MNIST test set", &err);
}

/* Bilinear sample of a 28x28 image at (x, y) in pixel-centre coordinates; 0 outside. */
static float sample(const float *img, double x, double y)
{
    x -= 0.5, y -= 0.5;
    int x0 = (int)floor(x), y0 = (int)floor(y);
    double fx = x - x0, fy = y - y0, v = 0;
    for (int dy = 0; dy <= 1; dy++)
        for (int dx = 0; dx <= 1; dx++) {
            int xx = x0 + dx, yy = y0 + dy;
            if (xx < 0 || yy < 0 || xx >= 28 || yy >= 28)
                continue;
            v += img[yy * 28 + xx] * (dx ? fx : 1 - fx) * (dy ? fy : 1 - fy);
        }
    return (float)v;
}

/* Draws digit (28x28, ink 0..1) scaled by k with its top-left at (ox, oy): paper - darkness * ink. */
static void draw(dn_image *c, const float *digit, double k, double ox, double oy, float darkness)
{
    for (int y = 0; y < c->h; y++)
        for (int x = 0; x < c->w; x++) {
            double u = (x + 0.5 - ox) / k, v = (y + 0.5 - oy) / k;
            if (u < 0 || v < 0 || u >= 28 || v >= 28)
                continue;
            float ink = sample(digit, u, v);
            c->pixels[y * c->w + x] -= darkness * ink;
        }
}

static void save(const dn_image *img, const char *path)
{
    dn_error err = {0};
    if (dn_image_save_png(img, path, &err) != DN_OK)
        die(path, &err);
}

static void canvases(const char *dir, int n, uint64_t seed)
{
    dn_dataset d = {0};
    load_test(&d);
    rng_state = seed;
    char path[1024];
    snprintf(path, sizeof path, "%s/labels.txt", dir);
    FILE *labels = fopen(path, "w");
    if (!labels)
        die(path, NULL);
    for (int i = 0; i < n && i < d.n; i++) {
        dn_image c;
        dn_error err = {0};
        if (dn_image_new(CANVAS, CANVAS, 1.0f, &c, &err) != DN_OK)
            die("canvas", &err);
        /* The 28x28 frame scaled 3x..9.5x: the digit itself 60..190 px tall, anywhere on the canvas. */
        double k = 3.0 + 6.5 * uniform(), side = 28 * k;
        double ox = uniform() * (CANVAS - side), oy = uniform() * (CANVAS - side);
        draw(&c, test_images + (size_t)i * 784, k, ox, oy, 0.8f + 0.2f * (float)uniform());
        snprintf(path, sizeof path, "%s/%04d.png", dir, i);
        save(&c, path);
        fprintf(labels, "%04d.png %d\n", i, d.labels[i]);
        dn_image_free(&c);
    }
    fclose(labels);
    dn_dataset_free(&d);
}

static void write_jpeg(const char *path, const unsigned char *rgb, int w, int h)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        die(path, NULL);
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&cinfo);
    jpeg_stdio_dest(&cinfo, f);
    cinfo.image_width = (JDIMENSION)w;
    cinfo.image_height = (JDIMENSION)h;
    cinfo.input_components = 3;
    cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, 85, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)cinfo.next_scanline * w * 3);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    if (fclose(f) != 0)
        die(path, NULL);
}

static void put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, unsigned v)
{
    put16(p, v & 0xffff), put16(p + 2, v >> 16);
}

static void write_bmp(const char *path, const unsigned char *rgb, int w, int h)
{
    unsigned stride = ((unsigned)w * 3 + 3) & ~3u, size = 54 + stride * (unsigned)h;
    unsigned char *b = calloc(1, size);
    if (!b)
        die("memory", NULL);
    b[0] = 'B', b[1] = 'M';
    put32(b + 2, size), put32(b + 10, 54), put32(b + 14, 40), put32(b + 18, (unsigned)w), put32(b + 22, (unsigned)h);
    put16(b + 26, 1), put16(b + 28, 24), put32(b + 34, stride * (unsigned)h);
    for (int y = 0; y < h; y++) /* bottom-up, BGR */
        for (int x = 0; x < w; x++) {
            const unsigned char *p = rgb + ((size_t)y * w + x) * 3;
            unsigned char *q = b + 54 + (size_t)(h - 1 - y) * stride + (size_t)x * 3;
            q[0] = p[2], q[1] = p[1], q[2] = p[0];
        }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, size, f) != size || fclose(f) != 0)
        die(path, NULL);
    free(b);
}

static void formats(const char *dir, int index)
{
    dn_dataset d = {0};
    load_test(&d);
    if (index < 0 || index >= d.n)
        die("index", NULL);
    rng_state = 7;
    enum { W = 200, H = 160 };
    /* Blue ink on a cream page, the digit off-centre. */
    unsigned char *rgb = malloc(W * H * 3), *rgba = malloc(W * H * 4), *grey = malloc(W * H);
    dn_image c;
    dn_error err = {0};
    if (!rgb || !rgba || !grey || dn_image_new(W, H, 1.0f, &c, &err) != DN_OK)
        die("memory", &err);
    draw(&c, test_images + (size_t)index * 784, 4.0, 70, 30, 1.0f);
    for (int i = 0; i < W * H; i++) {
        float ink = 1.0f - c.pixels[i];
        rgb[3 * i] = (unsigned char)(250 - 230 * ink);
        rgb[3 * i + 1] = (unsigned char)(245 - 200 * ink);
        rgb[3 * i + 2] = (unsigned char)(225 - 100 * ink);
        grey[i] = (unsigned char)(255 * c.pixels[i] + 0.5f);
        /* Black ink whose coverage is the alpha, on a transparent background. */
        rgba[4 * i] = rgba[4 * i + 1] = rgba[4 * i + 2] = 0;
        rgba[4 * i + 3] = (unsigned char)(255 * ink + 0.5f);
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/digit.jpg", dir);
    write_jpeg(path, rgb, W, H);
    snprintf(path, sizeof path, "%s/digit.bmp", dir);
    write_bmp(path, rgb, W, H);
    FILE *f;
    snprintf(path, sizeof path, "%s/digit.ppm", dir);
    if (!(f = fopen(path, "wb")) || fprintf(f, "P6\n# cream page\n%d %d\n255\n", W, H) < 0 ||
        fwrite(rgb, 1, W * H * 3, f) != W * H * 3 || fclose(f) != 0)
        die(path, NULL);
    snprintf(path, sizeof path, "%s/digit.pgm", dir);
    if (!(f = fopen(path, "wb")) || fprintf(f, "P5 %d %d 255\n", W, H) < 0 || fwrite(grey, 1, W * H, f) != W * H ||
        fclose(f) != 0)
        die(path, NULL);
    snprintf(path, sizeof path, "%s/digit.png", dir);
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION, pi.width = W, pi.height = H, pi.format = PNG_FORMAT_RGBA;
    if (!png_image_write_to_file(&pi, path, 0, rgba, 0, NULL))
        die(path, NULL);
    printf("%d\n", d.labels[index]);
    free(rgb), free(rgba), free(grey);
    dn_image_free(&c);
    dn_dataset_free(&d);
}

static void pixels(const char *dir, int n)
{
    dn_dataset d = {0};
    load_test(&d);
    char path[1024];
    snprintf(path, sizeof path, "%s/labels.txt", dir);
    FILE *labels = fopen(path, "w");
    if (!labels)
        die(path, NULL);
    for (int i = 0; i < n && i < d.n; i++) {
        snprintf(path, sizeof path, "%s/%04d.json", dir, i);
        FILE *f = fopen(path, "w");
        if (!f)
            die(path, NULL);
        fputs("{\"pixels\": [", f);
        for (int k = 0; k < 784; k++) {
            float v = test_images[(size_t)i * 784 + k];
            int p = (int)lroundf(255 * (i % 2 ? 1 - v : v));
            fprintf(f, "%s%d", k ? "," : "", p);
        }
        fputs("]}\n", f);
        if (fclose(f) != 0)
            die(path, NULL);
        fprintf(labels, "%04d.json %d\n", i, d.labels[i]);
    }
    fclose(labels);
    dn_dataset_free(&d);
}

static void photo(const char *out, int index, uint64_t seed)
{
    dn_dataset d = {0};
    load_test(&d);
    if (index < 0 || index >= d.n)
        die("index", NULL);
    rng_state = seed;
    enum { W = 320, H = 240 };
    dn_image c, blurred;
    dn_error err = {0};
    if (dn_image_new(W, H, 0.0f, &c, &err) != DN_OK || dn_image_new(W, H, 0.0f, &blurred, &err) != DN_OK)
        die("memory", &err);
    /* Paper lit from the top left: 0.78 .. 0.58 grey. */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            c.pixels[y * W + x] = 0.78f - 0.2f * (float)(x + y) / (W + H);
    draw(&c, test_images + (size_t)index * 784, 5.5, 118, 30, 0.45f); /* grey pencil, off-centre */
    /* Lens blur (3x3 box twice) and sensor noise. */
    for (int pass = 0; pass < 2; pass++) {
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                double s = 0;
                int n = 0;
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++) {
                        int xx = x + dx, yy = y + dy;
                        if (xx >= 0 && yy >= 0 && xx < W && yy < H)
                            s += c.pixels[yy * W + xx], n++;
                    }
                blurred.pixels[y * W + x] = (float)(s / n);
            }
        memcpy(c.pixels, blurred.pixels, sizeof(float) * W * H);
    }
    for (int i = 0; i < W * H; i++)
        c.pixels[i] += (float)(0.035 * gaussian());
    save(&c, out);
    printf("%d\n", d.labels[index]);
    dn_image_free(&c);
    dn_image_free(&blurred);
    dn_dataset_free(&d);
}

static void write_chunk(FILE *f, const char *type, const unsigned char *data, size_t len)
{
    unsigned char be[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16), (unsigned char)(len >> 8),
                           (unsigned char)len};
    uLong crc = crc32(crc32(0, NULL, 0), (const Bytef *)type, 4);
    crc = crc32(crc, data, (uInt)len);
    unsigned char c[4] = {(unsigned char)(crc >> 24), (unsigned char)(crc >> 16), (unsigned char)(crc >> 8),
                          (unsigned char)crc};
    fwrite(be, 1, 4, f);
    fwrite(type, 1, 4, f);
    fwrite(data, 1, len, f);
    fwrite(c, 1, 4, f);
}

static void bombs(const char *dir)
{
    char path[4096];
    /* JPEG: a white 4096x4096 image, cut after 584 bytes. */
    enum { SIDE = 4096, KEEP = 584 };
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&cinfo);
    unsigned char *mem = NULL;
    unsigned long len = 0;
    jpeg_mem_dest(&cinfo, &mem, &len);
    cinfo.image_width = SIDE;
    cinfo.image_height = SIDE;
    cinfo.input_components = 1;
    cinfo.in_color_space = JCS_GRAYSCALE;
    jpeg_set_defaults(&cinfo);
    jpeg_start_compress(&cinfo, TRUE);
    static unsigned char row[SIDE];
    memset(row, 255, sizeof row);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW r = row;
        jpeg_write_scanlines(&cinfo, &r, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    snprintf(path, sizeof path, "%s/bomb.jpg", dir);
    FILE *f = fopen(path, "wb");
    if (!f || len < KEEP || fwrite(mem, 1, KEEP, f) != KEEP || fclose(f) != 0) {
        fprintf(stderr, "render_digits: cannot write %s\n", path);
        exit(1);
    }
    free(mem);

    /* PNG: 1000x1000 grey, then 900 MB of zeros in the same zlib stream. */
    enum { W = 1000, H = 1000 };
    const size_t extra = (size_t)900 << 20;
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit(&z, 9);
    size_t cap = 4 << 20, used = 0;
    unsigned char *idat = malloc(cap);
    static unsigned char in[1 << 16];
    memset(in, 0, sizeof in);
    size_t fed = 0, total = (size_t)H * (W + 1) + extra;
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
        size_t n = total - fed < sizeof in ? total - fed : sizeof in;
        z.next_in = in;
        z.avail_in = (uInt)n;
        fed += n;
        do {
            if (cap - used < 65536)
                idat = realloc(idat, cap *= 2);
            z.next_out = idat + used;
            z.avail_out = (uInt)(cap - used);
            rc = deflate(&z, fed == total ? Z_FINISH : Z_NO_FLUSH);
            used = (size_t)(z.next_out - idat);
        } while (z.avail_out == 0 || (fed == total && rc != Z_STREAM_END));
    }
    deflateEnd(&z);
    snprintf(path, sizeof path, "%s/bomb.png", dir);
    f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "render_digits: cannot write %s\n", path);
        exit(1);
    }
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char ihdr[13] = {0, 0, W >> 8, W & 255, 0, 0, H >> 8, H & 255, 8, 0, 0, 0, 0};
    fwrite(sig, 1, 8, f);
    write_chunk(f, "IHDR", ihdr, sizeof ihdr);
    write_chunk(f, "IDAT", idat, used);
    write_chunk(f, "IEND", NULL, 0);
    if (fclose(f) != 0)
        exit(1);
    free(idat);
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "canvases"))
        canvases(argv[2], atoi(argv[3]), strtoull(argv[4], NULL, 10));
    else if (argc == 4 && !strcmp(argv[1], "formats"))
        formats(argv[2], atoi(argv[3]));
    else if (argc == 4 && !strcmp(argv[1], "pixels"))
        pixels(argv[2], atoi(argv[3]));
    else if (argc == 5 && !strcmp(argv[1], "photo"))
        photo(argv[2], atoi(argv[3]), strtoull(argv[4], NULL, 10));
    else if (argc == 3 && !strcmp(argv[1], "bombs"))
        bombs(argv[2]);
    else {
        fprintf(stderr, "usage: render_digits canvases DIR N SEED | formats DIR INDEX | pixels DIR N | "
                        "photo OUT.png INDEX SEED | bombs DIR\n");
        return 2;
    }
    return 0;
}
