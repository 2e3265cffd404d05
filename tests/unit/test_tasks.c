/* test_tasks.c - the task readers: every file under data/eval parses to
 * its official item count with lm-eval's prompts, and bad files are
 * reported with file and line, rejected or skipped, never crash. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/base/pytext.h"
#include "common/eval/tasks.h"

static char *shared(const char *rel) {
    const char *root = getenv("SPINQ_SHARED");
    if (!root) root = "../shared";
    char *p = malloc(strlen(root) + strlen(rel) + 2);
    sprintf(p, "%s/%s", root, rel);
    return p;
}

static spq_task load_ok(const char *format, const char *rel, long want) {
    char *p = shared(rel);
    spq_task t;
    spq_err err = {{0}};
    int rc = spq_task_load(&t, NULL, format, p, NULL, 0, &err);
    cr_assert_eq(rc, 0, "%s: %s", rel, err.msg);
    cr_assert_eq(t.n_items, want, "%s: %ld items, want %ld", rel, t.n_items, want);
    cr_assert_eq(t.n_skipped, 0);
    for (long i = 0; i < t.n_items; i++) {
        const spq_task_item *it = &t.items[i];
        cr_assert(it->gold >= 0 && it->gold < it->n, "%s item %ld gold %d of %d", rel, i, it->gold, it->n);
        for (int j = 0; j < it->n; j++) {
            cr_assert(it->cont[j][0] != 0);
            cr_assert(spq_utf8_valid(it->ctx[j], strlen(it->ctx[j])));
        }
    }
    free(p);
    return t;
}

Test(tasks, arc_easy_official_count_and_prompt) {
    spq_task t = load_ok("arc_easy", "data/eval/arc/ARC-Easy-Test.jsonl", 2376);
    cr_assert_str_eq(t.items[0].ctx[0],
                     "Question: Which statement best explains why photosynthesis is the foundation of most food "
                     "webs?\nAnswer:");
    cr_assert_str_eq(t.items[0].cont[0], " Sunlight is the source of energy for nearly all ecosystems.");
    cr_assert_eq(t.items[0].n, 4);
    cr_assert_eq(t.items[0].gold, 0);
    cr_assert_eq(t.items[0].chars[0], (long)strlen("Sunlight is the source of energy for nearly all ecosystems."));
    cr_assert(t.has_acc_norm);
    spq_task_free(&t);
}

Test(tasks, piqa_with_labels_file) {
    spq_task t = load_ok("piqa", "data/eval/piqa/valid.jsonl", 1838);
    cr_assert_str_eq(t.items[0].ctx[0], "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:");
    cr_assert_eq(t.items[0].gold, 0);
    cr_assert_eq(t.items[1].gold, 1);
    cr_assert_str_eq(t.items[1].cont[0], " replace drawer with bobby pin ");
    spq_task_free(&t);
}

Test(tasks, hellaswag_text_preprocessed) {
    spq_task t = load_ok("hellaswag", "data/eval/hellaswag/hellaswag_val_full.txt", 10042);
    /* ctx_b "he" capitalized as lm-eval does */
    cr_assert_str_eq(t.items[0].ctx[0], "Roof shingle removal: A man is sitting on a roof. He");
    cr_assert_str_eq(t.items[0].cont[3], " starts pulling up roofing on a roof.");
    cr_assert_eq(t.items[0].gold, 3);
    cr_assert_eq(t.items[0].n, 4);
    /* no bracketed artifacts survive preprocessing (an unclosed '[' does,
     * as with re.sub) */
    for (long i = 0; i < t.n_items; i++)
        for (int j = 0; j < 4; j++) {
            const char *b = strchr(t.items[i].cont[j], '[');
            cr_assert(!b || !strchr(b, ']'), "item %ld: %s", i, t.items[i].cont[j]);
        }
    spq_task_free(&t);
}

