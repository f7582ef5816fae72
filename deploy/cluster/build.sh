#!/usr/bin/env bash
# Build the real Kubernetes control plane the cluster tests and `make cluster` run:
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and the kubelet of the
# real-node check (k8s.io/kubernetes), beamhub-kube-scheduler (kube-scheduler with our
# BeamHubLoad plugin, ./loadaware),
# etcd (go.etcd.io/etcd/server, the version Kubernetes itself pins), kwok and helm,
# each from the wrapper modules beside this script (their go.mod/go.sum pin every byte).
#
# The binaries go into a cache folder keyed by the versions and the go.sum files, so a
# fresh machine pays the build once (~30-40 min on 2 cores) and later runs start at once.
# Prints the bin folder on stdout; progress goes to stderr.
#
#   deploy/cluster/build.sh            build what is missing, print the bin folder
#   deploy/cluster/build.sh --print    print the bin folder, build nothing (exit 1 if incomplete)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

K8S_VERSION=v1.34.4
key="k8s-${K8S_VERSION}-$(cat "$here"/go.sum "$here"/kwok/go.sum "$here"/helm/go.sum | sha256sum | cut -c1-12)"
cache="${BEAMHUB_CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/beamhub/cluster}"
bin="$cache/$key/bin"
# kube-scheduler with BeamHub's BeamHubLoad plugin compiled in is keyed by our Go sources too
plugin="beamhub-kube-scheduler-$(cat "$here"/loadaware/*.go "$here"/cmd/beamhub-kube-scheduler/*.go | sha256sum | cut -c1-12)"
tools=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kwok helm "$plugin")

complete() { for t in "${tools[@]}"; do [ -x "$bin/$t" ] || return 1; done; }
link_plugin() {  # point beamhub-kube-scheduler at this source's build; drop older builds
  [ "$(readlink "$bin/beamhub-kube-scheduler" 2>/dev/null)" = "$plugin" ] || ln -sfn "$plugin" "$bin/beamhub-kube-scheduler"
  find "$bin" -maxdepth 1 -name 'beamhub-kube-scheduler-*' ! -name "$plugin" -delete
}
if complete; then link_plugin; echo "$bin"; exit 0; fi
if [ "${1:-}" = "--print" ]; then echo "$bin"; exit 1; fi

command -v go >/dev/null || { echo "build.sh: Go is needed to build the control plane (apt-get install golang, or go.dev)" >&2; exit 1; }
mkdir -p "$bin"
minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
kv="k8s.io/component-base/version"
kflags="-s -w -X $kv.gitVersion=$K8S_VERSION -X $kv.gitMajor=1 -X $kv.gitMinor=$minor \
 -X $kv.gitTreeState=clean -X $kv.buildDate=1970-01-01T00:00:00Z \
 -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 \
 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
export GOFLAGS="-mod=readonly -trimpath" CGO_ENABLED=0

build() {  # build <module dir> <output name> <package> [ldflags]
  local dir="$1" out="$2" pkg="$3" flags="${4:--s -w}"
  [ -x "$bin/$out" ] && return 0
  local start=$SECONDS
  echo "build.sh: building $out ($pkg) ..." >&2
  (cd "$dir" && go build -ldflags "$flags" -o "$bin/.$out.part" "$pkg")
  mv -f "$bin/.$out.part" "$bin/$out"
  echo "build.sh: $out built in $((SECONDS - start)) s" >&2
}

build "$here" etcd go.etcd.io/etcd/server/v3
build "$here" kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$kflags"
build "$here" kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler "$kflags"
build "$here" kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$kflags"
build "$here" kubectl k8s.io/kubernetes/cmd/kubectl "$kflags"
build "$here" kubelet k8s.io/kubernetes/cmd/kubelet "$kflags"
build "$here/kwok" kwok sigs.k8s.io/kwok/cmd/kwok "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=v0.7.0"
build "$here/helm" helm helm.sh/helm/v3/cmd/helm "-s -w -X helm.sh/helm/v3/internal/version.version=v3.19.0"
build "$here" "$plugin" ./cmd/beamhub-kube-scheduler "$kflags"
complete
link_plugin
echo "$bin"
