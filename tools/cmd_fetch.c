/* digitnet fetch NAME...: downloads and verifies data sets (dn_fetch), with a progress bar on a
 * terminal; and --fetch for the commands that load data: download when the set is not found. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct fetch_ui {
    FILE *out;     /* progress and retries: stderr */
    int tty;       /* draw a bar (else one line per transfer) */
    int quiet;     /* nothing on stderr but retries */
    int results;   /* one line per file on stdout */
    int bar_shown; /* a bar is on the current line */
    double start, last_draw;
    int64_t start_done;
} fetch_ui;

/* 9912422 -> "9.9 MB" */
static const char *human_size(double bytes, char *buf, size_t size)
{
    if (bytes >= 1e6)
        snprintf(buf, size, "%.1f MB", bytes / 1e6);
    else if (bytes >= 1e3)
        snprintf(buf, size, "%.1f kB", bytes / 1e3);
    else
        snprintf(buf, size, "%.0f B", bytes);
    return buf;
}

static void clear_bar(fetch_ui *ui)
{
    if (ui->bar_shown) {
        fputs("\r\033[K", ui->out);
        ui->bar_shown = 0;
    }
}

static void draw_bar(fetch_ui *ui, const dn_fetch_status *s)
{
    enum { WIDTH = 30 };
    char done[32], total[32], speed[32], bar[WIDTH + 1];
    double elapsed = cli_now() - ui->start;
    double rate = elapsed > 0.2 ? (double)(s->done - ui->start_done) / elapsed : 0.0;
    int filled = s->total > 0 ? (int)((double)WIDTH * (double)s->done / (double)s->total) : 0;
    if (filled > WIDTH)
        filled = WIDTH;
    for (int i = 0; i < WIDTH; i++)
        bar[i] = i < filled ? '=' : i == filled ? '>' : ' ';
    bar[WIDTH] = '\0';
    human_size((double)s->done, done, sizeof done);
    human_size(rate, speed, sizeof speed);
    if (s->total > 0)
        fprintf(ui->out, "\r  %-28s [%s] %3d%%  %s of %s  %s/s\033[K", s->file, bar,
                (int)(100.0 * (double)s->done / (double)s->total), done,
                human_size((double)s->total, total, sizeof total), speed);
    else
        fprintf(ui->out, "\r  %-28s %s  %s/s\033[K", s->file, done, speed);
    fflush(ui->out);
    ui->bar_shown = 1;
}

static int on_fetch_status(void *user, const dn_fetch_status *s)
{
    fetch_ui *ui = user;
    char size[32];
    switch (s->event) {
    case DN_FETCH_PRESENT:
        clear_bar(ui);
        if (ui->results)
            printf("%s/%s: already here, checksum verified\n", s->dataset, s->file);
        break;
    case DN_FETCH_START:
        ui->start = cli_now();
        ui->start_done = s->done;
        ui->last_draw = 0.0;
        clear_bar(ui);
        if (!ui->quiet) {
            if (s->done > 0)
                fprintf(ui->out, "downloading %s (resuming after %lld bytes)\n", s->url, (long long)s->done);
            else
                fprintf(ui->out, "downloading %s\n", s->url);
        }
        break;
    case DN_FETCH_PROGRESS:
        if (ui->tty && !ui->quiet && cli_now() - ui->last_draw >= 0.1) {
            draw_bar(ui, s);
            ui->last_draw = cli_now();
        }
        break;
    case DN_FETCH_FAILED:
        clear_bar(ui);
        /* The failure dn_fetch stops on is its error, printed once by the caller. */
        fprintf(ui->out, "digitnet: %s%s\n", s->message,
                s->retrying == 1 ? "; trying again" : s->retrying == 2 ? "; trying the next mirror" : "");
        break;
    case DN_FETCH_VERIFIED:
        clear_bar(ui);
        if (ui->results)
            printf("%s/%s: %s, checksum verified\n", s->dataset, s->file, human_size((double)s->total, size, sizeof size));
        break;
    }
    fflush(stdout);
    return 0;
}

