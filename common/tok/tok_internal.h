/* tok_internal.h - the tokenizer's in-memory form, shared by its builders
 * (tok_build.c), the loaders (tok_bin.c, tok_json.c), the BPE engine
 * (tok_bpe.c), the text pipeline (tok_pre.c, tok_dec.c) and the public entry
 * points (tokenizer.c). Not a public header: users include tokenizer.h.
 *
 * One structure describes both tokenizer families; they differ in data, not
 * in code paths:
 *  - SentencePiece-style (llama2.c tokenizer.bin, LLaMA-2 tokenizer.json):
 *    token texts are UTF-8 with "▁" for spaces; the normalizer turns spaces
 *    into "▁"; the initial symbols of a word are its UTF-8 characters;
 *    characters missing from the vocabulary fall back to <0xNN> byte tokens.
 *  - byte-level (LLaMA-3 tokenizer.json): token texts are stored as the raw
 *    bytes they stand for (the GPT-2 byte-to-unicode mapping is undone at
 *    load time), so the initial symbols of a word are its bytes and decoding
 *    is concatenation.
 * Merge priority is either the rank in a merges list (tokenizer.json) or the
 * score of the merged piece (tokenizer.bin), see tok_bpe.c. */
#ifndef SPQ_TOK_INTERNAL_H
#define SPQ_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "tok_map.h"
#include "tokenizer.h"

typedef struct {
    char *text;       /* token bytes (see above); added tokens: their content */
    int len;
    float score;      /* tokenizer.bin only */
    uint8_t special;  /* skipped by decode(skip_special) and by piece() */
    uint8_t added;    /* an added token (matched in the raw text) */
    uint8_t lstrip, rstrip; /* added: eat white space on that side */
    uint8_t in_model; /* part of the BPE model's vocabulary (looked up by text) */
} spq_tok_entry;

typedef struct {
    int id;
    const char *text; /* == vocab[id].text */
    int len;
    uint8_t lstrip, rstrip;
} spq_tok_added;

enum { SPQ_MERGE_RANK, SPQ_MERGE_SCORE };

/* the regex of a ByteLevel pre-tokenizer with use_regex (GPT-2's) */
#define SPQ_TOK_GPT2_PATTERN "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

/* normalizer steps, applied in order to each section between added tokens */
enum { SPQ_NORM_PREPEND, SPQ_NORM_REPLACE };
typedef struct {
    int type;
    char *a; int na;  /* PREPEND: the prefix; REPLACE: the pattern */
    char *b; int nb;  /* REPLACE: the replacement */
} spq_tok_norm;

/* pre-tokenizer steps: each maps a list of words to a list of words */
enum { SPQ_PRE_SPLIT, SPQ_PRE_BYTELEVEL, SPQ_PRE_METASPACE };
enum { SPQ_SPLIT_ISOLATED, SPQ_SPLIT_REMOVED };
enum { SPQ_PREPEND_ALWAYS, SPQ_PREPEND_FIRST, SPQ_PREPEND_NEVER };
typedef struct {
    int type;
    void *re;           /* SPLIT, BYTELEVEL with use_regex: pcre2_code * */
    char *src; int nsrc; /* the pattern re was compiled from (as the file spelled it) */
    int behavior;       /* SPLIT */
    int invert;         /* SPLIT: the matches are the words, gaps are dropped */
    int add_prefix_space; /* BYTELEVEL, METASPACE */
    int prepend_scheme; /* METASPACE */
    char *repl; int nrepl; /* METASPACE: the replacement ("▁") */
} spq_tok_pre;

/* decoder steps, applied in order to the list of token texts */
enum { SPQ_DEC_REPLACE, SPQ_DEC_BYTEFALLBACK, SPQ_DEC_FUSE, SPQ_DEC_STRIP, SPQ_DEC_METASPACE,
       SPQ_DEC_BYTELEVEL };
typedef struct {
    int type;
    char *a; int na;  /* REPLACE: pattern; STRIP: the character; METASPACE: replacement */
    char *b; int nb;  /* REPLACE: replacement */
    int start, stop;  /* STRIP: at most this many leading / trailing characters;
                         METASPACE: start = 1 drops the first token's leading space */
} spq_tok_dec;