Test(tasks, winogrande_partial_scoring) {
    spq_task t = load_ok("winogrande", "data/eval/winogrande/dev.jsonl", 1267);
    const spq_task_item *it = &t.items[0];
    cr_assert_str_eq(it->ctx[0], "Sarah was a much better surgeon than Maria so Sarah");
    cr_assert_str_eq(it->ctx[1], "Sarah was a much better surgeon than Maria so Maria");
    cr_assert_str_eq(it->cont[0], " always got the easier cases.");
    cr_assert_str_eq(it->cont[1], " always got the easier cases.");
    cr_assert_eq(it->gold, 1);
    cr_assert(!t.has_acc_norm);
    spq_task_free(&t);
}

Test(tasks, boolq_no_yes) {
    spq_task t = load_ok("boolq", "data/eval/boolq/val.jsonl", 3270);
    const spq_task_item *it = &t.items[0];
    cr_assert_str_eq(it->cont[0], " no");
    cr_assert_str_eq(it->cont[1], " yes");
    cr_assert_eq(it->gold, 0); /* "false" */
    cr_assert_eq(t.items[1].gold, 1);
    cr_assert(strstr(it->ctx[0], "\nQuestion: does ethanol take more energy make that produces?\nAnswer:"));
    cr_assert(!strncmp(it->ctx[0], "Ethanol fuel -- All biomass", 27));
    spq_task_free(&t);
}

Test(tasks, openbookqa_stem_only) {
    spq_task t = load_ok("openbookqa", "data/eval/openbookqa/test.jsonl", 500);
    cr_assert_str_eq(t.items[1].ctx[0], "There is most likely going to be fog around:");
    cr_assert_str_eq(t.items[1].cont[0], " a marsh");
    cr_assert_eq(t.items[0].gold, 1);
    spq_task_free(&t);
}

Test(tasks, siqa_prompt_and_labels) {
    spq_task t = load_ok("siqa", "data/eval/siqa/dev.jsonl", 1954);
    cr_assert_str_eq(t.items[0].ctx[0], "Q: Tracy didn't go home that evening and resisted Riley's attacks. What "
                                        "does Tracy need to do before this?\nA:");
    cr_assert_eq(t.items[0].n, 3);
    cr_assert_eq(t.items[0].gold, 2); /* label 3 */
    cr_assert_eq(t.items[1].gold, 0);
    spq_task_free(&t);
}

Test(tasks, lambada_last_word) {
    spq_task t = load_ok("lambada", "data/eval/lambada/lambada_test.jsonl", 5153);
    cr_assert_eq(t.kind, SPQ_TASK_CLOZE);
    cr_assert_str_eq(t.items[0].cont[0], " signs");
    const char *c = t.items[0].ctx[0];
    cr_assert_str_eq(c + strlen(c) - 18, "I don't care about");
    spq_task_free(&t);
}

