package main

// The cluster's addresses, all from 198.18.0.0/15, the range RFC 2544 reserves for testing:
// nothing here can collide with a real network or route off the machine.
const (
	// serviceCIDR holds the Services' ClusterIPs; its first address is the `kubernetes` Service.
	serviceCIDR         = "198.18.128.0/17"
	kubernetesServiceIP = "198.18.128.1"
	// clusterCIDR holds every pod address: the real node's pods in realPodSubnet, kwok's fake
	// pods in kwokPodCIDR (kwok only writes them into pod status; nothing routes them).
	clusterCIDR    = "198.19.0.0/16"
	realPodSubnet  = "198.19.0.0/24"
	realPodGateway = "198.19.0.1"
	kwokPodCIDR    = "198.19.128.0/17"
	// nodeIP is the real node's address, on nodeInterface; with --real-node
	// the API server listens there too, so that pods can reach it.
	nodeIP = "198.18.0.2"
	// nodeName is the real node's name; its kubelet authenticates as system:node:<nodeName>.
	nodeName = "rollgate-real-node"
	// podBridge is the CNI bridge the pods' veths attach to; it also carries nodeIP (this
	// kernel has no dummy interfaces, and the kubelet refuses a loopback node IP), so `up`
	// creates it before the API server starts, and the bridge plugin adopts it.
	podBridge     = "rg-br0"
	nodeInterface = podBridge
)
