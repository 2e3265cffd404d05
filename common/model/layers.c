/* layers.c - see layers.h. */
#include "layers.h"

#include "common/base/vexp.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void spq_rmsnorm_forward(float *out, float *rstd, const float *in, const float *weight, int N, int D, float eps) {
    for (int n = 0; n < N; n++) {
        const float *x = in + (size_t)n * D;
        float *o = out + (size_t)n * D;
        double ss = 0;
        for (int i = 0; i < D; i++) ss += (double)x[i] * x[i];
        float s = (float)(1.0 / sqrt(ss / D + eps));
        for (int i = 0; i < D; i++) o[i] = x[i] * s * weight[i];
        if (rstd) rstd[n] = s;
    }
}

void spq_rmsnorm_backward(float *din, const float *dout, const float *in, const float *weight, const float *rstd,
                          int N, int D) {
    /* y_i = x_i s w_i, s = (mean(x^2)+eps)^-1/2:
     * dx_i = s (w_i dy_i) - x_i s^3 / D * sum_j x_j w_j dy_j */
    for (int n = 0; n < N; n++) {
        const float *x = in + (size_t)n * D, *dy = dout + (size_t)n * D;
        float *dx = din + (size_t)n * D;
        double s = rstd[n], dot = 0;
        for (int i = 0; i < D; i++) dot += (double)x[i] * weight[i] * dy[i];
        double c = dot * s * s * s / D;
        for (int i = 0; i < D; i++) dx[i] = (float)(s * weight[i] * dy[i] - x[i] * c);
    }
}

void spq_matmul_forward(float *out, const float *in, const float *W, int N, int C, int OC) {
    if (N == 1) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, OC, C, 1.0f, W, C, in, 1, 0.0f, out, 1);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, in, C, W, C, 0.0f, out, OC);
}

void spq_matmul_backward(float *din, float *dW, const float *dout, const float *in, const float *W, int N, int C,
                         int OC, int accumulate) {
    if (din)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, W, C,
                    accumulate ? 1.0f : 0.0f, din, C);
    if (dW) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, in, C, 0.0f, dW, C);
}

void spq_rope_tables(float *cos_t, float *sin_t, const spq_config *c, int n_pos) {
    int half = c->head_dim / 2;
    float *inv = spq_malloc((size_t)(half > 0 ? half : 1) * sizeof(float));
    for (int i = 0; i < half; i++) {
        /* as Hugging Face computes it: fp32 exponent i*2/hd */
        float f = 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)c->head_dim);
        if (c->rope_llama3) {
            double low_wl = c->rope_orig_ctx / c->rope_low_freq_factor;
            double high_wl = c->rope_orig_ctx / c->rope_high_freq_factor;
            double wl = 2 * M_PI / f;
            if (wl > low_wl) {
                f = f / c->rope_factor;
            } else if (wl >= high_wl) {
                double smooth = (c->rope_orig_ctx / wl - c->rope_low_freq_factor) /
                                (c->rope_high_freq_factor - c->rope_low_freq_factor);
                f = (float)((1 - smooth) * f / c->rope_factor + smooth * f);
            }
        }
        inv[i] = f;
    }
    for (int p = 0; p < n_pos; p++)
        for (int i = 0; i < half; i++) {
            float a = (float)p * inv[i];
            cos_t[(size_t)p * half + i] = cosf(a);
            sin_t[(size_t)p * half + i] = sinf(a);
        }
    free(inv);
}

void spq_rope_forward(float *x, const int *pos, const float *cos_t, const float *sin_t, int N, int n_heads,
                      int head_dim) {
    int half = head_dim / 2;
    for (int n = 0; n < N; n++) {
        const float *c = cos_t + (size_t)pos[n] * half, *s = sin_t + (size_t)pos[n] * half;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)n * n_heads + h) * head_dim;
            for (int i = 0; i < half; i++) {
                float a = v[i], b = v[i + half];
                v[i] = a * c[i] - b * s[i];
                v[i + half] = a * s[i] + b * c[i];
            }
        }
    }
}

void spq_rope_backward(float *dx, const int *pos, const float *cos_t, const float *sin_t, int N, int n_heads,
                       int head_dim) {
    int half = head_dim / 2;
    for (int n = 0; n < N; n++) {
        const float *c = cos_t + (size_t)pos[n] * half, *s = sin_t + (size_t)pos[n] * half;
        for (int h = 0; h < n_heads; h++) {
            float *v = dx + ((size_t)n * n_heads + h) * head_dim;
            for (int i = 0; i < half; i++) {
                float a = v[i], b = v[i + half];
                v[i] = a * c[i] + b * s[i];
                v[i + half] = -a * s[i] + b * c[i];
            }
        }
    }
}

