/* main.c - spinqd, the spinq daemon.
 *
 *   spinqd [--config FILE] [--data-dir D] [--listen HOST:PORT] [--workers N]
 *          [--models-dir D] [--datasets-dir D] [--worker-listen HOST:PORT] ...
 *   spinqd token create NAME --role admin|member|viewer|worker [--data-dir D]
 *   spinqd token list | token revoke NAME [--data-dir D]
 *
 * Start-up: settings, the data dir's lock (one daemon per data dir), the
 * store (migrations), runs left running by a previous daemon back in the
 * queue, the HTTP pool (http.c: a port in use stops the start before any
 * worker is spawned), then the worker loop (sched.c: local workers, the
 * worker port, signals). The main thread runs the loop until a signal has
 * drained it, then stops HTTP and closes the store. The token commands
 * touch only the tokens table and take no lock: they work beside a
 * running daemon. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/base/cpu.h"
#include "server/api.h"
#include "server/auth.h"
#include "server/config.h"
#include "server/db.h"
#include "server/http.h"
#include "server/log.h"
#include "server/sched.h"
#include "server/wfiles.h"
#include "server/sse.h"
#include "server/static.h"
#include "server/store.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: spinqd [FLAGS]                       run the daemon\n"
            "       spinqd token create NAME --role ROLE [FLAGS]   print a new token (shown once)\n"
            "       spinqd token list [FLAGS]\n"
            "       spinqd token revoke NAME [FLAGS]\n"
            "\n"
            "flags (also settings in a --config file as `key = value`):\n"
            "  --config FILE          settings file\n"
            "  --data-dir DIR         store and artifacts (default ./data)\n"
            "  --listen HOST:PORT     HTTP API (default 127.0.0.1:7070; elsewhere needs auth)\n"
            "  --worker-listen H:P    remote workers (default 127.0.0.1:7071; \"\" for none)\n"
            "  --workers N            local workers to spawn (default 2)\n"
            "  --models-dir DIR       models named by job specs (default $SPINQ_SHARED/models, else\n"
            "                         ../shared/models, when it exists; else ./models)\n"
            "  --datasets-dir DIR     datasets named by job specs (default the same with data, else ./datasets)\n"
            "  --worker-bin PATH      spinq-worker (default: beside spinqd)\n"
            "  --web-dir DIR          the dashboard's files (default: the source tree's web/ or\n"
            "                         PREFIX/share/spinq/web beside PREFIX/bin/spinqd; \"\" for none)\n"
            "  --log-level LEVEL      debug, info, warn, error\n"
            "  --http-threads N  --max-attempts N  --max-body BYTES  --shutdown-grace SECONDS\n"
            "  --events-keep-hours H  finished runs' metric/progress events live this long (default 168;\n"
            "                         their metric history stays)\n"
            "  --sse-ping SECONDS     keep-alive comment on the event streams this often (default 15)\n"
            "  --keep-checkpoints N   newest rotation checkpoints kept per run (default 0: all)\n"
            "  --heartbeat-timeout S  a worker silent this long is gone, its run re-queued (default 30;\n"
            "                         the daemon pings every second, workers use the same limit)\n"
            "  --auth required|auto   demand tokens even on loopback (auto: once a token exists)\n"
            "  --executor local|slurm where runs go: local and remote workers (default), or one Slurm job\n"
            "                         each; --slurm-partition P --slurm-account A --slurm-time T\n"
            "                         --slurm-nodes N --slurm-tasks N --slurm-threads N --slurm-sbatch-flags F\n"
            "                         --slurm-script F --slurm-worker-bin P --slurm-connect H:P\n"
            "                         --slurm-token-file F --slurm-poll S (deploy/README.md)\n"
            "roles: admin, member, viewer (API), worker (remote workers)\n");
}

static int mkdirs(const char *path) {
    char buf[600];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0755) && errno != EEXIST) return -1;
            *p = '/';
        }
    return mkdir(buf, 0755) && errno != EEXIST ? -1 : 0;
}

static int make_data_dir(const spqd_config *cfg) {
    if (!mkdirs(cfg->data_dir)) return 0;
    fprintf(stderr, "spinqd: cannot create the data dir %s: %s\n", cfg->data_dir, strerror(errno));
    return -1;
}

/* The data dir belongs to one daemon: an exclusive flock on DATA/spinqd.lock,
 * held (fd open, not inherited by workers) until the process ends, taken
 * before anything in the dir is touched. A second daemon would otherwise
 * take the first one's running jobs for left-overs and run them again. The
 * holder's pid is in the file for the message. */
