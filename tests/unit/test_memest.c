/* test_memest.c - the memory and disk estimate of a job (common/job/memest.h)
 * against figures worked out by hand for a tiny config, and the test-only
 * overrides of what the machine has. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/job/memest.h"

/* dim 8, hidden 16, 2 layers, 2 heads of 4 (1 kv head), vocab 32, context 16,
 * untied: one layer's linears 2*8*8 + 2*4*8 + 3*16*8 = 576 parameters, the
 * model 32*8*2 + 2*(576 + 16) + 8 = 1704 (6816 bytes in fp32) */
static spq_config tiny(void) {
    spq_config c;
    memset(&c, 0, sizeof c);
    c.dim = 8, c.hidden_dim = 16, c.n_layers = 2, c.n_heads = 2, c.n_kv_heads = 1, c.head_dim = 4;
    c.vocab_size = 32, c.seq_len = 16, c.tied = 0;
    return c;
}

static spq_jobspec plain(void) {
    spq_jobspec s;
    spq_jobspec_defaults(&s);
    s.quant.w_bits = s.quant.a_bits = s.quant.kv_bits = 16;
    s.rotation.mode = SPQ_ROT_NONE;
    s.eval.n_ppl = 1;
    s.eval.ppl[0].seqlen = 16;
    return s;
}

static const spq_memest_stage *stage(const spq_memest *e, const char *name) {
    for (int i = 0; i < e->n; i++)
        if (!strcmp(e->st[i].stage, name)) return &e->st[i];
    cr_assert_fail("no stage %s", name);
    return NULL;
}

Test(memest, fp32_model) {
    spq_config c = tiny();
    cr_assert_eq(spq_memest_fp32_model(&c), 6816);
    c.tied = 1;
    cr_assert_eq(spq_memest_fp32_model(&c), 6816 - 32 * 8 * 4);
}

/* mapped evaluation of 2 windows of 16: the layer buffer 576*4 = 2304, the
 * state (KV 2*32*4*2 = 512 and per token 16+16+8+32+16 = 88 floats for 32
 * tokens) 13312, logits 32*32*4 = 4096 */
Test(memest, mapped_eval) {
    spq_config c = tiny();
    spq_jobspec s = plain();
    spq_memest_opts o = {.mapped = 1, .eval_batch = 2};
    spq_memest e;
    spq_memest_compute(&e, &c, &s, &o);
    cr_assert_eq(e.n, 2); /* evaluate, write */
    cr_assert_eq(stage(&e, "evaluate")->anon, 2304 + 13312 + 4096);
    cr_assert_str_eq(e.st[e.peak].stage, "evaluate");
    cr_assert_eq(e.disk, 1u << 20); /* results only */
    o.mapped = 0; /* loaded in fp32: the whole model instead of one layer */
    spq_memest_compute(&e, &c, &s, &o);
    cr_assert_eq(stage(&e, "evaluate")->anon, 6816 + 13312 + 4096);
    o.mapped = 1, o.resident = 1000; /* a packed model: its weights as loaded instead */
    spq_memest_compute(&e, &c, &s, &o);
    cr_assert_eq(stage(&e, "evaluate")->anon, 1000 + 13312 + 4096);
    /* and its 4-bit KV cache: 2 bytes of codes a row, a scale and zero per
     * head (1) for K and V, 2*32*2*(2 + 8) = 1280, and one layer's K and V
     * dequantized 2*16*4*4 = 512, instead of 2048 in fp32 */
    c.kv_cache_bits = 4;
    spq_memest_compute(&e, &c, &s, &o);
    cr_assert_eq(stage(&e, "evaluate")->anon, 1000 + 13312 - 2048 + 1280 + 512 + 4096);
    spq_jobspec_free(&s);
}

/* GPTQ W4 on 8 windows of 8: inputs 8*8*8*4 = 2048, the widest H 16^2*8 =
 * 2048, and the larger of collecting (one call's X^T X 16^2*4 = 1024 + the
 * state of 8 windows of 8: KV of one layer 512, 64 tokens of 80 floats,
 * 22528) and factoring (A 2048 + three copies of a weight 3*16*8*4 = 1536),
 * 23552; the packed file
 * 1152 linear parameters at 4 bits (576) + 144 groups of 8 bytes + the
 * embedding and classifier 2048 + norms 160 */
