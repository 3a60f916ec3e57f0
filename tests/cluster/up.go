package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	nodefast "sigs.k8s.io/kwok/kustomize/stage/node/fast"
	nodeheartbeat "sigs.k8s.io/kwok/kustomize/stage/node/heartbeat-with-lease"
	podfast "sigs.k8s.io/kwok/kustomize/stage/pod/fast"
)

// upOptions are the flags of `up`.
type upOptions struct {
	dir     string
	nodes   int
	timeout time.Duration
	node    nodeOptions
}

// runUp starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok as child
// processes, creates fake nodes, writes <dir>/kubeconfig, prints one ready line and then waits.
// SIGTERM or SIGINT stops every child (and so does the death of this process: children get
// SIGTERM through the parent-death signal), so no process is left behind.
func runUp() {
	opts := upOptions{}
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	fs.StringVar(&opts.dir, "dir", "", "working directory for data, certificates, logs and the kubeconfig (required)")
	fs.IntVar(&opts.nodes, "nodes", 2, "number of fake kwok nodes")
	fs.DurationVar(&opts.timeout, "timeout", 3*time.Minute, "how long to wait for the cluster to become ready")
	fs.BoolVar(&opts.node.enabled, "real-node", false, "also run one real node (kubelet, kube-proxy, containerd, runc) beside the kwok nodes; needs root")
	fs.StringVar(&opts.node.sandboxImage, "sandbox-image", "", "the pause image the real node's pod sandboxes use; it must be in an --import tarball")
	fs.Var(&opts.node.imports, "import", "an image tarball to import into the real node's containerd (repeatable)")
	fs.Var(&opts.node.plainHTTPRegistries, "plain-http-registry", "a registry (host:port) the real node's containerd pulls from over plain HTTP, for example a test registry on the node's address (repeatable)")
	exitWithParent := fs.Bool("exit-with-parent", false, "stop the cluster when the process that started it exits")
	removeDir := fs.Bool("remove-dir", false, "remove --dir once the cluster has stopped")
	_ = fs.Parse(os.Args[1:])
	if opts.dir == "" {
		log.Fatal("up: --dir is required")
	}
	exitCode := 0
	// Deferred calls run before this one: os.Exit must come last.
	defer func() { os.Exit(exitCode) }()
	started := time.Now()
	cluster := &cluster{}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)

	kubeconfig, err := cluster.start(opts)
	if err != nil {
		cluster.stop()
		log.Printf("up: %v (component logs in %s)", err, filepath.Join(opts.dir, "logs"))
		exitCode = 1
		return
	}
	if *removeDir {
		// Only after a successful start: a failed start keeps its logs for diagnosis.
		defer os.RemoveAll(opts.dir)
	}
	fmt.Printf("rollgate-cluster ready kubeconfig=%s server=%s startup_seconds=%.1f\n",
		kubeconfig, cluster.server, time.Since(started).Seconds())

	parentGone := make(chan struct{})
	if *exitWithParent {
		go watchParent(parentGone)
	}
	select {
	case sig := <-signals:
		log.Printf("up: %v received, stopping the cluster", sig)
		cluster.stop()
	case <-parentGone:
		log.Printf("up: parent process exited, stopping the cluster")
		cluster.stop()
	case exit := <-cluster.exited:
		cluster.reaped++
		log.Printf("up: %s exited unexpectedly (%v), stopping the cluster", exit.name, exit.err)
		cluster.stop()
		exitCode = 1
	}
}

type childExit struct {
	name string
	err  error
}

// cluster is the set of running component processes.
type cluster struct {
	server    string
	children  []*exec.Cmd
	exited    chan childExit
	reaped    int       // children whose exit has been received from exited
	node      *realNode // the real node, with --real-node
	failStart context.CancelCauseFunc
}

