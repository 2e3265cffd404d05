/* memest.c - see memest.h. Every formula below mirrors the allocations of
 * the code it estimates (named beside it), in bytes:
 *
 *   fp32 model   P x 4, P = spq_model_nparams' count
 *   layer buffer the seven linears of one layer in fp32 (mapped.c), and
 *                once rotated the embedding and classifier in fp32: what a
 *                mapped model holds until a stage materializes it
 *   eval         (mapped ? layer buffer : fp32 model)
 *                + state for B windows of T (forward.c spq_state_build:
 *                  KV cache L*B*T*kvd*2 in fp32, or a packed model's in
 *                  its bits, and per token 2d + 2qd + 2kvd + 2H + T
 *                  scores) + logits B*T*V
 *   gptq         fp32 model + calibration inputs ns*T*d (gptq.c) + the
 *                widest site's H fp64 Cmax^2 + the larger of its two phases:
 *                collecting (one call's X^T X in fp32 Cmax^2 + the state
 *                for a call of up to 8 windows and 4096 tokens, a KV cache
 *                of one layer) and factoring (A fp64 Cmax^2, U in its place,
 *                and three copies of a weight)
 *   learn        the weights (fp32 model; mapped: the fused embedding and
 *                classifier in fp32 + one layer converted) + trainer
 *                (train.c spq_trainer_build): xs (L+1)*N*d, forward and
 *                backward activations of one layer N*(6d + 4qd + 4kvd + 6H
 *                + 2), attention scratch 2T^2, logits chunk*V, the rotated
 *                weights of one layer and their gradient, R1/R2 and their
 *                gradients, one layer's W_down M4^T d*H when online
 *                Hadamards are on; in fp64 the rotation itself (R1 d^2, R2
 *                L*hd^2) and the Cayley step's five d^2 matrices for R1
 *   streamed     (quant/qpack.h) the embedding and classifier in fp32 when
 *                rotated (from quantize on in 16 bits when the packed file
 *                holds them so: while narrowing, both in fp32 and one in 16
 *                bits) + the packed linears + one layer in fp32, in place
 *                of the fp32 model in every stage; write adds the packed
 *                model's embedding and classifier
 *   rotating     a layer: its widest linear in fp64 and the product, 16
 *                bytes a weight (rotation.c), at rotate and, streamed, in
 *                quantize
 *   packed model its weights as loaded (packed linears, 16-bit or fp32
 *                tables: spq_packed_bytes) in place of the fp32 model or
 *                the layer buffer in every stage
 *   disk         packed linears P_lin*w_bits/8 + fp32 scale and zero per
 *                group + embeddings (and an untied classifier) at emb_bytes
 *                + the rotation file d^2 + L*hd^2 floats + 1 MiB of results
 *
 * A spec's worst stage is the one that refuses; the estimate ignores small
 * tables (rope, positions, per-group parameters in memory) and malloc's
 * slack, which the tests measure at well under 2x. */
#include "memest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

typedef struct {
    uint64_t d, H, L, V, hd, qd, kvd, ctx;
    uint64_t n_kv, kv_bits; /* kv_bits: a packed model's integer KV cache, else 0 */
} shapes;

static shapes shapes_of(const spq_config *c) {
    shapes z = {(uint64_t)c->dim, (uint64_t)c->hidden_dim, (uint64_t)c->n_layers, (uint64_t)c->vocab_size,
                (uint64_t)c->head_dim, 0, 0, (uint64_t)c->seq_len, (uint64_t)c->n_kv_heads, 0};
    z.qd = (uint64_t)c->n_heads * z.hd;
    z.kvd = (uint64_t)c->n_kv_heads * z.hd;
    if (c->kv_cache_bits > 0 && c->kv_cache_bits < SPQ_QUANT_OFF) z.kv_bits = (uint64_t)c->kv_cache_bits;
    return z;
}

/* parameters of one layer's seven linears */
static uint64_t layer_linear_params(const shapes *z) {
    return 2 * z->qd * z->d + 2 * z->kvd * z->d + 3 * z->H * z->d;
}

/* weights of the widest linear (gate/up, or q/o when wider) */
static uint64_t widest_linear(const shapes *z) {
    return z->H * z->d > z->qd * z->d ? z->H * z->d : z->qd * z->d;
}

