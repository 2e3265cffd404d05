/* test_kld.c - KL divergence and the llama.cpp-style statistics against
 * hand-computed values, the compact logits file (exactness with k = V, the
 * lower bound with k < V, header checks), and stories260K against itself. */
#include <criterion/criterion.h>
#include <unistd.h>

#include "common/eval/kld.h"
#include "common/eval/logitfile.h"
#include "common/io/load.h"
#include "eval_fixtures.h"

static void logits_of(float *x, const double *p, int V) { /* logits whose softmax is p, shifted by 3 */
    for (int i = 0; i < V; i++) x[i] = (float)(log(p[i]) + 3.0);
}

Test(kld, one_position_by_hand) {
    /* base P = (1/2, 1/4, 1/4), model Q uniform */
    double P[3] = {0.5, 0.25, 0.25}, Q[3] = {1.0 / 3, 1.0 / 3, 1.0 / 3};
    float lb[3], lq[3];
    logits_of(lb, P, 3);
    logits_of(lq, Q, 3);
    spq_kld_acc a;
    spq_kld_acc_init(&a);
    spq_kld_add_logits(&a, lq, lb, 3, 1);
    double want = 0.5 * log(0.5 * 3) + 2 * 0.25 * log(0.25 * 3);
    cr_assert(fabs(a.sum_kld - want) < 1e-6, "%.9f vs %.9f", a.sum_kld, want);
    cr_assert_eq(a.same_top, 1); /* argmax of Q is its first maximum, 0, as is P's */
    cr_assert(fabs(a.sum_dp - (1.0 / 3 - 0.25)) < 1e-6);
    cr_assert(fabs(a.sum_nq - log(3.0)) < 1e-6);
    cr_assert(fabs(a.sum_nb - log(4.0)) < 1e-6);
    /* a model that prefers token 2: top-1 differs */
    double Q2[3] = {0.2, 0.2, 0.6};
    logits_of(lq, Q2, 3);
    spq_kld_add_logits(&a, lq, lb, 3, 0);
    cr_assert_eq(a.same_top, 1);
    cr_assert_eq(a.n, 2);
    spq_kld_acc_free(&a);
}

