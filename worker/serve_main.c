/* serve_main.c - `spinq-worker serve MODEL [--listen HOST:PORT] [--slots N]
 * [--ctx N] [--queue N] [--alias NAME] [quantization and rotation flags]`.
 *
 * MODEL is what `spinq generate` takes (llama2.c .bin, HF directory, packed
 * .spq); the flags of qflags.h make a fake-quantized model of a
 * full-precision one. The HTTP side starts first and prints
 * "listening on http://HOST:PORT" on stdout (port 0 picks a free one);
 * /health answers 503 until the model is loaded, then the engine starts.
 * SIGTERM or SIGINT ends the process; --die-with-parent makes the death of
 * the process that started it (spinqd) send SIGTERM. */
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/base/sha256.h"
#include "common/base/util.h"
#include "common/io/load.h"
#include "worker/args.h"
#include "worker/qflags.h"
#include "worker/serve.h"

srv_t srv;

static spq_rotflags g_rf;
static spq_qcfg g_q;
static int g_quantize;

static int usage(void) {
    fprintf(stderr, "usage: spinq-worker serve MODEL [--listen HOST:PORT] [--slots N] [--ctx N] [--queue N] "
                    "[--alias NAME]\n"
                    "       [--w-bits B ... --a-bits B --kv-bits B] [--rotation FILE|hadamard|random] [--mode had|no-had] "
                    "[--seed S]\n");
    return 2;
}

static void file_info(const char *path) {
    struct stat st;
    if (stat(path, &st) || !S_ISREG(st.st_mode)) {
        char p2[4096];
        snprintf(p2, sizeof p2, "%s/model.safetensors", path);
        if (!stat(p2, &st)) srv.file_size = st.st_size;
        return;
    }
    srv.file_size = st.st_size;
    FILE *f = fopen(path, "rb");
    if (!f) return;
    spq_sha256 h;
    spq_sha256_init(&h);
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) spq_sha256_update(&h, buf, n);
    fclose(f);
    spq_sha256_hex_final(&h, srv.sha256);
}

static void read_template(void) {
    char *tok_path = NULL, *cfg_path = NULL, *data = NULL;
    size_t len;
    spq_err err;
    if (!spq_tok_files_for_model(&tok_path, &cfg_path, srv.model_path, &err) && cfg_path &&
        !spq_read_file(&data, &len, cfg_path, &err)) {
        json_t *j = json_loadb(data, len, 0, NULL);
        json_t *t = json_object_get(j, "chat_template");
        if (json_is_array(t)) { /* [{name, template}]: the default one */
            size_t i;
            json_t *e, *first = NULL;
            json_array_foreach(t, i, e) {
                if (!first) first = json_object_get(e, "template");
                if (!strcmp(json_string_value(json_object_get(e, "name")) ?: "", "default"))
                    first = json_object_get(e, "template");
            }
            t = first;
        }
        if (json_is_string(t)) srv.chat_template = spq_strdup(json_string_value(t));
        json_decref(j);
    }
    free(data);
    free(tok_path);
    free(cfg_path);
    srv.template_kind = srv_template_kind(srv.chat_template);
}