uint64_t spq_memest_fp32_model(const spq_config *c) {
    shapes z = shapes_of(c);
    uint64_t n = z.V * z.d * (c->tied ? 1 : 2) + z.L * (layer_linear_params(&z) + 2 * z.d) + z.d;
    return n * 4;
}

/* spq_state_build(c, B, T, B*T) with a KV cache of `layers` layers: fp32,
 * or a packed model's codes with a scale and zero per head for K and V and
 * one layer's K and V dequantized */
static uint64_t forward_state(const shapes *z, uint64_t layers, uint64_t B, uint64_t T) {
    uint64_t N = B * T, kv = layers * N * z->kvd * 2 * 4;
    if (z->kv_bits) {
        uint64_t row = z->kv_bits <= 4 ? (z->kvd + 1) / 2 : z->kvd;
        kv = layers * N * 2 * (row + 2 * z->n_kv * 4) + 2 * T * z->kvd * 4;
    }
    uint64_t per_token = 2 * z->d + 2 * z->qd + 2 * z->kvd + 2 * z->H + T;
    return kv + N * per_token * 4;
}

/* the evaluation's window: the command's --seqlen, else the longest
 * eval.ppl window, else the model's context capped at 2048 */
static uint64_t eval_seqlen(const shapes *z, const spq_jobspec *s, const spq_memest_opts *o) {
    uint64_t def = z->ctx < 2048 ? z->ctx : 2048, T = 0;
    if (o->eval_seqlen > 0) return (uint64_t)o->eval_seqlen;
    for (int i = 0; i < s->eval.n_ppl; i++) {
        uint64_t t = s->eval.ppl[i].seqlen > 0 ? (uint64_t)s->eval.ppl[i].seqlen : def;
        if (t > T) T = t;
    }
    return T ? T : def;
}

/* worker/pipeline_eval.c ppl_batch: 4 windows, fewer when their logits pass 512 MiB */
static uint64_t eval_batch(const shapes *z, uint64_t T, const spq_memest_opts *o) {
    if (o->eval_batch > 0) return (uint64_t)o->eval_batch;
    uint64_t b = (512ull << 20) / (T * z->V * 4);
    return b < 1 ? 1 : b > 4 ? 4 : b;
}

static uint64_t eval_need(const shapes *z, const spq_jobspec *s, const spq_memest_opts *o, uint64_t base) {
    uint64_t T = eval_seqlen(z, s, o), B = eval_batch(z, T, o);
    return base + forward_state(z, z->L, B, T) + B * T * z->V * 4;
}

static uint64_t gptq_need(const shapes *z, const spq_jobspec *s, uint64_t fp32) {
    uint64_t T = (uint64_t)s->weights.seqlen < z->ctx ? (uint64_t)s->weights.seqlen : z->ctx;
    uint64_t ns = (uint64_t)s->weights.nsamples, batch = 4096 / T; /* gptq.c calib_batch */
    if (batch > 8) batch = 8;
    if (batch > ns) batch = ns;
    if (batch < 1) batch = 1;
    uint64_t cmax = z->d > z->H ? z->d : z->H;
    if (z->qd > cmax) cmax = z->qd;
    uint64_t inps = ns * T * z->d * 4, hess = cmax * cmax * 8;
    uint64_t collect = cmax * cmax * 4 + forward_state(z, 1, batch, T); /* spq_state_build_one_layer */
    uint64_t factor = cmax * cmax * 8 + 3 * cmax * (z->H > z->d ? z->d : z->H) * 4;
    return fp32 + inps + hess + (collect > factor ? collect : factor);
}

/* weights: what the trainer reads them from (the fp32 model, or a mapped
 * model's fp32 ends and converted layer) */
static uint64_t learn_need(const shapes *z, const spq_jobspec *s, uint64_t weights) {
    uint64_t T = (uint64_t)s->rotation.train.seqlen < z->ctx ? (uint64_t)s->rotation.train.seqlen : z->ctx;
    uint64_t N = (uint64_t)s->rotation.train.batch * T;
    uint64_t chunk = (1ull << 24) / z->V;
    chunk = chunk < 1 ? 1 : chunk > N ? N : chunk;
    uint64_t acts = (z->L + 1) * N * z->d + N * (6 * z->d + 4 * z->qd + 4 * z->kvd + 6 * z->H + 2);
    uint64_t wmax = widest_linear(z);
    uint64_t rotated = layer_linear_params(z) + z->kvd * z->d + z->d * z->qd + wmax +
                       z->d * (z->d > z->qd ? z->d : z->qd);
    uint64_t rots = 2 * (z->d * z->d + z->L * z->hd * z->hd);
    uint64_t fold = s->rotation.online_had ? z->d * z->H : 0;
    uint64_t fp64 = 6 * z->d * z->d + z->L * z->hd * z->hd; /* the rotation, and cayley.c's workspace for R1 */
    return weights + (acts + 2 * T * T + chunk * z->V + rotated + rots + fold) * 4 + fp64 * 8;
}

