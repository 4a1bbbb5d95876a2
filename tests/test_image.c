/* Images: the decoders on good and broken files (asserting the exact status and the telling part of
 * the message), and the MNIST-style preprocessing on real MNIST test digits put back into larger,
 * inverted, off-centre, noisy pictures. Run from the project root. */
#include "testutil.h"

#include <png.h>
#include <jpeglib.h> /* after stdio.h (testutil.h): it needs FILE */

#define MNIST_DIR DN_TEST_DATA "/mnist-10k"
static const dn_shape MNIST_SHAPE = {28, 28, 1};
static const dn_shape OPT_SHAPE = {8, 8, 1};

/* ------------------------------------------------------------------ helpers */

static void check_error(dn_status got, const dn_error *err, dn_status want, const char *part)
{
    if (got != want || !strstr(err->msg, part))
        print_error("status %d (%s), message: %s\n", (int)got, dn_status_str(got), err->msg);
    assert_int_equal(got, want);
    assert_int_equal(err->status, want);
    assert_non_null(strstr(err->msg, part));
    assert_null(strchr(err->msg, '\n'));
}

static void decode_fails(const void *bytes, size_t len, dn_status want, const char *part)
{
    dn_image img = {1, 1, (float *)1}; /* must come back zeroed */
    dn_error err = {0};
    check_error(dn_image_decode(bytes, len, 0, &img, &err), &err, want, part);
    assert_null(img.pixels);
    assert_int_equal(img.w, 0);
}

static void put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
    put16(p, v & 0xffff), put16(p + 2, v >> 16);
}

/* A BMP header (14 + 40 bytes) for w x h at bpp with `colors` palette entries after it. */
static void bmp_header(unsigned char *b, int32_t w, int32_t h, unsigned bpp, unsigned compression, unsigned colors,
                       uint32_t offset)
{
    memset(b, 0, 54);
    b[0] = 'B', b[1] = 'M';
    put32(b + 10, offset);
    put32(b + 14, 40);
    put32(b + 18, (uint32_t)w);
    put32(b + 22, (uint32_t)h);
    put16(b + 26, 1);
    put16(b + 28, bpp);
    put32(b + 30, compression);
    put32(b + 46, colors);
}

static dn_dataset mnist;
static float *mnist_images; /* (n, 28, 28) floats 0..1 */

static int load_mnist(void **state)
{
    (void)state;
    dn_error err = {0};
    dn_status st = dn_idx_load(MNIST_DIR "/t10k-images-idx3-ubyte.gz", MNIST_DIR "/t10k-labels-idx1-ubyte.gz", &mnist,
                               &err);
    if (st == DN_OK)
        st = dn_dataset_floats(&mnist, 0, mnist.n, &mnist_images, &err);
    if (st != DN_OK)
        fprintf(stderr, "%s\n", err.msg);
    return st == DN_OK ? 0 : -1;
}

static int free_mnist(void **state)
{
    (void)state;
    dn_dataset_free(&mnist);
    free(mnist_images);
    return 0;
}

/* MNIST image i drawn into img at (ox, oy), 1:1: paper - darkness * ink (or paper + ink). */
static void embed(dn_image *img, int i, int ox, int oy, float paper, float darkness)
{
    for (int y = 0; y < 28; y++)
        for (int x = 0; x < 28; x++)
            img->pixels[(oy + y) * img->w + ox + x] = paper - darkness * mnist_images[(size_t)i * 784 + y * 28 + x];
}

static double mean_abs_error(const float *a, const float *b, int n)
{
    double s = 0;
    for (int k = 0; k < n; k++)
        s += fabs(a[k] - b[k]);
    return s / n;
}