static int lock_data_dir(const spqd_config *cfg) {
    char *path = spq_path_join(cfg->data_dir, "spinqd.lock");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "spinqd: cannot open %s: %s\n", path, strerror(errno));
        free(path);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        int e = errno;
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        if (e == EWOULDBLOCK)
            fprintf(stderr,
                    "spinqd: the data dir %s is in use by another spinqd (pid %s); stop it first, or give this one "
                    "another --data-dir\n",
                    cfg->data_dir, pid[0] ? pid : "unknown");
        else fprintf(stderr, "spinqd: cannot lock %s: %s\n", path, strerror(e));
        close(fd);
        free(path);
        return -1;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) || pwrite(fd, pid, (size_t)n, 0) != n)
        fprintf(stderr, "spinqd: warning: cannot write the pid into %s: %s\n", path, strerror(errno));
    free(path);
    return 0; /* fd stays open: the lock lives as long as the process */
}

static int open_store(const spqd_config *cfg) {
    if (make_data_dir(cfg)) return -1;
    char *path = spq_path_join(cfg->data_dir, "spinq.db");
    spq_err err;
    int rc = db_init(path, &err);
    free(path);
    if (rc) fprintf(stderr, "spinqd: %s\n", err.msg);
    return rc;
}

static int valid_name(const char *s) {
    size_t n = strlen(s);
    if (!n || n > 64) return 0;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
              *c == '_' || *c == '-' || *c == '@'))
            return 0;
    return 1;
}

static int cmd_token(int argc, char **argv) {
    if (argc < 1) {
        usage(stderr);
        return 2;
    }
    const char *verb = argv[0], *name = NULL, *role = NULL;
    int i = 1;
    if ((!strcmp(verb, "create") || !strcmp(verb, "revoke")) && argc > 1 && strncmp(argv[1], "--", 2)) name = argv[i++];
    /* --role is ours; the rest are daemon settings (--data-dir, --config) */
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    int nrest = 0;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "--role") && i + 1 < argc) role = argv[++i];
        else rest[nrest++] = argv[i];
    }
    spqd_config cfg;
    config_defaults(&cfg);
    spq_err err;
    int bad = config_parse_args(&cfg, nrest, rest, &err);
    free(rest);
    if (bad) {
        fprintf(stderr, "spinqd token: %s\n", err.msg);
        return 2;
    }
    log_set_level(LOG_WARN);
    int rc = 1;
    if (!strcmp(verb, "create")) {
        if (!name || !valid_name(name)) {
            fprintf(stderr, "spinqd token create: NAME must be 1-64 characters of letters, digits, . _ - @\n");
            return 2;
        }
        int r = role ? auth_role_parse(role) : ROLE_NONE;
        if (r == ROLE_NONE) {
            fprintf(stderr, "spinqd token create: --role must be admin, member, viewer or worker\n");
            return 2;
        }
        if (open_store(&cfg)) return 1;
        char token[72], hex[65];
        if (auth_token_new(token)) {
            fprintf(stderr, "spinqd token create: no randomness available\n");
        } else {
            auth_hash(token, hex);
            store_rc s = store_token_create(db_get(), name, auth_role_name(r), hex);
            if (s == STORE_CONFLICT) fprintf(stderr, "spinqd token create: a token named '%s' exists\n", name);
            else if (s != STORE_OK) fprintf(stderr, "spinqd token create: the store failed\n");
            else {
                printf("%s\n", token);
                fprintf(stderr, "token '%s' (%s) created; it is shown only this once\n", name, auth_role_name(r));
                rc = 0;
            }
        }
    } else if (!strcmp(verb, "list")) {
        if (open_store(&cfg)) return 1;
        json_t *l = store_tokens_list(db_get());
        if (l) {
            char *s = json_dumps(l, JSON_INDENT(2));
            printf("%s\n", s);
            free(s);
            json_decref(l);
            rc = 0;
        }
    } else if (!strcmp(verb, "revoke")) {
        if (!name) {
            fprintf(stderr, "spinqd token revoke: NAME is required\n");
            return 2;
        }
        if (open_store(&cfg)) return 1;
        store_rc s = store_token_revoke(db_get(), name);
        if (s == STORE_NOT_FOUND) fprintf(stderr, "spinqd token revoke: no live token named '%s'\n", name);
        else if (s == STORE_OK) rc = 0;
    } else {
        usage(stderr);
        return 2;
    }
    db_close_all();
    return rc;
}