/* the linears packed: codes and a scale and zero per group */
static uint64_t packed_linears(const shapes *z, const spq_jobspec *s) {
    uint64_t bits = s->quant.w_bits < 16 ? (uint64_t)s->quant.w_bits : 16;
    uint64_t lin = z->L * layer_linear_params(z);
    uint64_t gs = s->quant.w_groupsize > 0 ? (uint64_t)s->quant.w_groupsize : z->d;
    return lin * bits / 8 + lin / gs * 8;
}

/* the packed model (or GGUF file) the write stage leaves */
static uint64_t model_file(const shapes *z, const spq_config *c, const spq_jobspec *s, const spq_memest_opts *o) {
    uint64_t emb = z->V * z->d * (c->tied ? 1 : 2) * (uint64_t)(o->emb_bytes > 0 ? o->emb_bytes : 4);
    return packed_linears(z, s) + emb + (2 * z->L + 1) * z->d * 4;
}

static const char *const HINT_STREAMED =
    "the packed model, one layer in fp32 and (rotated) the embedding and classifier in fp32 need this much: "
    "run it on a machine with more memory";

static void add(spq_memest *e, const char *stage, uint64_t anon, const char *hint) {
    if (e->n >= SPQ_MEMEST_MAX_STAGES) return;
    e->st[e->n++] = (spq_memest_stage){stage, anon, hint};
}

static const char *const HINT_MODEL =
    "the model in fp32 alone needs this much: run it on a machine with more memory, or evaluate it without "
    "rotating or quantizing (its weights then stay in their files)";

void spq_memest_compute(spq_memest *e, const spq_config *c, const spq_jobspec *s, const spq_memest_opts *o) {
    memset(e, 0, sizeof *e);
    shapes z = shapes_of(c);
    uint64_t fp32 = spq_memest_fp32_model(c);
    int rotated = s->rotation.mode != SPQ_ROT_NONE;
    int quantized = s->quant.w_bits < 16 || s->quant.a_bits < 16 || s->quant.kv_bits < 16;
    int evaluated = s->eval.n_ppl > 0 || s->eval.kld || s->eval.n_tasks > 0;
    /* quantizing the weights (not streamed), a GGUF write, serving and the
     * evaluation of a rotated model materialize the weights; otherwise a
     * mapped model holds one layer's buffer, and once rotated (or learned
     * on) its embedding and classifier in fp32: fusing and rotating are
     * recorded, and `spinq rotate` (learning alone) never converts the model */
    int materialized = !o->streamed && (!o->mapped || o->keep_model || o->gguf || s->quant.w_bits < 16 ||
                                        (rotated && evaluated));
    uint64_t layer = layer_linear_params(&z) * 4;
    uint64_t base = materialized ? fp32 : layer + (rotated ? z.V * z.d * 8 : 0), quantized_base = base;
    uint64_t narrowing = 0; /* mapped.c spq_mapped_ends_16: both fp32 tables and one 16-bit one */
    if (o->streamed) { /* the embedding and classifier in fp32 once rotated, the packed layers, one layer in fp32 */
        base = (rotated ? z.V * z.d * 8 : 0) + packed_linears(&z, s) + layer;
        /* from quantize on, in the packed file's 16 bits when it has them (pipeline_quant.c ends_as_written) */
        int narrowed = rotated && o->emb_bytes == 2 && s->quant.w_bits <= 4 && !o->gguf && !o->no_model;
        quantized_base = base - (narrowed ? z.V * z.d * 4 : 0);
        narrowing = narrowed ? z.V * z.d * 10 : 0;
    }
    if (o->resident) base = quantized_base = o->resident; /* a packed model: taken as it is */
    const char *hint_model = o->streamed ? HINT_STREAMED : HINT_MODEL;
    /* rotating a layer (rotation.c rotate_layer) widens its widest linear
     * to fp64 beside the product: 0.9 GB at 8B, each time a layer is rotated */
    uint64_t rot_tmp = rotated ? 16 * widest_linear(&z) : 0;
    if (rotated) {
        add(e, "fuse", base, hint_model);
        add(e, "rotate", base + (z.d * z.d + z.L * z.hd * z.hd) * 4 + rot_tmp, hint_model);
    }
    if (s->rotation.mode == SPQ_ROT_SPINQUANT)
        add(e, "learn", learn_need(&z, s, o->mapped && !o->keep_model ? z.V * z.d * 8 + layer : fp32),
            "a smaller rotation.train.batch or rotation.train.seqlen");
    if (quantized) {
        int gptq = s->quant.w_bits < 16 && s->weights.method == SPQ_WQ_GPTQ;
        uint64_t q = gptq ? gptq_need(&z, s, quantized_base) : quantized_base;
        if (o->streamed && q < quantized_base + rot_tmp) q = quantized_base + rot_tmp; /* each layer rotated as it comes */
        if (q < narrowing) q = narrowing;
        add(e, "quantize", q,
            gptq ? "fewer calibration windows (weights.nsamples, --nsamples) or shorter ones (weights.seqlen, --seqlen)"
                 : hint_model);
    }
    if (quantized) base = quantized_base;
    if (evaluated)
        add(e, "evaluate", eval_need(&z, s, o, base), "fewer windows per call (--batch) or shorter ones (--seqlen)");
    /* a streamed model's packed copy of the embedding and classifier */
    uint64_t emb = o->streamed ? z.V * z.d * (c->tied ? 1 : 2) * (uint64_t)(o->emb_bytes > 0 ? o->emb_bytes : 4) : 0;
    add(e, "write", base + emb, hint_model);
    for (int i = 1; i < e->n; i++)
        if (e->st[i].anon > e->st[e->peak].anon) e->peak = i;
    int packs = (s->quant.w_bits >= 2 && s->quant.w_bits <= 4) || o->gguf;
    if (packs && !o->no_model) e->disk += model_file(&z, c, s, o);
    if (rotated) e->disk += (z.d * z.d + z.L * z.hd * z.hd) * 4;
    e->disk += 1u << 20;
}

