package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime"
)

// runImageArchive runs `image-archive --binary PATH --name NAME --out TAR [-- ARGS...]`: it
// writes an OCI image layout tarball (what `ctr images import` reads) of one layer holding the
// static binary at /<its name>, run as the image's entrypoint with ARGS. Tests use it to make
// the real node's workloads from binaries built here: no base image, nothing pulled.
//
// Written with the standard library: the image formats' libraries (go-containerregistry)
// would move the Kubernetes module's shared dependencies to other versions.
func runImageArchive() {
	fs := flag.NewFlagSet("image-archive", flag.ExitOnError)
	binary := fs.String("binary", "", "the static binary to put in the image (required)")
	ref := fs.String("name", "", "the image's name, such as rollgate.test/probe:1 (required)")
	out := fs.String("out", "", "the tarball to write (required)")
	_ = fs.Parse(os.Args[1:])
	if *binary == "" || *ref == "" || *out == "" {
		log.Fatal("image-archive: --binary, --name and --out are required")
	}
	if err := writeImageArchive(*binary, *ref, *out, fs.Args()); err != nil {
		log.Fatalf("image-archive: %v", err)
	}
}

// descriptor is an OCI content descriptor.
type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int               `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

func describe(mediaType string, content []byte) descriptor {
	return descriptor{MediaType: mediaType, Digest: fmt.Sprintf("sha256:%x", sha256.Sum256(content)), Size: len(content)}
}

func writeImageArchive(binary, ref, out string, args []string) error {
	content, err := os.ReadFile(binary)
	if err != nil {
		return err
	}
	entry := filepath.Base(binary)
	layer, err := tarOf(map[string][]byte{entry: content}, 0o755)
	if err != nil {
		return err
	}
	layerDesc := describe("application/vnd.oci.image.layer.v1.tar", layer)
	config, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config":       map[string]any{"Entrypoint": append([]string{"/" + entry}, args...)},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{layerDesc.Digest}},
	})
	if err != nil {
		return err
	}
	configDesc := describe("application/vnd.oci.image.config.v1+json", config)
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        configDesc,
		"layers":        []descriptor{layerDesc},
	})
	if err != nil {
		return err
	}
	manifestDesc := describe("application/vnd.oci.image.manifest.v1+json", manifest)
	manifestDesc.Annotations = map[string]string{"org.opencontainers.image.ref.name": ref}
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests":     []descriptor{manifestDesc},
	})
	if err != nil {
		return err
	}
	blob := func(d descriptor) string { return "blobs/sha256/" + d.Digest[len("sha256:"):] }
	archive, err := tarOf(map[string][]byte{
		"oci-layout":       []byte(`{"imageLayoutVersion":"1.0.0"}`),
		"index.json":       index,
		blob(layerDesc):    layer,
		blob(configDesc):   config,
		blob(manifestDesc): manifest,
	}, 0o644)
	if err != nil {
		return err
	}
	return os.WriteFile(out, archive, 0o644)
}

// tarOf is a tar archive of the given files (path -> content), all with mode.
func tarOf(files map[string][]byte, mode int64) ([]byte, error) {
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	for path, content := range files {
		header := &tar.Header{Name: path, Mode: mode, Size: int64(len(content)), Typeflag: tar.TypeReg}
		if err := w.WriteHeader(header); err != nil {
			return nil, err
		}
		if _, err := w.Write(content); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
