/* test_ppl.c - the perplexity protocol on a model whose predictions are
 * known in closed form: with every layer's weights zero the residual stream
 * is the embedding, so with one-hot embeddings the model is a bigram table
 * (logits of the next token = 2 * lm_head column of the current token, the 2
 * being RMSNorm's 1/rms of a one-hot vector of length 4). The expected
 * perplexity is computed here from that table: windows of seqlen, the first
 * token of each window not scored, the tail that does not fill a window
 * dropped. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "common/eval/ppl.h"
#include "common/model/model.h"

static void bigram_model(spq_model *m, const float lm[4][4]) {
    spq_config c = {.dim = 4, .hidden_dim = 4, .n_layers = 2, .n_heads = 2, .n_kv_heads = 1, .head_dim = 2,
                    .vocab_size = 4, .seq_len = 16, .norm_eps = 0.0f, .rope_theta = 10000.0f, .tied = 0,
                    .bos_id = -1, .eos_id = -1};
    spq_model_alloc(m, &c);  /* zero weights */
    for (int i = 0; i < 4; i++) {
        m->tok_emb[i * 4 + i] = 1.0f;
        m->final_norm[i] = 1.0f;
        for (int l = 0; l < 2; l++) m->layers[l].attn_norm[i] = m->layers[l].ffn_norm[i] = 1.0f;
        for (int j = 0; j < 4; j++) m->lm_head[j * 4 + i] = lm[j][i];  /* row j: logit of token j */
    }
}

Test(ppl, windows_follow_the_protocol_on_a_bigram_model) {
    const float lm[4][4] = {{0.5f, -1, 2, 0}, {1, 0.25f, -0.5f, 1}, {-2, 1, 0, 0.5f}, {0, 0, 0, -1}};
    spq_model m;
    bigram_model(&m, lm);
    int tokens[23];
    for (int i = 0; i < 23; i++) tokens[i] = (i * 7 + i / 3) % 4;
    int seqlen = 5;  /* 4 windows of 5, 3 tokens of tail dropped */
    double nll = 0;
    long count = 0;
    for (int w = 0; w < 4; w++)
        for (int t = 0; t + 1 < seqlen; t++) {
            int cur = tokens[w * seqlen + t], nxt = tokens[w * seqlen + t + 1];
            double z = 0;
            for (int j = 0; j < 4; j++) z += exp(2.0 * lm[j][cur]);
            nll += log(z) - 2.0 * lm[nxt][cur];
            count++;
        }
    for (int batch = 1; batch <= 3; batch++) {
        spq_ppl_result r;
        spq_err err;
        cr_assert(spq_ppl_windows(&r, &m, tokens, 23, seqlen, batch, NULL, NULL, &err) == 0, "%s", err.msg);
        cr_expect_eq(r.n_windows, 4);
        cr_expect_eq(r.n_scored, count);
        cr_expect(fabs(r.nll_sum - nll) < 1e-4, "batch %d: nll %.6f vs %.6f", batch, r.nll_sum, nll);
        cr_expect(fabs(r.ppl - exp(nll / count)) < 1e-4 * r.ppl);
    }
    spq_model_free(&m);
}

Test(ppl, text_shorter_than_a_window_is_an_error) {
    const float lm[4][4] = {{0}};
    spq_model m;
    bigram_model(&m, lm);
    int tokens[3] = {0, 1, 2};
    spq_ppl_result r;
    spq_err err;
    cr_expect(spq_ppl_windows(&r, &m, tokens, 3, 4, 1, NULL, NULL, &err) != 0);
    cr_expect(strstr(err.msg, "fewer than one window") != NULL, "%s", err.msg);
    spq_model_free(&m);
}

Test(ppl, nll_equals_log_softmax_definition) {
    float logits[37];
    for (int i = 0; i < 37; i++) logits[i] = (float)sin(i * 1.7) * 30.0f;  /* large spread */
    double z = 0, mx = -INFINITY;
    for (int i = 0; i < 37; i++) mx = fmax(mx, logits[i]);
    for (int i = 0; i < 37; i++) z += exp(logits[i] - mx);
    for (int t = 0; t < 37; t += 5) {
        double want = log(z) + mx - logits[t];
        cr_expect(fabs(spq_nll(logits, 37, t) - want) < 1e-5 * fmax(1, want), "target %d", t);
    }
}