static uint64_t noise_state = 12345;
static float gaussian(void)
{
    double u, v;
    noise_state = noise_state * 6364136223846793005ull + 1442695040888963407ull;
    u = ((noise_state >> 11) + 1.0) / 9007199254740994.0;
    noise_state = noise_state * 6364136223846793005ull + 1442695040888963407ull;
    v = (noise_state >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

/* ------------------------------------------------------------------ preprocessing */

/* The MNIST test digits came out of exactly this pipeline (20 px box, centre of mass at the centre),
 * so an MNIST digit put into a bigger, inverted, off-centre picture must come back as itself. The
 * measured mean absolute error over the first 500 digits is 0.004 (0..1 scale); the threshold is
 * 0.01 on average and 0.02 for 95% of the digits. The rest differ for a reason: MNIST's rounding of
 * the centre put it one pixel off ours, or a speck that MNIST kept inside the box is dropped. */
static void test_mnist_digit_comes_back(void **state)
{
    (void)state;
    const int n = 500;
    double total = 0;
    int close = 0;
    for (int i = 0; i < n; i++) {
        dn_image img;
        dn_error err = {0};
        assert_int_equal(dn_image_new(97, 71, 0.88f, &img, &err), DN_OK);
        embed(&img, i, 3 + (i * 7) % 66, 2 + (i * 5) % 41, 0.88f, 0.8f); /* dark ink on light grey */
        float out[784];
        dn_status st = dn_preprocess(&img, MNIST_SHAPE, out, &err);
        if (st != DN_OK)
            print_error("image %d: %s\n", i, err.msg);
        assert_int_equal(st, DN_OK);
        double e = mean_abs_error(out, mnist_images + (size_t)i * 784, 784);
        total += e;
        close += e < 0.02;
        dn_image_free(&img);
    }
    print_message("mean absolute error %.4f, %d of %d digits under 0.02\n", total / n, close, n);
    assert_true(total / n < 0.01);
    assert_true(close >= n * 95 / 100);
}

/* Light ink on a dark board comes back the same as dark ink on paper. */
static void test_polarity(void **state)
{
    (void)state;
    dn_image dark, light;
    dn_error err = {0};
    assert_int_equal(dn_image_new(60, 60, 0.9f, &dark, &err), DN_OK);
    assert_int_equal(dn_image_new(60, 60, 0.1f, &light, &err), DN_OK);
    embed(&dark, 3, 20, 5, 0.9f, 0.8f);
    embed(&light, 3, 20, 5, 0.1f, -0.8f);
    float a[784], b[784];
    assert_int_equal(dn_preprocess(&dark, MNIST_SHAPE, a, &err), DN_OK);
    assert_int_equal(dn_preprocess(&light, MNIST_SHAPE, b, &err), DN_OK);
    assert_true(mean_abs_error(a, b, 784) < 1e-4);
    assert_true(mean_abs_error(a, mnist_images + 3 * 784, 784) < 0.02);
    dn_image_free(&dark);
    dn_image_free(&light);
}

/* A large picture with the digit scaled up 8x on unevenly lit, noisy paper: the output still has
 * its box's longer side 20 px and its centre of mass at (14, 14), and stays close to the original. */
static void test_big_noisy_picture(void **state)
{
    (void)state;
    const int i = 18, k = 8, W = 400, H = 300;
    dn_image img;
    dn_error err = {0};
    assert_int_equal(dn_image_new(W, H, 0, &img, &err), DN_OK);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const float *d = mnist_images + (size_t)i * 784;
            int u = (x - 150) / k, v = (y - 40) / k;
            float ink = x >= 150 && y >= 40 && u < 28 && v < 28 ? d[v * 28 + u] : 0.0f;
            float paper = 0.8f - 0.25f * (float)x / W - 0.1f * (float)y / H; /* lit from the left */
            img.pixels[y * W + x] = paper - 0.5f * ink + 0.03f * gaussian();
        }
    float out[784];
    assert_int_equal(dn_preprocess(&img, MNIST_SHAPE, out, &err), DN_OK);
    double sum = 0, sx = 0, sy = 0;
    int x0 = 28, x1 = -1, y0 = 28, y1 = -1;
    for (int y = 0; y < 28; y++)
        for (int x = 0; x < 28; x++) {
            float v = out[y * 28 + x];
            assert_true(v >= 0 && v <= 1);
            if (v <= 0)
                continue;
            sum += v, sx += v * x, sy += v * y;
            x0 = x < x0 ? x : x0, x1 = x > x1 ? x : x1, y0 = y < y0 ? y : y0, y1 = y > y1 ? y : y1;
        }
    int longer = x1 - x0 > y1 - y0 ? x1 - x0 + 1 : y1 - y0 + 1;
    assert_int_equal(longer, 20);
    assert_near(sx / sum, 14.0, 0.5);
    assert_near(sy / sum, 14.0, 0.5);
    double e = mean_abs_error(out, mnist_images + (size_t)i * 784, 784);
    print_message("noisy 400x300 picture: mean absolute error %.4f\n", e);
    assert_true(e < 0.06);
    dn_image_free(&img);
}

/* A thin vertical bar keeps its aspect ratio: 20 px tall, 2 px wide, centred. */
static void test_aspect_ratio(void **state)
{
    (void)state;
    dn_image img;
    dn_error err = {0};
    assert_int_equal(dn_image_new(300, 300, 1.0f, &img, &err), DN_OK);
    for (int y = 40; y < 240; y++)
        for (int x = 30; x < 50; x++)
            img.pixels[y * 300 + x] = 0.0f;
    float out[784];
    assert_int_equal(dn_preprocess(&img, MNIST_SHAPE, out, &err), DN_OK);
    int on = 0;
    for (int y = 0; y < 28; y++)
        for (int x = 0; x < 28; x++) {
            /* the box's centre of mass (0.5, 9.5) goes to (14, 14) rounded half up: columns 14..15, rows 5..24 */
            int inside = y >= 5 && y < 25 && x >= 14 && x < 16;
            if (inside)
                assert_near(out[y * 28 + x], 1.0, 1e-5);
            else
                assert_near(out[y * 28 + x], 0.0, 1e-6);
            on += inside;
        }
    assert_int_equal(on, 40);
    dn_image_free(&img);
}

static void assert_no_digit(const dn_image *img)
{
    float out[784] = {0};
    dn_error err = {0};
    check_error(dn_preprocess(img, MNIST_SHAPE, out, &err), &err, DN_ENOTFOUND, "no digit found");
}

static void test_blank_images(void **state)
{
    (void)state;
    dn_image img;
    dn_error err = {0};
    assert_int_equal(dn_image_new(120, 90, 1.0f, &img, &err), DN_OK); /* white paper */
    assert_no_digit(&img);
    for (int i = 0; i < 120 * 90; i++) /* grey paper, lit from one side, with sensor noise */
        img.pixels[i] = 0.7f - 0.2f * (float)(i % 120) / 120 + 0.03f * gaussian();
    assert_no_digit(&img);
    for (int i = 0; i < 120 * 90; i++) /* a faint smudge, 2% darker */
        img.pixels[i] = (i % 120 > 40 && i % 120 < 60 && i / 120 > 30 && i / 120 < 60) ? 0.98f : 1.0f;
    assert_no_digit(&img);
    dn_image_free(&img);
    assert_int_equal(dn_image_new(28, 28, 0.0f, &img, &err), DN_OK); /* a black 28x28 JSON drawing */
    assert_no_digit(&img);
    dn_image_free(&img);
}

/* Specks far from the digit are dropped: a scanned page's dust does not widen the box. */
static void test_specks_dropped(void **state)
{
    (void)state;
    dn_image clean, dusty;
    dn_error err = {0};
    assert_int_equal(dn_image_new(100, 100, 1.0f, &clean, &err), DN_OK);
    assert_int_equal(dn_image_new(100, 100, 1.0f, &dusty, &err), DN_OK);
    embed(&clean, 7, 40, 40, 1.0f, 0.9f);
    embed(&dusty, 7, 40, 40, 1.0f, 0.9f);
    dusty.pixels[5 * 100 + 5] = 0.2f, dusty.pixels[90 * 100 + 95] = 0.3f, dusty.pixels[10 * 100 + 80] = 0.1f;
    float a[784], b[784];
    assert_int_equal(dn_preprocess(&clean, MNIST_SHAPE, a, &err), DN_OK);
    assert_int_equal(dn_preprocess(&dusty, MNIST_SHAPE, b, &err), DN_OK);
    assert_true(mean_abs_error(a, b, 784) < 1e-6);
    dn_image_free(&clean);
    dn_image_free(&dusty);
}

/* optdigits: counts of 4x4 blocks (multiples of 1/16), the digit spanning all 8 rows and not all 8
 * columns, as in the UCI data. */
static void test_optdigits_pipeline(void **state)
{
    (void)state;
    for (int i = 0; i < 50; i++) {
        dn_image img = {28, 28, mnist_images + (size_t)i * 784}; /* borrowed */
        float out[64];
        dn_error err = {0};
        assert_int_equal(dn_preprocess(&img, OPT_SHAPE, out, &err), DN_OK);
        int rows = 0, cols = 0;
        for (int r = 0; r < 8; r++) {
            int row_on = 0, col_on = 0;
            for (int c = 0; c < 8; c++) {
                float v = out[r * 8 + c];
                assert_true(v >= 0 && v <= 1);
                assert_near(v * 16, round(v * 16), 1e-5);
                row_on |= v > 0;
                col_on |= out[c * 8 + r] > 0;
            }
            rows += row_on, cols += col_on;
        }
        assert_int_equal(rows, 8);
        /* The aspect ratio is kept: the ones of these 50 digits span 2..5 block columns, the other
         * digits 5..8; a digit stretched to the full width would span 8, squeezed far fewer. */
        if (mnist.labels[i] == 1)
            assert_true(cols >= 1 && cols <= 5);
        else
            assert_true(cols >= 5 && cols <= 8);
    }
    dn_image img;
    dn_error err = {0};
    assert_int_equal(dn_image_new(40, 40, 1.0f, &img, &err), DN_OK);
    float out[64];
    check_error(dn_preprocess(&img, OPT_SHAPE, out, &err), &err, DN_ENOTFOUND, "no digit found");
    check_error(dn_preprocess(&img, (dn_shape){32, 32, 1}, out, &err), &err, DN_ESHAPE, "only 28x28x1 and 8x8x1");
    check_error(dn_preprocess(&img, (dn_shape){28, 28, 3}, out, &err), &err, DN_ESHAPE, "28x28x3");
    check_error(dn_preprocess(NULL, MNIST_SHAPE, out, &err), &err, DN_EARG, "no image");
    dn_image_free(&img);
    assert_string_equal(dn_preprocess_name(MNIST_SHAPE), "mnist-28x28");
    assert_string_equal(dn_preprocess_name(OPT_SHAPE), "optdigits-8x8");
    assert_null(dn_preprocess_name((dn_shape){28, 28, 3}));
}

/* ------------------------------------------------------------------ PNG */

typedef struct png_buffer {
    unsigned char *data;
    size_t len, cap;
} png_buffer;

static void png_buffer_write(png_structp png, png_bytep bytes, size_t n)
{
    png_buffer *b = png_get_io_ptr(png);
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->data = realloc(b->data, b->cap);
        assert_non_null(b->data);
    }
    memcpy(b->data + b->len, bytes, n);
    b->len += n;
}