Test(tasks, tinystories_cloze_definition) {
    char *p = shared("data/tinystories/test.txt");
    spq_task t;
    spq_err err;
    cr_assert_eq(spq_task_load(&t, NULL, "tinystories_cloze", p, NULL, 0, &err), 0, "%s", err.msg);
    cr_assert(t.n_items > 2000, "%ld items", t.n_items);
    /* first paragraph: ends "... Even if he is not orange.\"" */
    cr_assert_str_eq(t.items[0].cont[0], " orange");
    const char *c = t.items[0].ctx[0];
    cr_assert_str_eq(c + strlen(c) - 17, "Even if he is not");
    cr_assert(!strncmp(c, "Lila nodded.", 12));
    /* second paragraph: "... They were happy." */
    cr_assert_str_eq(t.items[1].cont[0], " happy");
    cr_assert_eq(t.items[1].line, 3);
    for (long i = 0; i < t.n_items; i++) {
        const char *w = t.items[i].cont[0] + 1;
        for (const char *q = w; *q; q++) cr_assert((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z'));
        cr_assert(spq_py_count_words(t.items[i].ctx[0], strlen(t.items[i].ctx[0])) >= 9);
    }
    spq_task_free(&t);
    free(p);
}

Test(tasks, hellaswag_preprocess_matches_lm_eval) {
    const char *in = "  How to x [title] Do this. [step] Then  [header] that.   ";
    char *o = spq_hellaswag_preprocess(in, strlen(in));
    /* strip -> "How to x [title] Do this. [step] Then  [header] that."
     * [title] -> "How to x.  Do this. [step] Then  [header] that."
     * brackets -> "How to x.  Do this.  Then   that."
     * "  " -> " " once, non-overlapping -> "How to x. Do this. Then  that." */
    cr_assert_str_eq(o, "How to x. Do this. Then  that.");
    free(o);
}

/* ---- bad files ---- */

static char dir[64];

static void mkdir_tmp(void) {
    strcpy(dir, "/tmp/spq_tasks_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static char *write_tmp(const char *name, const char *data, size_t n) {
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    fwrite(data, 1, n, f);
    fclose(f);
    return p;
}

static void rm_tmp(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* rejects naming FILE:LINE and `what`; skipping leaves `good` items */
static void check_bad(const char *format, const char *name, const char *data, size_t n, long line, const char *what,
                      long good) {
    char *p = write_tmp(name, data, n);
    spq_task t;
    spq_err err = {{0}};
    cr_assert_eq(spq_task_load(&t, NULL, format, p, NULL, 0, &err), -1, "%s: accepted", name);
    char where[256];
    snprintf(where, sizeof where, "%s:%ld: ", p, line);
    cr_assert(strstr(err.msg, where), "%s: message '%s' lacks '%s'", name, err.msg, where);
    cr_assert(strstr(err.msg, what), "%s: message '%s' lacks '%s'", name, err.msg, what);
    memset(&err, 0, sizeof err);
    int rc = spq_task_load(&t, NULL, format, p, NULL, 1, &err);
    if (good == 0) {
        cr_assert_eq(rc, -1);
        cr_assert(strstr(err.msg, "no items"), "%s", err.msg);
    } else {
        cr_assert_eq(rc, 0, "%s: skip mode: %s", name, err.msg);
        cr_assert_eq(t.n_items, good);
        cr_assert_eq(t.n_skipped, 1);
        cr_assert(strstr(t.skipped, where) && strstr(t.skipped, what), "%s", t.skipped);
        spq_task_free(&t);
    }
    free(p);
}

static const char good_line[] = "{\"context\": \"2+2=\", \"choices\": [\"4\", \"5\"], \"gold\": 0}\n";

static void check_bad_jsonl(const char *name, const char *bad_line, const char *what) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s\n%s\n%s", good_line, bad_line, good_line); /* blank line 2, bad line 3 */
    check_bad("jsonl", name, buf, strlen(buf), 3, what, 2);
}

Test(tasks_bad, generic_jsonl_each_problem) {
    mkdir_tmp();
    check_bad_jsonl("missing_gold.jsonl", "{\"context\": \"a\", \"choices\": [\"b\"]}", "missing field \"gold\"");
    check_bad_jsonl("missing_ctx.jsonl", "{\"choices\": [\"b\"], \"gold\": 0}", "missing field \"context\"");
    check_bad_jsonl("gold_range.jsonl", "{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"gold\": 2}",
                    "gold 2 is out of range");
    check_bad_jsonl("gold_neg.jsonl", "{\"context\": \"a\", \"choices\": [\"b\"], \"gold\": -1}", "out of range");
    check_bad_jsonl("no_choices.jsonl", "{\"context\": \"a\", \"choices\": [], \"gold\": 0}", "no choices");
    check_bad_jsonl("empty_choice.jsonl", "{\"context\": \"a\", \"choices\": [\"b\", \"\"], \"gold\": 0}",
                    "choice 2 is empty");
    check_bad_jsonl("choice_type.jsonl", "{\"context\": \"a\", \"choices\": [\"b\", 3], \"gold\": 0}",
                    "choice 2 is not a string");
    check_bad_jsonl("malformed.jsonl", "{\"context\": \"a\", \"choices\": [\"b\"", "malformed JSON");
    check_bad_jsonl("not_object.jsonl", "[1, 2]", "not a JSON object");
    check_bad_jsonl("bad_utf8.jsonl", "{\"context\": \"caf\xc3\", \"choices\": [\"b\"], \"gold\": 0}",
                    "invalid UTF-8");
    check_bad_jsonl("overlong.jsonl", "{\"context\": \"\xc0\xaf\", \"choices\": [\"b\"], \"gold\": 0}",
                    "invalid UTF-8");
    /* a NUL byte inside a line */
    char nul[512];
    int k = snprintf(nul, sizeof nul, "%s\n{\"context\": \"a", good_line);
    nul[k++] = 0;
    k += snprintf(nul + k, sizeof nul - k, "\", \"choices\": [\"b\"], \"gold\": 0}\n%s", good_line);
    check_bad("jsonl", "nul.jsonl", nul, (size_t)k, 3, "NUL byte", 2);
    rm_tmp();
}

Test(tasks_bad, original_formats) {
    mkdir_tmp();
    /* ARC: answer key not among the labels, on line 2 */
    const char *arc = "{\"question\": {\"stem\": \"q\", \"choices\": [{\"text\": \"a\", \"label\": \"A\"}]}, "
                      "\"answerKey\": \"A\"}\n"
                      "{\"question\": {\"stem\": \"q\", \"choices\": [{\"text\": \"a\", \"label\": \"A\"}]}, "
                      "\"answerKey\": \"E\"}\n";
    check_bad("arc_easy", "arc.jsonl", arc, strlen(arc), 2, "answerKey 'E' is not one of the choice labels", 1);
    const char *arc2 = "{\"question\": {\"stem\": \"q\", \"choices\": []}, \"answerKey\": \"A\"}\n";
    check_bad("arc_easy", "arc2.jsonl", arc2, strlen(arc2), 1, "no choices", 0);
    /* BoolQ: label of the wrong kind */
    const char *bq = "{\"question\": \"q\", \"passage\": \"p\", \"label\": \"maybe\"}\n"
                     "{\"question\": \"q\", \"passage\": \"p\", \"label\": true}\n";
    check_bad("boolq", "bq.jsonl", bq, strlen(bq), 1, "label is not true/false", 1);
    /* WinoGrande: no blank */
    const char *wg = "{\"sentence\": \"no blank here\", \"option1\": \"a\", \"option2\": \"b\", \"answer\": \"1\"}\n"
                     "{\"sentence\": \"a _ b\", \"option1\": \"a\", \"option2\": \"b\", \"answer\": \"3\"}\n"
                     "{\"sentence\": \"a _ b\", \"option1\": \"a\", \"option2\": \"b\", \"answer\": \"2\"}\n";
    char *p = write_tmp("wg.jsonl", wg, strlen(wg));
    spq_task t;
    spq_err err;
    cr_assert_eq(spq_task_load(&t, NULL, "winogrande", p, NULL, 0, &err), -1);
    cr_assert(strstr(err.msg, ":1: the sentence has no blank"), "%s", err.msg);
    cr_assert_eq(spq_task_load(&t, NULL, "winogrande", p, NULL, 1, &err), 0, "%s", err.msg);
    cr_assert_eq(t.n_items, 1);
    cr_assert_eq(t.n_skipped, 2);
    cr_assert(strstr(t.skipped, ":2: answer 3 is not 1 or 2"), "%s", t.skipped);
    spq_task_free(&t);
    free(p);
    /* HellaSwag text: label not a number, and an incomplete last item */
    const char *hs = "ctx one\n1\na\nb\nc\nd\nctx two\nx\na\nb\nc\nd\nctx three\n0\na\n";
    p = write_tmp("hs.txt", hs, strlen(hs));
    cr_assert_eq(spq_task_load(&t, NULL, "hellaswag", p, NULL, 0, &err), -1);
    cr_assert(strstr(err.msg, "hs.txt:8: label 'x' is not 0-3"), "%s", err.msg);
    cr_assert_eq(spq_task_load(&t, NULL, "hellaswag", p, NULL, 1, &err), 0, "%s", err.msg);
    cr_assert_eq(t.n_items, 1);
    cr_assert_eq(t.n_skipped, 2);
    cr_assert(strstr(t.skipped, "hs.txt:13: incomplete item: 3 of 6 lines"), "%s", t.skipped);
    spq_task_free(&t);
    free(p);
    /* SIQA with a labels file that is too short: rejected even when skipping */
    const char *sq = "{\"context\": \"c\", \"question\": \"q\", \"answerA\": \"a\", \"answerB\": \"b\", \"answerC\": \"c\"}\n"
                     "{\"context\": \"c\", \"question\": \"q\", \"answerA\": \"a\", \"answerB\": \"b\", \"answerC\": \"c\"}\n";
    p = write_tmp("sq.jsonl", sq, strlen(sq));
    char *lp = write_tmp("sq-labels.lst", "2\n", 2);
    cr_assert_eq(spq_task_load(&t, NULL, "siqa", p, NULL, 1, &err), -1);
    cr_assert(strstr(err.msg, "sq-labels.lst: 1 labels for the 2 items"), "%s", err.msg);
    cr_assert_eq(spq_task_load(&t, NULL, "siqa", p, NULL, 0, &err), -1);
    cr_assert(strstr(err.msg, "sq.jsonl:2: no label in") && strstr(err.msg, "sq-labels.lst"), "%s", err.msg);
    free(lp);
    lp = write_tmp("sq-labels.lst", "2\n7\n", 4);
    cr_assert_eq(spq_task_load(&t, NULL, "siqa", p, NULL, 0, &err), -1);
    cr_assert(strstr(err.msg, "sq.jsonl:2: label 7 is not 1, 2 or 3"), "%s", err.msg);
    free(lp);
    free(p);
    /* an empty file, a missing file, an unknown format */
    p = write_tmp("empty.jsonl", "", 0);
    cr_assert_eq(spq_task_load(&t, NULL, "jsonl", p, NULL, 0, &err), -1);
    cr_assert(strstr(err.msg, "no items"));
    free(p);
    /* skipping every item still says why */
    p = write_tmp("allbad.jsonl", "{\"context\":\"c\"}\n{bad\n", 21);
    cr_assert_eq(spq_task_load(&t, NULL, "jsonl", p, NULL, 1, &err), -1);
    cr_assert(strstr(err.msg, "no items: all 2 were bad, the first: ") && strstr(err.msg, "allbad.jsonl:1: "),
              "%s", err.msg);
    free(p);
    cr_assert_eq(spq_task_load(&t, NULL, "jsonl", "/nonexistent/x.jsonl", NULL, 0, &err), -1);
    cr_assert(strstr(err.msg, "/nonexistent/x.jsonl"));
    cr_assert_eq(spq_task_load(&t, NULL, "nope", "/dev/null", NULL, 0, &err), -1);
    cr_assert(strstr(err.msg, "unknown task format 'nope'"));
    rm_tmp();
}

Test(tasks_bad, random_bytes_never_crash) {
    mkdir_tmp();
    /* every format over garbage and truncated real lines, skip and reject */
    unsigned s = 12345;
    char buf[4096];
    for (int trial = 0; trial < 20; trial++) {
        size_t n = 0;
        const char *frag[] = {"{\"context\": \"", "\"choices\": [", "\"gold\": ", "\n", "}", "{", "\"", "_", "1",
                              "\"answerKey\": \"A\"", "\xff", "\xe2\x80", " ", "[", "]", ","};
        while (n < sizeof buf - 64) {
            s = s * 1103515245 + 12345;
            const char *f = frag[(s >> 16) % (sizeof frag / sizeof *frag)];
            memcpy(buf + n, f, strlen(f));
            n += strlen(f);
        }
        char *p = write_tmp("garbage.jsonl", buf, n);
        for (const char *const *fmt = spq_task_formats; *fmt; fmt++)
            for (int skip = 0; skip < 2; skip++) {
                spq_task t;
                spq_err err;
                if (spq_task_load(&t, NULL, *fmt, p, NULL, skip, &err) == 0) spq_task_free(&t);
            }
        free(p);
    }
    rm_tmp();
}
