/* logitfile.h - a base model's next-token distributions saved compactly, so
 * that the base runs once per dataset and every quantized variant is
 * compared against the file (spinq eval --save-logits / --kld-logits).
 *
 * Per scored position the file keeps the base's top-k tokens with their
 * log-probabilities, the log of the probability mass outside them, and the
 * log-probability of the correct next token. From that:
 *   - top-1 agreement, Δp of the correct token and the base perplexity are
 *     exact;
 *   - the KL divergence is computed over k+1 outcomes (the top-k tokens and
 *     "everything else"). By the log-sum inequality this is a lower bound of
 *     the full KLD; the deficit is the divergence inside the tail, at most
 *     tail_mass * max|log(P_i/P_tail) - log(Q_i/Q_tail)| over the tail, so it
 *     vanishes when the base puts little mass outside its top k. With
 *     k = vocab size the figure is exact. Measured on stories260K (vocab
 *     512, a flat distribution for its size) against RTN-quantized copies
 *     (KLD 0.0004 at W8, 0.13 at W4): k = 16 recovers 91-93 % of the KLD,
 *     k = 32 97 %, k = 64 (the default) 99.5 %, k = 128 99.98 %; the
 *     99th percentile is within 0.3 % at k = 64.
 *   - log-probs are stored as float32: against itself through a file a model
 *     shows |KLD| ~ 1e-7 per token (rounding), not exactly 0.
 *
 * File layout (little-endian):
 *   header, 64 bytes:
 *     0  char[8] magic "SPQLOGIT"
 *     8  u32 version (1)
 *    12  u32 vocab size
 *    16  u32 k
 *    20  u32 seqlen of the windows
 *    24  u64 tokens in the tokenized dataset
 *    32  u64 records (written when the file is closed; 0 = incomplete)
 *    40  u64 FNV-1a 64 of the dataset's token ids (u32 each, little-endian)
 *    48  16 bytes zero
 *   records, in the order the positions are scored (window by window, each
 *   window's positions 0..seqlen-2 predicting the next token):
 *     f32 target_logp, f32 tail_logp (-inf when nothing is outside),
 *     u32 id[k], f32 logp[k] (descending logp, ties by ascending id).
 * A record is 8 + 8k bytes: k = 64 is 520 bytes per token (LLaMA-3's full
 * vocabulary as fp16 would be 256 KB). */
#ifndef SPQ_LOGITFILE_H
#define SPQ_LOGITFILE_H

#include <stdint.h>
#include <stdio.h>

#include "common/base/util.h"

typedef struct {
    float target_logp; /* log p(correct next token) */
    float tail_logp;   /* log of the mass outside the top k; -inf when none */
    int k;
    uint32_t *id;      /* (k) */
    float *logp;       /* (k) */
} spq_logit_row;

void spq_logit_row_build(spq_logit_row *r, int k);
void spq_logit_row_free(spq_logit_row *r);

/* Fills r (built with k <= V) from one row of V logits; target is the
 * correct next token. */
void spq_logit_row_from_logits(spq_logit_row *r, const float *logits, int V, int target);

typedef struct {
    FILE *f;
    char *path;
    int writing;
    uint32_t vocab, k, seqlen;
    uint64_t n_tokens, n_records, hash;
    uint64_t done; /* records written or read so far */
} spq_logit_file;

/* FNV-1a 64 over token ids (as u32). */
uint64_t spq_token_hash(const int *tokens, long n);

int spq_logit_file_create(spq_logit_file *lf, const char *path, int vocab, int k, int seqlen, const int *tokens,
                          long n_tokens, spq_err *err);
int spq_logit_file_write(spq_logit_file *lf, const spq_logit_row *r, spq_err *err);
/* Opens for reading and checks the header. */
int spq_logit_file_open(spq_logit_file *lf, const char *path, spq_err *err);
/* Checks that the file was made from this dataset and window length. */
int spq_logit_file_match(const spq_logit_file *lf, int vocab, int seqlen, const int *tokens, long n_tokens,
                         spq_err *err);
/* Reads the next record into r (built with the file's k). */
int spq_logit_file_read(spq_logit_file *lf, spq_logit_row *r, spq_err *err);
/* Closes; a file being written gets its record count (and fails if the
 * data could not be written). */
int spq_logit_file_close(spq_logit_file *lf, spq_err *err);

#endif