/* A whole number in [lo, hi] from the environment, for tests and slow links. */
static int env_number(const char *name, long fallback, long lo, long hi, long *out)
{
    const char *v = getenv(name);
    *out = fallback;
    if (!v || !v[0])
        return 0;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || x < lo || x > hi) {
        cli_failf("%s: '%s' is not a number in [%ld, %ld]", name, v, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

static int env_seconds(const char *name, long fallback, long *out)
{
    return env_number(name, fallback, 1, 3600, out);
}

/* Downloads name into the --data-dir root (or the default one), printing progress. Returns the
 * status; err holds the message. */
static dn_status fetch_one(const cli_options *o, const char *name, fetch_ui *ui, dn_error *err)
{
    dn_fetch_params p = dn_fetch_default_params();
    if (env_seconds("DIGITNET_FETCH_STALL_SECONDS", p.stall_seconds, &p.stall_seconds) ||
        env_seconds("DIGITNET_FETCH_CONNECT_SECONDS", p.connect_seconds, &p.connect_seconds) ||
        env_number("DIGITNET_FETCH_MIN_RATE", p.min_bytes_per_second, 0, 1000000000L, &p.min_bytes_per_second)) {
        err->status = DN_EARG;
        snprintf(err->msg, sizeof err->msg, "bad timeout in the environment");
        return DN_EARG;
    }
    p.mirrors = o->mirrors;
    p.n_mirrors = o->n_mirrors;
    p.on_status = on_fetch_status;
    p.user = ui;
    dn_status st = dn_fetch(name, o->data_dir, &p, err);
    clear_bar(ui);
    return st;
}

static void ui_init(fetch_ui *ui, const cli_options *o)
{
    memset(ui, 0, sizeof *ui);
    ui->out = stderr;
    ui->tty = isatty(fileno(stderr));
    ui->quiet = o->quiet;
    ui->results = !o->quiet;
}

int cmd_fetch(cli_options *o)
{
    if (o->n_positional == 0)
        return cli_failf("fetch needs a data set name: optdigits, mnist or fashion-mnist");
    for (int i = 0; i < o->n_positional; i++)
        if (!dn_fetch_known(o->positional[i]))
            return cli_failf("fetch: unknown data set '%s' (digitnet can download optdigits, mnist and fashion-mnist)",
                             o->positional[i]);
    char root[4096];
    dn_error err = {0};
    if (o->data_dir)
        snprintf(root, sizeof root, "%s", o->data_dir);
    else if (dn_data_default_dir(root, sizeof root, &err) != DN_OK)
        return cli_fail(&err);
    fetch_ui ui;
    ui_init(&ui, o);
    for (int i = 0; i < o->n_positional; i++) {
        if (fetch_one(o, o->positional[i], &ui, &err) != DN_OK)
            return cli_fail(&err);
        printf("%s: ready in %s/%s\n", o->positional[i], root, o->positional[i]);
    }
    return 0;
}

/* The library's not-found message says where it looked; how to point this tool elsewhere is ours.
 * When both do not fit in one message, the middle of the list of places gives way. */
static void add_data_hint(dn_error *err, const char *name)
{
    char hint[200];
    if (dn_fetch_known(name))
        snprintf(hint, sizeof hint, "; pass --data-dir DIR, or download it with `digitnet fetch %s` (or add --fetch)", name);
    else
        snprintf(hint, sizeof hint, "; pass --data-dir DIR");
    /* Ours names the command that downloads it, instead of the library's function. */
    static const char library_hint[] = " (dn_fetch can download it)";
    char *said = strstr(err->msg, library_hint);
    if (said)
        memmove(said, said + sizeof library_hint - 1, strlen(said + sizeof library_hint - 1) + 1);
    size_t len = strlen(err->msg), add = strlen(hint);
    char *list = strstr(err->msg, "; looked in: "), *put = list ? strstr(list, "; put ") : NULL;
    if (len + add >= sizeof err->msg && put) {
        size_t over = len + add - (sizeof err->msg - 1) + 3; /* and "..." in place of what goes */
        if ((size_t)(put - list) > over + 13) {
            char *cut = put - over;
            memcpy(cut, "...", 3);
            memmove(cut + 3, put, strlen(put) + 1);
            len = strlen(err->msg);
        }
    }
    snprintf(err->msg + len, sizeof err->msg - len, "%s", hint);
}

dn_status cli_open_data(const cli_options *o, dn_dataset *train, dn_dataset *test, dn_error *err)
{
    const char *name = o->data ? o->data : "optdigits";
    dn_status st = dn_data_open(name, o->data_dir, train, test, err);
    if (st == DN_ENOTFOUND && !o->fetch && strstr(err->msg, " not found"))
        add_data_hint(err, name);
    if (st != DN_ENOTFOUND || !o->fetch || !dn_fetch_known(name))
        return st;
    char root[4096];
    if (o->data_dir)
        snprintf(root, sizeof root, "%s", o->data_dir);
    else if (dn_data_default_dir(root, sizeof root, err) != DN_OK)
        return err->status;
    if (!o->quiet)
        fprintf(stderr, "digitnet: %s is not on this machine; downloading it to %s/%s (--fetch)\n", name, root, name);
    fetch_ui ui;
    ui_init(&ui, o);
    ui.results = 0; /* stdout stays the training's (--json); progress still goes to stderr */
    st = fetch_one(o, name, &ui, err);
    if (st != DN_OK) {
        /* Offline, or every mirror failed: say what to put where, then why the download failed. */
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        err->status = st;
        /* Too long a message loses the end of `why`, not the advice. */
        if (snprintf(err->msg, sizeof err->msg, "%s is not here and could not be downloaded: put %s in %s/%s (%s)", name,
                     dn_fetch_file_list(name), root, name, why) < 0)
            err->msg[0] = '\0';
        return st;
    }
    return dn_data_open(name, o->data_dir, train, test, err);
}