Test(memest, gptq_and_packed_file) {
    spq_config c = tiny();
    spq_jobspec s = plain();
    s.quant.w_bits = 4;
    s.quant.w_groupsize = 0;
    s.weights.method = SPQ_WQ_GPTQ;
    s.weights.nsamples = 8;
    s.weights.seqlen = 8;
    spq_memest_opts o = {.mapped = 1, .eval_batch = 2, .emb_bytes = 4};
    spq_memest e;
    spq_memest_compute(&e, &c, &s, &o);
    cr_assert_eq(stage(&e, "quantize")->anon, 6816 + 2048 + 2048 + 23552);
    cr_assert_eq(stage(&e, "evaluate")->anon, 6816 + 13312 + 4096); /* materialized by quantize */
    cr_assert_str_eq(e.st[e.peak].stage, "quantize");
    cr_assert(strstr(e.st[e.peak].hint, "nsamples"));
    cr_assert_eq(e.disk, 576 + 1152 + 2048 + 160 + (1u << 20));
    o.no_model = 1;
    spq_memest_compute(&e, &c, &s, &o);
    cr_assert_eq(e.disk, 1u << 20);
    spq_jobspec_free(&s);
}

/* rotating a layer: its widest linear (16x8) in fp64 and the product */
#define ROT_TMP (16 * 8 * 16)

/* streamed (quant/qpack.h), rotated: instead of the fp32 model, the
 * embedding and classifier in fp32 (2*32*8 floats = 2048), the packed
 * linears (1152 parameters at 4 bits = 576, 144 groups of 8 bytes = 1152)
 * and one layer in fp32 (2304): 6080 bytes */
Test(memest, streamed) {
    spq_config c = tiny();
    spq_jobspec s = plain();
    s.rotation.mode = SPQ_ROT_HADAMARD;
    s.quant.w_bits = 4;
    s.quant.w_groupsize = 0;
    s.weights.method = SPQ_WQ_GPTQ;
    s.weights.nsamples = 8;
    s.weights.seqlen = 8;
    spq_memest_opts o = {.mapped = 1, .eval_batch = 2, .emb_bytes = 4, .streamed = 1};
    spq_memest e;
    spq_memest_compute(&e, &c, &s, &o);
    cr_assert_eq(stage(&e, "fuse")->anon, 6080);
    cr_assert_eq(stage(&e, "rotate")->anon, 6080 + (64 + 2 * 16) * 4 + ROT_TMP);
    cr_assert_eq(stage(&e, "quantize")->anon, 6080 + 2048 + 2048 + 23552);
    cr_assert_eq(stage(&e, "evaluate")->anon, 6080 + 13312 + 4096);
    cr_assert_eq(stage(&e, "write")->anon, 6080 + 2048); /* the packed model's fp32 embedding and classifier */
    o.emb_bytes = 2; /* BF16 tables in the packed file: 2*32*8*2 = 1024 from quantize on, not 2048 */
    spq_memest_compute(&e, &c, &s, &o);
    cr_assert_eq(stage(&e, "rotate")->anon, 6080 + (64 + 2 * 16) * 4 + ROT_TMP);
    cr_assert_eq(stage(&e, "quantize")->anon, 5056 + 2048 + 2048 + 23552);
    cr_assert_eq(stage(&e, "evaluate")->anon, 5056 + 13312 + 4096);
    cr_assert_eq(stage(&e, "write")->anon, 5056 + 1024);
    s.weights.method = SPQ_WQ_RTN; /* each layer rotated as it is quantized */
    spq_memest_compute(&e, &c, &s, &o);
    cr_assert_eq(stage(&e, "quantize")->anon, 5056 + ROT_TMP);
    c.vocab_size = 1024; /* narrowing the tables: both in fp32 and one in BF16, 1024*8*10 bytes */
    spq_memest_compute(&e, &c, &s, &o);
    cr_assert_eq(stage(&e, "quantize")->anon, 1024 * 8 * 10);
    c.vocab_size = 32;
    s.weights.method = SPQ_WQ_GPTQ;
    o.emb_bytes = 4;
    s.rotation.mode = SPQ_ROT_NONE; /* the 16-bit embedding stays mapped */
    spq_memest_compute(&e, &c, &s, &o);
    cr_assert_eq(stage(&e, "write")->anon, 1728 + 2304 + 2048);
    spq_jobspec_free(&s);
}

/* the rotation in fp64 (R1 64 + R2 2*16 doubles) and the Cayley step's
 * five 8x8 matrices for R1 */
#define FP64 ((6 * 64 + 2 * 16) * 8)

/* rotation learning, 1 window of 8: xs 3*8*8 + one layer's activations
 * 8*(48+32+16+96+2) = 1744, attention 2*64, logits 8*32, rotated weights
 * 576 + 32 + 64 + gradient 128 + tmp 64, R1/R2 and gradients 2*(64 + 2*16):
 * 3184 floats; fuse the model, rotate + R1 and R2 (96 floats) */
