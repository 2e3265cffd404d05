# results_common.sh - the set-up every scripts/results_*.sh shares, sourced
# with the default output dir as $1 and the user's OUTDIR (if any) as $2:
# builds the release tools and sets shared, model (stories260K), calib,
# test (tinystories), out (created) and spinq.
make --no-print-directory rel >&2
shared=${SPINQ_SHARED:-$(cd .. && pwd)/shared}
model=$shared/models/stories260K/stories260K.bin
calib=$shared/data/tinystories/calib.txt
test=$shared/data/tinystories/test.txt
out=${2:-$1}
mkdir -p "$out"
spinq=build/rel/spinq