static void png_buffer_flush(png_structp png)
{
    (void)png;
}

/* An Adam7-interlaced grey PNG decodes to the same pixels as the image written. */
static void test_png_interlaced(void **state)
{
    (void)state;
    enum { W = 37, H = 23 };
    unsigned char rows[H][W];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            rows[y][x] = (unsigned char)((x * 7 + y * 13) % 256);
    png_buffer out = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(info);
    png_set_write_fn(png, &out, png_buffer_write, png_buffer_flush);
    png_set_IHDR(png, info, W, H, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_ADAM7, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_bytep pointers[H];
    for (int y = 0; y < H; y++)
        pointers[y] = rows[y];
    png_set_rows(png, info, pointers);
    png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    png_destroy_write_struct(&png, &info);
    dn_image img;
    dn_error err = {0};
    assert_int_equal(dn_image_decode(out.data, out.len, 0, &img, &err), DN_OK);
    assert_int_equal(img.w, W);
    assert_int_equal(img.h, H);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            assert_near(img.pixels[y * W + x], rows[y][x] / 255.0f, 1e-6);
    dn_image_free(&img);
    free(out.data);
}

/* A PNG 2048 pixels or more a side is shrunk while it is decoded, by whole blocks (4102 -> 4:
 * 1026 columns, the last averaging two), each output pixel the mean of its block. */
static void test_png_shrunk_while_decoding(void **state)
{
    (void)state;
    dn_image img, back;
    dn_error err = {0};
    assert_int_equal(dn_image_new(4102, 9, 0, &img, &err), DN_OK);
    for (int y = 0; y < 9; y++)
        for (int x = 0; x < 4102; x++)
            img.pixels[y * 4102 + x] = x % 4 == 0 ? 1.0f : 0.0f;
    void *png;
    size_t len;
    assert_int_equal(dn_image_encode_png(&img, &png, &len, &err), DN_OK);
    assert_int_equal(dn_image_decode(png, len, 0, &back, &err), DN_OK);
    assert_int_equal(back.w, 1026);
    assert_int_equal(back.h, 3);
    for (int y = 0; y < 3; y++) {
        for (int x = 0; x < 1025; x++)
            assert_near(back.pixels[y * 1026 + x], 0.25f, 1e-6);
        assert_near(back.pixels[y * 1026 + 1025], 0.5f, 1e-6);
    }
    dn_image_free(&back);
    dn_image_free(&img);
    free(png);
}

static void test_png_round_trip(void **state)
{
    (void)state;
    dn_image img, back;
    dn_error err = {0};
    assert_int_equal(dn_image_new(37, 23, 0, &img, &err), DN_OK);
    for (int i = 0; i < 37 * 23; i++)
        img.pixels[i] = (float)((i * 37) % 256) / 255.0f;
    void *png;
    size_t len;
    assert_int_equal(dn_image_encode_png(&img, &png, &len, &err), DN_OK);
    assert_int_equal(dn_image_decode(png, len, 0, &back, &err), DN_OK);
    assert_int_equal(back.w, 37);
    assert_int_equal(back.h, 23);
    for (int i = 0; i < 37 * 23; i++)
        assert_near(back.pixels[i], img.pixels[i], 1e-6);
    dn_image_free(&back);

    /* Limits, truncation and a wrong signature. */
    check_error(dn_image_decode(png, len, 37 * 23 - 1, &back, &err), &err, DN_ELIMIT, "37x23 pixels is over the limit");
    decode_fails(png, len / 2, DN_EFORMAT, "PNG: ");
    decode_fails(png, len - 20, DN_EFORMAT, "PNG: ");
    decode_fails(png, 8, DN_EFORMAT, "PNG: ");
    unsigned char *bad = malloc(len);
    assert_non_null(bad);
    memcpy(bad, png, len);
    bad[1] = 'Q'; /* "\x89QNG" */
    decode_fails(bad, len, DN_EFORMAT, "not a PNG, JPEG, BMP or PGM/PPM image");
    memcpy(bad, png, len);
    bad[33 + 20] ^= 0xff; /* inside the first chunk after IHDR: a CRC or zlib error */
    decode_fails(bad, len, DN_EFORMAT, "PNG: ");
    free(bad);

    /* Saved atomically and read back from a file. */
    char path[512];
    snprintf(path, sizeof path, "%s/round.png", dn_test_dir());
    assert_int_equal(dn_image_save_png(&img, path, &err), DN_OK);
    assert_int_equal(dn_image_load(path, 0, &back, &err), DN_OK);
    assert_int_equal(back.w * back.h, 37 * 23);
    assert_near(back.pixels[100], img.pixels[100], 1e-6);
    dn_image_free(&back);
    free(png);
    dn_image_free(&img);
}

/* RGBA: alpha is composited on white; colour becomes luma. */
static void test_png_rgba(void **state)
{
    (void)state;
    unsigned char px[4 * 4] = {
        0,   0,   0,   0,   /* transparent black -> white */
        0,   0,   0,   255, /* opaque black -> 0 */
        0,   0,   0,   128, /* half-transparent black -> about 0.5 */
        255, 0,   0,   255, /* opaque red -> 0.299 */
    };
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION, pi.width = 4, pi.height = 1, pi.format = PNG_FORMAT_RGBA;
    unsigned char mem[1024];
    png_alloc_size_t len = sizeof mem;
    assert_true(png_image_write_to_memory(&pi, mem, &len, 0, px, 0, NULL));
    dn_image img;
    dn_error err = {0};
    assert_int_equal(dn_image_decode(mem, len, 0, &img, &err), DN_OK);
    assert_near(img.pixels[0], 1.0, 1e-6);
    assert_near(img.pixels[1], 0.0, 1e-6);
    assert_near(img.pixels[2], 127.0 / 255, 0.01);
    assert_near(img.pixels[3], 0.299, 0.002);
    dn_image_free(&img);
}

/* ------------------------------------------------------------------ JPEG */

static size_t make_jpeg(unsigned char **out, int w, int h, int components)
{
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    unsigned long len = 0;
    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&cinfo);
    *out = NULL;
    jpeg_mem_dest(&cinfo, out, &len);
    cinfo.image_width = (JDIMENSION)w, cinfo.image_height = (JDIMENSION)h;
    cinfo.input_components = components;
    cinfo.in_color_space = components == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, 95, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    unsigned char *row = malloc((size_t)w * components);
    assert_non_null(row);
    while (cinfo.next_scanline < cinfo.image_height) {
        for (int x = 0; x < w * components; x++) /* a smooth gradient that JPEG keeps well */
            row[x] = (unsigned char)(((x / components) * 255 / (w - 1) + cinfo.next_scanline * 2) % 256);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    free(row);
    return len;
}

/* A progressive grey JPEG whose 63 AC coefficients each come in 4 successive-approximation scans:
 * 253 scans in all (real encoders write about ten). simple: the standard progression instead. */
static size_t make_progressive(unsigned char **out, int many)
{
    static jpeg_scan_info scans[1 + 63 * 4];
    int n = 0;
    scans[n++] = (jpeg_scan_info){1, {0}, 0, 0, 0, 0};
    for (int k = 1; k <= 63; k++)
        for (int al = 3; al >= 0; al--)
            scans[n++] = (jpeg_scan_info){1, {0}, k, k, al == 3 ? 0 : al + 1, al};
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    unsigned long len = 0;
    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&cinfo);
    *out = NULL;
    jpeg_mem_dest(&cinfo, out, &len);
    cinfo.image_width = 16, cinfo.image_height = 16, cinfo.input_components = 1;
    cinfo.in_color_space = JCS_GRAYSCALE;
    jpeg_set_defaults(&cinfo);
    if (many) {
        cinfo.scan_info = scans;
        cinfo.num_scans = n;
    } else {
        jpeg_simple_progression(&cinfo);
    }
    jpeg_start_compress(&cinfo, TRUE);
    unsigned char row[16];
    for (int x = 0; x < 16; x++)
        row[x] = (unsigned char)(x * 16);
    JSAMPROW rows[1] = {row};
    while (cinfo.next_scanline < cinfo.image_height)
        jpeg_write_scanlines(&cinfo, rows, 1);
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    return len;
}

