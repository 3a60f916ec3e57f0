package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// nodeOptions are the flags of `up` for the real node.
type nodeOptions struct {
	enabled             bool
	sandboxImage        string
	imports             stringList
	plainHTTPRegistries stringList
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

// Set appends one value.
func (l *stringList) Set(value string) error {
	*l = append(*l, value)
	return nil
}

// realNode is the one real node of `up --real-node`: containerd (with runc and the CNI bridge
// plugin), the kubelet and kube-proxy, beside the kwok nodes. Everything it can keep in its
// directory is kept there (nodeconfig.go); what it changes elsewhere on the host is recorded
// first (hoststate.go) and undone by teardownNode (teardown.go).
type realNode struct {
	dir     string // <cluster dir>/node
	options nodeOptions
}

func (n *realNode) path(parts ...string) string {
	return filepath.Join(append([]string{n.dir}, parts...)...)
}

// socket is containerd's gRPC socket.
func (n *realNode) socket() string { return n.path("containerd", "containerd.sock") }

// prepareHost records the host's state, then gives the host the node's address, which must
// exist before the API server can listen on it. A second real node on the same machine is
// refused: the kubelet's and kube-proxy's ports are fixed.
func (n *realNode) prepareHost() error {
	if n.options.sandboxImage == "" {
		return errors.New("--real-node needs --sandbox-image (and the --import tarball holding it)")
	}
	if _, err := net.InterfaceByName(nodeInterface); err == nil {
		return fmt.Errorf("interface %s exists: a real node runs on this machine, or one was not "+
			"cleaned up (rollgate-cluster cleanup-node --dir <its dir>)", nodeInterface)
	}
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		return err
	}
	state, err := recordHostState()
	if err != nil {
		return fmt.Errorf("record the host's state: %w", err)
	}
	if err := state.save(n.path(hostStateFile)); err != nil {
		return err
	}
	return addNodeInterface()
}

// start writes the node's configuration, starts containerd, imports the images, then starts
// the kubelet and kube-proxy as children of the cluster.
func (n *realNode) start(ctx context.Context, c *cluster, certs *pki, server string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	tools := filepath.Dir(self)
	if err := n.writeConfig(certs, server); err != nil {
		return err
	}
	clusterDir := filepath.Dir(n.dir)
	containerd := exec.Command(filepath.Join(tools, "containerd"), "--config", n.path("containerd.toml"))
	// containerd finds its runc shim on PATH; runc and the CNI plugins are configured by path.
	containerd.Env = append(os.Environ(), "PATH="+tools+":/usr/sbin:/usr/bin:/sbin:/bin")
	if err := c.startChild(clusterDir, "containerd", containerd); err != nil {
		return err
	}
	ctr := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, filepath.Join(tools, "ctr"),
			append([]string{"--address", n.socket(), "--namespace", "k8s.io"}, args...)...)
		return cmd.CombinedOutput()
	}
	for {
		_, err := ctr("version")
		if err == nil {
			break
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("containerd not answering: %w", err)
		}
	}
	for _, archive := range n.options.imports {
		if out, err := ctr("images", "import", "--local", archive); err != nil {
			return fmt.Errorf("import %s: %v: %s", archive, err, out)
		}
	}
	images, err := ctr("images", "list", "--quiet")
	if err != nil {
		return fmt.Errorf("list images: %v: %s", err, images)
	}
	if !containsLine(string(images), n.options.sandboxImage) {
		return fmt.Errorf("sandbox image %s is not among the imported images:\n%s", n.options.sandboxImage, images)
	}
	if err := c.spawn(clusterDir, "kubelet",
		"--config="+n.path("kubelet.yaml"),
		"--kubeconfig="+n.path("kubelet.kubeconfig"),
		"--root-dir="+n.path("kubelet"),
		"--cert-dir="+n.path("kubelet", "pki"),
		"--node-ip="+nodeIP,
		"--hostname-override="+nodeName,
		// Lowering its own OOM score needs CAP_SYS_RESOURCE, which root lacks here.
		"--oom-score-adj=0",
	); err != nil {
		return err
	}
	return c.spawn(clusterDir, "kube-proxy", "--config="+n.path("kube-proxy.yaml"))
}

func containsLine(text, line string) bool {
	for _, l := range strings.Split(text, "\n") {
		if strings.TrimSpace(l) == line {
			return true
		}
	}
	return false
}

// waitNodeReady waits until the named node reports Ready.
func waitNodeReady(ctx context.Context, client *kubernetes.Clientset, name string) error {
	for {
		node, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			for _, cond := range node.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					return nil
				}
			}
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return fmt.Errorf("node %s not Ready: %w", name, err)
		}
	}
}
