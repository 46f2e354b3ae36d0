#!/usr/bin/env bash
# Usage: scripts/dbt_build.sh [duckdb|spark|spark_thrift] [extra dbt args...]
# Runs `dbt build` for the given target from the repo root with the committed profiles.yml.
# Spark (dbt-spark session mode) writes metastore_db/, spark-warehouse/ and derby.log into its
# working directory, so the spark build runs from a throw-away directory (--project-dir points back).
# Set RECSYS_EVAL_SPARK_WORKDIR to a directory to keep the warehouse (parquet) for inspection instead.
# spark_thrift builds through a running Thrift server (scripts/spark_cluster start; profiles.yml target
# spark_thrift: RECSYS_EVAL_SPARK_THRIFT_HOST / _PORT, RECSYS_EVAL_SPARK_THREADS, default 2 threads).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${1:-duckdb}"
if [[ $# -gt 0 ]]; then shift; fi

dbt_bin="${DBT_BIN:-${repo_root}/.venv/bin/dbt}"
if [[ ! -x "${dbt_bin}" ]]; then dbt_bin="$(command -v dbt)"; fi

export DBT_PROFILES_DIR="${repo_root}"
export DBT_SEND_ANONYMOUS_USAGE_STATS=false
export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"

case "${target}" in
    duckdb)
        cd "${repo_root}"
        mkdir -p target
        exec "${dbt_bin}" build --target duckdb "$@"
        ;;
    spark)
        if [[ -n "${RECSYS_EVAL_SPARK_WORKDIR:-}" ]]; then
            work_dir="${RECSYS_EVAL_SPARK_WORKDIR}"
            mkdir -p "${work_dir}"
        else
            work_dir="$(mktemp -d "${TMPDIR:-/tmp}/recsys_eval_spark.XXXXXX")"
            trap 'rm -rf "${work_dir}"' EXIT
        fi
        cd "${work_dir}"
        # Derby metastore and warehouse live (and die) in work_dir; dbt's target/ and logs/ stay in the repo.
        "${dbt_bin}" build --target spark --project-dir "${repo_root}" \
            --target-path "${repo_root}/target/spark" --log-path "${repo_root}/logs" "$@"
        ;;
    spark_thrift)
        cd "${repo_root}"
        exec "${dbt_bin}" build --target spark_thrift \
            --target-path "${repo_root}/target/spark_thrift" --log-path "${repo_root}/logs" "$@"
        ;;
    *)
        echo "usage: $0 [duckdb|spark|spark_thrift] [extra dbt args]" >&2
        exit 2
        ;;
esac
