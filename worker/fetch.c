/* fetch.c - see fetch.h. */
#include "worker/fetch.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/base/sha256.h"

/* mkdir -p of the directory that holds path. */
static void make_parents(const char *path) {
    char *p = spq_strdup(path);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0755);
            *s = '/';
        }
    free(p);
}

static int64_t mtime_ns(const struct stat *st) {
    return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* ROOT/.spinq-sha256/PATH (malloc'd). */
static char *cache_path(const char *root, const char *path) {
    size_t n = strlen(root) + strlen(path) + 32;
    char *c = spq_malloc(n);
    snprintf(c, n, "%s/.spinq-sha256/%s", root, path);
    return c;
}

/* The local file's sha256 from the cache when its size and mtime match,
 * else computed and cached. 0 or -1. */
static int local_digest(const char *root, const char *path, const char *local, const struct stat *st, char sha[65],
                        spq_err *err) {
    char *cp = cache_path(root, path);
    FILE *f = fopen(cp, "r");
    long long size = -1, mt = -1;
    char cached[65] = "";
    int hit = f && fscanf(f, "%lld %lld %64s", &size, &mt, cached) == 3 && size == (long long)st->st_size &&
              mt == (long long)mtime_ns(st) && strlen(cached) == 64;
    if (f) fclose(f);
    int rc = 0;
    if (hit) {
        memcpy(sha, cached, 65);
    } else {
        spq_sha256 h;
        spq_sha256_init(&h);
        rc = spq_sha256_file(&h, local, UINT64_MAX, err);
        if (!rc) {
            spq_sha256_hex_final(&h, sha);
            make_parents(cp);
            f = fopen(cp, "w");
            if (f) {
                fprintf(f, "%lld %lld %s\n", (long long)st->st_size, (long long)mtime_ns(st), sha);
                fclose(f);
            }
        }
    }
    free(cp);
    return rc;
}

/* One FETCH/FILE exchange: the chunk at offset of path appended to f. */
static int pull_chunk(const wk_fetch_io *io, int kind, const char *path, uint64_t offset, uint64_t size, FILE *f,
                      spq_sha256 *h, size_t *got, spq_err *err) {
    proto_buf req = {0};
    proto_enc_fetch(&req, &(proto_fetch){(uint8_t)kind, (char *)path, offset});
    uint8_t *payload;
    size_t len;
    if (io->call(io->ud, &req, PROTO_FILE, &payload, &len, err)) return -1;
    proto_file m;
    int rc = proto_dec_file(&m, payload, len, err);
    if (!rc) {
        if (m.error[0]) rc = spq_fail(err, "the daemon cannot send it: %s", m.error);
        else if (strcmp(m.path, path) || m.offset != offset || m.total != size)
            rc = spq_fail(err, "the daemon answered with %s at %" PRIu64 " of %" PRIu64 " bytes", m.path, m.offset,
                          m.total);
        else if (!m.len) rc = spq_fail(err, "the daemon sent an empty chunk at %" PRIu64, offset);
        else if (fwrite(m.data, 1, m.len, f) != m.len) rc = spq_fail(err, "write error: %s", strerror(errno));
        if (!rc) spq_sha256_update(h, m.data, m.len);
        *got = m.len;
        proto_free_file(&m);
    }
    free(payload);
    return rc;
}

/* Pulls path (size bytes, digest sha) into local, going on from a .part. */
static int pull_file(const wk_fetch_io *io, int kind, const char *path, const char *local, uint64_t size,
                     const char *sha, spq_err *err) {
    size_t n = strlen(local) + 8;
    char *part = spq_malloc(n);
    snprintf(part, n, "%s.part", local);
    make_parents(part);
    spq_sha256 h;
    spq_sha256_init(&h);
    uint64_t offset = 0;
    struct stat st;
    if (!stat(part, &st) && (uint64_t)st.st_size <= size && !spq_sha256_file(&h, part, (uint64_t)st.st_size, err)) {
        offset = (uint64_t)st.st_size;
    } else {
        spq_sha256_init(&h);
        unlink(part);
    }
    if (offset) {
        char msg[1200];
        snprintf(msg, sizeof msg, "fetch %s: going on from byte %" PRIu64 " of %" PRIu64, path, offset, size);
        io->note(io->ud, msg);
    }
    FILE *f = fopen(part, "ab");
    int rc = f ? 0 : spq_fail(err, "cannot write %s: %s", part, strerror(errno));
    while (!rc && offset < size) {
        size_t got = 0;
        rc = pull_chunk(io, kind, path, offset, size, f, &h, &got, err);
        offset += got;
    }
    if (f && fclose(f) && !rc) rc = spq_fail(err, "cannot write %s", part);
    char got[65];
    spq_sha256_hex_final(&h, got);
    if (!rc && strcmp(got, sha)) {
        unlink(part); /* a bad whole is not worth going on from */
        rc = spq_fail(err, "sha256 %s, the daemon's manifest says %s", got, sha);
    }
    if (!rc && rename(part, local)) rc = spq_fail(err, "cannot move %s into place: %s", part, strerror(errno));
    free(part);
    return rc;
}

/* One manifest entry: kept when the local copy has its digest, else pulled. */
static int sync_file(const wk_fetch_io *io, int kind, const char *root, json_t *entry, spq_err *err) {
    const char *path = json_string_value(json_object_get(entry, "path"));
    const char *sha = json_string_value(json_object_get(entry, "sha256"));
    json_t *jsize = json_object_get(entry, "size");
    if (!path || !sha || strlen(sha) != 64 || !json_is_integer(jsize) || json_integer_value(jsize) < 0)
        return spq_fail(err, "a manifest entry without path, size and sha256");
    spq_err e;
    if (spq_name_check(path, &e)) return spq_fail(err, "%s: %s", path, e.msg);
    uint64_t size = (uint64_t)json_integer_value(jsize);
    char *local = spq_path_join(root, path);
    struct stat st;
    char have[65] = "";
    int rc = 0;
    if (!stat(local, &st) && S_ISREG(st.st_mode) && (uint64_t)st.st_size == size &&
        !local_digest(root, path, local, &st, have, &e) && !strcmp(have, sha)) {
        free(local);
        return 0; /* current */
    }
    char msg[1200];
    snprintf(msg, sizeof msg, "fetch %s (%" PRIu64 " bytes, sha256 %.12s…) from the daemon", path, size, sha);
    io->note(io->ud, msg);
    rc = pull_file(io, kind, path, local, size, sha, err);
    if (!rc && !stat(local, &st)) rc = local_digest(root, path, local, &st, have, err); /* cache it */
    if (rc) spq_fail_prefix(err, "%s", path);
    free(local);
    return rc;
}

/* WANT name, then every file of its manifest. */
static int sync_name(const wk_fetch_io *io, int kind, const char *root, const char *name, spq_err *err) {
    proto_buf req = {0};
    proto_enc_want(&req, &(proto_want){(uint8_t)kind, (char *)name});
    uint8_t *payload;
    size_t len;
    if (io->call(io->ud, &req, PROTO_MANIFEST, &payload, &len, err)) return -1;
    proto_manifest m;
    int rc = proto_dec_manifest(&m, payload, len, err);
    free(payload);
    if (rc) return -1;
    json_t *files = NULL;
    if (m.error[0]) rc = spq_fail(err, "the daemon has no %s: %s", name, m.error);
    else if (strcmp(m.name, name) || !(files = json_loads(m.files, 0, NULL)) || !json_is_array(files))
        rc = spq_fail(err, "%s: the daemon's manifest is not a list of files", name);
    size_t i;
    json_t *entry;
    if (!rc) json_array_foreach(files, i, entry) if (!rc) rc = sync_file(io, kind, root, entry, err);
    json_decref(files);
    proto_free_manifest(&m);
    return rc;
}

int wk_fetch_inputs(const spq_jobspec *s, const char *models_dir, const char *datasets_dir, const wk_fetch_io *io,
                    spq_err *err) {
    mkdir(models_dir, 0755);
    mkdir(datasets_dir, 0755);
    if (sync_name(io, PROTO_KIND_MODEL, models_dir, s->model, err)) return spq_fail_prefix(err, "model");
    spq_jobspec_data need[SPQ_SPEC_MAX_DATA];
    int n = spq_jobspec_datasets(s, need);
    for (int i = 0; i < n; i++) {
        int seen = 0; /* the same file named twice is fetched once */
        for (int j = 0; j < i; j++) seen |= !strcmp(need[j].name, need[i].name);
        if (!seen && sync_name(io, PROTO_KIND_DATASET, datasets_dir, need[i].name, err))
            return spq_fail_prefix(err, "%s", need[i].field);
    }
    return 0;
}