Test(kld, statistics_by_hand) {
    /* four positions with known KLD, NLLs and Δp via a 2-token vocabulary:
     * base P = (p, 1-p), model Q = (q, 1-q), target 0 */
    double p[4] = {0.9, 0.6, 0.5, 0.7}, q[4] = {0.8, 0.6, 0.3, 0.75};
    spq_kld_acc a;
    spq_kld_acc_init(&a);
    double kl[4], nq[4], nb[4], dp[4];
    for (int i = 0; i < 4; i++) {
        double P[2] = {p[i], 1 - p[i]}, Q[2] = {q[i], 1 - q[i]};
        float lb[2], lq[2];
        logits_of(lb, P, 2);
        logits_of(lq, Q, 2);
        spq_kld_add_logits(&a, lq, lb, 2, 0);
        kl[i] = p[i] * log(p[i] / q[i]) + (1 - p[i]) * log((1 - p[i]) / (1 - q[i]));
        nq[i] = -log(q[i]);
        nb[i] = -log(p[i]);
        dp[i] = q[i] - p[i];
    }
    spq_kld_stats s;
    spq_kld_stats_compute(&s, &a);
    double mk = 0, mq = 0, mb = 0, md = 0, mdd = 0;
    for (int i = 0; i < 4; i++) mk += kl[i] / 4, mq += nq[i] / 4, mb += nb[i] / 4, md += dp[i] / 4, mdd += dp[i] * dp[i] / 4;
    double vk = 0, vq = 0, vb = 0, cqb = 0, vd = 0, vd2 = 0, vdiff = 0;
    for (int i = 0; i < 4; i++) {
        vk += (kl[i] - mk) * (kl[i] - mk) / 4;
        vq += (nq[i] - mq) * (nq[i] - mq) / 4;
        vb += (nb[i] - mb) * (nb[i] - mb) / 4;
        cqb += (nq[i] - mq) * (nb[i] - mb) / 4;
        vd += (dp[i] - md) * (dp[i] - md) / 4;
        vd2 += (dp[i] * dp[i] - mdd) * (dp[i] * dp[i] - mdd) / 4;
        double d = nq[i] - nb[i];
        vdiff += (d - (mq - mb)) * (d - (mq - mb)) / 4;
    }
    const double tol = 1e-6;
    cr_assert_eq(s.n, 4);
    cr_assert(fabs(s.kld - mk) < tol);
    cr_assert(fabs(s.kld_unc - sqrt(vk / 3)) < tol);
    cr_assert(fabs(s.ppl_q - exp(mq)) < tol * exp(mq));
    cr_assert(fabs(s.ppl_q_unc - exp(mq) * sqrt(vq / 3)) < tol);
    cr_assert(fabs(s.ppl_b - exp(mb)) < tol * exp(mb));
    cr_assert(fabs(s.ln_ratio - (mq - mb)) < tol);
    cr_assert(fabs(s.ln_ratio_unc - sqrt(vdiff / 3)) < tol, "%g vs %g", s.ln_ratio_unc, sqrt(vdiff / 3));
    cr_assert(fabs(s.ratio - exp(mq - mb)) < tol);
    cr_assert(fabs(s.cor - cqb / sqrt(vq * vb)) < tol);
    cr_assert(fabs(s.dp - md) < tol);
    cr_assert(fabs(s.dp_unc - sqrt(vd / 3)) < tol);
    cr_assert(fabs(s.dp_rms - sqrt(mdd)) < tol);
    cr_assert(fabs(s.dp_rms_unc - 0.5 / sqrt(mdd) * sqrt(vd2 / 3)) < tol);
    /* top-1: positions 0, 1 (tie broken to 0 in both), 3 agree; 2 does not */
    cr_assert(fabs(s.same_top - 0.75) < 1e-12);
    cr_assert(fabs(s.same_top_unc - sqrt(0.75 * 0.25 / 3)) < 1e-12);
    /* percentiles of the sorted KLDs, numpy-style */
    double sk[4];
    memcpy(sk, kl, sizeof sk);
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            if (sk[j] < sk[i]) {
                double t = sk[i];
                sk[i] = sk[j];
                sk[j] = t;
            }
    cr_assert(fabs(s.kld_pct[0] - sk[3]) < tol);                                  /* max */
    cr_assert(fabs(s.kld_pct[10] - sk[0]) < tol);                                 /* min */
    cr_assert(fabs(s.kld_pct[5] - 0.5 * (sk[1] + sk[2])) < tol);                  /* median */
    cr_assert(fabs(s.kld_pct[2] - (sk[2] + 0.97 * (sk[3] - sk[2]))) < tol);       /* p99: 0.99*3 = 2.97 */
    cr_assert(fabs(s.kld_pct[6] - (sk[0] + 0.3 * (sk[1] - sk[0]))) < tol);        /* p10: 0.3 */
    spq_kld_acc_free(&a);
}

Test(kld, percentile_definition) {
    float v[4] = {1, 2, 3, 4};
    cr_assert(fabs(spq_percentile(v, 4, 0.5) - 2.5) < 1e-12);
    cr_assert(fabs(spq_percentile(v, 4, 0.999) - (3 + 0.997)) < 1e-6);
    cr_assert_eq(spq_percentile(v, 4, 0), 1);
    cr_assert_eq(spq_percentile(v, 4, 1), 4);
    float one = 7;
    cr_assert_eq(spq_percentile(&one, 1, 0.3), 7);
}

/* compact rows: exact with k = V, the coarsened (k+1 outcomes) KLD, a lower
 * bound, with k < V; top-1, Δp and NLLs exact either way */
