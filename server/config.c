/* config.c - see config.h. */
#include "server/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int set_str(char *dst, size_t cap, const char *key, const char *v, spq_err *err);

static void copy(char *dst, size_t cap, const char *a, const char *b) {
    if (snprintf(dst, cap, "%s%s", a, b) >= (int)cap) dst[0] = 0;
}

void config_defaults(spqd_config *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->data_dir, sizeof c->data_dir, "./data");
    snprintf(c->listen, sizeof c->listen, "127.0.0.1:7070");
    snprintf(c->worker_listen, sizeof c->worker_listen, "127.0.0.1:7071");
    c->workers = 2;
    const char *shared = getenv("SPINQ_SHARED");
    char buf[600];
    snprintf(buf, sizeof buf, "%s/models", shared ? shared : "../shared");
    copy(c->models_dir, sizeof c->models_dir, spq_is_dir(buf) ? buf : "./models", "");
    snprintf(buf, sizeof buf, "%s/data", shared ? shared : "../shared");
    copy(c->datasets_dir, sizeof c->datasets_dir, spq_is_dir(buf) ? buf : "./datasets", "");
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        copy(c->worker_bin, sizeof c->worker_bin, exe, "/spinq-worker");
        static const char *const scripts[] = {"/../../deploy/slurm/spinq-run.sbatch", "/../share/spinq/spinq-run.sbatch"};
        for (size_t i = 0; i < sizeof scripts / sizeof *scripts && !c->slurm_script[0]; i++) {
            char path[PATH_MAX + 64], real[PATH_MAX];
            snprintf(path, sizeof path, "%s%s", exe, scripts[i]);
            if (access(path, R_OK) == 0 && realpath(path, real)) copy(c->slurm_script, sizeof c->slurm_script, real, "");
        }
        static const char *const web_dirs[] = {"/../../web", "/../share/spinq/web"};
        for (size_t i = 0; i < sizeof web_dirs / sizeof *web_dirs && !c->web_dir[0]; i++) {
            char dir[PATH_MAX + 32], index[PATH_MAX + 64], real[PATH_MAX];
            snprintf(dir, sizeof dir, "%s%s", exe, web_dirs[i]);
            snprintf(index, sizeof index, "%s/index.html", dir);
            if (access(index, R_OK) == 0 && realpath(dir, real)) copy(c->web_dir, sizeof c->web_dir, real, "");
        }
    } else {
        snprintf(c->worker_bin, sizeof c->worker_bin, "spinq-worker");
    }
    snprintf(c->log_level, sizeof c->log_level, "info");
    long cpus = sysconf(_SC_NPROCESSORS_ONLN); /* one pool thread per core: more only adds switching */
    c->http_threads = cpus < 2 ? 2 : cpus > 16 ? 16 : (int)cpus;
    c->max_attempts = 3;
    c->max_body = 1 << 20;
    c->shutdown_grace = 20;
    c->events_keep_hours = 168;
    c->sse_ping = 15;
    c->heartbeat_timeout = 30;
    c->slurm_nodes = c->slurm_tasks = c->slurm_threads = 1;
    c->slurm_poll = 2;
}

/* A value that goes to sbatch as one argument: no spaces, quotes or control characters. */
static int set_word(char *dst, size_t cap, const char *key, const char *v, spq_err *err) {
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == '"' || *p == '\'' || *p == '\\')
            return spq_fail(err, "%s: must be one word without spaces or quotes, got '%s'", key, v);
    return set_str(dst, cap, key, v, err);
}

static int set_str(char *dst, size_t cap, const char *key, const char *v, spq_err *err) {
    if (strlen(v) >= cap) return spq_fail(err, "%s: value too long", key);
    snprintf(dst, cap, "%s", v);
    return 0;
}

static int set_int(int *dst, const char *key, const char *v, long lo, long hi, spq_err *err) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return spq_fail(err, "%s: expected an integer in [%ld, %ld], got '%s'", key, lo, hi, v);
    *dst = (int)x;
    return 0;
}

