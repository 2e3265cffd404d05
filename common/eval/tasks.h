/* tasks.h - zero-shot evaluation tasks: readers for the original file
 * formats, turned into lm-evaluation-harness's prompts.
 *
 * Each item is a list of loglikelihood requests (context, continuation) and
 * the index of the right one. Multiple-choice tasks share one context and
 * score target_delimiter + choice; WinoGrande puts each option into the
 * context ("partial scoring") and scores the rest of the sentence; cloze
 * tasks (LAMBADA, TinyStories) have one request whose greedy match is the
 * accuracy. The prompts (lm-eval's task configs, zero-shot):
 *
 *   arc_easy, arc_challenge  "Question: {stem}\nAnswer:"  " {choice text}"      acc, acc_norm
 *   piqa        "Question: {goal}\nAnswer:"  " {sol1}", " {sol2}"               acc, acc_norm
 *   hellaswag   preprocess("{activity_label}: {ctx_a} {ctx_b.capitalize()}")
 *               " {preprocess(ending)}"                                         acc, acc_norm
 *   winogrande  sentence[:blank] + option  " {sentence[blank+1:].strip()}"      acc
 *   boolq       "{passage}\nQuestion: {question}?\nAnswer:"  " no", " yes"      acc
 *   openbookqa  "{question_stem}"  " {choice text}"                             acc, acc_norm
 *   siqa        "Q: {context} {question}\nA:"  " {answerA|B|C}"                 acc
 *   lambada     text up to its last ' '  " {last word}"        acc (greedy), perplexity
 *   tinystories_cloze  (see below)                             acc (greedy), perplexity
 *   jsonl       {"context", "choices", "gold", "delimiter" (default " ")}      acc, acc_norm
 *
 * Files: ARC/OpenBookQA original jsonl (question.stem, question.choices
 * [{text,label}], answerKey; HF's flat question/question_stem also read);
 * PIQA valid.jsonl + valid-labels.lst; HellaSwag as llama.cpp's 6-line text
 * (context, gold, 4 endings) or HF jsonl (ctx_a, ctx_b, activity_label,
 * endings, label); WinoGrande dev.jsonl (answer "1"/"2", or
 * dev-labels.lst); BoolQ jsonl (label or answer: true/false, "true"/"false",
 * 0/1); SIQA dev.jsonl + dev-labels.lst (1-3); LAMBADA jsonl {"text"}. A
 * labels file is found beside the data as STEM-labels.lst when the lines do
 * not carry the answer.
 *
 * HellaSwag's text file joins ctx_a and ctx_b without lm-eval's
 * capitalization of ctx_b; we apply lm-eval's preprocess() to every line and
 * capitalize (Python's str.capitalize) a trailing unfinished sentence that
 * starts with a lowercase letter, which is how ctx_b appears there.
 *
 * tinystories_cloze: TinyStories text has no story markers, so a passage is
 * a paragraph (a run of non-blank lines); passages of at least 10 words
 * whose last word, without trailing punctuation (.,!?;:'" and closing
 * brackets), is all ASCII letters become items: context = the passage up
 * to the whitespace before that word, continuation = " " + the word (the
 * punctuation is not predicted, as in LAMBADA whose targets are bare words).
 *
 * Bad items (malformed JSON, invalid UTF-8, missing fields, gold out of
 * range, empty choices, a label file that does not match) are reported as
 * "FILE:LINE: what" and either reject the whole file or are skipped and
 * counted, as the caller chooses. */
#ifndef SPQ_TASKS_H
#define SPQ_TASKS_H

#include "common/base/util.h"

typedef enum { SPQ_TASK_CHOICE = 0, SPQ_TASK_CLOZE = 1 } spq_task_kind;

typedef struct {
    int n;        /* requests (choices; 1 for cloze) */
    char **ctx;   /* (n) context of each request */
    char **cont;  /* (n) continuation, delimiter included */
    long *chars;  /* (n) len() of each choice without the delimiter (acc_norm) */
    int gold;
    long line;    /* 1-based line where the item starts */
} spq_task_item;

typedef struct {
    char *name;         /* as asked for, e.g. "arc_easy" or "mytask" */
    char *format;       /* the reader used */
    char *path;
    spq_task_kind kind;
    int has_acc_norm;   /* lm-eval reports acc_norm for this task */
    spq_task_item *items;
    long n_items;
    long n_skipped;
    char *skipped;      /* "FILE:LINE: why" lines of the first skipped items */
} spq_task;

/* The formats, for usage messages: NULL-terminated. */
extern const char *const spq_task_formats[];
/* 1 when name is a known format. */
int spq_task_known(const char *format);

/* Loads a task. format: one of spq_task_formats; labels: a labels file or
 * NULL to look for STEM-labels.lst when needed; skip_bad: 1 skips and
 * counts bad items, 0 fails on the first. */
int spq_task_load(spq_task *t, const char *name, const char *format, const char *path, const char *labels,
                  int skip_bad, spq_err *err);
void spq_task_free(spq_task *t);

/* lm-eval's HellaSwag preprocess(): strip, " [title]" -> ". ", drop
 * "[...]", "  " -> " ". Returns a malloc'd string. */
char *spq_hellaswag_preprocess(const char *text, size_t len);

#endif