Test(kld, compact_rows) {
    const int V = 50;
    spq_rng r;
    spq_rng_seed(&r, 11);
    float lb[50], lq[50];
    for (int trial = 0; trial < 20; trial++) {
        for (int i = 0; i < V; i++) {
            lb[i] = (float)(2 * spq_rng_normal(&r));
            lq[i] = lb[i] + (float)(0.5 * spq_rng_normal(&r));
        }
        int target = trial % V;
        spq_kld_acc exact, full, part;
        spq_kld_acc_init(&exact);
        spq_kld_acc_init(&full);
        spq_kld_acc_init(&part);
        spq_kld_add_logits(&exact, lq, lb, V, target);
        spq_logit_row row;
        spq_logit_row_build(&row, V);
        spq_logit_row_from_logits(&row, lb, V, target);
        cr_assert(isinf(row.tail_logp) && row.tail_logp < 0);
        spq_kld_add_row(&full, lq, V, &row, target);
        cr_assert(fabs(full.sum_kld - exact.sum_kld) < 1e-6, "%g vs %g", full.sum_kld, exact.sum_kld);
        spq_logit_row_free(&row);
        int k = 5;
        spq_logit_row_build(&row, k);
        spq_logit_row_from_logits(&row, lb, V, target);
        /* top-5 in order, log-probs and tail mass sum to one */
        double mass = exp(row.tail_logp);
        for (int j = 0; j < k; j++) {
            mass += exp(row.logp[j]);
            if (j) cr_assert(row.logp[j] <= row.logp[j - 1]);
            for (int i = 0; i < V; i++) {
                int in_top = 0;
                for (int jj = 0; jj < k; jj++) in_top |= (int)row.id[jj] == i;
                if (!in_top) cr_assert(lb[i] <= lb[row.id[k - 1]]);
            }
        }
        cr_assert(fabs(mass - 1) < 1e-5);
        spq_kld_add_row(&part, lq, V, &row, target);
        /* by hand: the two distributions over {top-5, rest} */
        double zb = 0, zq = 0;
        for (int i = 0; i < V; i++) zb += exp(lb[i]), zq += exp(lq[i]);
        double want = 0, Pt = 1, Qt = 1;
        for (int j = 0; j < k; j++) {
            double P = exp(lb[row.id[j]]) / zb, Q = exp(lq[row.id[j]]) / zq;
            want += P * log(P / Q);
            Pt -= P;
            Qt -= Q;
        }
        want += Pt * log(Pt / Qt);
        cr_assert(fabs(part.sum_kld - want) < 1e-5, "%g vs %g", part.sum_kld, want);
        cr_assert(part.sum_kld <= exact.sum_kld + 1e-6);
        cr_assert_eq(part.same_top, exact.same_top);
        cr_assert(fabs(part.sum_nb - exact.sum_nb) < 1e-5);
        cr_assert(fabs(part.sum_dp - exact.sum_dp) < 1e-6);
        spq_logit_row_free(&row);
        spq_kld_acc_free(&exact);
        spq_kld_acc_free(&full);
        spq_kld_acc_free(&part);
    }
}

static char tmpdir[64];

static char *tmp_path(const char *name) {
    if (!tmpdir[0]) {
        strcpy(tmpdir, "/tmp/spq_kld_XXXXXX");
        cr_assert_not_null(mkdtemp(tmpdir));
    }
    char *p = malloc(128);
    snprintf(p, 128, "%s/%s", tmpdir, name);
    return p;
}

static void rm_tmpdir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    cr_assert_eq(system(cmd), 0);
    tmpdir[0] = 0;
}

/* saving the base's rows and reading them back gives the in-process
 * figures: exactly with k = V, a lower bound with k < V */