func (c *cluster) start(opts upOptions) (string, error) {
	c.exited = make(chan childExit, 16)
	dir, err := filepath.Abs(opts.dir)
	if err != nil {
		return "", err
	}
	for _, sub := range []string{"pki", "etcd", "logs"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return "", err
		}
	}
	certs, err := newPKI(filepath.Join(dir, "pki"))
	if err != nil {
		return "", fmt.Errorf("certificates: %w", err)
	}
	ports, err := freePorts(5)
	if err != nil {
		return "", err
	}
	etcdClient := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	etcdPeer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	// With a real node the API server listens on the node's address, which both the host and
	// the pods reach, and the `kubernetes` Service's endpoint is that address.
	apiAddress, reconciler := "127.0.0.1", "none"
	if opts.node.enabled {
		c.node = &realNode{dir: filepath.Join(dir, "node"), options: opts.node}
		if err := c.node.prepareHost(); err != nil {
			return "", err
		}
		apiAddress, reconciler = nodeIP, "lease"
	}
	c.server = fmt.Sprintf("https://%s:%d", apiAddress, ports[2])
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(kubeconfig, c.server, certs.caCert, certs.adminCert, certs.adminKey); err != nil {
		return "", err
	}

	// Start-up stops at the deadline, or as soon as any component exits.
	withCause, cancelCause := context.WithCancelCause(context.Background())
	c.failStart = cancelCause
	deadline, cancel := context.WithTimeout(withCause, opts.timeout)
	defer cancel()

	if err := c.spawn(dir, "etcd", "--data-dir="+filepath.Join(dir, "etcd"),
		"--client-url="+etcdClient, "--peer-url="+etcdPeer); err != nil {
		return "", err
	}
	if err := waitTCP(deadline, ports[0]); err != nil {
		return "", fmt.Errorf("etcd: %w", err)
	}
	if err := c.spawn(dir, "kube-apiserver",
		"--etcd-servers="+etcdClient,
		"--bind-address="+apiAddress,
		"--advertise-address="+apiAddress,
		fmt.Sprintf("--secure-port=%d", ports[2]),
		"--endpoint-reconciler-type="+reconciler,
		// The API server reaches the real node's kubelet (logs, exec) at its InternalIP, as
		// the admin user, and the kubelet checks that certificate against the cluster's CA.
		"--kubelet-preferred-address-types=InternalIP",
		"--kubelet-client-certificate="+certs.adminCert,
		"--kubelet-client-key="+certs.adminKey,
		"--tls-cert-file="+certs.servingCert,
		"--tls-private-key-file="+certs.servingKey,
		"--client-ca-file="+certs.caCert,
		// The aggregation layer's request-header authentication; set so that the controller
		// manager and scheduler find the CA bundle they look for.
		"--requestheader-client-ca-file="+certs.caCert,
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+certs.serviceAccountKey,
		"--service-account-signing-key-file="+certs.serviceAccountKey,
		"--service-cluster-ip-range="+serviceCIDR,
		"--allow-privileged=true",
		"--enable-priority-and-fairness=false",
	); err != nil {
		return "", err
	}
	client, err := newClient(kubeconfig)
	if err != nil {
		return "", err
	}
	if err := waitReady(deadline, client); err != nil {
		return "", fmt.Errorf("kube-apiserver: %w", err)
	}
	if err := c.spawn(dir, "kube-controller-manager",
		"--kubeconfig="+kubeconfig,
		"--authentication-kubeconfig="+kubeconfig,
		"--authorization-kubeconfig="+kubeconfig,
		"--leader-elect=false",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file="+certs.serviceAccountKey,
		"--root-ca-file="+certs.caCert,
		"--cluster-signing-cert-file="+certs.caCert,
		"--cluster-signing-key-file="+certs.caKey,
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", ports[3]),
		"--controllers=*",
		// kwok renews node leases from a busy 2-core machine; a generous grace period keeps the
		// node lifecycle controller from marking every pod NotReady when a heartbeat is late.
		"--node-monitor-grace-period=10m",
		// The default 20 requests/s makes pod creation the bottleneck of fleet tests.
		"--kube-api-qps=200",
		"--kube-api-burst=400",
	); err != nil {
		return "", err
	}
	if err := c.spawn(dir, "kube-scheduler",
		"--kubeconfig="+kubeconfig,
		"--authentication-kubeconfig="+kubeconfig,
		"--authorization-kubeconfig="+kubeconfig,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", ports[4]),
	); err != nil {
		return "", err
	}
	stages := filepath.Join(dir, "kwok-stages.yaml")
	if err := writeKwokStages(stages); err != nil {
		return "", err
	}
	if err := c.spawn(dir, "kwok",
		"--config="+stages,
		"--kubeconfig="+kubeconfig,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--node-port=0",
		"--cidr="+kwokPodCIDR,
		"--node-ip=127.0.0.1",
	); err != nil {
		return "", err
	}
	if err := createFakeNodes(deadline, client, opts.nodes); err != nil {
		return "", err
	}
	if err := waitNodesReady(deadline, client, opts.nodes); err != nil {
		return "", err
	}
	if err := waitDefaultServiceAccount(deadline, client); err != nil {
		return "", err
	}
	if c.node != nil {
		if err := c.node.start(deadline, c, certs, c.server); err != nil {
			return "", fmt.Errorf("real node: %w", err)
		}
		if err := waitNodeReady(deadline, client, nodeName); err != nil {
			return "", fmt.Errorf("real node: %w", err)
		}
	}
	return kubeconfig, nil
}

// spawn re-executes this binary as the named component, logging to <dir>/logs/<name>.log.
func (c *cluster) spawn(dir, name string, args ...string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	return c.startChild(dir, name, exec.Command(self, append([]string{name}, args...)...))
}

// startChild starts cmd as the named child, logging to <dir>/logs/<name>.log; it gets SIGTERM
// when this process dies.
func (c *cluster) startChild(dir, name string, cmd *exec.Cmd) error {
	logFile, err := os.Create(filepath.Join(dir, "logs", name+".log"))
	if err != nil {
		return err
	}
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	c.children = append(c.children, cmd)
	go func() {
		err := cmd.Wait()
		_ = logFile.Close()
		c.failStart(fmt.Errorf("%s exited: %v (see logs/%s.log)", name, err, name))
		c.exited <- childExit{name: name, err: err}
	}()
	return nil
}

