/* slurm.c - see slurm.h. A pass (poll_work) runs in a pool thread with
 * that thread's own store connection; what only the loop may touch (the
 * worker connections) it leaves in the pass's result for poll_done. One
 * pass at a time. Commands run with posix_spawnp, their output (stdout
 * and stderr) read from a pipe; sbatch gets the run in its environment. */
#include "server/slurm.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "server/db.h"
#include "server/log.h"
#include "server/store.h"
#include "server/wconn.h"

extern char **environ;

enum { MAX_LOST = 64 };

typedef struct {
    uv_work_t req;
    int draining;
    int n_lost;            /* runs whose job ended while a worker held them */
    int64_t lost[MAX_LOST];
    char lost_why[MAX_LOST][160];
} poll_work;

static uv_loop_t *g_loop;
static const spqd_config *g_cfg;
static char g_connect[300], g_logs[4096], g_token[256];
static int g_in_flight, g_soon;
static double g_last;

/* ---- commands ---- */

/* Runs argv (extra_env added to ours); its output (both streams, at most
 * cap - 1 bytes, trailing newlines cut) in out. The exit status, or -1 when
 * it could not start. */
static int run_cmd(char *const argv[], char *const extra_env[], char *out, size_t cap) {
    out[0] = 0;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC)) return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    size_t n_env = 0, n_extra = 0;
    while (environ[n_env]) n_env++;
    while (extra_env && extra_env[n_extra]) n_extra++;
    char **env = spq_calloc(n_env + n_extra + 1, sizeof *env);
    size_t k = 0;
    for (size_t i = 0; i < n_env; i++) {
        int replaced = 0; /* ours win over the daemon's own */
        for (size_t j = 0; j < n_extra && !replaced; j++) {
            size_t len = strcspn(extra_env[j], "=") + 1;
            replaced = !strncmp(environ[i], extra_env[j], len);
        }
        if (!replaced) env[k++] = environ[i];
    }
    for (size_t j = 0; j < n_extra; j++) env[k++] = extra_env[j];
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    close(fds[1]);
    if (rc) {
        close(fds[0]);
        snprintf(out, cap, "%s: %s", argv[0], strerror(rc));
        return -1;
    }
    size_t len = 0;
    char sink[4096];
    for (;;) {
        ssize_t r = len + 1 < cap ? read(fds[0], out + len, cap - 1 - len) : read(fds[0], sink, sizeof sink);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        if (len + 1 < cap) len += (size_t)r;
    }
    close(fds[0]);
    out[len] = 0;
    while (len && (out[len - 1] == '\n' || out[len - 1] == '\r')) out[--len] = 0;
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* States after which the job does nothing more (squeue's long names). */
static int state_ended(const char *s) {
    static const char *const ended[] = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
                                        "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "GONE", NULL};
    for (const char *const *e = ended; *e; e++)
        if (!strncmp(s, *e, strlen(*e))) return 1; /* "CANCELLED by 0" */
    return 0;
}

/* ---- a pass, in a pool thread ---- */

typedef struct {
    char id[32], state[32], nodes[256];
} job_row;

/* Every job squeue knows ("ID|STATE|NODES" lines); -1 when squeue failed. */
static int squeue_all(job_row **rows, int *n) {
    *rows = NULL;
    *n = 0;
    size_t cap = 1 << 20;
    char *out = spq_malloc(cap);
    char *argv[] = {"squeue", "-h", "-a", "--states=all", "-o", "%i|%T|%N", NULL};
    int rc = run_cmd(argv, NULL, out, cap);
    if (rc) {
        log_warn("slurm: squeue failed (exit %d): %.300s", rc, out);
        free(out);
        return -1;
    }
    int k = 0, have = 64;
    job_row *r = spq_calloc((size_t)have, sizeof *r);
    for (char *save = NULL, *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *a = strchr(line, '|'), *b = a ? strchr(a + 1, '|') : NULL;
        if (!b) continue;
        *a = *b = 0;
        if (k == have) {
            have *= 2;
            r = spq_realloc(r, (size_t)have * sizeof *r);
        }
        snprintf(r[k].id, sizeof r[k].id, "%s", line);
        snprintf(r[k].state, sizeof r[k].state, "%s", a + 1);
        snprintf(r[k].nodes, sizeof r[k].nodes, "%s", b + 1);
        k++;
    }
    free(out);
    *rows = r;
    *n = k;
    return 0;
}

static int resource(int from_spec, int dflt) { return from_spec > 0 ? from_spec : dflt; }

/* sbatch for run r: the job id in job (32 bytes), or -1 with why. */
static int submit(const store_slurm_run *r, char *job, char *why, size_t why_cap) {
    const spqd_config *c = g_cfg;
    spq_jobspec spec;
    char field[SPQ_FIELD_MAX];
    spq_err err;
    if (spq_jobspec_parse(&spec, r->spec, strlen(r->spec), field, &err)) {
        snprintf(why, why_cap, "spec: %.300s", err.msg);
        return -1;
    }
    int nodes = resource(spec.resources.nodes, c->slurm_nodes);
    int tasks = resource(spec.resources.tasks, c->slurm_tasks);
    int threads = resource(spec.resources.threads_per_task, c->slurm_threads);
    spq_jobspec_free(&spec);
    if (tasks < nodes) tasks = nodes;
    char a_name[64], a_nodes[32], a_tasks[32], a_cpus[32], a_part[160], a_acct[160], a_time[96], a_out[4200];
    snprintf(a_name, sizeof a_name, "--job-name=spinq-run-%lld", (long long)r->run_id);
    snprintf(a_nodes, sizeof a_nodes, "--nodes=%d", nodes);
    snprintf(a_tasks, sizeof a_tasks, "--ntasks=%d", tasks);
    snprintf(a_cpus, sizeof a_cpus, "--cpus-per-task=%d", threads);
    snprintf(a_out, sizeof a_out, "--output=%s/run-%lld-%%j.out", g_logs, (long long)r->run_id);
    char *argv[96];
    int k = 0;
    argv[k++] = "sbatch";
    argv[k++] = "--parsable";
    argv[k++] = a_name;
    argv[k++] = a_nodes;
    argv[k++] = a_tasks;
    argv[k++] = a_cpus;
    argv[k++] = a_out;
    if (c->slurm_partition[0]) snprintf(a_part, sizeof a_part, "--partition=%s", c->slurm_partition), argv[k++] = a_part;
    if (c->slurm_account[0]) snprintf(a_acct, sizeof a_acct, "--account=%s", c->slurm_account), argv[k++] = a_acct;
    if (c->slurm_time[0]) snprintf(a_time, sizeof a_time, "--time=%s", c->slurm_time), argv[k++] = a_time;
    char flags[sizeof c->slurm_sbatch_flags];
    snprintf(flags, sizeof flags, "%s", c->slurm_sbatch_flags);
    for (char *save = NULL, *f = strtok_r(flags, " ", &save); f && k < 90; f = strtok_r(NULL, " ", &save))
        argv[k++] = f;
    argv[k++] = (char *)c->slurm_script;
    argv[k] = NULL;
    char e_run[64], e_conn[340], e_bin[600], e_models[600], e_data[600], e_thr[48], e_blas[48], e_tok[300];
    snprintf(e_run, sizeof e_run, "SPINQ_RUN=%lld", (long long)r->run_id);
    snprintf(e_conn, sizeof e_conn, "SPINQD_CONNECT=%s", g_connect);
    snprintf(e_bin, sizeof e_bin, "SPINQ_WORKER_BIN=%s", c->slurm_worker_bin[0] ? c->slurm_worker_bin : c->worker_bin);
    snprintf(e_models, sizeof e_models, "SPINQ_MODELS_DIR=%s", c->models_dir);
    snprintf(e_data, sizeof e_data, "SPINQ_DATASETS_DIR=%s", c->datasets_dir);
    snprintf(e_thr, sizeof e_thr, "SPINQ_THREADS=%d", threads);
    snprintf(e_blas, sizeof e_blas, "OPENBLAS_NUM_THREADS=%d", threads);
    snprintf(e_tok, sizeof e_tok, "SPINQ_WORKER_TOKEN=%s", g_token);
    char *env[] = {e_run, e_conn, e_bin, e_models, e_data, e_thr, e_blas, g_token[0] ? e_tok : NULL, NULL};
    char out[1024];
    int rc = run_cmd(argv, env, out, sizeof out);
    /* --parsable: "ID" or "ID;CLUSTER" */
    size_t idlen = strspn(out, "0123456789");
    if (rc || !idlen || idlen >= 32) {
        for (char *p = out; *p; p++) /* one line for the run's reason */
            if (*p == '\n' || *p == '\r') *p = ' ';
        snprintf(why, why_cap, "sbatch failed (exit %d): %.300s", rc, out);
        return -1;
    }
    snprintf(job, 32, "%.*s", (int)idlen, out);
    log_info("run %lld: submitted as Slurm job %s (%d node%s, %d task%s, %d thread%s each)", (long long)r->run_id, job,
             nodes, nodes == 1 ? "" : "s", tasks, tasks == 1 ? "" : "s", threads, threads == 1 ? "" : "s");
    return 0;
}

static void scancel(const char *job, int64_t run_id) {
    char out[512];
    char *argv[] = {"scancel", (char *)job, NULL};
    int rc = run_cmd(argv, NULL, out, sizeof out);
    if (rc) log_warn("run %lld: scancel %s failed (exit %d): %.200s", (long long)run_id, job, rc, out);
    else log_info("run %lld: Slurm job %s canceled", (long long)run_id, job);
}

/* A running run being canceled: its worker hears CANCEL and ends the run
 * itself ("canceled while running"), and the job is scancel'ed once the
 * run is canceled; a worker that has not done so within CANCEL_GRACE
 * seconds gets scancel all the same. When each cancel was first seen (only
 * passes touch this, one at a time). */
enum { CANCEL_GRACE = 5, MAX_CANCELS = 64 };
static struct {
    int64_t run_id;
    double seen;
} g_cancels[MAX_CANCELS];

static int cancel_overdue(int64_t run_id) {
    double now = spq_now();
    int free_slot = -1;
    for (int i = 0; i < MAX_CANCELS; i++) {
        if (g_cancels[i].run_id == run_id) return now - g_cancels[i].seen >= CANCEL_GRACE;
        if (free_slot < 0 && (!g_cancels[i].run_id || now - g_cancels[i].seen > 3600)) free_slot = i;
    }
    if (free_slot < 0) return 1; /* too many at once: no grace */
    g_cancels[free_slot].run_id = run_id;
    g_cancels[free_slot].seen = now;
    return 0;
}

static void poll_work_cb(uv_work_t *req) {
    poll_work *w = (poll_work *)req;
    sqlite3 *db = db_get();
    if (!db) return;
    int n;
    store_slurm_run *runs = store_slurm_runs(db, &n);
    if (!runs) return;
    int live = 0;
    for (int i = 0; i < n; i++) live += runs[i].job_id[0] && !runs[i].ended;
    job_row *jobs = NULL;
    int n_jobs = 0;
    if (live && squeue_all(&jobs, &n_jobs)) goto out; /* slurmctld unreachable: change nothing */
    for (int i = 0; i < n; i++) {
        store_slurm_run *r = &runs[i];
        if (!r->job_id[0] || r->ended) continue;
        const job_row *j = NULL;
        for (int k = 0; k < n_jobs && !j; k++)
            if (!strcmp(jobs[k].id, r->job_id)) j = &jobs[k];
        const char *state = j ? j->state : "GONE";
        int ended = state_ended(state);
        store_slurm_state(db, r->run_id, state, j ? j->nodes : NULL, ended);
        int finished = strcmp(r->status, "queued") && strcmp(r->status, "running");
        int canceling = r->cancel_requested && !strcmp(r->status, "running");
        if (!ended && ((canceling && cancel_overdue(r->run_id)) || (finished && strcmp(r->status, "done")))) {
            scancel(r->job_id, r->run_id);
            continue;
        }
        if (!ended) continue;
        char why[160];
        snprintf(why, sizeof why, "Slurm job %s ended (%s)", r->job_id, state);
        if (!strcmp(r->status, "running") && w->n_lost < MAX_LOST) {
            w->lost[w->n_lost] = r->run_id;
            snprintf(w->lost_why[w->n_lost++], sizeof w->lost_why[0], "%s", why);
        } else if (!strcmp(r->status, "queued") && !r->claimed) {
            char reason[200];
            snprintf(reason, sizeof reason, "%s before its worker took the run", why);
            log_warn("run %lld: %s", (long long)r->run_id, reason);
            store_slurm_lost(db, r->run_id, reason, g_cfg->max_attempts);
        }
        r->job_id[0] = 0; /* a new job at the next pass, when the run is still queued */
        r->ended = 0;
        r->status[0] = 0;
    }
    for (int i = 0; i < n && !w->draining; i++) {
        store_slurm_run *r = &runs[i];
        if (strcmp(r->status, "queued") || r->cancel_requested || (r->job_id[0] && !r->ended)) continue;
        char job[32], why[400];
        if (submit(r, job, why, sizeof why)) {
            log_warn("run %lld: %s", (long long)r->run_id, why);
            store_slurm_lost(db, r->run_id, why, g_cfg->max_attempts);
        } else {
            store_slurm_submitted(db, r->run_id, job);
        }
    }
out:
    free(jobs);
    store_slurm_runs_free(runs, n);
}

/* ---- the loop's side ---- */

static void poll_done(uv_work_t *req, int status) {
    poll_work *w = (poll_work *)req;
    for (int i = 0; i < w->n_lost; i++)
        for (wconn *wc = wconn_list, *next; wc; wc = next) {
            next = wc->next;
            if (wc->run_id == w->lost[i]) wconn_close(wc, w->lost_why[i], 0);
        }
    free(w);
    g_in_flight = 0;
    g_last = spq_now();
}

void slurm_tick(int soon, int draining) {
    if (!g_cfg || !g_cfg->executor_slurm) return;
    if (soon) g_soon = 1;
    if (g_in_flight || (!g_soon && spq_now() - g_last < g_cfg->slurm_poll)) return;
    poll_work *w = spq_calloc(1, sizeof *w);
    w->draining = draining;
    if (uv_queue_work(g_loop, &w->req, poll_work_cb, poll_done)) {
        free(w);
        return;
    }
    g_in_flight = 1;
    g_soon = 0;
}

/* The address the jobs' workers connect to: slurm_connect, else
 * worker_listen with a wildcard host replaced by this host's name. */
static int connect_address(spq_err *err) {
    const spqd_config *c = g_cfg;
    if (c->slurm_connect[0]) {
        snprintf(g_connect, sizeof g_connect, "%s", c->slurm_connect);
        return 0;
    }
    if (!c->worker_listen[0])
        return spq_fail(err, "executor slurm: the jobs' workers connect to worker_listen, which is off; set "
                             "worker_listen (and slurm_connect when they reach it by another name)");
    char host[200];
    int port;
    if (config_split_hostport(c->worker_listen, host, sizeof host, &port, err)) return spq_fail_prefix(err, "worker_listen");
    if (!port) return spq_fail(err, "executor slurm: worker_listen has port 0; set slurm_connect");
    if (!strcmp(host, "0.0.0.0") || !strcmp(host, "::") || !host[0]) {
        char name[200] = "localhost";
        gethostname(name, sizeof name);
        name[sizeof name - 1] = 0;
        snprintf(host, sizeof host, "%s", name);
    }
    snprintf(g_connect, sizeof g_connect, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    return 0;
}

static int on_path(const char *prog) {
    const char *path = getenv("PATH");
    char buf[1200];
    for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
        size_t n = strcspn(p, ":");
        snprintf(buf, sizeof buf, "%.*s/%s", (int)n, p, prog);
        if (access(buf, X_OK) == 0) return 1;
        p += n + (p[n] == ':');
    }
    return 0;
}

int slurm_start(uv_loop_t *loop, const spqd_config *cfg, spq_err *err) {
    g_loop = loop;
    g_cfg = cfg;
    if (!cfg->executor_slurm) return 0;
    static const char *const progs[] = {"sbatch", "squeue", "scancel", NULL};
    for (const char *const *p = progs; *p; p++)
        if (!on_path(*p)) return spq_fail(err, "executor slurm: %s is not on PATH (Debian: apt install slurm-client)", *p);
    if (!cfg->slurm_script[0] || access(cfg->slurm_script, R_OK))
        return spq_fail(err, "executor slurm: slurm_script '%s' cannot be read (deploy/slurm/spinq-run.sbatch)",
                        cfg->slurm_script);
    if (connect_address(err)) return -1;
    if (cfg->slurm_token_file[0]) {
        FILE *f = fopen(cfg->slurm_token_file, "r");
        if (!f) return spq_fail(err, "slurm_token_file %s: %s", cfg->slurm_token_file, strerror(errno));
        if (!fgets(g_token, sizeof g_token, f)) g_token[0] = 0;
        fclose(f);
        g_token[strcspn(g_token, "\r\n")] = 0;
        if (!g_token[0]) return spq_fail(err, "slurm_token_file %s: empty", cfg->slurm_token_file);
    }
    char logs[600];
    snprintf(logs, sizeof logs, "%s/slurm", cfg->data_dir);
    mkdir(logs, 0755);
    if (!realpath(logs, g_logs)) return spq_fail(err, "%s: %s", logs, strerror(errno));
    log_info("executor: slurm (workers connect to %s; script %s; job output in %s)", g_connect, cfg->slurm_script,
             g_logs);
    g_soon = 1;
    return 0;
}