/* Refuses to expose an address beyond loopback while nobody needs a token. */
static int check_exposure(const spqd_config *cfg, const char *what, const char *addr) {
    if (!addr[0]) return 0;
    char host[128];
    int port;
    spq_err err;
    if (config_split_hostport(addr, host, sizeof host, &port, &err)) {
        fprintf(stderr, "spinqd: %s: %s\n", what, err.msg);
        return -1;
    }
    if (config_is_loopback(host) || auth_enabled(db_get())) return 0;
    fprintf(stderr,
            "spinqd: refusing to listen on %s (%s) without authentication: anyone who can reach it could run jobs.\n"
            "  create a token first (spinqd token create NAME --role admin --data-dir %s) or set auth = required,\n"
            "  or bind to 127.0.0.1. (spinqd does not terminate TLS: put it behind a TLS proxy when exposed.)\n",
            addr, what, cfg->data_dir);
    return -1;
}

static int serve(int argc, char **argv) {
    spqd_config cfg;
    config_defaults(&cfg);
    spq_err err;
    if (config_parse_args(&cfg, argc, argv, &err)) {
        fprintf(stderr, "spinqd: %s\n", err.msg);
        usage(stderr);
        return 2;
    }
    log_set_level((log_level)log_parse_level(cfg.log_level));
    if (cfg.executor_slurm && cfg.workers) {
        log_info("executor slurm: runs go to Slurm jobs; no local workers (workers = %d ignored)", cfg.workers);
        cfg.workers = 0;
    }
    if (make_data_dir(&cfg) || lock_data_dir(&cfg) || open_store(&cfg)) return 1;
    auth_init(cfg.auth_required);
    if (check_exposure(&cfg, "listen", cfg.listen) || check_exposure(&cfg, "worker_listen", cfg.worker_listen)) {
        db_close_all();
        return 2;
    }
    sqlite3 *db = db_get();
    if (cfg.auth_required && store_token_count(db) == 0)
        log_warn("auth is required but no token exists: every request will get 401 (spinqd token create ...)");
    int recovered = store_recover(db);
    if (recovered > 0) log_info("store: %d run(s) left running by the previous daemon are queued again", recovered);
    store_workers_reset(db);
    db_set_event_sink(sse_publish);
    log_info("spinqd: data %s, models %s, datasets %s, %d local worker(s), auth %s", cfg.data_dir, cfg.models_dir,
             cfg.datasets_dir, cfg.workers, auth_enabled(db) ? "on" : "off (loopback only)");
    static_report(cfg.web_dir);
    if (http_start(&cfg, &err)) {
        log_error("%s", err.msg);
        db_set_event_sink(NULL);
        db_close_all();
        return 1;
    }
    if (sched_start(&cfg, &err)) {
        log_error("%s", err.msg);
        http_stop();
        return 1;
    }
    sched_run();
    wfiles_free();
    log_info("spinqd: workers stopped; closing the API");
    sse_close_all();
    http_stop();
    api_serve_stop_all();
    db_set_event_sink(NULL);
    db_close_all();
    log_info("spinqd: stopped");
    return 0;
}

int main(int argc, char **argv) {
    spq_cpu_ensure_coretype(argv);
    signal(SIGPIPE, SIG_IGN);
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "token")) return cmd_token(argc - 2, argv + 2);
    if (argc > 1 && !strcmp(argv[1], "serve")) return serve(argc - 2, argv + 2);
    return serve(argc - 1, argv + 1);
}
