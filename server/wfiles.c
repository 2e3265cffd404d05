/* wfiles.c - see wfiles.h.
 *
 * Three parts. The manifest: a model or dataset name (as a job spec has
 * it) resolved under models_dir or datasets_dir exactly as the job check
 * resolves it (spq_resolve_under: relative, no "..", inside the directory
 * after symlinks), then the files that make it up: a directory's regular
 * files (a Hugging Face or llama2.c folder), or a single file with the
 * tokenizer files beside it. The digest cache: a file's sha256 is computed
 * once per (path, size, mtime) and kept for the daemon's life, so a second
 * worker asking for the same model costs a stat. The chunks: one pread of
 * at most WFILES_CHUNK bytes per FETCH, the worker pulling at its pace. */
#include "server/wfiles.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/base/sha256.h"
#include "common/job/jobspec.h"

/* ---- the digest cache ---- */

typedef struct digest {
    char *path;
    int64_t size, mtime_ns;
    char sha[65];
    struct digest *next;
} digest;

static digest *g_digests;

static int file_digest(const char *path, const struct stat *st, char sha[65], spq_err *err) {
    int64_t mt = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    for (digest *d = g_digests; d; d = d->next)
        if (!strcmp(d->path, path) && d->size == (int64_t)st->st_size && d->mtime_ns == mt) {
            memcpy(sha, d->sha, 65);
            return 0;
        }
    spq_sha256 h;
    spq_sha256_init(&h);
    if (spq_sha256_file(&h, path, UINT64_MAX, err)) return -1;
    spq_sha256_hex_final(&h, sha);
    digest *d = spq_calloc(1, sizeof *d);
    d->path = spq_strdup(path);
    d->size = (int64_t)st->st_size;
    d->mtime_ns = mt;
    memcpy(d->sha, sha, 65);
    d->next = g_digests;
    g_digests = d;
    return 0;
}

void wfiles_free(void) {
    while (g_digests) {
        digest *d = g_digests;
        g_digests = d->next;
        free(d->path);
        free(d);
    }
}

/* ---- manifests ---- */

static const char *kind_dir(const spqd_config *cfg, int kind) {
    return kind == PROTO_KIND_MODEL ? cfg->models_dir : cfg->datasets_dir;
}

/* Appends {path: rel, size, sha256} for the regular file real (rel: its
 * name under the kind's directory). */
static int add_file(json_t *files, const char *real, const char *rel, spq_err *err) {
    struct stat st;
    if (stat(real, &st) || !S_ISREG(st.st_mode)) return spq_fail(err, "%s: not a regular file", rel);
    char sha[65];
    if (file_digest(real, &st, sha, err)) return -1;
    json_array_append_new(files, json_pack("{s:s,s:I,s:s}", "path", rel, "size", (json_int_t)st.st_size, "sha256", sha));
    return 0;
}

/* A model's tokenizer lives beside its checkpoint. */
static int is_tokenizer(const char *f) {
    return !strncmp(f, "tok", 3) || !strcmp(f, "tokenizer.json") || !strcmp(f, "tokenizer_config.json") ||
           !strcmp(f, "tokenizer.model");
}

/* The regular files of the directory real (named rel), not hidden, not
 * half-written; with only_tokenizers, those that are tokenizers. */
static int add_dir(json_t *files, const char *real, const char *rel, int only_tokenizers, spq_err *err) {
    DIR *d = opendir(real);
    if (!d) return spq_fail(err, "%s: cannot list: %s", rel, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.' || (n > 5 && !strcmp(e->d_name + n - 5, ".part"))) continue;
        if (only_tokenizers && !is_tokenizer(e->d_name)) continue;
        char *path = spq_path_join(real, e->d_name), *name = rel[0] ? spq_path_join(rel, e->d_name) : spq_strdup(e->d_name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) rc = add_file(files, path, name, err);
        free(path);
        free(name);
    }
    closedir(d);
    return rc;
}

int wfiles_manifest(const spqd_config *cfg, int kind, const char *name, char **files_json, spq_err *err) {
    *files_json = NULL;
    char *real;
    if (spq_resolve_under(&real, kind_dir(cfg, kind), name, err)) return -1;
    json_t *files = json_array();
    int rc;
    if (spq_is_dir(real)) {
        rc = kind == PROTO_KIND_MODEL ? add_dir(files, real, name, 0, err)
                                      : spq_fail(err, "'%s' is a directory, not a file", name);
    } else {
        rc = add_file(files, real, name, err);
        if (!rc && kind == PROTO_KIND_MODEL) {
            /* the tokenizer files in the checkpoint's directory */
            char *dir = spq_strdup(real), *reldir = spq_strdup(name);
            *strrchr(dir, '/') = 0;
            char *slash = strrchr(reldir, '/');
            if (slash) *slash = 0;
            else reldir[0] = 0;
            json_t *toks = json_array();
            rc = add_dir(toks, dir, reldir, 1, err);
            size_t i;
            json_t *t;
            json_array_foreach(toks, i, t) if (strcmp(json_string_value(json_object_get(t, "path")), name))
                json_array_append(files, t);
            json_decref(toks);
            free(dir);
            free(reldir);
        }
    }
    free(real);
    if (!rc) *files_json = json_dumps(files, JSON_COMPACT);
    json_decref(files);
    return rc;
}

/* ---- chunks ---- */

void wfiles_chunk(const spqd_config *cfg, const proto_fetch *req, proto_buf *out) {
    proto_file reply = {req->kind, req->path, req->offset, req->offset, NULL, 0, ""};
    spq_err err = {{0}};
    char *real = NULL;
    uint8_t *buf = NULL;
    int fd = -1;
    struct stat st;
    if (spq_resolve_under(&real, kind_dir(cfg, req->kind), req->path, &err)) goto done;
    fd = open(real, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        spq_fail(&err, "%s: not a readable file", req->path);
        goto done;
    }
    if (req->offset > (uint64_t)st.st_size) {
        spq_fail(&err, "%s: offset %llu beyond its %lld bytes", req->path, (unsigned long long)req->offset,
                 (long long)st.st_size);
        goto done;
    }
    uint64_t left = (uint64_t)st.st_size - req->offset;
    size_t want = left < WFILES_CHUNK ? (size_t)left : WFILES_CHUNK;
    buf = spq_malloc(want ? want : 1);
    ssize_t n = want ? pread(fd, buf, want, (off_t)req->offset) : 0;
    if (n < 0) {
        spq_fail(&err, "%s: read error: %s", req->path, strerror(errno));
        goto done;
    }
    reply.total = (uint64_t)st.st_size;
    reply.data = buf;
    reply.len = (size_t)n;
done:
    if (err.msg[0]) {
        reply.error = err.msg;
        reply.total = reply.offset;
    }
    proto_enc_file(out, &reply);
    if (fd >= 0) close(fd);
    free(buf);
    free(real);
}
