/* rolling.h - lm-evaluation-harness's loglikelihood_rolling: the
 * log-likelihood of a whole document scored in windows of max_len tokens,
 * every token predicted exactly once, and the word/byte perplexities and
 * bits per byte lm-eval derives from it.
 *
 * lm-eval (get_rolling_token_windows with context_len 1, then
 * make_disjoint_window) scores the document's n tokens, encoded without
 * special tokens, as follows. Think of the stream s = [prefix] + tokens,
 * where prefix is the BOS token (EOS when the model has none):
 *   - the first window is s[0 .. f), f = min(max_len, n), and predicts
 *     tokens[0 .. f) (all of its f outputs);
 *   - while tokens remain, the next window predicts the next
 *     p = min(remaining, max_len) tokens tokens[d .. d+p) (d = predicted so
 *     far) from the max_len tokens that end just before the last of them:
 *     input s[d+p-max_len .. d+p), only its last p outputs scored.
 * So the windows are disjoint in what they predict, each after the first
 * sees a full max_len of context, and the last one overlaps its predecessor
 * (its earlier outputs are not scored). Each window starts from an empty
 * cache at position 0.
 *
 * word_perplexity = exp(-ll / words), words = len(re.split(r"\s+", doc));
 * byte_perplexity = exp(-ll / bytes), bytes = len(doc.encode("utf-8"));
 * bits_per_byte = -ll / bytes / ln 2 (lm-eval's weighted_perplexity and
 * bits_per_byte over one document; over several, sums of ll, words and bytes). */
#ifndef SPQ_ROLLING_H
#define SPQ_ROLLING_H

#include "ppl.h"
#include "scorer.h"

typedef struct {
    long in_start; /* first input position in the stream [prefix] + tokens */
    int in_len;    /* input tokens */
    int n_pred;    /* outputs scored: the last n_pred of the window */
} spq_rolling_window;

/* The windows for n_tokens tokens and max_len (>= 1), malloc'd into *w;
 * returns their number (0 when n_tokens is 0). */
long spq_rolling_windows(spq_rolling_window **w, long n_tokens, int max_len);

typedef struct {
    double ll;        /* sum of log p(token), all tokens (<= 0) */
    long n_tokens;
    long n_windows;
    long n_words;
    long n_bytes;
    double token_perplexity; /* exp(-ll / n_tokens) */
    double word_perplexity;
    double byte_perplexity;
    double bits_per_byte;
} spq_rolling_result;

/* Scores tokens (n, no BOS) with the rolling windows; `prefix` is the
 * token the first window starts from; `batch` windows per forward call.
 * Fills ll, n_tokens, n_windows; the text measures come from
 * spq_rolling_finish. */
int spq_rolling_score(spq_rolling_result *res, spq_scorer *sc, const int *tokens, long n, int max_len, int prefix,
                      int batch, spq_progress_fn progress, void *ud, spq_err *err);

/* Counts words and bytes of the document text and computes the
 * perplexities from res->ll. */
void spq_rolling_finish(spq_rolling_result *res, const char *text, size_t len);

#endif
