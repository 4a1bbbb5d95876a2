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
 * Run from the project root (the data are read from ../shared/data/mnist-10k). */
#include "digitnet.h"

#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    else {
        fprintf(stderr, "usage: render_digits canvases DIR N SEED | formats DIR INDEX | pixels DIR N | "
                        "photo OUT.png INDEX SEED\n");
        return 2;
    }
    return 0;
}