static void test_jpeg_progressive(void **state)
{
    (void)state;
    unsigned char *jpg;
    size_t len = make_progressive(&jpg, 0);
    dn_image img;
    dn_error err = {0};
    assert_int_equal(dn_image_decode(jpg, len, 0, &img, &err), DN_OK);
    assert_near(img.pixels[15], 240.0 / 255, 0.03);
    dn_image_free(&img);
    free(jpg);
    len = make_progressive(&jpg, 1);
    decode_fails(jpg, len, DN_EFORMAT, "JPEG: more than 200 scans");
    free(jpg);
}

static void test_jpeg(void **state)
{
    (void)state;
    for (int components = 1; components <= 3; components += 2) {
        unsigned char *jpg;
        size_t len = make_jpeg(&jpg, 64, 48, components);
        dn_image img;
        dn_error err = {0};
        assert_int_equal(dn_image_decode(jpg, len, 0, &img, &err), DN_OK);
        assert_int_equal(img.w, 64);
        assert_int_equal(img.h, 48);
        double e = 0;
        for (int y = 0; y < 48; y++)
            for (int x = 0; x < 64; x++)
                e += fabs(img.pixels[y * 64 + x] - ((x * 255 / 63 + y * 2) % 256) / 255.0);
        assert_true(e / (64 * 48) < 0.02);
        dn_image_free(&img);
        check_error(dn_image_decode(jpg, len, 64 * 47, &img, &err), &err, DN_ELIMIT, "JPEG: 64x48 pixels");
        decode_fails(jpg, len * 2 / 3, DN_EFORMAT, "JPEG: truncated");
        decode_fails(jpg, 20, DN_EFORMAT, "JPEG: ");
        free(jpg);
    }
}

