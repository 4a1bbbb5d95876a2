/* Checksums of downloaded files, with OpenSSL's libcrypto (EVP): SHA-256 for every file, MD5 where
 * the data set publishes one. */
#include "fetch/fetch.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fetch_hasher {
    EVP_MD_CTX *sha256, *md5;
    int64_t size;
};

void fetch_hasher_free(fetch_hasher *h)
{
    if (!h)
        return;
    EVP_MD_CTX_free(h->sha256);
    EVP_MD_CTX_free(h->md5);
    free(h);
}

fetch_hasher *fetch_hasher_new(void)
{
    fetch_hasher *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->sha256 = EVP_MD_CTX_new();
    h->md5 = EVP_MD_CTX_new();
    if (!h->sha256 || !h->md5 || EVP_DigestInit_ex(h->sha256, EVP_sha256(), NULL) != 1 ||
        EVP_DigestInit_ex(h->md5, EVP_md5(), NULL) != 1) {
        fetch_hasher_free(h);
        return NULL;
    }
    return h;
}

int fetch_hasher_update(fetch_hasher *h, const void *bytes, size_t len)
{
    if (EVP_DigestUpdate(h->sha256, bytes, len) != 1 || EVP_DigestUpdate(h->md5, bytes, len) != 1)
        return -1;
    h->size += (int64_t)len;
    return 0;
}

static void to_hex(const unsigned char *bytes, unsigned n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

int fetch_hasher_final(fetch_hasher *h, fetch_digest *d)
{
    unsigned char sha[EVP_MAX_MD_SIZE], md5[EVP_MAX_MD_SIZE];
    unsigned n_sha = 0, n_md5 = 0;
    if (EVP_DigestFinal_ex(h->sha256, sha, &n_sha) != 1 || EVP_DigestFinal_ex(h->md5, md5, &n_md5) != 1 ||
        n_sha != 32 || n_md5 != 16)
        return -1;
    to_hex(sha, n_sha, d->sha256);
    to_hex(md5, n_md5, d->md5);
    d->size = h->size;
    return 0;
}

dn_status fetch_hash_file(const char *path, fetch_digest *d, dn_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return dn_fail(err, DN_EIO, "%s: cannot open: %s", path, strerror(errno));
    fetch_hasher *h = fetch_hasher_new();
    unsigned char *buf = malloc(1 << 16);
    dn_status st = DN_OK;
    if (!h || !buf)
        st = dn_fail(err, DN_ENOMEM, "%s: out of memory to checksum it", path);
    size_t n;
    while (st == DN_OK && (n = fread(buf, 1, 1 << 16, f)) > 0)
        if (fetch_hasher_update(h, buf, n) != 0)
            st = dn_fail(err, DN_EIO, "%s: checksum computation failed", path);
    if (st == DN_OK && ferror(f))
        st = dn_fail(err, DN_EIO, "%s: read error", path);
    if (st == DN_OK && fetch_hasher_final(h, d) != 0)
        st = dn_fail(err, DN_EIO, "%s: checksum computation failed", path);
    fclose(f);
    free(buf);
    fetch_hasher_free(h);
    return st;
}

dn_status fetch_check_digest(const fetch_file *f, const fetch_digest *d, const char *what, dn_error *err)
{
    if (d->size != f->size)
        return dn_fail(err, DN_EFORMAT, "%s: %lld bytes, expected %lld", what, (long long)d->size,
                       (long long)f->size);
    if (strcmp(d->sha256, f->sha256) != 0)
        return dn_fail(err, DN_EFORMAT, "%s: checksum mismatch: sha256 %.16s..., expected %.16s...", what,
                       d->sha256, f->sha256);
    if (f->md5 && strcmp(d->md5, f->md5) != 0)
        return dn_fail(err, DN_EFORMAT, "%s: checksum mismatch: md5 %s, expected %s", what, d->md5, f->md5);
    return DN_OK;
}