static int set_double(double *dst, const char *key, const char *v, double lo, double hi, const char *unit,
                      spq_err *err) {
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || !(x >= lo && x <= hi))
        return spq_fail(err, "%s: expected %s in [%g, %g], got '%s'", key, unit, lo, hi, v);
    *dst = x;
    return 0;
}

int config_set(spqd_config *c, const char *key_in, const char *v, spq_err *err) {
    char key[64];
    size_t n = 0;
    for (const char *p = key_in; *p && n < sizeof key - 1; p++) key[n++] = *p == '-' ? '_' : *p;
    key[n] = 0;
    if (!strcmp(key, "data_dir")) return set_str(c->data_dir, sizeof c->data_dir, key_in, v, err);
    if (!strcmp(key, "listen")) return set_str(c->listen, sizeof c->listen, key_in, v, err);
    if (!strcmp(key, "worker_listen")) return set_str(c->worker_listen, sizeof c->worker_listen, key_in, v, err);
    if (!strcmp(key, "workers")) return set_int(&c->workers, key_in, v, 0, 256, err);
    if (!strcmp(key, "models_dir")) return set_str(c->models_dir, sizeof c->models_dir, key_in, v, err);
    if (!strcmp(key, "datasets_dir")) return set_str(c->datasets_dir, sizeof c->datasets_dir, key_in, v, err);
    if (!strcmp(key, "worker_bin")) return set_str(c->worker_bin, sizeof c->worker_bin, key_in, v, err);
    if (!strcmp(key, "web_dir")) return set_str(c->web_dir, sizeof c->web_dir, key_in, v, err);
    if (!strcmp(key, "http_threads")) return set_int(&c->http_threads, key_in, v, 1, 64, err);
    if (!strcmp(key, "max_attempts")) return set_int(&c->max_attempts, key_in, v, 1, 100, err);
    if (!strcmp(key, "keep_checkpoints")) return set_int(&c->keep_checkpoints, key_in, v, 0, 1000000, err);
    if (!strcmp(key, "max_body")) return set_int(&c->max_body, key_in, v, 1024, 64 << 20, err);
    if (!strcmp(key, "log_level")) {
        if (strcmp(v, "debug") && strcmp(v, "info") && strcmp(v, "warn") && strcmp(v, "error"))
            return spq_fail(err, "%s: expected debug, info, warn or error, got '%s'", key_in, v);
        return set_str(c->log_level, sizeof c->log_level, key_in, v, err);
    }
    if (!strcmp(key, "shutdown_grace")) return set_double(&c->shutdown_grace, key_in, v, 0, 3600, "seconds", err);
    if (!strcmp(key, "sse_ping")) return set_double(&c->sse_ping, key_in, v, 0.05, 3600, "seconds", err);
    if (!strcmp(key, "heartbeat_timeout"))
        return set_double(&c->heartbeat_timeout, key_in, v, 2, 3600, "seconds", err);
    if (!strcmp(key, "events_keep_hours"))
        return set_double(&c->events_keep_hours, key_in, v, 0, 1e6, "hours", err);
    if (!strcmp(key, "executor")) {
        if (!strcmp(v, "slurm")) c->executor_slurm = 1;
        else if (!strcmp(v, "local")) c->executor_slurm = 0;
        else return spq_fail(err, "%s: expected 'local' or 'slurm', got '%s'", key_in, v);
        return 0;
    }
    if (!strcmp(key, "slurm_partition")) return set_word(c->slurm_partition, sizeof c->slurm_partition, key_in, v, err);
    if (!strcmp(key, "slurm_account")) return set_word(c->slurm_account, sizeof c->slurm_account, key_in, v, err);
    if (!strcmp(key, "slurm_time")) return set_word(c->slurm_time, sizeof c->slurm_time, key_in, v, err);
    if (!strcmp(key, "slurm_nodes")) return set_int(&c->slurm_nodes, key_in, v, 1, 4096, err);
    if (!strcmp(key, "slurm_tasks")) return set_int(&c->slurm_tasks, key_in, v, 1, 65536, err);
    if (!strcmp(key, "slurm_threads")) return set_int(&c->slurm_threads, key_in, v, 1, 1024, err);
    if (!strcmp(key, "slurm_sbatch_flags")) {
        for (const char *p = v; *p; p++)
            if ((unsigned char)*p < ' ' || *p == '"' || *p == '\'' || *p == '\\')
                return spq_fail(err, "%s: flags are split at spaces; no quotes or control characters, got '%s'",
                                key_in, v);
        return set_str(c->slurm_sbatch_flags, sizeof c->slurm_sbatch_flags, key_in, v, err);
    }
    if (!strcmp(key, "slurm_script")) return set_str(c->slurm_script, sizeof c->slurm_script, key_in, v, err);
    if (!strcmp(key, "slurm_worker_bin"))
        return set_str(c->slurm_worker_bin, sizeof c->slurm_worker_bin, key_in, v, err);
    if (!strcmp(key, "slurm_connect")) {
        char host[200];
        int port;
        if (*v && (config_split_hostport(v, host, sizeof host, &port, err) || !port || !host[0]))
            return spq_fail(err, "%s: expected HOST:PORT, got '%s'", key_in, v);
        return set_word(c->slurm_connect, sizeof c->slurm_connect, key_in, v, err);
    }
    if (!strcmp(key, "slurm_token_file"))
        return set_str(c->slurm_token_file, sizeof c->slurm_token_file, key_in, v, err);
    if (!strcmp(key, "slurm_poll")) return set_double(&c->slurm_poll, key_in, v, 0.2, 600, "seconds", err);
    if (!strcmp(key, "auth")) {
        if (!strcmp(v, "required")) c->auth_required = 1;
        else if (!strcmp(v, "auto")) c->auth_required = 0;
        else return spq_fail(err, "%s: expected 'required' or 'auto', got '%s'", key_in, v);
        return 0;
    }
    return spq_fail(err, "unknown setting '%s'", key_in);
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = 0;
    return s;
}