/* ------------------------------------------------------------------ BMP */

static void test_bmp_good(void **state)
{
    (void)state;
    dn_image img;
    dn_error err = {0};
    /* 24-bit, bottom-up, 3x2 with row padding: the first stored row is the bottom one. */
    unsigned char b24[54 + 2 * 12];
    bmp_header(b24, 3, 2, 24, 0, 0, 54);
    unsigned char *p = b24 + 54;
    memset(p, 0, 24);
    memset(p, 255, 9);        /* bottom row white */
    p[12 + 2] = 255;          /* top row: red, black, blue */
    p[12 + 6 + 0] = 255;
    assert_int_equal(dn_image_decode(b24, sizeof b24, 0, &img, &err), DN_OK);
    assert_int_equal(img.w, 3);
    assert_int_equal(img.h, 2);
    assert_near(img.pixels[0], 0.299, 0.002);
    assert_near(img.pixels[1], 0.0, 1e-6);
    assert_near(img.pixels[2], 0.114, 0.002);
    assert_near(img.pixels[3], 1.0, 1e-6);
    dn_image_free(&img);

    /* 8-bit palette, top-down (negative height). */
    unsigned char b8[54 + 8 + 2 * 4];
    bmp_header(b8, 2, -2, 8, 0, 2, 54 + 8);
    memset(b8 + 54, 0, 16);
    memset(b8 + 58, 200, 3); /* colour 1: grey 200 */
    b8[62] = 1, b8[63] = 0, b8[66] = 0, b8[67] = 1;
    assert_int_equal(dn_image_decode(b8, sizeof b8, 0, &img, &err), DN_OK);
    assert_near(img.pixels[0], 200.0 / 255, 1e-5);
    assert_near(img.pixels[1], 0.0, 1e-6);
    assert_near(img.pixels[3], 200.0 / 255, 1e-5);
    dn_image_free(&img);

    /* 32-bit with bit fields and an alpha mask: transparent -> white. */
    unsigned char b32[54 + 16 + 8];
    bmp_header(b32, 2, 1, 32, 6, 0, 54 + 16);
    put32(b32 + 54, 0x00ff0000), put32(b32 + 58, 0x0000ff00), put32(b32 + 62, 0x000000ff), put32(b32 + 66, 0xff000000);
    put32(b32 + 70, 0x00000000); /* transparent black */
    put32(b32 + 74, 0xff000000); /* opaque black */
    assert_int_equal(dn_image_decode(b32, sizeof b32, 0, &img, &err), DN_OK);
    assert_near(img.pixels[0], 1.0, 1e-6);
    assert_near(img.pixels[1], 0.0, 1e-6);
    dn_image_free(&img);
}

