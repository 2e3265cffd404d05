/* commands.h - the subcommands of the `spinq` tool. Each lives in its own
 * worker/cmd_*.c and returns the process exit status. */
#ifndef CLI_COMMANDS_H
#define CLI_COMMANDS_H

int cli_cmd_info(int argc, char **argv);
int cli_cmd_generate(int argc, char **argv);
int cli_cmd_ppl(int argc, char **argv);
int cli_cmd_eval(int argc, char **argv);
int cli_cmd_rotate(int argc, char **argv);
int cli_cmd_cpu(int argc, char **argv);
int cli_cmd_tokenize(int argc, char **argv);
int cli_cmd_quantize(int argc, char **argv);
int cli_cmd_export_hf(int argc, char **argv);
int cli_cmd_export_gguf(int argc, char **argv);
int cli_cmd_run(int argc, char **argv);
int cli_cmd_make_model(int argc, char **argv);

#endif
