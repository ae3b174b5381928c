#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy
# and kubectl from one Kubernetes release as a single multi-call binary named
# `kubernetes`, plus one symlink per component (dispatch is on argv[0]).
# Usage: build.sh [OUT_DIR]   prints the bin dir on stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib.sh"
version="$(tr -d '[:space:]' < "$here/version")"
out="${1:-$(component_cache_root)/kubernetes/$(cache_version kubernetes "$version")}"
names=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

if is_done "$out"; then echo "$out/bin"; exit 0; fi
go_env kubernetes
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
cd "$work"
staging_version="v0.${version#v1.}"

go mod init k8s-ts/kubernetes-multicall >&2
modfile="$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
# Replace every staging module (those k/k points at ./staging) with its published v0.X.Y.
for mod in $(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$modfile"); do
  go mod edit -replace="$mod=$mod@$staging_version"
done
# GODEBUG defaults follow the main module: copy k/k's go and godebug lines.
go_line="$(sed -n 's/^go \(.*\)/\1/p' "$modfile")"
go mod edit -go="$go_line"
godebug="$(sed -n 's/^godebug \(.*\)/\1/p' "$modfile")"
[[ -n "$godebug" ]] && go mod edit -godebug="$godebug"

cat > main.go <<'GO'
// Multi-call Kubernetes binary: the component is chosen by the name it is run as.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	_ "time/tzdata"

	_ "k8s.io/client-go/plugin/pkg/client/auth"
	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
	name := filepath.Base(os.Args[0])
	if name == "kubernetes" && len(os.Args) > 1 {
		name = os.Args[1]
		os.Args = os.Args[1:]
	}
	switch name {
	case "kube-apiserver":
		os.Exit(cli.Run(apiserver.NewAPIServerCommand()))
	case "kube-controller-manager":
		os.Exit(cli.Run(controllermanager.NewControllerManagerCommand()))
	case "kube-scheduler":
		os.Exit(cli.Run(scheduler.NewSchedulerCommand()))
	case "kube-proxy":
		os.Exit(cli.Run(proxy.NewProxyCommand()))
	case "kubelet":
		os.Exit(cli.Run(kubelet.NewKubeletCommand(context.Background())))
	case "kubectl":
		logs.GlogSetter(kubectlcmd.GetLogVerbosity(os.Args)) //nolint:errcheck
		if err := cli.RunNoErrOutput(kubectlcmd.NewDefaultKubectlCommand()); err != nil {
			kubectlutil.CheckErr(err)
		}
	default:
		fmt.Fprintf(os.Stderr, "kubernetes: unknown component %q; run as one of kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy, kubelet, kubectl\n", name)
		os.Exit(2)
	}
}
GO
go get "k8s.io/kubernetes@$version" >&2
go mod tidy >&2

minor="${version#v1.}"; minor="${minor%%.*}"
commit="$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"Hash": "\(.*\)".*/\1/p' | head -1)"
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
ld=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date -X $pkg.gitCommit=${commit:-unknown}"
done
tmp_out="$out.tmp.$$"
rm -rf "$tmp_out"; mkdir -p "$tmp_out/bin"
CGO_ENABLED=0 go build -trimpath -tags selinux,notest,providerless -ldflags "-s -w $ld" -o "$tmp_out/bin/kubernetes" . >&2
for n in "${names[@]}"; do ln -sf kubernetes "$tmp_out/bin/$n"; done
echo "$version" > "$tmp_out/version"
stamp_done "$tmp_out"
rm -rf "$out"; mkdir -p "$(dirname "$out")"; mv "$tmp_out" "$out"
echo "$out/bin"