static void test_bmp_broken(void **state)
{
    (void)state;
    unsigned char b[54 + 64];
    memset(b + 54, 0, 64);
    bmp_header(b, 100000, 100000, 24, 0, 0, 54); /* absurd: refused before allocating 40 GB */
    decode_fails(b, sizeof b, DN_ELIMIT, "BMP: 100000x100000 pixels is over the limit");
    bmp_header(b, 30000, 30000, 8, 0, 0, 54);
    decode_fails(b, sizeof b, DN_ELIMIT, "over the limit");
    bmp_header(b, 4, 4, 24, 0, 0, 54); /* needs 48 bytes: present; 5 rows would not be */
    dn_image img;
    dn_error err = {0};
    assert_int_equal(dn_image_decode(b, 54 + 48, 0, &img, &err), DN_OK);
    dn_image_free(&img);
    decode_fails(b, 54 + 47, DN_EFORMAT, "BMP: truncated pixel data");
    bmp_header(b, -4, 4, 24, 0, 0, 54);
    decode_fails(b, sizeof b, DN_EFORMAT, "BMP: the header says -4x4 pixels");
    bmp_header(b, 4, (int32_t)0x80000000u, 24, 0, 0, 54); /* top-down INT32_MIN rows */
    decode_fails(b, sizeof b, DN_ELIMIT, "BMP: 4x2147483648 pixels is over the limit");
    bmp_header(b, 4, 4, 7, 0, 0, 54);
    decode_fails(b, sizeof b, DN_EFORMAT, "unsupported 7 bits per pixel");
    bmp_header(b, 4, 4, 8, 1, 0, 54);
    decode_fails(b, sizeof b, DN_EFORMAT, "unsupported compression 1");
    bmp_header(b, 4, 4, 24, 0, 0, 4000);
    decode_fails(b, sizeof b, DN_EFORMAT, "pixel data offset 4000 is outside the file");
    bmp_header(b, 4, 4, 8, 0, 300, 54);
    decode_fails(b, sizeof b, DN_EFORMAT, "300 palette colours for 8 bits per pixel");
    bmp_header(b, 2, 1, 8, 0, 2, 54 + 8); /* palette of 2, pixel uses colour 5 */
    b[62] = 5;
    decode_fails(b, 54 + 8 + 4, DN_EFORMAT, "uses colour 5 of a 2-colour palette");
    bmp_header(b, 4, 4, 24, 0, 0, 54);
    put16(b + 26, 2);
    decode_fails(b, sizeof b, DN_EFORMAT, "2 planes");
    put32(b + 14, 99);
    decode_fails(b, sizeof b, DN_EFORMAT, "unsupported header size 99");
    decode_fails(b, 20, DN_EFORMAT, "BMP: truncated header");
}

