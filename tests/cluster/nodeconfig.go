package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
)

// writeConfig writes the real node's configuration files into its directory: containerd's,
// the CNI network's, the kubelet's and kube-proxy's, and their kubeconfigs.
//
// Choices the host forces (see reference.md, "A real node beside the kwok nodes"): cgroup v1
// with the cgroupfs driver; runc must not lower OOM scores (root lacks CAP_SYS_RESOURCE); the
// sandbox image is pinned and local, nothing is pulled. Choices of ours: containerd, runc, CNI
// state and the kubelet live under the node's directory; the pods' only route is to
// 198.18.0.0/15 (no default route, no masquerading), so nothing they send leaves the machine;
// kube-proxy leaves the host's conntrack sysctls and route_localnet alone. Registries named by
// --plain-http-registry get a hosts.toml under <node dir>/registries (containerd's config_path),
// so pods can pull from a test registry by digest; every other registry is reached over HTTPS.
func (n *realNode) writeConfig(certs *pki, server string) error {
	for _, sub := range []string{"containerd", "cni/net.d", "cni/ipam", "kubelet", "pod-logs", "runc", "opt", "registries"} {
		if err := os.MkdirAll(n.path(sub), 0o755); err != nil {
			return err
		}
	}
	files := map[string]string{
		"containerd.toml":                n.containerdConfig(),
		"cni/net.d/10-rollgate.conflist": n.cniConfig(),
		"kubelet.yaml":                   n.kubeletConfig(certs),
		"kube-proxy.yaml":                n.kubeProxyConfig(),
	}
	for _, registry := range n.options.plainHTTPRegistries {
		if _, _, err := net.SplitHostPort(registry); err != nil {
			return fmt.Errorf("--plain-http-registry %q: want host:port: %w", registry, err)
		}
		if err := os.MkdirAll(n.path("registries", registry), 0o755); err != nil {
			return err
		}
		files[filepath.Join("registries", registry, "hosts.toml")] = plainHTTPHosts(registry)
	}
	for name, content := range files {
		if err := os.WriteFile(n.path(name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	if err := writeKubeconfig(n.path("kubelet.kubeconfig"), server, certs.caCert, certs.nodeCert, certs.nodeKey); err != nil {
		return err
	}
	return writeKubeconfig(n.path("kube-proxy.kubeconfig"), server, certs.caCert, certs.proxyCert, certs.proxyKey)
}

func (n *realNode) containerdConfig() string {
	return fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[plugins."io.containerd.internal.v1.opt"]
  path = %[5]q

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = %[6]q
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = %[9]q

[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_cdi = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = %[7]q
    max_conf_num = 1
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        Root = %[8]q
        SystemdCgroup = false

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
`, n.path("containerd", "root"), n.path("containerd", "state"), n.socket(), n.socket()+".ttrpc",
		n.path("opt"), n.options.sandboxImage, n.path("cni", "net.d"), n.path("runc"), n.path("registries"))
}

// plainHTTPHosts is containerd's hosts.toml for a registry reached over plain HTTP: pulls and
// tag resolution only, nothing else is tried (no HTTPS, no fallback to another host).
func plainHTTPHosts(registry string) string {
	return fmt.Sprintf(`server = "http://%[1]s"

[host."http://%[1]s"]
  capabilities = ["pull", "resolve"]
`, registry)
}

func (n *realNode) cniConfig() string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "rollgate",
  "plugins": [
    {
      "type": "bridge",
      "bridge": %[1]q,
      "isGateway": false,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": %[2]q,
        "ranges": [[{"subnet": %[3]q, "gateway": %[4]q}]],
        "routes": [{"dst": "198.18.0.0/15"}]
      }
    }
  ]
}
`, podBridge, n.path("cni", "ipam"), realPodSubnet, realPodGateway)
}

func (n *realNode) kubeletConfig(certs *pki) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://%[1]s
address: %[2]s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: %[3]s
authorization:
  mode: Webhook
clusterDomain: cluster.local
podLogsDir: %[4]s
failSwapOn: false
registerNode: true
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 1Mi
  nodefs.available: 1%%
  nodefs.inodesFree: 1%%
  imagefs.available: 1%%
maxPods: 50
`, n.socket(), nodeIP, certs.caCert, n.path("pod-logs"))
}

func (n *realNode) kubeProxyConfig() string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %[1]s
hostnameOverride: %[2]s
mode: iptables
clusterCIDR: %[3]s
bindAddress: %[4]s
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
nodePortAddresses: ["%[4]s/32"]
oomScoreAdj: 0
iptables:
  localhostNodePorts: false
  masqueradeAll: false
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, filepath.Join(n.dir, "kube-proxy.kubeconfig"), nodeName, clusterCIDR, nodeIP)
}