struct spq_tokenizer {
    char *path;            /* the file it was loaded from, for messages */
    int n_vocab;           /* ids are 0..n_vocab-1; gaps have text NULL */
    int vocab_cap;
    spq_tok_entry *vocab;
    spq_strmap model_map;  /* model vocabulary text -> id (no added tokens) */
    spq_pairmap merges;    /* (left id, right id) -> (rank, merged id); RANK only */
    int merge_mode;        /* SPQ_MERGE_RANK or SPQ_MERGE_SCORE */
    int bytelevel;         /* vocab texts are raw bytes; words start as bytes */
    int byte_fallback;     /* unknown characters become <0xNN> tokens */
    int ignore_merges;     /* a word that is itself in the vocab is one token */
    int byte_ids[256];     /* id of the token for a byte (<0xNN> or the byte-level char); -1 */
    int unk_id;            /* -1 when none */
    int bos_id, eos_id;    /* -1 when none */

    int n_added;
    spq_tok_added *added;  /* sorted by first byte, then longest first */
    int added_start[257];  /* added[added_start[b]..added_start[b+1]) begin with byte b */

    int n_norm, n_pre, n_dec;
    spq_tok_norm *norm;
    spq_tok_pre *pre;
    spq_tok_dec *dec;

    int n_prefix, n_suffix; /* ids added around a text when add_special is 1 */
    int prefix[4], suffix[4];
};

/* Helpers shared by the loaders (tok_build.c). */
spq_tokenizer *spq_tok_alloc(const char *path);
/* Sets vocab[id] (grows the table); the text is copied. */
spq_tok_entry *spq_tok_set_entry(spq_tokenizer *t, int id, const char *text, int len, float score);
/* Appends a normalizer / pre-tokenizer / decoder step (zeroed) and returns it. */
spq_tok_norm *spq_tok_add_norm(spq_tokenizer *t, int type);
spq_tok_pre *spq_tok_add_pre(spq_tokenizer *t, int type);
spq_tok_dec *spq_tok_add_dec(spq_tokenizer *t, int type);
/* A malloc'd copy of s[0..n) with a NUL after it. */
char *spq_tok_memdup(const char *s, size_t n);
/* The text pipeline of a SentencePiece LLaMA tokenizer (what a LLaMA-2
 * tokenizer.json spells out): normalizer Prepend "▁" + Replace " " -> "▁",
 * decoder "▁" -> " ", byte fallback, fuse, strip one leading space. */
void spq_tok_spm_pipeline(spq_tokenizer *t);
/* Fills byte_ids, model_map and the added-token table from vocab; call last. */
int spq_tok_finish(spq_tokenizer *t, spq_err *err);
/* Compiles a regex (JS semantics for \s, see tok_pre.c), or with literal = 1
 * a plain string, into a pre-tokenizer step. */
int spq_tok_compile_regex(spq_tok_pre *p, const char *pattern, size_t len, int literal, spq_err *err);

/* Loaders: fill *t or fail naming the file and field. */
int spq_tok_load_bin(spq_tokenizer **t, const char *path, spq_err *err);
int spq_tok_load_json(spq_tokenizer **t, const char *path, const char *config_path, spq_err *err);
/* The same from file contents in memory; path and config_path name them in
 * messages (config_text may be NULL: no tokenizer_config.json). */
int spq_tok_load_bin_mem(spq_tokenizer **t, const char *path, const char *data, size_t size, spq_err *err);
int spq_tok_load_json_mem(spq_tokenizer **t, const char *path, const char *text, size_t len,
                          const char *config_path, const char *config_text, size_t config_len, spq_err *err);

/* BPE over one word: appends the ids of word[0..n) to *ids (growing it).
 * Returns 0, or -1 when a character has no token and there is no unk. */
typedef struct {
    int *v;
    int n, cap;
} spq_ivec;
void spq_ivec_push(spq_ivec *a, int x);
int spq_bpe_word(const spq_tokenizer *t, const char *word, int n, spq_ivec *ids, spq_err *err);

/* UTF-8 helpers (text is assumed valid where noted). */
/* Byte length of the character starting with lead byte c (1 for invalid). */
int spq_utf8_len(unsigned char c);
/* Offset of the first invalid byte of s[0..n), or -1 when all valid. */
long spq_utf8_check(const char *s, size_t n);
/* Appends s[0..n) to out, replacing ill-formed sequences by U+FFFD the way
 * the WHATWG TextDecoder does (maximal subparts). */
void spq_utf8_sanitize_append(char **out, size_t *len, size_t *cap, const char *s, size_t n);

#endif
