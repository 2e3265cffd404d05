/* config.h - spinqd's settings: embedded defaults, then a config file
 * (`key = value` lines, # comments), then command-line flags. */
#ifndef SPQD_CONFIG_H
#define SPQD_CONFIG_H

#include "common/base/util.h"

typedef struct {
    char data_dir[512];      /* spinq.db and artifacts/ live here */
    char listen[128];        /* HTTP address, host:port */
    char worker_listen[128]; /* remote workers' address, host:port; "" = none */
    int workers;             /* local workers to spawn */
    char models_dir[512];
    char datasets_dir[512];
    char worker_bin[512];    /* spinq-worker; default: beside spinqd */
    char web_dir[512];       /* the dashboard's files; "" = no dashboard */
    char log_level[16];
    int http_threads;
    int max_attempts;        /* tries per run before it fails */
    int max_body;            /* bytes of a request body */
    double shutdown_grace;   /* seconds workers get to checkpoint on SIGTERM */
    double sse_ping;         /* seconds between keep-alive comments on the event streams */
    double events_keep_hours; /* metric/progress events of finished runs live this long (metrics stay) */
    double heartbeat_timeout; /* seconds of silence after which a worker connection is dropped */
    int keep_checkpoints;    /* newest rotation checkpoints kept per run; 0 = all */
    int auth_required;       /* demand tokens even on loopback (else: when tokens exist) */
    /* where runs go: local/remote workers (default), or one Slurm job each (slurm.c) */
    int executor_slurm;
    char slurm_partition[128];   /* sbatch --partition; "" = the cluster's default */
    char slurm_account[128];     /* sbatch --account; "" = none */
    char slurm_time[64];         /* sbatch --time (a run's wall-clock limit); "" = the partition's */
    int slurm_nodes, slurm_tasks, slurm_threads; /* a run's defaults for resources.* left 0 */
    char slurm_sbatch_flags[512]; /* more sbatch flags, split at spaces */
    char slurm_script[512];      /* the batch script; default deploy/slurm/spinq-run.sbatch beside the build */
    char slurm_worker_bin[512];  /* spinq-worker on the compute nodes; "" = worker_bin */
    char slurm_connect[256];     /* HOST:PORT the jobs' workers connect to; "" = worker_listen (0.0.0.0: this host) */
    char slurm_token_file[512];  /* a worker token for the jobs (file); "" = none (a daemon without tokens) */
    double slurm_poll;           /* seconds between looks at squeue */
} spqd_config;

/* Defaults; models/datasets dirs point at ../shared when it exists; the
 * web dir is the first of EXE_DIR/../../web (a build in the source tree:
 * build/rel/spinqd) and EXE_DIR/../share/spinq/web (an install under a
 * prefix: /usr/local/bin/spinqd) that holds an index.html, else "". */
void config_defaults(spqd_config *c);
/* Applies a config file; errors name the file and line. */
int config_load_file(spqd_config *c, const char *path, spq_err *err);
/* Applies one key (file key or flag name without "--", '-' or '_'). */
int config_set(spqd_config *c, const char *key, const char *value, spq_err *err);
/* Parses flags (argv[i..]) into c; --config FILE is applied first wherever
 * it appears. Unknown flags are errors. */
int config_parse_args(spqd_config *c, int argc, char **argv, spq_err *err);
/* Splits "host:port" ("[v6]:port" too); 0 or -1. */
int config_split_hostport(const char *s, char *host, size_t cap, int *port, spq_err *err);
/* 1 when host is a loopback address (127.0.0.0/8, ::1, localhost). */
int config_is_loopback(const char *host);

#endif