int config_load_file(spqd_config *c, const char *path, spq_err *err) {
    FILE *f = fopen(path, "r");
    if (!f) return spq_fail(err, "%s: cannot open: %s", path, strerror(errno));
    char line[1200];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        char *s = trim(line);
        if (!*s) continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            fclose(f);
            return spq_fail(err, "%s:%d: expected 'key = value'", path, lineno);
        }
        *eq = 0;
        char *key = trim(s), *value = trim(eq + 1);
        size_t n = strlen(value);
        if (n >= 2 && value[0] == '"' && value[n - 1] == '"') {
            value[n - 1] = 0;
            value++;
        }
        if (config_set(c, key, value, err)) {
            fclose(f);
            return spq_fail_prefix(err, "%s:%d", path, lineno);
        }
    }
    fclose(f);
    return 0;
}

int config_parse_args(spqd_config *c, int argc, char **argv, spq_err *err) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) return spq_fail(err, "--config needs a file");
            if (config_load_file(c, argv[i + 1], err)) return -1;
        }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2)) return spq_fail(err, "unexpected argument '%s'", a);
        if (i + 1 >= argc) return spq_fail(err, "%s needs a value", a);
        if (!strcmp(a, "--config")) {
            i++;
            continue;
        }
        if (config_set(c, a + 2, argv[++i], err)) {
            if (strstr(err->msg, "unknown setting")) return spq_fail(err, "unknown flag %s", a);
            return spq_fail_prefix(err, "flag");
        }
    }
    return 0;
}

int config_split_hostport(const char *s, char *host, size_t cap, int *port, spq_err *err) {
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s) return spq_fail(err, "'%s': expected HOST:PORT", s);
    const char *h = s;
    size_t hn = (size_t)(colon - s);
    if (h[0] == '[') {
        if (hn < 2 || h[hn - 1] != ']') return spq_fail(err, "'%s': expected [IPv6]:PORT", s);
        h++;
        hn -= 2;
    }
    if (hn >= cap) return spq_fail(err, "'%s': host too long", s);
    memcpy(host, h, hn);
    host[hn] = 0;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end || p < 0 || p > 65535) return spq_fail(err, "'%s': bad port", s);
    *port = (int)p;
    return 0;
}

int config_is_loopback(const char *host) {
    return !strncmp(host, "127.", 4) || !strcmp(host, "::1") || !strcmp(host, "localhost");
}
