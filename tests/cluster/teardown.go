package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// runCleanupNode runs `cleanup-node --dir DIR`: the real node's teardown on its own, for a
// cluster whose `up` was killed before it could clean up.
func runCleanupNode() {
	fs := flag.NewFlagSet("cleanup-node", flag.ExitOnError)
	dir := fs.String("dir", "", "the cluster's --dir (required)")
	_ = fs.Parse(os.Args[1:])
	if *dir == "" {
		log.Fatal("cleanup-node: --dir is required")
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		log.Fatal(err)
	}
	if err := teardownNode(filepath.Join(abs, "node")); err != nil {
		log.Fatalf("cleanup-node: %v", err)
	}
}

// teardownNode undoes what the real node whose directory is dir changed on the host, in an
// order that lets each step succeed: processes (the components, the runc shims and every
// process in the kubepods cgroups), then mounts (pod volumes, container root filesystems,
// network namespaces), the kubepods cgroups, the interfaces, the iptables chains, the sysctls
// and the paths it created outside dir. It is idempotent: a step with nothing left to undo does
// nothing. A directory without a host record (the node never started) is left alone.
func teardownNode(dir string) error {
	state, err := loadHostState(filepath.Join(dir, hostStateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	collect := func(step string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", step, err))
		}
	}
	collect("processes", killNodeProcesses(dir))
	mountRoots := append([]string{dir}, state.CreatedPaths...)
	collect("mounts", unmountUnder(mountRoots))
	collect("cgroups", removeKubepodsCgroups())
	collect("interfaces", deleteNodeLinks())
	collect("iptables", removeNodeChains(state))
	collect("sysctls", state.restoreSysctls())
	for _, path := range state.CreatedPaths {
		collect("remove "+path, os.RemoveAll(path))
	}
	return errors.Join(errs...)
}

// killNodeProcesses kills every process whose command line names dir (containerd, the kubelet,
// kube-proxy and the runc shims, which are given containerd's socket) and every process in a
// kubepods cgroup (the pods' containers), until none is left.
func killNodeProcesses(dir string) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		pids := nodeProcesses(dir)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes still running: %v", pids)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func nodeProcesses(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	var pids []int
	for _, entry := range entries {
		pid, err := strconv.Atoi(entry.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", entry.Name(), "cmdline"))
		cgroups, _ := os.ReadFile(filepath.Join("/proc", entry.Name(), "cgroup"))
		if len(cmdline) == 0 {
			continue // a kernel thread, or gone
		}
		if strings.Contains(string(cmdline), dir) || strings.Contains(string(cgroups), "/kubepods") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// unmountUnder detaches every mount at or below one of roots, deepest first.
func unmountUnder(roots []string) error {
	var errs []error
	for attempt := 0; attempt < 5; attempt++ {
		points, err := mountPointsUnder(roots)
		if err != nil || len(points) == 0 {
			return err
		}
		errs = errs[:0]
		for _, point := range points {
			if err := unix.Unmount(point, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", point, err))
			}
		}
	}
	return errors.Join(errs...)
}

func mountPointsUnder(roots []string) ([]string, error) {
	file, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer file.Close()
	var points []string
	scanner := bufio.NewScanner(file)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) < 5 {
			continue
		}
		point := unescapeMountPath(fields[4])
		for _, root := range roots {
			if point == root || strings.HasPrefix(point, root+"/") {
				points = append(points, point)
				break
			}
		}
	}
	// Longest first: a mount below another goes before it.
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	return points, scanner.Err()
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space, and so on).
func unescapeMountPath(path string) string {
	var b strings.Builder
	for i := 0; i < len(path); i++ {
		if path[i] == '\\' && i+3 < len(path) {
			if n, err := strconv.ParseUint(path[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(path[i])
	}
	return b.String()
}

// removeKubepodsCgroups removes the kubelet's kubepods cgroup tree from every cgroup hierarchy,
// deepest first, once the processes in it are gone.
func removeKubepodsCgroups() error {
	hierarchies, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	var errs []error
	for _, hierarchy := range hierarchies {
		root := filepath.Join(hierarchy, "kubepods")
		var dirs []string
		_ = filepath.WalkDir(root, func(path string, entry os.DirEntry, err error) error {
			if err == nil && entry.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, dir := range dirs {
			if err := removeCgroup(dir); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// removeCgroup removes one empty cgroup, retrying while its last processes are being reaped.
func removeCgroup(dir string) error {
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		err = unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("remove cgroup %s: %w", dir, err)
}

// cgroupHierarchies lists the mount points of the cgroup (v1) and cgroup2 file systems.
func cgroupHierarchies() ([]string, error) {
	file, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer file.Close()
	var points []string
	scanner := bufio.NewScanner(file)
	for scanner.Scan() {
		// Optional fields end at " - "; the file system type follows.
		before, after, found := strings.Cut(scanner.Text(), " - ")
		fields, tail := strings.Fields(before), strings.Fields(after)
		if found && len(fields) >= 5 && len(tail) > 0 && (tail[0] == "cgroup" || tail[0] == "cgroup2") {
			points = append(points, unescapeMountPath(fields[4]))
		}
	}
	return points, scanner.Err()
}

// deleteNodeLinks deletes the pods' veths (those attached to the CNI bridge) and the bridge,
// which carries the node's address and the Service range's route.
func deleteNodeLinks() error {
	var errs []error
	if bridge, err := netlink.LinkByName(podBridge); err == nil {
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		for _, link := range links {
			if link.Attrs().MasterIndex == bridge.Attrs().Index {
				if err := netlink.LinkDel(link); err != nil {
					errs = append(errs, fmt.Errorf("delete %s: %w", link.Attrs().Name, err))
				}
			}
		}
		if err := netlink.LinkDel(bridge); err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", podBridge, err))
		}
	}
	return errors.Join(errs...)
}