static void *loader(void *arg) {
    (void)arg;
    spq_err err;
    int rc = g_quantize ? spq_load_quantized(&srv.m, srv.model_path, &g_rf, &g_q, &err)
                        : spq_model_load(&srv.m, srv.model_path, &err);
    if (!rc && spq_tok_load_for_model(&srv.tok, srv.model_path, &err)) {
        spq_model_free(&srv.m);
        rc = 1;
    }
    if (rc) {
        snprintf(srv.load_error, sizeof srv.load_error, "%s", err.msg);
        fprintf(stderr, "spinq-worker serve: %s\n", err.msg);
        srv.load_failed = 1;
        return NULL;
    }
    const spq_config *c = &srv.m.cfg;
    if (!srv.ctx) srv.ctx = c->seq_len < 4096 ? c->seq_len : 4096;
    long long qd = (long long)c->n_heads * c->head_dim, kvd = (long long)c->n_kv_heads * c->head_dim;
    srv.n_params = (long long)c->vocab_size * c->dim * (c->tied ? 1 : 2) + c->dim +
                   (long long)c->n_layers * (c->dim * (2 * qd + 2 * kvd) + 3LL * c->dim * c->hidden_dim + 2 * c->dim);
    file_info(srv.model_path);
    spq_qcfg_describe(srv.quant_desc, sizeof srv.quant_desc, &srv.m.q);
    snprintf(srv.rotation, sizeof srv.rotation, "%s",
             srv.m.packed ? "packed" : g_rf.rotation ? g_rf.rotation : "none");
    read_template();
    srv_engine_start();
    __atomic_store_n(&srv.loaded, 1, __ATOMIC_RELEASE);
    fprintf(stderr, "spinq-worker serve: %s loaded: %d slots, context %d, %s\n", srv.alias, srv.n_slots, srv.ctx,
            srv.quant_desc);
    return NULL;
}

int spq_worker_serve(int argc, char **argv) {
    srv.listen = "127.0.0.1:8080";
    srv.n_slots = 4;
    srv.queue_max = -1;
    srv.chunk = 256;
    g_q = spq_qcfg_off();
    memset(&g_rf, 0, sizeof g_rf);
    g_rf.online = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int bad = 0, f;
        if (!strcmp(a, "--listen")) bad = spq_arg_str(&srv.listen, argc, argv, &i, "serve");
        else if (!strcmp(a, "--slots")) bad = spq_arg_int(&srv.n_slots, argc, argv, &i, "serve", 1, 256);
        else if (!strcmp(a, "--ctx")) bad = spq_arg_int(&srv.ctx, argc, argv, &i, "serve", 8, 1 << 16);
        else if (!strcmp(a, "--queue")) bad = spq_arg_int(&srv.queue_max, argc, argv, &i, "serve", 0, 1 << 16);
        else if (!strcmp(a, "--alias")) bad = spq_arg_str(&srv.alias, argc, argv, &i, "serve");
        else if (!strcmp(a, "--die-with-parent")) prctl(PR_SET_PDEATHSIG, SIGTERM); /* started by spinqd */
        else if ((f = spq_qflag(&g_q, argc, argv, &i, "serve")) || (f = spq_rotflag(&g_rf, argc, argv, &i, "serve"))) {
            if (f < 0) return 2;
            g_quantize = 1;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "spinq-worker serve: unknown flag %s\n", a);
            return usage();
        } else if (!srv.model_path) srv.model_path = a;
        else return usage();
        if (bad) return 2;
    }
    if (!srv.model_path) return usage();
    if (srv.queue_max < 0) srv.queue_max = 4 * srv.n_slots;
    if (!srv.alias) {
        const char *b = strrchr(srv.model_path, '/');
        b = b && b[1] ? b + 1 : srv.model_path;
        srv.alias = b;
    }
    pthread_mutex_init(&srv.mu, NULL);
    pthread_cond_init(&srv.engine_cv, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* threads inherit the mask; the main thread waits for them */
    signal(SIGPIPE, SIG_IGN);
    char err[512];
    struct MHD_Daemon *d = srv_http_start(srv.listen, err, sizeof err);
    if (!d) {
        fprintf(stderr, "spinq-worker serve: %s\n", err);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    char host[256];
    snprintf(host, sizeof host, "%.*s", (int)(strrchr(srv.listen, ':') - srv.listen), srv.listen);
    printf("listening on http://%s:%u\n", host, info ? info->port : 0);
    fflush(stdout);
    pthread_t lt;
    pthread_create(&lt, NULL, loader, NULL);
    pthread_detach(lt);
    int sig;
    sigwait(&set, &sig);
    fprintf(stderr, "spinq-worker serve: stopping (signal %d)\n", sig);
    /* streams may be blocked in their readers: end the process without joining them */
    _exit(0);
}
