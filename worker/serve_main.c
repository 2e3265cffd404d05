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
#include "common/quant/qmodel.h"
#include "worker/args.h"
#include "worker/cli_session.h"
#include "worker/qflags.h"
#include "worker/serve.h"

srv_t srv;

static cli_rotflags g_rf;
static spq_qcfg g_q;

/* --help on stdout (exit 0); a wrong command line on stderr (exit 2) */
static int usage(FILE *f) {
    fprintf(f, "usage: spinq-worker serve MODEL [--listen HOST:PORT] [--slots N] [--ctx N] [--queue N] "
               "[--alias NAME] [--reference MODEL]\n"
               "       [--w-bits B ... --a-bits B --kv-bits B] [--rotation FILE|hadamard|random] [--mode had|no-had] "
               "[--seed S]\n"
               "  MODEL          anything spinq generate takes; the quantization and rotation flags are spinq ppl's\n"
               "  --listen       default 127.0.0.1:8080\n"
               "  --slots N      sequences decoded together (default 4)\n"
               "  --ctx N        tokens per sequence (default: the model's context, at most 4096)\n"
               "  --queue N      sequences waiting beyond the slots before a 503 (default 4 x slots)\n"
               "  --reference M  the full-precision model POST /compare compares with\n");
    return f == stdout ? 0 : 2;
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

/* The served model as a job prepares it: loaded, and with rotation or
 * quantizer flags fused, rotated and quantized (weights round-to-nearest)
 * by the pipeline; the pipeline's model and tokenizer are taken over. */
static int prepare(spq_err *err) {
    pl_pipeline p;
    cli_spec_start(&p, srv.model_path);
    cli_spec_quant(&p.spec, &g_rf, &g_q);
    p.local.keep_model = 1;
    cli_session ses = {.cmd = "serve"};
    char field[SPQ_FIELD_MAX];
    int rc = spq_jobspec_check(&p.spec, field, err);
    if (!rc && cli_session_run(&ses, &p) != PL_STAGE_OK) rc = spq_fail(err, "%s", p.err.msg);
    if (!rc) {
        srv.m = p.model;
        srv.tok = p.tok;
        p.model_loaded = 0;
        p.tok = NULL;
    }
    pl_pipeline_free(&p);
    return rc;
}

/* The full-precision model that /compare measures the served one against. */
static int load_reference(spq_err *err) {
    if (!srv.ref_path) return 0;
    if (spq_model_load(&srv.ref, srv.ref_path, err)) return spq_fail_prefix(err, "--reference");
    const spq_config *a = &srv.m.cfg, *b = &srv.ref.cfg;
    if (a->vocab_size != b->vocab_size) {
        spq_model_free(&srv.ref);
        return spq_fail(err, "--reference %s: a vocabulary of %d tokens, the served model has %d", srv.ref_path,
                        b->vocab_size, a->vocab_size);
    }
    srv.have_ref = 1;
    return 0;
}

static void *loader(void *arg) {
    (void)arg;
    spq_err err;
    if (prepare(&err) || load_reference(&err)) {
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
    srv.chat_template = spq_model_chat_template(srv.model_path);
    srv.template_kind = srv_template_kind(srv.chat_template);
    srv_engine_start();
    __atomic_store_n(&srv.loaded, 1, __ATOMIC_RELEASE);
    fprintf(stderr, "spinq-worker serve: %s loaded: %d slots, context %d, %s\n", srv.alias, srv.n_slots, srv.ctx,
            srv.quant_desc);
    return NULL;
}

int srv_main(int argc, char **argv) {
    srv.listen = "127.0.0.1:8080";
    srv.n_slots = 4;
    srv.queue_max = -1;
    srv.chunk = 256;
    g_q = spq_qcfg_off();
    memset(&g_rf, 0, sizeof g_rf);
    g_rf.online = 1;
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) return usage(stdout);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int bad = 0, f;
        if (!strcmp(a, "--listen")) bad = cli_arg_str(&srv.listen, argc, argv, &i, "serve");
        else if (!strcmp(a, "--slots")) bad = cli_arg_int(&srv.n_slots, argc, argv, &i, "serve", 1, 256);
        else if (!strcmp(a, "--ctx")) bad = cli_arg_int(&srv.ctx, argc, argv, &i, "serve", 8, 1 << 16);
        else if (!strcmp(a, "--queue")) bad = cli_arg_int(&srv.queue_max, argc, argv, &i, "serve", 0, 1 << 16);
        else if (!strcmp(a, "--alias")) bad = cli_arg_str(&srv.alias, argc, argv, &i, "serve");
        else if (!strcmp(a, "--reference")) bad = cli_arg_str(&srv.ref_path, argc, argv, &i, "serve");
        else if (!strcmp(a, "--die-with-parent")) prctl(PR_SET_PDEATHSIG, SIGTERM); /* started by spinqd */
        else if ((f = cli_qflag(&g_q, argc, argv, &i, "serve")) || (f = cli_rotflag(&g_rf, argc, argv, &i, "serve"))) {
            if (f < 0) return 2;
        } else if (cli_arg_positional(&srv.model_path, a, "serve")) return usage(stderr);
        if (bad) return 2;
    }
    if (!srv.model_path) return usage(stderr);
    if (srv.queue_max < 0) srv.queue_max = 4 * srv.n_slots;
    if (!srv.alias) {
        const char *b = strrchr(srv.model_path, '/');
        b = b && b[1] ? b + 1 : srv.model_path;
        srv.alias = b;
    }
    pthread_mutex_init(&srv.mu, NULL);
    pthread_cond_init(&srv.engine_cv, NULL);
    pthread_cond_init(&srv.cmp_cv, NULL);
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
