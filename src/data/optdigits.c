/* UCI optdigits loader. `.tra`/`.tes` are text lines of 65 comma-separated integers: an 8x8 image
 * (row-major, 0..16: the count of set pixels in a 4x4 block of the 32x32 bitmap) and the class 0..9.
 * UCI's data.csv has the same columns under a header row, which is recognised and skipped. Lines
 * are read with getline, so there is no line-length limit, and every number goes through strtol
 * with its end and range checked, so no malformed value is silently read as 0. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPT_SIDE 8
#define OPT_PIXELS (OPT_SIDE * OPT_SIDE)
#define OPT_VALUES (OPT_PIXELS + 1) /* 64 pixels, then the class */
#define OPT_RAW_MAX 16
#define OPT_MAX_ROWS 10000000 /* the same ceiling as for IDX files */

/* Rows read so far, grown by doubling. */
typedef struct rows {
    int n, cap;
    uint8_t *pixels; /* (cap, 8, 8, 1) raw 0..16 */
    uint8_t *labels; /* (cap) */
} rows;

static int is_blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n')
            return 0;
    return 1;
}

/* Cuts the line ending ("\n", "\r\n" or a lone trailing "\r"). */
static void chomp(char *s, size_t len)
{
    while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r'))
        s[--len] = '\0';
}

