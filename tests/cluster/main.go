// Command rollgate-cluster is a multi-call binary that runs a real, local Kubernetes control
// plane on loopback for rollgate's tests and demo.
//
// Each Kubernetes component installs its own signal handler, which may happen only once per
// process, so every component runs as its own process: `up` re-executes this binary once per
// component. Invoked as `kubectl` (through a symlink) or as `rollgate-cluster kubectl ...` it is
// the real kubectl.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// components maps a sub-command name to its entry point. Each entry point reads its arguments
// from os.Args[1:] after dispatch has removed the sub-command name.
var components = map[string]func(){
	"up":                      runUp,
	"etcd":                    runEtcd,
	"kube-apiserver":          runAPIServer,
	"kube-controller-manager": runControllerManager,
	"kube-scheduler":          runScheduler,
	"kwok":                    runKwok,
	"kubelet":                 runKubelet,
	"kube-proxy":              runKubeProxy,
	"cleanup-node":            runCleanupNode,
	"image-archive":           runImageArchive,
	"kubectl":                 runKubectl,
	"supervise":               runSupervise,
}

func main() {
	name := filepath.Base(os.Args[0])
	if _, ok := components[name]; !ok {
		if len(os.Args) < 2 {
			usage()
		}
		name = os.Args[1]
		os.Args = append([]string{os.Args[0] + " " + name}, os.Args[2:]...)
	}
	run, ok := components[name]
	if !ok {
		usage()
	}
	run()
}

func usage() {
	names := make([]string, 0, len(components))
	for name := range components {
		names = append(names, name)
	}
	sort.Strings(names)
	fmt.Fprintf(os.Stderr, "usage: rollgate-cluster <%s> [flags]\n", strings.Join(names, "|"))
	os.Exit(2)
}
