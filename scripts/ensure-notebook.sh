#!/usr/bin/env bash
# Makes sure the daemon has homeroom/notebook:<version>, the image of the
# built-in `notebook` template: Jupyter Notebook, ipykernel, numpy and
# matplotlib from Debian's packages, since no container registry answers on
# Homeroom's build machines but Debian's mirror does.
#
# The root filesystem is built once per machine (debootstrap, then apt inside
# it; 2 to 3 minutes on a 2-core machine) and cached as a tarball in
# $HOMEROOM_CACHE/notebook-<rootfs>/ (default /var/cache/homeroom). The image
# is images/notebook/Dockerfile on it: Homeroom's settings for Jupyter. A
# later run with the image gone only checks and imports the tarball again
# (15 to 30 s), and a run with the image present does nothing. The image's
# version is images/notebook/VERSION, and pkg/policy's built-in template names
# the same tag (a test checks): change anything that ends up in the image,
# bump it (and $rootfs below when the root file system changes).
#
# Root is needed (debootstrap, chroot). HOMEROOM_DEBIAN_MIRROR overrides the
# mirror, which is otherwise the one apt on this machine uses for Debian.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(cat images/notebook/VERSION)
image=homeroom/notebook:$version
# The root file system's own version: bump it when the packages or build()
# change, which builds it again (minutes); VERSION alone only rebuilds the
# small layer of images/notebook on the cached one (seconds).
rootfs=bookworm-1
suite=bookworm
packages=(python3-notebook python3-ipykernel python3-numpy python3-matplotlib tini
  # Where a dependency has alternatives apt takes the first, and two of those
  # would more than double the image: python3-fonttools' python3-scipy (with
  # pythran, gcc, g++ and Boost) and python3-pydevd's full gdb (with
  # libpython, Boost and ICU). These are the small ones.
  python3-munkres gdb-minimal)
cache=${HOMEROOM_CACHE:-/var/cache/homeroom}
dir=$cache/notebook-$rootfs
tarball=$dir/rootfs.tar

# The sandbox user. uid 1000 rather than 65534: nobody is meant to own no
# files, while this user owns each student's home and everything in it; and
# 1000 is the uid of Jupyter's own images (jovyan, home /home/jovyan), so a
# school that names one of them in its policy instead finds the same owner
# and paths on the students' volumes.
user=jovyan
uid=1000
home=/home/$user

if docker image inspect "$image" >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "ensure-notebook: building $image needs root (debootstrap, chroot)" >&2
  exit 1
fi
mkdir -p "$cache"
# One build at a time; a second `make images` waits for the first and then
# finds the image.
exec 9>"$cache/notebook-$rootfs.lock"
flock 9
if docker image inspect "$image" >/dev/null 2>&1; then
  exit 0
fi

# unmount_under unmounts whatever a build mounted inside $1 (deepest first),
# so that removing a build directory never reaches into /proc.
unmount_under() {
  local m
  awk -v p="$1/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r m; do
    umount -l "$m" || true
  done
}

# Builds of this root file system that were killed (SIGKILL leaves no trap
# to run) are removed; we hold its lock, so none is still running.
for stale in "$cache/.notebook-$rootfs.build."*; do
  [ -d "$stale" ] || continue
  unmount_under "$stale"
  rm -rf --one-file-system "$stale"
done

