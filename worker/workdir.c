/* workdir.c - see workdir.h. */
#include "worker/workdir.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *tmp_root(void) {
    const char *t = getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

int wk_workdir_make(char *dir, size_t n) {
    snprintf(dir, n, "%s/spinq-worker-%d-XXXXXX", tmp_root(), (int)getpid());
    return mkdtemp(dir) ? 0 : -1;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path); /* best effort: what cannot go now goes at the next start */
    return 0;
}

void wk_workdir_remove(const char *dir) { nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS); }

void wk_workdir_clean_stale(void) {
    DIR *d = opendir(tmp_root());
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        int pid;
        if (sscanf(e->d_name, "spinq-worker-%d-", &pid) != 1 || pid <= 0) continue;
        if (kill(pid, 0) == 0 || errno != ESRCH) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", tmp_root(), e->d_name);
        wk_workdir_remove(path);
    }
    closedir(d);
}