Test(kld, save_and_compare_through_a_file) {
    spq_model base, model;
    fx_tiny_random(&base, 5, 64, 64);
    fx_tiny_random(&model, 5, 64, 64);
    /* the "quantized" model: base weights with noise on one matrix */
    spq_rng r;
    spq_rng_seed(&r, 9);
    for (size_t i = 0; i < (size_t)model.cfg.hidden_dim * model.cfg.dim; i++)
        model.layers[0].w_up[i] += (float)(0.02 * spq_rng_normal(&r));
    int n = 3 * 16 + 5, tokens[53];
    for (int i = 0; i < n; i++) tokens[i] = 3 + (int)(spq_rng_u64(&r) % 61);
    spq_scorer sb, sq;
    spq_scorer_model(&sb, &base);
    spq_scorer_model(&sq, &model);
    spq_err err;
    spq_ppl_result pb, pq, pq2;
    /* in process */
    spq_kld_acc a_in;
    spq_kld_acc_init(&a_in);
    spq_kld_src src = {.base = &sb};
    cr_assert_eq(spq_kld_windows(&pq, &a_in, &sq, &src, tokens, n, 16, 2, NULL, NULL, &err), 0, "%s", err.msg);
    spq_kld_stats s_in;
    spq_kld_stats_compute(&s_in, &a_in);
    cr_assert_eq(s_in.n, 3 * 15);
    cr_assert(s_in.kld > 1e-6);
    /* ppl of the model equals the perplexity protocol's: bitwise with the
     * same batching, to rounding with another (sgemm of other shapes) */
    spq_ppl_windows_sc(&pq2, &sq, tokens, n, 16, 2, NULL, NULL, &err);
    cr_assert_eq(pq.ppl, pq2.ppl);
    spq_ppl_windows_sc(&pq2, &sq, tokens, n, 16, 3, NULL, NULL, &err);
    cr_assert(fabs(pq.ppl - pq2.ppl) < 1e-6 * pq.ppl);
    cr_assert(fabs(s_in.ppl_q - pq.ppl) < 1e-6 * pq.ppl);
    for (int k = 64; k >= 4; k -= 60) {
        char *path = tmp_path("base.logits");
        spq_logit_file out;
        cr_assert_eq(spq_logit_file_create(&out, path, 64, k, 16, tokens, n, &err), 0, "%s", err.msg);
        spq_kld_src save = {.save = &out};
        cr_assert_eq(spq_kld_windows(&pb, NULL, &sb, &save, tokens, n, 16, 3, NULL, NULL, &err), 0);
        cr_assert_eq(spq_logit_file_close(&out, &err), 0);
        spq_logit_file in;
        cr_assert_eq(spq_logit_file_open(&in, path, &err), 0, "%s", err.msg);
        cr_assert_eq(in.n_records, 45);
        spq_kld_acc a_f;
        spq_kld_acc_init(&a_f);
        spq_kld_src from = {.base_file = &in};
        cr_assert_eq(spq_kld_windows(&pq2, &a_f, &sq, &from, tokens, n, 16, 2, NULL, NULL, &err), 0, "%s", err.msg);
        spq_logit_file_close(&in, &err);
        spq_kld_stats s_f;
        spq_kld_stats_compute(&s_f, &a_f);
        if (k == 64) cr_assert(fabs(s_f.kld - s_in.kld) < 1e-5 * s_in.kld, "%g vs %g", s_f.kld, s_in.kld);
        else cr_assert(s_f.kld <= s_in.kld + 1e-9 && s_f.kld > 0.2 * s_in.kld, "%g vs %g", s_f.kld, s_in.kld);
        cr_assert_eq(s_f.same_top, s_in.same_top);
        cr_assert(fabs(s_f.ppl_b - pb.ppl) < 1e-5 * pb.ppl);
        cr_assert(fabs(s_f.ppl_b - s_in.ppl_b) < 1e-5 * pb.ppl);
        cr_assert(fabs(s_f.dp - s_in.dp) < 1e-6);
        spq_kld_acc_free(&a_f);
        free(path);
    }
    spq_kld_acc_free(&a_in);
    spq_scorer_free(&sb);
    spq_scorer_free(&sq);
    spq_model_free(&base);
    spq_model_free(&model);
    rm_tmpdir();
}

