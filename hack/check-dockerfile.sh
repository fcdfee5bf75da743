#!/usr/bin/env bash
# Check a Dockerfile without a Docker engine: replay its build stage on the
# host and inspect the resulting binary.
#
#   hack/check-dockerfile.sh DOCKERFILE [NAME=VALUE ...]
#
# NAME=VALUE pairs play the role of --build-arg. The script
#   1. builds a scratch build context holding only what the build stage's
#      COPY lines bring in (relative to its WORKDIR), minus what .dockerignore
#      excludes (the simple patterns used in this repository: top-level names
#      and **/name), so a missing COPY or an over-eager .dockerignore fails;
#   2. runs every RUN line of the build stage that contains `go build`,
#      verbatim through sh with the ARGs as variables, only with its
#      `-o /absolute/path` redirected into a temporary directory, so a
#      Dockerfile pointing at a wrong package fails;
#   3. checks the binary: built with CGO_ENABLED=0 and -trimpath (read back
#      from `go version -m`, not from the Dockerfile text) and, when the
#      Dockerfile stamps -X main.version, that main.version exists;
#   4. checks the runtime stage: distroless static nonroot, a non-root USER,
#      an exec-form ENTRYPOINT and no RUN (the image has no shell).
# `go mod download` and other non-build RUN lines are skipped: the host's
# module cache stands in for them.
set -euo pipefail

readonly WANT_BASE="gcr.io/distroless/static-debian12:nonroot"

die() { echo "check-dockerfile: ${DOCKERFILE:-?}: $*" >&2; exit 1; }

