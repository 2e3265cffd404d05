/* test_config.c - spinqd settings: defaults, a config file with comments
 * and quotes, flags over the file, errors naming file and line, addresses. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "server/config.h"

static char *write_conf(const char *text) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/spq_conf_XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

Test(config, defaults_are_loopback_and_local) {
    spqd_config c;
    config_defaults(&c);
    cr_assert_str_eq(c.listen, "127.0.0.1:7070");
    cr_assert_str_eq(c.worker_listen, "127.0.0.1:7071");
    cr_assert_str_eq(c.data_dir, "./data");
    cr_assert_eq(c.workers, 2);
    cr_assert_eq(c.max_attempts, 3);
    cr_assert(strstr(c.worker_bin, "spinq-worker"));
}

Test(config, file_then_flags) {
    char *p = write_conf("# a comment\n\ndata_dir = /srv/x   # trailing comment\nworkers=5\n"
                         "worker_listen = \"\"\nlog_level = debug\nshutdown_grace = 2.5\nauth = required\n");
    spqd_config c;
    config_defaults(&c);
    spq_err err;
    char *argv[] = {"--config", p, "--workers", "3", "--data-dir", "/tmp/y"};
    cr_assert_eq(config_parse_args(&c, 6, argv, &err), 0, "%s", err.msg);
    cr_assert_eq(c.workers, 3, "a flag wins over the file");
    cr_assert_str_eq(c.data_dir, "/tmp/y");
    cr_assert_str_eq(c.worker_listen, "");
    cr_assert_str_eq(c.log_level, "debug");
    cr_assert_float_eq(c.shutdown_grace, 2.5, 1e-12);
    cr_assert_eq(c.auth_required, 1);
    unlink(p);
}

Test(config, errors_name_the_file_line_or_flag) {
    char *p = write_conf("workers = 2\nworkers = many\n");
    spqd_config c;
    config_defaults(&c);
    spq_err err;
    cr_assert_eq(config_load_file(&c, p, &err), -1);
    cr_assert(strstr(err.msg, ":2: workers: expected an integer"), "%s", err.msg);
    unlink(p);
    p = write_conf("colour = blue\n");
    cr_assert_eq(config_load_file(&c, p, &err), -1);
    cr_assert(strstr(err.msg, ":1: unknown setting 'colour'"), "%s", err.msg);
    unlink(p);
    p = write_conf("just words\n");
    cr_assert_eq(config_load_file(&c, p, &err), -1);
    cr_assert(strstr(err.msg, "expected 'key = value'"), "%s", err.msg);
    unlink(p);
    char *a1[] = {"--colour", "x"};
    cr_assert_eq(config_parse_args(&c, 2, a1, &err), -1);
    cr_assert(strstr(err.msg, "unknown flag --colour"), "%s", err.msg);
    char *a2[] = {"--workers"};
    cr_assert_eq(config_parse_args(&c, 1, a2, &err), -1);
    cr_assert(strstr(err.msg, "needs a value"), "%s", err.msg);
    char *a3[] = {"--log-level", "loud"};
    cr_assert_eq(config_parse_args(&c, 2, a3, &err), -1);
}

Test(config, addresses_split_and_loopback_is_recognized) {
    char host[64];
    int port;
    spq_err err;
    cr_assert_eq(config_split_hostport("127.0.0.1:7070", host, sizeof host, &port, &err), 0);
    cr_assert_str_eq(host, "127.0.0.1");
    cr_assert_eq(port, 7070);
    cr_assert_eq(config_split_hostport("[::1]:80", host, sizeof host, &port, &err), 0);
    cr_assert_str_eq(host, "::1");
    cr_assert_eq(config_split_hostport("nohost", host, sizeof host, &port, &err), -1);
    cr_assert_eq(config_split_hostport("h:99999", host, sizeof host, &port, &err), -1);
    cr_assert_eq(config_split_hostport("h:", host, sizeof host, &port, &err), -1);
    cr_assert(config_is_loopback("127.0.0.1"));
    cr_assert(config_is_loopback("127.1.2.3"));
    cr_assert(config_is_loopback("::1"));
    cr_assert(config_is_loopback("localhost"));
    cr_assert(!config_is_loopback("0.0.0.0"));
    cr_assert(!config_is_loopback("10.0.0.1"));
    cr_assert(!config_is_loopback("::"));
}

Test(config, web_dir_defaults_to_an_existing_dashboard_or_none) {
    spqd_config c;
    config_defaults(&c);
    if (c.web_dir[0]) { /* found beside the binary: it must hold the page */
        char index[600];
        snprintf(index, sizeof index, "%s/index.html", c.web_dir);
        cr_assert_eq(access(index, R_OK), 0, "%s", index);
    }
    spq_err err;
    char *argv[] = {"--web-dir", "/srv/web"};
    cr_assert_eq(config_parse_args(&c, 2, argv, &err), 0, "%s", err.msg);
    cr_assert_str_eq(c.web_dir, "/srv/web");
    char *p = write_conf("web_dir = \"\"\n");
    cr_assert_eq(config_load_file(&c, p, &err), 0, "%s", err.msg);
    cr_assert_str_eq(c.web_dir, "", "an empty web_dir turns the dashboard off");
    unlink(p);
}

Test(config, the_slurm_executor_and_its_settings) {
    spqd_config c;
    config_defaults(&c);
    cr_assert_eq(c.executor_slurm, 0, "local is the default");
    cr_assert_eq(c.slurm_tasks, 1);
    spq_err err;
    char *argv[] = {"--executor", "slurm", "--slurm-partition", "gpu", "--slurm-tasks", "4", "--slurm-sbatch-flags",
                    "--qos=long --exclusive", "--slurm-connect", "head:7071"};
    cr_assert_eq(config_parse_args(&c, 10, argv, &err), 0, "%s", err.msg);
    cr_assert_eq(c.executor_slurm, 1);
    cr_assert_str_eq(c.slurm_partition, "gpu");
    cr_assert_eq(c.slurm_tasks, 4);
    cr_assert_str_eq(c.slurm_sbatch_flags, "--qos=long --exclusive");
    cr_assert_str_eq(c.slurm_connect, "head:7071");
    static const char *const bad[][3] = {
        {"executor", "k8s", "executor: expected 'local' or 'slurm'"},
        {"slurm_partition", "a b", "slurm_partition: must be one word"},
        {"slurm_tasks", "0", "slurm_tasks: expected an integer in [1"},
        {"slurm_connect", "head", "slurm_connect: expected HOST:PORT"},
        {"slurm_sbatch_flags", "--comment='x'", "slurm_sbatch_flags: flags are split at spaces"},
        {"slurm_poll", "0", "slurm_poll: expected seconds"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(config_set(&c, bad[i][0], bad[i][1], &err), -1, "%s = %s accepted", bad[i][0], bad[i][1]);
        cr_assert(strstr(err.msg, bad[i][2]), "%s: '%s'", bad[i][0], err.msg);
    }
}