static const char *skip_space(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* A header row is a first line in which no field is a number (data.csv: "Attribute1,...,class").
 * A first data row with one damaged field is therefore still data, and its error is reported
 * rather than the row being skipped as a header. */
static int has_integer_field(const char *s)
{
    const char *p = s;
    for (;;) {
        char *end;
        strtol(p, &end, 10);
        const char *after = skip_space(end);
        if (end != p && (*after == ',' || *after == '\0'))
            return 1;
        p = strchr(p, ',');
        if (!p)
            return 0;
        p++;
    }
}

static int count_fields(const char *s)
{
    int n = 1;
    for (; *s; s++)
        n += *s == ',';
    return n;
}

/* Parses one data line into values[0..OPT_VALUES); reports the first thing wrong with it. */
static dn_status parse_line(const char *path, long line_no, const char *line, long *values,
                            dn_error *err)
{
    int count = 0;
    const char *p = line;
    for (;;) {
        p = skip_space(p);
        if (*p == ',' || *p == '\0')
            return dn_fail(err, DN_EFORMAT, "%s line %ld: value %d is empty", path, line_no,
                           count + 1);
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        const char *after = skip_space(end);
        if (end == p || (*after != ',' && *after != '\0')) {
            /* Quote the token, shortened and with control bytes masked, to keep one line. */
            char shown[24];
            size_t len = 0;
            for (; p[len] && p[len] != ',' && len < sizeof shown - 1; len++)
                shown[len] = (unsigned char)p[len] < 0x20 || p[len] == 0x7F ? '?' : p[len];
            shown[len] = '\0';
            return dn_fail(err, DN_EFORMAT, "%s line %ld: value %d ('%s') is not an integer", path,
                           line_no, count + 1, shown);
        }
        /* Too big for a long: the clamped value would misquote the file, so quote the text. */
        if (errno == ERANGE && count < OPT_PIXELS)
            return dn_fail(err, DN_EFORMAT, "%s line %ld: value %.*s out of range 0..%d (column %d)",
                           path, line_no, (int)(end - p), p, OPT_RAW_MAX, count + 1);
        if (errno == ERANGE && count == OPT_PIXELS)
            return dn_fail(err, DN_EFORMAT, "%s line %ld: class %.*s out of range 0..9", path,
                           line_no, (int)(end - p), p);
        if (count < OPT_VALUES)
            values[count] = v;
        count++;
        if (*after == '\0')
            break;
        p = after + 1;
    }
    if (count != OPT_VALUES)
        return dn_fail(err, DN_EFORMAT, "%s line %ld: expected %d values, found %d", path, line_no,
                       OPT_VALUES, count);
    for (int i = 0; i < OPT_PIXELS; i++)
        if (values[i] < 0 || values[i] > OPT_RAW_MAX)
            return dn_fail(err, DN_EFORMAT, "%s line %ld: value %ld out of range 0..%d (column %d)",
                           path, line_no, values[i], OPT_RAW_MAX, i + 1);
    if (values[OPT_PIXELS] < 0 || values[OPT_PIXELS] > 9)
        return dn_fail(err, DN_EFORMAT, "%s line %ld: class %ld out of range 0..9", path, line_no,
                       values[OPT_PIXELS]);
    return DN_OK;
}

static dn_status append_row(rows *r, const char *path, const long *values, dn_error *err)
{
    if (r->n == r->cap) {
        if (r->cap >= OPT_MAX_ROWS)
            return dn_fail(err, DN_ELIMIT, "%s: more than %d rows", path, OPT_MAX_ROWS);
        int cap = r->cap ? r->cap * 2 : 4096;
        if (cap > OPT_MAX_ROWS)
            cap = OPT_MAX_ROWS;
        uint8_t *pixels = realloc(r->pixels, (size_t)cap * OPT_PIXELS * sizeof *pixels);
        if (!pixels)
            return dn_fail(err, DN_ENOMEM, "%s: out of memory after %d rows", path, r->n);
        r->pixels = pixels;
        uint8_t *labels = realloc(r->labels, (size_t)cap);
        if (!labels)
            return dn_fail(err, DN_ENOMEM, "%s: out of memory after %d rows", path, r->n);
        r->labels = labels;
        r->cap = cap;
    }
    uint8_t *img = r->pixels + (size_t)r->n * OPT_PIXELS;
    for (int i = 0; i < OPT_PIXELS; i++)
        img[i] = (uint8_t)values[i]; /* checked to be 0..16 by the caller */
    r->labels[r->n] = (uint8_t)values[OPT_PIXELS];
    r->n++;
    return DN_OK;
}

/* The first line that is not blank decides what the file is: data, a header row, or not text. */
static dn_status check_first_line(const char *path, long line_no, const char *line, int *is_header,
                                  dn_error *err)
{
    const char *p = skip_space(line);
    if (*p == '<')
        return dn_fail(err, DN_EFORMAT, "%s: looks like an HTML page, not optdigits data", path);
    /* getline splits at LF only: a file with CR line ends (classic Mac) is one long line. */
    if (strchr(p, '\r'))
        return dn_fail(err, DN_EFORMAT,
                       "%s: lines end in a bare CR (old Mac line ends); convert them to LF, e.g. tr '\\r' '\\n'",
                       path);
    if (!strchr(p, ',') && strchr(p, '\t'))
        return dn_fail(err, DN_EFORMAT,
                       "%s line %ld: values separated by tabs; optdigits files separate them with commas", path,
                       line_no);
    for (const unsigned char *q = (const unsigned char *)p; *q; q++)
        if (*q < 0x20 && *q != '\t')
            return dn_fail(err, DN_EFORMAT,
                           "%s: binary data, not optdigits text (a gzip file? decompress it first)",
                           path);
    *is_header = !has_integer_field(p);
    if (*is_header && count_fields(p) != OPT_VALUES)
        return dn_fail(err, DN_EFORMAT,
                       "%s line %ld: header row has %d columns, expected %d (64 pixels and the class)",
                       path, line_no, count_fields(p), OPT_VALUES);
    return DN_OK;
}

dn_status dn_optdigits_load(const char *path, dn_dataset *out, dn_error *err)
{
    if (!out)
        return dn_fail(err, DN_EARG, "dn_optdigits_load: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path)
        return dn_fail(err, DN_EARG, "dn_optdigits_load: path is NULL");

    FILE *f = fopen(path, "rb");
    if (!f)
        return dn_fail(err, DN_EIO, "%s: cannot open: %s", path, strerror(errno));

    rows r = {0};
    char *line = NULL;
    size_t line_cap = 0;
    long line_no = 0;
    int seen_first = 0;
    dn_status st = DN_OK;
    ssize_t len;
    long values[OPT_VALUES];
    while ((len = getline(&line, &line_cap, f)) != -1) {
        line_no++;
        /* strtol stops at a NUL, so one inside a line would hide the rest of it. */
        if (memchr(line, '\0', (size_t)len)) {
            st = seen_first ? dn_fail(err, DN_EFORMAT, "%s line %ld: contains a NUL byte", path, line_no)
                            : dn_fail(err, DN_EFORMAT,
                                      "%s: binary data, not optdigits text (a gzip file? decompress "
                                      "it first)",
                                      path);
            break;
        }
        chomp(line, (size_t)len);
        char *text = line;
        /* Spreadsheets start a CSV with a UTF-8 byte-order mark. */
        if (line_no == 1 && strncmp(text, "\xEF\xBB\xBF", 3) == 0)
            text += 3;
        /* Blank lines are skipped wherever they are: editors and downloads add them at the end. */
        if (is_blank(text))
            continue;
        if (!seen_first) {
            seen_first = 1;
            int is_header = 0;
            st = check_first_line(path, line_no, text, &is_header, err);
            if (st)
                break;
            if (is_header)
                continue;
        }
        st = parse_line(path, line_no, text, values, err);
        if (!st)
            st = append_row(&r, path, values, err);
        if (st)
            break;
    }
    /* getline returns -1 at the end, on a read error and when it cannot grow the line buffer. */
    if (!st && ferror(f))
        st = dn_fail(err, DN_EIO, "%s: read error: %s", path, strerror(errno));
    else if (!st && !feof(f))
        st = dn_fail(err, DN_ENOMEM, "%s line %ld: out of memory", path, line_no + 1);
    if (!st && r.n == 0)
        st = dn_fail(err, DN_EFORMAT, "%s: no rows", path);
    free(line);
    fclose(f);
    if (st) {
        free(r.pixels);
        free(r.labels);
        return st;
    }
    out->n = r.n;
    out->h = OPT_SIDE;
    out->w = OPT_SIDE;
    out->c = 1;
    out->pixels = r.pixels;
    out->labels = r.labels;
    out->raw_max = OPT_RAW_MAX;
    return DN_OK;
}
