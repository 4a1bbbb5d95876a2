/* dn_fetch without a network: argument checks, the pinned checksums against the real files in
 * ../shared/data (a set already in place is verified and not downloaded), a damaged file not taken
 * for a good one, a mirror nobody listens on, the callback's stop. The downloads themselves, over
 * real HTTP, are tests/fetch/run.sh. Run from the project root. */
#include "testutil.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define OPT_DIR DN_TEST_DATA "/optdigits"
#define MNIST_DIR DN_TEST_DATA "/mnist-10k"

/* http://127.0.0.1:PORT/ where nothing listens: a port the kernel just handed out and took back. */
static const char *closed_mirror(void)
{
    static char url[64];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", ntohs(a.sin_port));
    return url;
}

static void make_dir(const char *path)
{
    assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
}

static void copy_file(const char *src, const char *dst)
{
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* Counts events by kind; stops when told to. */
typedef struct events {
    int n[DN_FETCH_VERIFIED + 1];
    int stop_on; /* -1: never */
    char present[4][64];
    char last_path[600];
} events;

static int on_status(void *user, const dn_fetch_status *s)
{
    events *ev = user;
    if (s->event == DN_FETCH_PRESENT && ev->n[DN_FETCH_PRESENT] < 4)
        snprintf(ev->present[ev->n[DN_FETCH_PRESENT]], sizeof ev->present[0], "%s", s->file);
    if (s->path)
        snprintf(ev->last_path, sizeof ev->last_path, "%s", s->path);
    ev->n[s->event]++;
    return (int)s->event == ev->stop_on;
}

static dn_fetch_params params_with(events *ev, const char *const *mirrors, int n_mirrors)
{
    memset(ev, 0, sizeof *ev);
    ev->stop_on = -1;
    dn_fetch_params p = dn_fetch_default_params();
    p.mirrors = mirrors;
    p.n_mirrors = n_mirrors;
    p.connect_seconds = 5;
    p.on_status = on_status;
    p.user = ev;
    return p;
}

static void check_error(dn_status got, const dn_error *err, dn_status want, const char *part)
{
    if (got != want || !strstr(err->msg, part))
        print_error("status %d (%s), message: %s\n", (int)got, dn_status_str(got), err->msg);
    assert_int_equal(got, want);
    assert_int_equal(err->status, want);
    assert_non_null(strstr(err->msg, part));
    assert_null(strchr(err->msg, '\n'));
}

static void test_catalog(void **state)
{
    (void)state;
    assert_true(dn_fetch_known("optdigits"));
    assert_true(dn_fetch_known("mnist"));
    assert_true(dn_fetch_known("fashion-mnist"));
    assert_false(dn_fetch_known("mnist-10k")); /* a local subset: nothing to download */
    assert_false(dn_fetch_known(NULL));
    assert_string_equal(dn_fetch_file_list("optdigits"), "optdigits.tra and optdigits.tes");
    assert_non_null(strstr(dn_fetch_file_list("mnist"), "t10k-labels-idx1-ubyte.gz"));
    assert_null(dn_fetch_file_list("kmnist"));
    dn_fetch_params p = dn_fetch_default_params();
    assert_true(p.connect_seconds > 0 && p.connect_seconds <= 60);
    assert_true(p.stall_seconds > 0 && p.stall_seconds <= 120);
    assert_true(p.max_redirects > 0 && p.max_redirects <= 10);
    assert_int_equal(p.n_mirrors, 0);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    dn_error err = {0};
    char root[512];
    snprintf(root, sizeof root, "%s/bad-args", dn_test_dir());
    check_error(dn_fetch("kmnist", root, NULL, &err), &err, DN_EARG,
                "cannot download 'kmnist': digitnet can download optdigits, mnist and fashion-mnist");
    assert_int_equal(dn_fetch(NULL, root, NULL, NULL), DN_EARG); /* no err: still no crash */

    events ev;
    const char *ftp[] = {"ftp://example.org/mnist/"};
    dn_fetch_params p = params_with(&ev, ftp, 1);
    check_error(dn_fetch("mnist", root, &p, &err), &err, DN_EARG,
                "mirror 'ftp://example.org/mnist/' is not an http:// or https:// URL");
    const char *no_host[] = {"https://"};
    p = params_with(&ev, no_host, 1);
    check_error(dn_fetch("mnist", root, &p, &err), &err, DN_EARG, "is not an http:// or https:// URL");
    p = params_with(&ev, NULL, 0);
    p.stall_seconds = 0;
    check_error(dn_fetch("mnist", root, &p, &err), &err, DN_EARG, "bad parameters");
    /* Nothing was created for any of them. */
    struct stat st;
    assert_int_not_equal(stat(root, &st), 0);
}

/* The real optdigits files in place: verified against the pinned SHA-256, nothing downloaded (the
 * only mirror is a closed port). */
static void test_present_optdigits(void **state)
{
    (void)state;
    char root[512], dir[600], path[700];
    snprintf(root, sizeof root, "%s/present", dn_test_dir());
    snprintf(dir, sizeof dir, "%s/optdigits", root);
    make_dir(root);
    make_dir(dir);
    snprintf(path, sizeof path, "%s/optdigits.tra", dir);
    copy_file(OPT_DIR "/optdigits.tra", path);
    snprintf(path, sizeof path, "%s/optdigits.tes", dir);
    copy_file(OPT_DIR "/optdigits.tes", path);

    events ev;
    const char *mirrors[] = {closed_mirror()};
    dn_fetch_params p = params_with(&ev, mirrors, 1);
    dn_error err = {0};
    assert_int_equal(dn_fetch("optdigits", root, &p, &err), DN_OK);
    assert_int_equal(ev.n[DN_FETCH_PRESENT], 2);
    assert_int_equal(ev.n[DN_FETCH_START], 0);
    assert_string_equal(ev.present[0], "optdigits.tra");
    assert_string_equal(ev.present[1], "optdigits.tes");
    assert_string_equal(ev.last_path, path);
    assert_int_equal(count_entries(dir), 2);

    /* The callback can stop it. */
    p = params_with(&ev, mirrors, 1);
    ev.stop_on = DN_FETCH_PRESENT;
    check_error(dn_fetch("optdigits", root, &p, &err), &err, DN_ESTOPPED, "stopped");
    assert_int_equal(ev.n[DN_FETCH_PRESENT], 1);

    /* $DIGITNET_DATA is the default root. */
    setenv("DIGITNET_DATA", root, 1);
    p = params_with(&ev, mirrors, 1);
    assert_int_equal(dn_fetch("optdigits", NULL, &p, &err), DN_OK);
    assert_int_equal(ev.n[DN_FETCH_PRESENT], 2);
    assert_memory_equal(ev.last_path, root, strlen(root));
    unsetenv("DIGITNET_DATA");
}

/* A damaged file is not taken as present; the download it then needs fails (nobody listens), with
 * the URL in the message, and the user's file is left as it was. */
static void test_damaged_and_offline(void **state)
{
    (void)state;
    char root[512], dir[600], tes[700];
    snprintf(root, sizeof root, "%s/damaged", dn_test_dir());
    snprintf(dir, sizeof dir, "%s/optdigits", root);
    make_dir(root);
    make_dir(dir);
    char path[700];
    snprintf(path, sizeof path, "%s/optdigits.tra", dir);
    copy_file(OPT_DIR "/optdigits.tra", path);
    snprintf(tes, sizeof tes, "%s/optdigits.tes", dir);
    copy_file(OPT_DIR "/optdigits.tes", tes);
    FILE *f = fopen(tes, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, 1000, SEEK_SET), 0);
    int c = fgetc(f);
    assert_int_equal(fseek(f, 1000, SEEK_SET), 0);
    assert_int_not_equal(fputc(c == '1' ? '2' : '1', f), EOF);
    assert_int_equal(fclose(f), 0);

    events ev;
    const char *url = closed_mirror();
    const char *mirrors[] = {url};
    dn_fetch_params p = params_with(&ev, mirrors, 1);
    dn_error err = {0};
    check_error(dn_fetch("optdigits", root, &p, &err), &err, DN_ENET, "cannot download optdigits: ");
    assert_non_null(strstr(err.msg, url));
    assert_int_equal(ev.n[DN_FETCH_PRESENT], 1); /* .tra only */
    assert_string_equal(ev.present[0], "optdigits.tra");
    assert_true(ev.n[DN_FETCH_START] >= 1);
    assert_int_equal(ev.n[DN_FETCH_VERIFIED], 0);
    struct stat st;
    assert_int_equal(stat(tes, &st), 0);
    assert_int_equal(st.st_size, 264712);
    assert_int_equal(count_entries(dir), 2); /* no .part, no temporary file */
}

