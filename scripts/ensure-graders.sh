#!/usr/bin/env bash
# Makes sure the daemon has Homeroom's two example grader images, built
# again when what goes into them changed:
#
#   homeroom/grader-file:dev   FROM scratch around $BIN/grader-file
#                              (cmd/grader-file; built here if missing)
#   homeroom/grader-notebook:<images/grader-notebook/VERSION>
#                              FROM homeroom/notebook:<images/notebook/VERSION>
#                              (scripts/ensure-notebook.sh makes it)
#
# Each image carries a label with a hash of its inputs (the files copied in,
# its Dockerfile and, for the notebook grader, the base image's id): a run
# with the same hash does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin}
label=org.homeroom.source-hash

# current_hash IMAGE prints the hash label of IMAGE, nothing when absent.
current_hash() {
  docker image inspect -f "{{index .Config.Labels \"$label\"}}" "$1" 2>/dev/null || true
}

# build TAG DIR HASH [BUILD-ARG...] builds DIR as TAG with the classic
# builder, as for the sandbox and notebook images (no BuildKit on Debian's
# docker.io); it warns that it is deprecated, so only a failure is shown.
build() {
  local tag=$1 dir=$2 hash=$3 out
  shift 3
  local args=(--build-arg "SOURCE_HASH=$hash")
  for a in "$@"; do args+=(--build-arg "$a"); done
  if ! out=$(DOCKER_BUILDKIT=0 docker build -q "${args[@]}" -t "$tag" "$dir" 2>&1); then
    echo "$out" >&2
    echo "ensure-graders: building $tag failed" >&2
    exit 1
  fi
  echo "built $tag" >&2
}

# The file grader.
if [ ! -x "$BIN/grader-file" ]; then
  CGO_ENABLED=0 ${GO:-go} build -trimpath -o "$BIN/" ./cmd/grader-file
fi
image=homeroom/grader-file:dev
hash=$(cat "$BIN/grader-file" images/grader-file/Dockerfile | sha256sum | cut -c1-64)
if [ "$(current_hash "$image")" != "$hash" ]; then
  dir=$BIN/image-grader-file
  rm -rf "$dir" && mkdir -p "$dir"
  cp "$BIN/grader-file" images/grader-file/Dockerfile "$dir/"
  build "$image" "$dir" "$hash"
fi

# The notebook grader. Its version starts with the notebook image's, so
# that a new notebook image is graded by a grader of the same libraries
# under a new tag.
nbversion=$(cat images/notebook/VERSION)
version=$(cat images/grader-notebook/VERSION)
if [[ $version != "$nbversion"-* ]]; then
  echo "ensure-graders: images/grader-notebook/VERSION ($version) must start with images/notebook/VERSION ($nbversion-)" >&2
  exit 1
fi
base=homeroom/notebook:$nbversion
image=homeroom/grader-notebook:$version
if ! docker image inspect "$base" >/dev/null 2>&1; then
  scripts/ensure-notebook.sh
fi
base_id=$(docker image inspect -f '{{.Id}}' "$base")
hash=$( { echo "$base_id"; cat images/grader-notebook/Dockerfile images/grader-notebook/grade-notebook.py; } | sha256sum | cut -c1-64)
if [ "$(current_hash "$image")" != "$hash" ]; then
  dir=$BIN/image-grader-notebook
  rm -rf "$dir" && mkdir -p "$dir"
  cp images/grader-notebook/Dockerfile "$dir/"
  install -m 0755 images/grader-notebook/grade-notebook.py "$dir/grade-notebook"
  build "$image" "$dir" "$hash" "NOTEBOOK_IMAGE=$base"
fi