[[ $# -ge 1 ]] || { echo "usage: $0 DOCKERFILE [NAME=VALUE ...]" >&2; exit 2; }
DOCKERFILE=$1
shift
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "${REPO_ROOT}"
[[ -f "${DOCKERFILE}" ]] || die "no such file"

GO=${GO:-go}
WORK=$(mktemp -d)
trap 'rm -rf "${WORK}"' EXIT
CTX="${WORK}/ctx"
OUT="${WORK}/out"
mkdir -p "${CTX}" "${OUT}"

# Instructions, one per line: continuation lines joined, comments and blank
# lines dropped.
mapfile -t INSTRUCTIONS < <(
  grep -v '^[[:space:]]*#' "${DOCKERFILE}" |
    awk '{ if (sub(/\\[[:space:]]*$/, "")) { acc = acc $0 " " } else { print acc $0; acc = "" } }
         END { if (acc != "") print acc }' |
    grep -v '^[[:space:]]*$'
)

# Build args: defaults from ARG lines, overridden by the command line.
declare -A ARGS=()
declare -A OVERRIDES=()
for kv in "$@"; do
  [[ "${kv}" == *=* ]] || die "argument ${kv}: want NAME=VALUE"
  OVERRIDES["${kv%%=*}"]="${kv#*=}"
done

stage=0
workdir=/
builds=0
final_from=""
final_user=""
final_entrypoint=""
final_runs=0
from_count=$(printf '%s\n' "${INSTRUCTIONS[@]}" | grep -ci '^[[:space:]]*FROM[[:space:]]')
[[ "${from_count}" -ge 2 ]] || die "want a multi-stage build (build stage + runtime stage), found ${from_count} FROM"

for line in "${INSTRUCTIONS[@]}"; do
  read -r keyword rest <<<"${line}"
  keyword=${keyword^^}
  if [[ "${keyword}" == FROM ]]; then
    stage=$((stage + 1))
    if [[ "${stage}" -eq "${from_count}" ]]; then
      read -r final_from _ <<<"${rest}"
    fi
    continue
  fi
  if [[ "${stage}" -eq "${from_count}" ]]; then
    # Runtime stage: record what must be checked.
    case "${keyword}" in
      USER) final_user=${rest} ;;
      ENTRYPOINT) final_entrypoint=${rest} ;;
      RUN) final_runs=$((final_runs + 1)) ;;
    esac
    continue
  fi
  [[ "${stage}" -eq 1 ]] || continue # only the first (build) stage is replayed
  case "${keyword}" in
    ARG)
      name=${rest%%=*}
      value=""
      [[ "${rest}" == *=* ]] && value=${rest#*=}
      ARGS["${name}"]=${OVERRIDES["${name}"]-${value}}
      ;;
    WORKDIR)
      workdir=${rest}
      mkdir -p "${CTX}${workdir}"
      ;;
    COPY)
      read -r -a words <<<"${rest}"
      [[ "${words[0]}" == --from=* ]] && continue
      srcs=()
      for w in "${words[@]}"; do [[ "${w}" == --* ]] || srcs+=("${w}"); done
      dst=${srcs[-1]}
      unset 'srcs[-1]'
      [[ "${dst}" == /* ]] || dst="${workdir%/}/${dst}"
      for src in "${srcs[@]}"; do
        [[ -e "${src}" ]] || die "COPY ${src}: not in the build context"
        if [[ -d "${src}" ]]; then
          # Docker copies a directory's contents into the destination.
          mkdir -p "${CTX}${dst}"
          cp -a "${src}/." "${CTX}${dst}/"
        elif [[ "${dst}" == */ || "${#srcs[@]}" -gt 1 ]]; then
          mkdir -p "${CTX}${dst}"
          cp -a "${src}" "${CTX}${dst}"
        else
          mkdir -p "$(dirname "${CTX}${dst}")"
          cp -a "${src}" "${CTX}${dst}"
        fi
      done
      ;;
    RUN)
      [[ "${rest}" == *"go build"* ]] || continue
      # Apply .dockerignore (once, before the first build): Docker never sends
      # the excluded files, so the build must work without them.
      if [[ "${builds}" -eq 0 && -f .dockerignore ]]; then
        while IFS= read -r pattern; do
          pattern=${pattern%%#*}
          pattern=${pattern//[[:space:]]/}
          [[ -n "${pattern}" ]] || continue
          if [[ "${pattern}" == '**/'* ]]; then
            find "${CTX}" -name "${pattern#'**/'}" -prune -exec rm -rf {} +
          else
            # Top-level names: the build context root maps to WORKDIR here,
            # since every COPY in these Dockerfiles mirrors its source path.
            (cd "${CTX}${workdir}" && shopt -s nullglob && for p in ${pattern}; do rm -rf "${p}"; done)
          fi
        done <.dockerignore
      fi
      builds=$((builds + 1))
      # $CHECK_OUT is expanded later by the sh running the command, not here.
      # shellcheck disable=SC2016
      cmd=$(sed -E 's#-o[[:space:]]+/[^[:space:]]*/([^/[:space:]]+)#-o "$CHECK_OUT"/\1#g' <<<"${rest}")
      # shellcheck disable=SC2016
      [[ "${cmd}" == *'$CHECK_OUT'* ]] || die "RUN ... go build without -o /absolute/path: ${rest}"
      env_args=("CHECK_OUT=${OUT}" "GOWORK=off")
      for name in "${!ARGS[@]}"; do env_args+=("${name}=${ARGS[${name}]}"); done
      echo "check-dockerfile: ${DOCKERFILE}: RUN ${rest}"
      (cd "${CTX}${workdir}" && env "${env_args[@]}" sh -ec "${cmd}") ||
        die "the build stage's go build failed (see above)"
      ;;
  esac
done

[[ "${builds}" -gt 0 ]] || die "no RUN ... go build in the build stage"
shopt -s nullglob
bins=("${OUT}"/*)
[[ "${#bins[@]}" -gt 0 ]] || die "go build produced no binary"
for bin in "${bins[@]}"; do
  info=$("${GO}" version -m "${bin}")
  grep -q $'\tbuild\tCGO_ENABLED=0$' <<<"${info}" || die "$(basename "${bin}"): not built with CGO_ENABLED=0"
  grep -q $'\tbuild\t-trimpath=true$' <<<"${info}" || die "$(basename "${bin}"): not built with -trimpath"
  if grep -q -- '-X main.version=' <<<"${info}"; then
    "${GO}" tool nm "${bin}" | grep -q '[[:space:]]main\.version$' ||
      die "$(basename "${bin}"): -X main.version given but the package has no main.version"
  fi
  echo "check-dockerfile: ${DOCKERFILE}: $(basename "${bin}"): $(sed -n 's/^\tpath\t//p' <<<"${info}"), CGO_ENABLED=0, -trimpath"
done

[[ "${final_from}" == "${WANT_BASE}" ]] || die "runtime stage FROM ${final_from:-?}, want ${WANT_BASE}"
[[ -n "${final_user}" && "${final_user}" != root* && "${final_user}" != 0 && "${final_user}" != 0:* ]] ||
  die "runtime stage needs a non-root USER (got '${final_user}')"
[[ "${final_entrypoint}" == \[* ]] || die "runtime stage needs an exec-form ENTRYPOINT [...] (no shell in distroless)"
[[ "${final_runs}" -eq 0 ]] || die "runtime stage has RUN: distroless has no shell"
echo "check-dockerfile: ${DOCKERFILE}: OK (runtime ${final_from}, USER ${final_user}, ENTRYPOINT ${final_entrypoint})"
