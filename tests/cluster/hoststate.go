package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
)

// hostStateFile, in the node's directory, records what the host was like before the real node
// started, so that teardown (even `cleanup-node` after a crash) can put it back.
const hostStateFile = "host-state.json"

// nodeSysctls are the sysctls (paths under /proc/sys) the real node's components change: the
// kubelet sets the kernel's panic and overcommit tunables and key quotas, the bridge plugin
// turns on forwarding, kube-proxy may touch route_localnet and conntrack. ip_forward comes first:
// restoring it resets every interface's forwarding flag, which the later entries then restore.
var nodeSysctls = []string{
	"net/ipv4/ip_forward",
	"net/ipv4/conf/all/forwarding",
	"net/ipv4/conf/default/forwarding",
	"net/ipv4/conf/all/route_localnet",
	"net/ipv6/conf/all/forwarding",
	"net/ipv6/conf/default/forwarding",
	"net/bridge/bridge-nf-call-iptables",
	"net/bridge/bridge-nf-call-ip6tables",
	"net/netfilter/nf_conntrack_max",
	"net/netfilter/nf_conntrack_tcp_timeout_established",
	"net/netfilter/nf_conntrack_tcp_timeout_close_wait",
	"net/netfilter/nf_conntrack_tcp_be_liberal",
	"kernel/panic",
	"kernel/panic_on_oops",
	"kernel/keys/root_maxkeys",
	"kernel/keys/root_maxbytes",
	"vm/overcommit_memory",
	"vm/panic_on_oom",
}

// hostPaths are the places outside its directory where the node's components write whatever
// they are told: the kubelet's device-plugin and pod-resources sockets and its container log
// links, containerd's shim sockets, the CNI plugins' cache. Those that did not exist before are
// removed afterwards.
var hostPaths = []string{
	"/var/lib/kubelet", "/var/log/containers", "/var/log/pods", "/run/containerd",
	"/var/lib/cni", "/etc/cni", "/opt/cni", "/run/netns",
}

// hostState is the record of hostStateFile.
type hostState struct {
	// Sysctls maps a path under /proc/sys to its value before.
	Sysctls map[string]string `json:"sysctls"`
	// CreatedPaths are the hostPaths absent before, to remove afterwards.
	CreatedPaths []string `json:"createdPaths"`
	// Chains maps "<iptables command>/<table>" to the chains it had before.
	Chains map[string][]string `json:"chains"`
}

func recordHostState() (*hostState, error) {
	state := &hostState{Sysctls: map[string]string{}, Chains: map[string][]string{}}
	for _, name := range nodeSysctls {
		value, err := os.ReadFile(filepath.Join("/proc/sys", name))
		if err == nil {
			state.Sysctls[name] = strings.TrimSpace(string(value))
		}
	}
	for _, path := range hostPaths {
		if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
			state.CreatedPaths = append(state.CreatedPaths, path)
		}
	}
	for _, command := range iptablesCommands {
		for _, table := range iptablesTables {
			rules, err := saveTable(command, table)
			if err != nil {
				return nil, err
			}
			state.Chains[command+"/"+table] = rules.chains
		}
	}
	return state, nil
}

func (s *hostState) save(path string) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

func loadHostState(path string) (*hostState, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	state := &hostState{}
	if err := json.Unmarshal(data, state); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return state, nil
}

// restoreSysctls writes back every recorded value that differs now.
func (s *hostState) restoreSysctls() error {
	var errs []error
	for _, name := range nodeSysctls {
		before, ok := s.Sysctls[name]
		if !ok {
			continue
		}
		path := filepath.Join("/proc/sys", name)
		now, err := os.ReadFile(path)
		if err == nil && strings.TrimSpace(string(now)) == before {
			continue
		}
		if err := os.WriteFile(path, []byte(before), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restore %s=%s: %w", name, before, err))
		}
	}
	return errors.Join(errs...)
}

// addNodeInterface creates the bridge holding nodeIP and the pods' gateway, and routes the Service range to
// it: traffic from the host to a ClusterIP that kube-proxy does not translate then goes
// nowhere instead of out of the machine.
func addNodeInterface() error {
	link := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: nodeInterface}}
	if err := netlink.LinkAdd(link); err != nil {
		return fmt.Errorf("add interface %s: %w", nodeInterface, err)
	}
	// The pods' gateway too: the bridge plugin, told the bridge is no gateway, leaves the
	// bridge's addresses (and the host's ip_forward) alone.
	_, pods, err := net.ParseCIDR(realPodSubnet)
	if err != nil {
		return err
	}
	prefix, _ := pods.Mask.Size()
	for _, cidr := range []string{nodeIP + "/32", fmt.Sprintf("%s/%d", realPodGateway, prefix)} {
		addr, err := netlink.ParseAddr(cidr)
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(link, addr); err != nil {
			return fmt.Errorf("address %s on %s: %w", cidr, nodeInterface, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("up %s: %w", nodeInterface, err)
	}
	// A pod's connection to a Service whose endpoint is another pod is routed (DNAT to the
	// endpoint, back out of the bridge): IPv4 forwarding for packets that enter from this
	// bridge only. The host's ip_forward stays as it was, nothing arriving on another interface
	// is forwarded, and the setting goes with the bridge at teardown.
	forwarding := filepath.Join("/proc/sys/net/ipv4/conf", nodeInterface, "forwarding")
	if err := os.WriteFile(forwarding, []byte("1"), 0o644); err != nil {
		return fmt.Errorf("forwarding on %s: %w", nodeInterface, err)
	}
	_, services, err := net.ParseCIDR(serviceCIDR)
	if err != nil {
		return err
	}
	route := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: services, Scope: netlink.SCOPE_LINK}
	if err := netlink.RouteAdd(route); err != nil {
		return fmt.Errorf("route %s via %s: %w", serviceCIDR, nodeInterface, err)
	}
	return nil
}