/* MNIST: the canonical t10k files pass the pinned size, MD5 and SHA-256; the training files are
 * missing and cannot be downloaded; two mirrors, both tried. */
static void test_present_mnist_test_files(void **state)
{
    (void)state;
    char root[512], dir[600], path[700];
    snprintf(root, sizeof root, "%s/mnist-root", dn_test_dir());
    snprintf(dir, sizeof dir, "%s/mnist", root);
    make_dir(root);
    make_dir(dir);
    snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte.gz", dir);
    copy_file(MNIST_DIR "/t10k-images-idx3-ubyte.gz", path);
    snprintf(path, sizeof path, "%s/t10k-labels-idx1-ubyte.gz", dir);
    copy_file(MNIST_DIR "/t10k-labels-idx1-ubyte.gz", path);
    /* The 10k-image training subset is not the published training file. */
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte.gz", dir);
    copy_file(MNIST_DIR "/train-labels-idx1-ubyte.gz", path);

    events ev;
    const char *mirrors[] = {closed_mirror(), closed_mirror()};
    dn_fetch_params p = params_with(&ev, mirrors, 2);
    dn_error err = {0};
    check_error(dn_fetch("mnist", root, &p, &err), &err, DN_ENET,
                "cannot download mnist: no mirror worked (2 tried); the last: ");
    assert_non_null(strstr(err.msg, "train-images-idx3-ubyte.gz"));
    assert_int_equal(ev.n[DN_FETCH_PRESENT], 2);
    assert_string_equal(ev.present[0], "t10k-images-idx3-ubyte.gz");
    assert_string_equal(ev.present[1], "t10k-labels-idx1-ubyte.gz");
    /* Two files from each of two mirrors; the first mirror's two failures were reported. */
    assert_int_equal(ev.n[DN_FETCH_START], 4);
    assert_int_equal(ev.n[DN_FETCH_FAILED], 3);
    assert_int_equal(count_entries(dir), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_catalog),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_present_optdigits),
        cmocka_unit_test(test_damaged_and_offline),
        cmocka_unit_test(test_present_mnist_test_files),
    };
    /* The files written here are kept when something failed, to look at. */
    return dn_test_finish(cmocka_run_group_tests(tests, NULL, NULL));
}