Test(kld, file_checks) {
    int tokens[40], other[40];
    for (int i = 0; i < 40; i++) tokens[i] = i % 7, other[i] = (i + 1) % 7;
    spq_err err;
    spq_logit_file lf;
    char *path = tmp_path("x.logits");
    /* a file whose writer did not finish is refused */
    cr_assert_eq(spq_logit_file_create(&lf, path, 10, 3, 8, tokens, 40, &err), 0);
    fclose(lf.f); /* crash: no close, no record count */
    free(lf.path);
    cr_assert_eq(spq_logit_file_open(&lf, path, &err), -1);
    cr_assert(strstr(err.msg, "incomplete"), "%s", err.msg);
    /* a complete one: 5 windows of 8 -> 35 records */
    cr_assert_eq(spq_logit_file_create(&lf, path, 10, 3, 8, tokens, 40, &err), 0);
    spq_logit_row row;
    spq_logit_row_build(&row, 3);
    float x[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    spq_logit_row_from_logits(&row, x, 10, 2);
    cr_assert_eq(row.id[0], 9);
    cr_assert_eq(row.id[2], 7);
    for (int i = 0; i < 35; i++) cr_assert_eq(spq_logit_file_write(&lf, &row, &err), 0);
    cr_assert_eq(spq_logit_file_close(&lf, &err), 0);
    cr_assert_eq(spq_logit_file_open(&lf, path, &err), 0, "%s", err.msg);
    cr_assert_eq(spq_logit_file_match(&lf, 10, 8, tokens, 40, &err), 0, "%s", err.msg);
    cr_assert_eq(spq_logit_file_match(&lf, 11, 8, tokens, 40, &err), -1);
    cr_assert(strstr(err.msg, "vocab size 10"), "%s", err.msg);
    cr_assert_eq(spq_logit_file_match(&lf, 10, 16, tokens, 40, &err), -1);
    cr_assert(strstr(err.msg, "seqlen 8"), "%s", err.msg);
    cr_assert_eq(spq_logit_file_match(&lf, 10, 8, other, 40, &err), -1);
    cr_assert(strstr(err.msg, "different text"), "%s", err.msg);
    spq_logit_row back;
    spq_logit_row_build(&back, 3);
    cr_assert_eq(spq_logit_file_read(&lf, &back, &err), 0);
    cr_assert_eq(back.id[1], 8);
    cr_assert_eq(back.logp[0], row.logp[0]);
    cr_assert_eq(back.tail_logp, row.tail_logp);
    cr_assert_eq(back.target_logp, row.target_logp);
    spq_logit_file_close(&lf, &err);
    /* truncation and bad magic */
    cr_assert_eq(truncate(path, 64 + 35 * 32 - 1), 0);
    cr_assert_eq(spq_logit_file_open(&lf, path, &err), -1);
    cr_assert(strstr(err.msg, "truncated"), "%s", err.msg);
    FILE *f = fopen(path, "r+b");
    fwrite("NOTLOGIT", 1, 8, f);
    fclose(f);
    cr_assert_eq(spq_logit_file_open(&lf, path, &err), -1);
    cr_assert(strstr(err.msg, "bad magic"), "%s", err.msg);
    cr_assert_eq(spq_logit_file_open(&lf, "/nonexistent/x", &err), -1);
    cr_assert_eq(spq_logit_file_create(&lf, path, 10, 11, 8, tokens, 40, &err), -1);
    spq_logit_row_free(&row);
    spq_logit_row_free(&back);
    free(path);
    rm_tmpdir();
}

/* stories260K against itself: KLD exactly 0, top-1 agreement 100 %, both
 * perplexities the protocol's */
Test(kld, stories260k_against_itself) {
    char *p = fx_shared("models/stories260K/stories260K.bin");
    spq_model m;
    spq_err err;
    cr_assert_eq(spq_model_load(&m, p, &err), 0, "%s", err.msg);
    free(p);
    /* tokens: the model's own greedy text from BOS, then more; 3 windows of 64 */
    int n = 3 * 64, *tok = malloc(n * sizeof(int));
    spq_rng r;
    spq_rng_seed(&r, 1);
    for (int i = 0; i < n; i++) tok[i] = i == 0 ? 1 : 3 + (int)(spq_rng_u64(&r) % 509);
    spq_scorer a, b;
    spq_scorer_model(&a, &m);
    spq_scorer_model(&b, &m);
    spq_kld_acc acc;
    spq_kld_acc_init(&acc);
    spq_kld_src src = {.base = &b};
    spq_ppl_result pr, ref;
    cr_assert_eq(spq_kld_windows(&pr, &acc, &a, &src, tok, n, 64, 2, NULL, NULL, &err), 0, "%s", err.msg);
    spq_kld_stats s;
    spq_kld_stats_compute(&s, &acc);
    cr_assert_eq(s.n, 3 * 63);
    cr_assert_eq(s.kld, 0.0);
    cr_assert_eq(s.kld_pct[0], 0.0);
    cr_assert_eq(s.same_top, 1.0);
    cr_assert_eq(s.dp, 0.0);
    cr_assert_eq(s.ratio, 1.0);
    cr_assert_eq(s.ppl_q, s.ppl_b);
    cr_assert(fabs(s.cor - 1) < 1e-9);
    cr_assert_eq(spq_ppl_windows(&ref, &m, tok, n, 64, 2, NULL, NULL, &err), 0);
    cr_assert_eq(pr.ppl, ref.ppl);
    cr_assert(fabs(s.ppl_q - ref.ppl) < 1e-6 * ref.ppl);
    spq_kld_acc_free(&acc);
    spq_scorer_free(&a);
    spq_scorer_free(&b);
    free(tok);
    spq_model_free(&m);
}