# debian_mirror prints the URI apt on this machine fetches Debian's main
# suite from (deb822 sources, then one-line ones), or with "security" the
# one it fetches security updates from; nothing when there is none.
debian_mirror() {
  local want=$1 f found
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    found=$(awk -v want="$want" -v deb822="$([[ $f == *.sources ]] && echo 1)" '
      function pick(uri, suites,   n, i, s, sec) {
        if (done || uri !~ /^https?:/) return
        n = split(suites, s, " ")
        for (i = 1; i <= n; i++) {
          sec = (s[i] ~ /-security$/ || s[i] ~ /\/updates$/)
          if ((want == "security" && sec) || (want == "main" && s[i] !~ /[-\/]/)) { print uri; done = 1; exit }
        }
      }
      function paragraph(   u) {
        if (types ~ /(^| )deb( |$)/ && enabled != "no") { split(uris, u, " "); pick(u[1], suites) }
        types = uris = suites = enabled = ""
      }
      deb822 && /^[ \t]*$/ { paragraph(); next }
      deb822 && $1 == "Types:" { $1 = ""; types = $0 }
      deb822 && $1 == "URIs:" { $1 = ""; uris = $0 }
      deb822 && $1 == "Suites:" { $1 = ""; suites = $0 }
      deb822 && $1 == "Enabled:" { enabled = $2 }
      deb822 { next }
      $1 == "deb" {
        i = 2
        if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        pick($i, $(i + 1))
      }
      END { if (deb822) paragraph() }
    ' "$f")
    if [ -n "$found" ]; then
      echo "$found"
      return 0
    fi
  done
}

build() {
  local mirror security tmp root started
  started=$(date +%s)
  mirror=${HOMEROOM_DEBIAN_MIRROR:-}
  if [ -z "$mirror" ] && grep -qx 'ID=debian' /etc/os-release 2>/dev/null; then
    mirror=$(debian_mirror main)
    security=$(debian_mirror security)
  fi
  mirror=${mirror:-http://deb.debian.org/debian}
  if ! command -v debootstrap >/dev/null 2>&1; then
    echo "ensure-notebook: installing Debian's debootstrap" >&2
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null 2>&1; then
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    fi
  fi
  echo "ensure-notebook: building $image from $mirror (2 to 3 minutes, once per machine)" >&2

  # Built beside the cache, on the same file system, so that the finished
  # directory is renamed into place in one step: a build killed at any point
  # leaves no cache, and the next run builds again.
  tmp=$(mktemp -d "$cache/.notebook-$rootfs.build.XXXXXX")
  root=$tmp/rootfs
  # shellcheck disable=SC2064
  trap "unmount_under '$tmp'; rm -rf --one-file-system '$tmp'" EXIT
  local log=$tmp/build.log
  if ! debootstrap --variant=minbase --components=main "$suite" "$root" "$mirror" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    echo "ensure-notebook: debootstrap failed" >&2
    exit 1
  fi

  # What the packages below would unpack and nobody reads in a sandbox.
  cat >"$root/etc/dpkg/dpkg.cfg.d/homeroom-excludes" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
CFG
  {
    echo "deb $mirror $suite main"
    echo "deb $mirror $suite-updates main"
    if [ -n "${security:-}" ]; then echo "deb $security $suite-security main"; fi
  } >"$root/etc/apt/sources.list"
  # No package may start a service inside the chroot.
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  mount -t proc proc "$root/proc"
  # The host's environment (its locale, its PATH) does not belong inside.
  local in=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive chroot "$root")
  # debootstrap's own --include cannot resolve virtual packages (python3-zmq
  # needs python3-cffi-backend-api-max): apt inside the chroot can.
  if ! { "${in[@]}" apt-get update -q && "${in[@]}" apt-get install -y -q --no-install-recommends "${packages[@]}"; } >>"$log" 2>&1; then
    tail -n 20 "$log" >&2
    echo "ensure-notebook: apt-get install in the chroot failed" >&2
    exit 1
  fi
  "${in[@]}" apt-get clean
  umount "$root/proc"

  "${in[@]}" groupadd --gid "$uid" "$user"
  # No skeleton files: the home is the student's work volume, and dot files
  # copied into it would be collected from every student.
  "${in[@]}" useradd --uid "$uid" --gid "$uid" --no-create-home --home-dir "$home" --shell /bin/bash "$user"
  install -d -o "$uid" -g "$uid" -m 0755 "$root$home"

  rm -f "$root/usr/sbin/policy-rc.d"
  # Docker mounts its own resolv.conf over this one; the host's stays out.
  : >"$root/etc/resolv.conf"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
    "$root"/var/lib/dpkg/*-old "$root"/var/log/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
    "$root"/usr/share/locale/* "$root"/usr/share/lintian "$root"/tmp/* "$root"/root/.cache
  find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  # The libraries' own test suites (sympy's alone is 60 MB): no lesson runs
  # them, and nothing outside them imports them.
  find "$root/usr/lib/python3/dist-packages" -type d -name tests -prune -exec rm -rf {} +

  mkdir "$tmp/out"
  tar --numeric-owner -C "$root" -cf "$tmp/out/rootfs.tar" .
  (cd "$tmp/out" && sha256sum rootfs.tar >rootfs.tar.sha256)
  "${in[@]}" dpkg-query -W -f '${Package} ${Version}\n' >"$tmp/out/packages.txt"
  rm -rf "$dir"
  mv -T "$tmp/out" "$dir"
  echo "ensure-notebook: built the root file system in $(($(date +%s) - started)) s: $tarball" >&2
}

# A cache that does not check out (a disk error, a hand edit) is built again.
if [ ! -f "$tarball" ] || ! (cd "$dir" && sha256sum --quiet -c rootfs.tar.sha256 >/dev/null 2>&1); then
  build
fi

# The root file system is imported as a base image once, and the image is
# built on it from images/notebook (Homeroom's settings for Jupyter): a change
# there needs a new VERSION, not a new root file system.
base=homeroom/notebook-rootfs:$rootfs
if ! docker image inspect "$base" >/dev/null 2>&1; then
  docker import --message "Homeroom notebook root file system $rootfs" "$tarball" "$base" >/dev/null
fi
# The classic builder, as for the sandbox image: no BuildKit on Debian's
# docker.io. It warns that it is deprecated; only a failure is shown.
if ! out=$(DOCKER_BUILDKIT=0 docker build -q --build-arg "ROOTFS=$base" -t "$image" images/notebook 2>&1); then
  echo "$out" >&2
  echo "ensure-notebook: building $image failed" >&2
  exit 1
fi
echo "built $image" >&2