// stop terminates the children in reverse start order, so etcd goes last, and waits for them:
// SIGTERM, then SIGKILL to any still running after 15 seconds. Then it undoes the real node's
// changes to the host.
func (c *cluster) stop() {
	defer func() {
		if c.node != nil {
			if err := teardownNode(c.node.dir); err != nil {
				log.Printf("up: real node teardown: %v", err)
			}
		}
	}()
	for i := len(c.children) - 1; i >= 0; i-- {
		_ = c.children[i].Process.Signal(syscall.SIGTERM)
	}
	killAt := time.After(15 * time.Second)
	for c.reaped < len(c.children) {
		select {
		case <-c.exited:
			c.reaped++
		case <-killAt:
			for _, child := range c.children {
				_ = child.Process.Kill()
			}
		}
	}
}

func freePorts(n int) ([]int, error) {
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func waitTCP(ctx context.Context, port int) error {
	for {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			return conn.Close()
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("port %d: %w", port, err)
		}
	}
}

// sleep waits for d, or returns why ctx ended (a component's exit, or the deadline).
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-time.After(d):
		return nil
	}
}

// writeKubeconfig writes a kubeconfig for the client certificate certPath.
func writeKubeconfig(path, server, caPath, certPath, keyPath string) error {
	read := func(p string) (string, error) {
		data, err := os.ReadFile(p)
		return base64.StdEncoding.EncodeToString(data), err
	}
	ca, err := read(caPath)
	if err != nil {
		return err
	}
	cert, err := read(certPath)
	if err != nil {
		return err
	}
	key, err := read(keyPath)
	if err != nil {
		return err
	}
	config := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: rollgate
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: rollgate-admin
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: rollgate
  context:
    cluster: rollgate
    user: rollgate-admin
    namespace: default
current-context: rollgate
`, server, ca, cert, key)
	return os.WriteFile(path, []byte(config), 0o600)
}

func newClient(kubeconfig string) (*kubernetes.Clientset, error) {
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	config.QPS = 50
	config.Burst = 100
	return kubernetes.NewForConfig(config)
}

func waitReady(ctx context.Context, client *kubernetes.Clientset) error {
	var last error
	for {
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && strings.TrimSpace(string(body)) == "ok" {
			return nil
		}
		last = err
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return fmt.Errorf("/readyz not ok: %v", errors.Join(err, last))
		}
	}
}

// writeKwokStages writes kwok's stage configuration from the stages kwok ships as Go
// packages: nodes initialise and heartbeat with a lease; pods become Ready, complete, and are
// removed when deleted (there is no kubelet to do it).
func writeKwokStages(path string) error {
	stages := []string{
		nodefast.DefaultNodeInit,
		nodeheartbeat.DefaultNodeHeartbeatWithLease,
		podfast.DefaultPodReady,
		podfast.DefaultPodComplete,
		podfast.DefaultPodDelete,
	}
	return os.WriteFile(path, []byte(strings.Join(stages, "\n---\n")), 0o644)
}

func createFakeNodes(ctx context.Context, client *kubernetes.Clientset, n int) error {
	for i := range n {
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        fmt.Sprintf("kwok-node-%d", i),
				Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
				Labels: map[string]string{
					"type":                   "kwok",
					"kubernetes.io/hostname": fmt.Sprintf("kwok-node-%d", i),
					"kubernetes.io/os":       "linux",
					"kubernetes.io/arch":     "amd64",
				},
			},
			Status: corev1.NodeStatus{
				Allocatable: corev1.ResourceList{
					corev1.ResourceCPU:    resource.MustParse("64"),
					corev1.ResourceMemory: resource.MustParse("256Gi"),
					corev1.ResourcePods:   resource.MustParse("20000"),
				},
				Capacity: corev1.ResourceList{
					corev1.ResourceCPU:    resource.MustParse("64"),
					corev1.ResourceMemory: resource.MustParse("256Gi"),
					corev1.ResourcePods:   resource.MustParse("20000"),
				},
			},
		}
		if _, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create node %s: %w", node.Name, err)
		}
	}
	return nil
}

func waitNodesReady(ctx context.Context, client *kubernetes.Clientset, n int) error {
	for {
		nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		ready := 0
		if err == nil {
			for _, node := range nodes.Items {
				for _, cond := range node.Status.Conditions {
					if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
						ready++
					}
				}
			}
		}
		if ready >= n {
			return nil
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return fmt.Errorf("%d of %d kwok nodes ready: %w", ready, n, err)
		}
	}
}

// waitDefaultServiceAccount waits until the controller manager's service-account controller has
// created the default ServiceAccount: pods cannot be created in a namespace before that.
func waitDefaultServiceAccount(ctx context.Context, client *kubernetes.Clientset) error {
	for {
		_, err := client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return nil
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return fmt.Errorf("default ServiceAccount: %w", err)
		}
	}
}
