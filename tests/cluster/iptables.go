package main

import (
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// The real node's kubelet and kube-proxy program packet filtering through these commands (on
// Debian they drive nf_tables: iptables-nft); teardown removes the chains they add.
var (
	iptablesCommands = []string{"iptables", "ip6tables"}
	iptablesTables   = []string{"filter", "nat", "mangle", "raw"}
	// nodeChainPrefixes are the prefixes of the chains Kubernetes components and CNI plugins
	// create; teardown removes only such chains, and only those absent before.
	nodeChainPrefixes = []string{"KUBE-", "CNI-"}
)

// tableRules is one table as iptables-save prints it.
type tableRules struct {
	chains []string    // every chain, built-in or not
	rules  [][2]string // chain, rule (without "-A <chain> ")
}

func saveTable(command, table string) (*tableRules, error) {
	out, err := exec.Command(command+"-save", "-t", table).Output()
	if err != nil {
		// A table the kernel lacks (ip6tables' raw, say) has nothing to remove.
		return &tableRules{}, nil
	}
	t := &tableRules{}
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, ":"):
			t.chains = append(t.chains, strings.Fields(line[1:])[0])
		case strings.HasPrefix(line, "-A "):
			chain, rule, _ := strings.Cut(line[3:], " ")
			t.rules = append(t.rules, [2]string{chain, rule})
		}
	}
	return t, nil
}

// isNodeChain says whether chain is one the node created: a Kubernetes or CNI chain that the
// table did not have before.
func isNodeChain(chain string, before []string) bool {
	for _, prefix := range nodeChainPrefixes {
		if strings.HasPrefix(chain, prefix) {
			return !slices.Contains(before, chain)
		}
	}
	return false
}

// removeNodeChains deletes, in every table, the rules that jump to a chain the node created,
// then flushes and deletes those chains.
func removeNodeChains(state *hostState) error {
	var errs []error
	for _, command := range iptablesCommands {
		for _, table := range iptablesTables {
			if err := removeTableChains(command, table, state.Chains[command+"/"+table]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func removeTableChains(command, table string, before []string) error {
	t, err := saveTable(command, table)
	if err != nil {
		return err
	}
	run := func(args ...string) error {
		args = append([]string{"-w", "5", "-t", table}, args...)
		if out, err := exec.Command(command, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s: %v: %s", command, strings.Join(args, " "), err, out)
		}
		return nil
	}
	var errs []error
	// Jumps from chains that stay: delete by position, last first, so positions hold.
	position := map[string]int{}
	type jump struct {
		chain string
		index int
	}
	var jumps []jump
	for _, rule := range t.rules {
		position[rule[0]]++
		if isNodeChain(rule[0], before) {
			continue
		}
		fields := strings.Fields(rule[1])
		for i, field := range fields {
			if (field == "-j" || field == "-g") && i+1 < len(fields) && isNodeChain(fields[i+1], before) {
				jumps = append(jumps, jump{rule[0], position[rule[0]]})
				break
			}
		}
	}
	for i := len(jumps) - 1; i >= 0; i-- {
		if err := run("-D", jumps[i].chain, strconv.Itoa(jumps[i].index)); err != nil {
			errs = append(errs, err)
		}
	}
	var created []string
	for _, chain := range t.chains {
		if isNodeChain(chain, before) {
			created = append(created, chain)
		}
	}
	for _, chain := range created {
		if err := run("-F", chain); err != nil {
			errs = append(errs, err)
		}
	}
	for _, chain := range created {
		if err := run("-X", chain); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
