#!/usr/bin/env bash
# Rolling-origin backtest of one prepared bayesm data set (prepare.py) with the project's CLI.
#
#   bench/real_data/run.sh NAME [extra `mm-assets backtest` args, e.g. --model linear,ets,seasonal_naive --out F]
#
# NAME: tuna | cheese | orangeJuice (a folder under $REALDATA_ROOT, default /work/realdata). Runs from that folder
# with MM_ASSETS_SETTINGS=<folder>/mm_assets.yaml and a fresh DAGSTER_HOME=<folder>/dagster_home (the project's
# mm_assets/local_instance.yaml copied in as its dagster.yaml). The derived state of an earlier run (lake, registry/warehouse/production databases) is
# removed first so every run starts from the source alone; source.db and mm_assets.yaml are kept.
# The package imported is the venv's (the repo checkout) unless PYTHONPATH points elsewhere, e.g.
#   PYTHONPATH=/work/wt-baseline bench/real_data/run.sh tuna --model linear
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: $0 NAME [extra mm-assets backtest args]" >&2
  exit 2
fi
NAME=$1
shift
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
ROOT=${REALDATA_ROOT:-/work/realdata}
DIR=$ROOT/$NAME
if [[ ! -f $DIR/mm_assets.yaml || ! -f $DIR/source.db ]]; then
  echo "error: $DIR/mm_assets.yaml or source.db missing; run bench/real_data/prepare.py first" >&2
  exit 2
fi

rm -rf "$DIR/dagster_home" "$DIR/lake" "$DIR/registry.db" "$DIR/warehouse.db" "$DIR/production.db"
mkdir -p "$DIR/dagster_home"
cp "$REPO/mm_assets/local_instance.yaml" "$DIR/dagster_home/dagster.yaml"

cd "$DIR"
export MM_ASSETS_SETTINGS=$DIR/mm_assets.yaml
export DAGSTER_HOME=$DIR/dagster_home
echo "mm_assets imported from: $("$REPO/.venv/bin/python" -c 'import mm_assets; print(mm_assets.__file__)')"
start=$(date +%s.%N)
status=0
"$REPO/.venv/bin/mm-assets" backtest --origins 10 --horizon 2 --gap 1 "$@" || status=$?
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" -v rc="$status" 'BEGIN { printf "wall time: %.1f s (exit %d)\n", e - s, rc }'
exit "$status"
