#!/bin/sh
# check_layers.sh - fails when an #include points up a layer or across the
# daemon/worker line, or when folders, headers or the files of proto/, server/
# and worker/ include each other in a circle.
#
#   scripts/check_layers.sh [ROOT]     (ROOT defaults to the repository)
#
# common/ is in folders ranked bottom to top (the table below, and
# docs/ARCHITECTURE.md). A file in common/Y may include:
#   - a header of its own folder by its bare name ("model.h");
#   - "common/X/..." when rank(X) <= rank(Y);
#   - nothing of proto/, server/, worker/ (common depends on nothing of ours).
# proto/ may include common/; server/ and worker/ may include proto/ and
# common/ but not each other. Then the folder graph (which folder includes
# which) and the header graph must have no circle, and neither must the
# files of proto/, server/ and worker/: there a file and its header are one
# unit (x.c and x.h: "server/x"), which depends on each unit of its folder
# whose header it includes, so that two .c files that include each other's
# header (directly or through other headers) are a circle too.
set -eu
cd "${1:-$(dirname "$0")/..}"

exec awk '
BEGIN {
    n = split("base kernels tok model rot quant io train eval job", order, " ")
    for (i = 1; i <= n; i++) rank[order[i]] = i - 1
    bad = 0
}
function fail(msg) { print FILENAME ":" FNR ": " msg > "/dev/stderr"; bad = 1 }
FNR == 1 {
    file = FILENAME; split(file, part, "/"); top = part[1]
    dir = file; sub(/\/[^\/]*$/, "", dir)
    me = top == "common" ? part[2] : top
    if (top == "common" && !(me in rank)) fail("folder common/" me " is not in the layer table of scripts/check_layers.sh")
}
/^[ \t]*#[ \t]*include[ \t]*"/ {
    inc = $0; sub(/^[^"]*"/, "", inc); sub(/".*/, "", inc)
    if (inc ~ /\.\.\//) { fail("\"" inc "\": include by the path from the root, not with ../"); next }
    if (inc !~ /\//) { target = dir "/" inc }
    else { target = inc }
    split(target, t, "/")
    them = t[1] == "common" ? t[2] : t[1]
    edge_file[file SUBSEP target] = 1
    if (top == "common") {
        if (t[1] != "common") { fail("\"" inc "\": common/ includes nothing of " t[1] "/"); next }
        if (!(them in rank)) { fail("\"" inc "\": common/" them " is not in the layer table"); next }
        if (rank[them] > rank[me])
            fail("\"" inc "\": common/" me " (layer " rank[me] ") includes common/" them " (layer " rank[them] "), a layer above it")
    } else if (t[1] == "server" || t[1] == "worker") {
        if (them != me) fail("\"" inc "\": " me "/ does not include " them "/")
    }
    if (them != me) folder_edge[me SUBSEP them] = 1
    if (top != "common" && t[1] == top) {
        unit = file; sub(/\.[ch]$/, "", unit)
        tunit = target; sub(/\.[ch]$/, "", tunit)
        if (tunit != unit) unit_edge[unit SUBSEP tunit] = 1
    }
}
# a depth-first search over an edge set; on a back edge, print the circle
function dfs(v, edges, kind,    k, e, w) {
    state[v] = 1; stack[++sp] = v
    for (k in edges) {
        split(k, e, SUBSEP)
        if (e[1] != v) continue
        w = e[2]
        if (state[w] == 1) { circle(w, kind); continue }
        if (!state[w]) dfs(w, edges, kind)
    }
    state[v] = 2; sp--
}
function circle(w, kind,    i, s) {
    s = w
    for (i = sp; i >= 1 && stack[i] != w; i--) s = stack[i] " -> " s
    print "include circle between " kind ": " w " -> " s > "/dev/stderr"
    bad = 1
}
function check_cycles(edges, kind,    k, e) {
    delete state; sp = 0
    for (k in edges) { split(k, e, SUBSEP); if (!state[e[1]]) dfs(e[1], edges, kind) }
}
END {
    check_cycles(folder_edge, "folders")
    for (k in edge_file) { split(k, e, SUBSEP); if (e[1] ~ /\.h$/ && e[2] ~ /\.h$/) header_edge[k] = 1 }
    check_cycles(header_edge, "headers")
    check_cycles(unit_edge, "files")
    if (bad) { print "check_layers: FAILED (layers in scripts/check_layers.sh, docs/ARCHITECTURE.md)" > "/dev/stderr"; exit 1 }
    print "check_layers: ok"
}
' $(find common proto server worker -name '*.[ch]' | sort)