/* ------------------------------------------------------------------ PGM / PPM / PBM */

static void test_pnm(void **state)
{
    (void)state;
    dn_image img;
    dn_error err = {0};
    const char *p2 = "P2\n# a comment\n3 2\n# another\n10\n0 5 10\n10 10 0\n";
    assert_int_equal(dn_image_decode(p2, strlen(p2), 0, &img, &err), DN_OK);
    assert_int_equal(img.w, 3);
    assert_near(img.pixels[1], 0.5, 1e-6);
    assert_near(img.pixels[5], 0.0, 1e-6);
    dn_image_free(&img);

    unsigned char p5[] = "P5 2 2 255\n\x00\x80\xff\x10";
    assert_int_equal(dn_image_decode(p5, sizeof p5 - 1, 0, &img, &err), DN_OK);
    assert_near(img.pixels[1], 128.0 / 255, 1e-6);
    assert_near(img.pixels[2], 1.0, 1e-6);
    dn_image_free(&img);

    unsigned char p5w[] = "P5 1 2 65535\n\xff\xff\x80\x00";
    assert_int_equal(dn_image_decode(p5w, sizeof p5w - 1, 0, &img, &err), DN_OK);
    assert_near(img.pixels[0], 1.0, 1e-6);
    assert_near(img.pixels[1], 32768.0 / 65535, 1e-6);
    dn_image_free(&img);

    unsigned char p6[] = "P6\n2 1\n255\n\xff\x00\x00\xff\xff\xff";
    assert_int_equal(dn_image_decode(p6, sizeof p6 - 1, 0, &img, &err), DN_OK);
    assert_near(img.pixels[0], 0.299, 1e-5);
    assert_near(img.pixels[1], 1.0, 1e-5);
    dn_image_free(&img);

    const char *p1 = "P1\n3 1\n101";
    assert_int_equal(dn_image_decode(p1, strlen(p1), 0, &img, &err), DN_OK);
    assert_near(img.pixels[0], 0.0, 1e-6); /* 1 is black */
    assert_near(img.pixels[1], 1.0, 1e-6);
    dn_image_free(&img);

    unsigned char p4[] = "P4 10 1\n\x80\x40";
    assert_int_equal(dn_image_decode(p4, sizeof p4 - 1, 0, &img, &err), DN_OK);
    assert_near(img.pixels[0], 0.0, 1e-6);
    assert_near(img.pixels[1], 1.0, 1e-6);
    assert_near(img.pixels[9], 0.0, 1e-6);
    dn_image_free(&img);

    decode_fails("P5 2 2 255\n\x00\x80\xff", 14, DN_EFORMAT, "PGM: truncated pixel data (4 bytes needed, 3 present)");
    decode_fails("P2 2 1 10\n3 11", 14, DN_EFORMAT, "PGM: pixel 1: value missing, or over the maximum 10");
    decode_fails("P2 2 1 10\n3", 11, DN_EFORMAT, "PGM: pixel 1");
    decode_fails("P5 2 2 0\n....", 13, DN_EFORMAT, "maximum value missing or not in 1..65535");
    decode_fails("P5 2 2 70000\n", 13, DN_EFORMAT, "maximum value");
    decode_fails("P5 x 2 255\n", 11, DN_EFORMAT, "width and height missing");
    decode_fails("P5 99999999999 2 255\n", 21, DN_EFORMAT, "width and height missing or too large");
    decode_fails("P6 40000 40000 255\n", 19, DN_ELIMIT, "PPM: 40000x40000 pixels is over the limit");
    decode_fails("P5 0 2 255\n", 11, DN_EFORMAT, "PGM: the header says 0x2 pixels");
    decode_fails("P5 2 2 255", 10, DN_EFORMAT, "no whitespace after the header");
    decode_fails("P5X", 3, DN_EFORMAT, "bad magic");
}