void spq_swiglu_forward(float *out, const float *gate, const float *up, size_t NH) {
    for (size_t i = 0; i < NH; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void spq_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                         size_t NH) {
    for (size_t i = 0; i < NH; i++) {
        float g = gate[i], sig = 1.0f / (1.0f + expf(-g)), silu = g * sig;
        float dsilu = sig * (1.0f + g * (1.0f - sig));
        float d = dout[i], u = up[i];
        dup[i] = d * silu;
        dgate[i] = d * u * dsilu;
    }
}

/* compiled twice, AVX2+FMA and baseline, picked at load time (ifunc) */
__attribute__((target_clones("arch=x86-64-v3", "default"))) void spq_softmax_rows(float *x, int N, int V) {
    for (int n = 0; n < N; n++) {
        float *r = x + (size_t)n * V;
        float mx = spq_vmax(r, V);
        float inv = 1.0f / spq_vexp_shift_sum(r, V, mx);
        for (int i = 0; i < V; i++) r[i] *= inv;
    }
}

void spq_attention_forward(float *out, const float *q, const float *k, const float *v, float *scratch, int T,
                           int P, int n_heads, int n_kv_heads, int head_dim) {
    int qd = n_heads * head_dim, kvd = n_kv_heads * head_dim, rep = n_heads / n_kv_heads;
    float scale = 1.0f / sqrtf((float)head_dim);
    int p0 = P - T;
    for (int h = 0; h < n_heads; h++) {
        const float *qh = q + (size_t)h * head_dim;
        const float *kh = k + (size_t)(h / rep) * head_dim;
        const float *vh = v + (size_t)(h / rep) * head_dim;
        /* scores (T, P) = q_h k_h^T * scale */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, P, head_dim, scale, qh, qd, kh, kvd, 0.0f,
                    scratch, P);
        for (int t = 0; t < T; t++) {
            float *r = scratch + (size_t)t * P;
            int n = p0 + t + 1;  /* causal: keys 0..p0+t */
            spq_softmax_rows(r, 1, n);
            memset(r + n, 0, (size_t)(P - n) * sizeof(float));
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, head_dim, P, 1.0f, scratch, P, vh, kvd, 0.0f,
                    out + (size_t)h * head_dim, qd);
    }
}

void spq_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                            const float *v, float *scratch, int T, int n_heads, int n_kv_heads, int head_dim) {
    int qd = n_heads * head_dim, kvd = n_kv_heads * head_dim, rep = n_heads / n_kv_heads;
    float scale = 1.0f / sqrtf((float)head_dim);
    float *P = scratch, *dP = scratch + (size_t)T * T;
    memset(dk, 0, (size_t)T * kvd * sizeof(float));
    memset(dv, 0, (size_t)T * kvd * sizeof(float));
    for (int h = 0; h < n_heads; h++) {
        const float *qh = q + (size_t)h * head_dim, *doh = dout + (size_t)h * head_dim;
        const float *kh = k + (size_t)(h / rep) * head_dim, *vh = v + (size_t)(h / rep) * head_dim;
        float *dqh = dq + (size_t)h * head_dim;
        float *dkh = dk + (size_t)(h / rep) * head_dim, *dvh = dv + (size_t)(h / rep) * head_dim;
        /* recompute P (T, T), causal */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, head_dim, scale, qh, qd, kh, kvd, 0.0f, P, T);
        for (int t = 0; t < T; t++) {
            float *r = P + (size_t)t * T;
            spq_softmax_rows(r, 1, t + 1);
            memset(r + t + 1, 0, (size_t)(T - t - 1) * sizeof(float));
        }
        /* dV += P^T dO;  dP = dO V^T */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, head_dim, T, 1.0f, P, T, doh, qd, 1.0f, dvh, kvd);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, head_dim, 1.0f, doh, qd, vh, kvd, 0.0f, dP, T);
        /* dS = P * (dP - rowsum(dP * P)), scaled for the 1/sqrt(hd) in S */
        for (int t = 0; t < T; t++) {
            float *p = P + (size_t)t * T, *dp = dP + (size_t)t * T;
            double dot = 0;
            for (int j = 0; j <= t; j++) dot += (double)p[j] * dp[j];
            for (int j = 0; j <= t; j++) dp[j] = p[j] * (dp[j] - (float)dot) * scale;
            for (int j = t + 1; j < T; j++) dp[j] = 0;
        }
        /* dQ = dS K;  dK += dS^T Q */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, head_dim, T, 1.0f, dP, T, kh, kvd, 0.0f, dqh, qd);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, head_dim, T, 1.0f, dP, T, qh, qd, 1.0f, dkh, kvd);
    }
}

double spq_crossentropy_forward_backward(float *dlogits, const float *logits, const int *targets, int N, int V,
                                         float scale, int *n_scored) {
    double loss = 0;
    int scored = 0;
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * V;
        float *d = dlogits + (size_t)n * V;
        int t = targets[n];
        if (t < 0) {
            memset(d, 0, (size_t)V * sizeof(float));
            continue;
        }
        float mx = l[0];
        for (int i = 1; i < V; i++) mx = l[i] > mx ? l[i] : mx;
        double sum = 0;
        for (int i = 0; i < V; i++) sum += exp((double)l[i] - mx);
        double lse = log(sum) + mx;
        loss += lse - l[t];
        scored++;
        for (int i = 0; i < V; i++) d[i] = (float)(exp((double)l[i] - lse) * scale);
        d[t] -= scale;
    }
    if (n_scored) *n_scored = scored;
    return loss;
}
