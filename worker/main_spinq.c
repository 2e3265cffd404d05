/* main_spinq.c - the `spinq` command-line tool: one-shot local jobs with the
 * same pipeline the workers run, no daemon. */
#include <stdio.h>
#include <string.h>

#include "common/base/cpu.h"
#include "common/base/par.h"
#include "worker/commands.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *usage;
} command;

static const command commands[] = {
    {"info", cli_cmd_info, "info MODEL                          shape, parameters, tokenizer"},
    {"generate", cli_cmd_generate, "generate MODEL [-p TEXT] [-n N] [-t T] [--top-p P] [--seed S]"},
    {"ppl", cli_cmd_ppl, "ppl MODEL --data FILE [--seqlen N]  perplexity over non-overlapping windows"},
    {"eval", cli_cmd_eval, "eval MODEL [--ppl FILE] [--task NAME=PATH] ...  perplexity, KLD, zero-shot tasks"},
    {"tokenize", cli_cmd_tokenize, "tokenize (--tokenizer P | --model P) [--lines F | --jsonl F | --file F | --text T] [--no-special] [--decode]"},
    {"rotate", cli_cmd_rotate, "rotate MODEL --calib FILE --out R.safetensors [...]  learn SpinQuant rotations"},
    {"quantize", cli_cmd_quantize, "quantize MODEL --out MODEL.spq [--method rtn|gptq --calib FILE ...]  packed low-bit model"},
    {"export-hf", cli_cmd_export_hf, "export-hf MODEL --rotation R --mode no-had --out DIR  rotated model as a HF directory"},
    {"export-gguf", cli_cmd_export_gguf, "export-gguf MODEL --type f16|q8_0|q4_0 [--method rtn|gptq] --out F.gguf  for llama.cpp"},
    {"make-model", cli_cmd_make_model, "make-model SHAPE --out DIR [--dtype bf16] [--layers L] [--shards N]  random weights of a real shape"},
    {"run", cli_cmd_run, "run SPEC.json [--out DIR]              a job spec through the pipeline, no daemon"},
    {"cpu", cli_cmd_cpu, "cpu [--coretype]                   CPU features and OpenBLAS kernels"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: spinq COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) fprintf(f, "  spinq %s\n", commands[i].usage);
    fprintf(f, "\nMODEL is a Hugging Face directory, a llama2.c .bin checkpoint, a GGUF file (F32/F16/BF16/Q8_0/Q4_0 llama) or a packed model (spinq quantize).\n");
}

int main(int argc, char **argv) {
    spq_cpu_ensure_coretype(argv);
    if (spq_par_init(&argc, &argv)) return 1;
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "spinq: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