/* the value of an environment override in KiB, as bytes; 0 when unset */
static uint64_t env_kib(const char *name, int *set) {
    const char *v = getenv(name);
    *set = v && *v;
    return *set ? strtoull(v, NULL, 10) * 1024 : 0;
}

/* one "Key: N kB" line of /proc/meminfo, bytes; 0 when missing */
static uint64_t meminfo_kib(const char *key) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    size_t kl = strlen(key);
    uint64_t v = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            v = strtoull(line + kl + 1, NULL, 10) * 1024;
            break;
        }
    fclose(f);
    return v;
}

/* a cgroup v2 file's number; 0 when missing or "max" */
static uint64_t cgroup_value(const char *name) {
    char path[128];
    snprintf(path, sizeof path, "/sys/fs/cgroup/%s", name);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char buf[64] = "";
    uint64_t v = fgets(buf, sizeof buf, f) ? strtoull(buf, NULL, 10) : 0;
    fclose(f);
    return v;
}

/* the cgroup's anonymous memory (memory.stat "anon"): its page cache can
 * be dropped, so it does not count against the limit here */
static uint64_t cgroup_anon(void) {
    FILE *f = fopen("/sys/fs/cgroup/memory.stat", "r");
    if (!f) return 0;
    char line[256];
    uint64_t v = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "anon ", 5)) {
            v = strtoull(line + 5, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

uint64_t spq_mem_available(void) {
    int set;
    uint64_t v = env_kib("SPINQ_MEM_AVAILABLE_KIB", &set);
    if (set) return v;
    uint64_t avail = meminfo_kib("MemAvailable");
    uint64_t limit = cgroup_value("memory.max"), used = cgroup_anon();
    if (limit > 0) {
        uint64_t room = limit > used ? limit - used : 0;
        if (!avail || room < avail) avail = room;
    }
    return avail;
}

uint64_t spq_disk_available(const char *dir) {
    int set;
    uint64_t v = env_kib("SPINQ_DISK_AVAILABLE_KIB", &set);
    if (set) return v;
    struct statvfs st;
    if (!dir || statvfs(dir, &st)) return UINT64_MAX;
    return (uint64_t)st.f_bavail * st.f_frsize;
}
