package main

import (
	"errors"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

// runSupervise runs `supervise -- <command> [args...]`: it starts the command and stops it
// when this process is signalled or when the process that started the supervisor exits. Test
// fixtures start long-lived servers (Prometheus, the registry) through it so that no server
// outlives the test run, however the run ends.
func runSupervise() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		log.Fatal("supervise: usage: supervise -- <command> [args...]")
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin = os.Stdin
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		log.Fatalf("supervise: start %s: %v", args[0], err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	parentGone := make(chan struct{})
	go watchParent(parentGone)
	select {
	case err := <-done:
		os.Exit(exitCode(err))
	case <-signals:
	case <-parentGone:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		os.Exit(exitCode(err))
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		os.Exit(exitCode(<-done))
	}
}

// watchParent closes gone when this process's parent exits (it is then re-parented).
func watchParent(gone chan<- struct{}) {
	parent := os.Getppid()
	for os.Getppid() == parent {
		time.Sleep(250 * time.Millisecond)
	}
	close(gone)
}

func exitCode(err error) int {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		return 1
	}
	return 0
}