Test(memest, learn) {
    spq_config c = tiny();
    spq_jobspec s = plain();
    free(s.eval.ppl[0].data); /* no perplexity: evaluate the default way */
    s.eval.ppl[0].data = NULL;
    s.eval.n_ppl = 0;
    s.rotation.mode = SPQ_ROT_SPINQUANT;
    s.rotation.online_had = 0;
    s.rotation.train.batch = 1;
    s.rotation.train.seqlen = 8;
    spq_memest_opts o = {.mapped = 1};
    spq_memest e;
    spq_memest_compute(&e, &c, &s, &o);
    /* the rotated model is evaluated (the default KL divergence and task),
     * which converts it once: the model in fp32 */
    cr_assert_eq(stage(&e, "fuse")->anon, 6816);
    cr_assert_eq(stage(&e, "rotate")->anon, 6816 + 384 + ROT_TMP);
    /* mapped: the trainer reads the fused embedding and classifier in fp32
     * (2*32*8 floats) and one converted layer (576), not the model */
    cr_assert_eq(stage(&e, "learn")->anon, (512 + 576 + 3184) * 4 + FP64);
    cr_assert_eq(e.disk, 384 + (1u << 20)); /* the rotation file and results */
    o.mapped = 0; /* loaded in fp32 */
    spq_memest_compute(&e, &c, &s, &o);
    cr_assert_eq(stage(&e, "learn")->anon, 6816 + 3184 * 4 + FP64);
    cr_assert_gt(stage(&e, "learn")->anon, stage(&e, "rotate")->anon);
    s.rotation.online_had = 1; /* one layer's W_down M4^T folded: d*H floats more */
    spq_memest_compute(&e, &c, &s, &o);
    cr_assert_eq(stage(&e, "learn")->anon, 6816 + (3184 + 128) * 4 + FP64);
    spq_jobspec_free(&s);
}

/* `spinq rotate`: learning alone, on a mapped model. Fusing and rotating
 * are recorded, never the model in fp32: one layer (576 floats) and the
 * embedding and classifier in fp32 (2*32*8) until a later stage needs the
 * weights */
Test(memest, learn_alone_keeps_the_model_mapped) {
    spq_config c = tiny();
    spq_jobspec s = plain();
    free(s.eval.ppl[0].data);
    s.eval.ppl[0].data = NULL;
    s.eval.n_ppl = 0, s.eval.kld = 0;
    for (int i = 0; i < s.eval.n_tasks; i++) free(s.eval.tasks[i].name), free(s.eval.tasks[i].data);
    s.eval.n_tasks = 0;
    s.rotation.mode = SPQ_ROT_SPINQUANT;
    s.rotation.online_had = 0;
    s.rotation.train.batch = 1;
    s.rotation.train.seqlen = 8;
    spq_memest_opts o = {.mapped = 1};
    spq_memest e;
    spq_memest_compute(&e, &c, &s, &o);
    cr_assert_eq(stage(&e, "fuse")->anon, (576 + 512) * 4);
    cr_assert_eq(stage(&e, "rotate")->anon, (576 + 512) * 4 + 384 + ROT_TMP);
    cr_assert_eq(stage(&e, "learn")->anon, (512 + 576 + 3184) * 4 + FP64);
    cr_assert_str_eq(e.st[e.peak].stage, "learn");
    s.quant.a_bits = 4; /* activations alone change no weight: still mapped */
    spq_memest_compute(&e, &c, &s, &o);
    cr_assert_eq(stage(&e, "fuse")->anon, (576 + 512) * 4);
    cr_assert_eq(stage(&e, "quantize")->anon, (576 + 512) * 4);
    s.quant.w_bits = 8; /* weights quantized without a packed form: converted to fp32 */
    s.weights.method = SPQ_WQ_RTN;
    spq_memest_compute(&e, &c, &s, &o);
    cr_assert_eq(stage(&e, "fuse")->anon, 6816);
    cr_assert_eq(stage(&e, "quantize")->anon, 6816);
    s.quant.w_bits = 16;
    o.gguf = 1; /* a GGUF write converts it too */
    spq_memest_compute(&e, &c, &s, &o);
    cr_assert_eq(stage(&e, "fuse")->anon, 6816);
    spq_jobspec_free(&s);
}

Test(memest, overrides) {
    setenv("SPINQ_MEM_AVAILABLE_KIB", "1024", 1);
    setenv("SPINQ_DISK_AVAILABLE_KIB", "2048", 1);
    cr_assert_eq(spq_mem_available(), 1024 * 1024);
    cr_assert_eq(spq_disk_available("/"), 2048 * 1024);
    unsetenv("SPINQ_MEM_AVAILABLE_KIB");
    unsetenv("SPINQ_DISK_AVAILABLE_KIB");
    cr_assert_gt(spq_mem_available(), 0);
    cr_assert_gt(spq_disk_available("/"), 0);
}