/* ------------------------------------------------------------------ files and arguments */

static void test_load_errors(void **state)
{
    (void)state;
    dn_image img;
    dn_error err = {0};
    char path[512];
    snprintf(path, sizeof path, "%s/missing.png", dn_test_dir());
    check_error(dn_image_load(path, 0, &img, &err), &err, DN_EIO, "cannot open");
    assert_memory_equal(err.msg, path, strlen(path));
    check_error(dn_image_load(dn_test_dir(), 0, &img, &err), &err, DN_EIO, "not a regular file");
    const char *gif = dn_test_write_file("anim.gif", "GIF89a\x01\x00\x01\x00", 10);
    check_error(dn_image_load(gif, 0, &img, &err), &err, DN_EFORMAT, "not a PNG, JPEG, BMP or PGM/PPM image (10 bytes)");
    assert_memory_equal(err.msg, gif, strlen(gif));
    const char *empty = dn_test_write_file("empty.png", "", 0);
    check_error(dn_image_load(empty, 0, &img, &err), &err, DN_EFORMAT, "(0 bytes)");
    decode_fails("", 0, DN_EFORMAT, "not a PNG");
    check_error(dn_image_new(0, 5, 1.0f, &img, &err), &err, DN_EARG, "0x5");
    assert_null(img.pixels);
    dn_image_free(NULL);
    dn_image_free(&img);
    void *png = (void *)1;
    size_t len = 1;
    check_error(dn_image_encode_png(&img, &png, &len, &err), &err, DN_EARG, "no image");
    assert_null(png);
    assert_int_equal(len, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mnist_digit_comes_back),
        cmocka_unit_test(test_polarity),
        cmocka_unit_test(test_big_noisy_picture),
        cmocka_unit_test(test_aspect_ratio),
        cmocka_unit_test(test_blank_images),
        cmocka_unit_test(test_specks_dropped),
        cmocka_unit_test(test_optdigits_pipeline),
        cmocka_unit_test(test_png_round_trip),
        cmocka_unit_test(test_png_rgba),
        cmocka_unit_test(test_jpeg),
        cmocka_unit_test(test_jpeg_progressive),
        cmocka_unit_test(test_bmp_good),
        cmocka_unit_test(test_bmp_broken),
        cmocka_unit_test(test_pnm),
        cmocka_unit_test(test_png_interlaced),
        cmocka_unit_test(test_png_shrunk_while_decoding),
        cmocka_unit_test(test_load_errors),
    };
    return dn_test_finish(cmocka_run_group_tests_name("image", tests, load_mnist, free_mnist));
}
