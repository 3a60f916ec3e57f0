// Command rollgate-probe is the real node's test workload: a pod that reaches the API server
// through the `kubernetes` Service, the way any in-cluster client does (the Service's address
// from the environment, the pod's ServiceAccount token, the cluster CA from the token volume),
// and serves what it learnt over HTTP, so a test reaching it through a Service's ClusterIP sees
// both paths work.
//
// GET /ready answers 200 once the API server has told the pod who it is (a SelfSubjectReview),
// 503 before; GET / answers {"apiServer": ..., "user": ..., "error": ...}. Only the standard
// library: the image is one small static binary.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// status is what the probe has learnt so far.
type status struct {
	APIServer string `json:"apiServer"`
	User      string `json:"user,omitempty"`
	Error     string `json:"error,omitempty"`
}

func main() {
	listen := flag.String("listen", ":8080", "address to serve on")
	flag.Parse()
	apiServer := net.JoinHostPort(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"))
	var mu sync.Mutex
	current := status{APIServer: apiServer, Error: "not asked yet"}
	go func() {
		for {
			user, err := whoAmI(apiServer)
			mu.Lock()
			current.User, current.Error = user, ""
			if err != nil {
				current.Error = err.Error()
			}
			mu.Unlock()
			if err != nil {
				log.Printf("probe: %v", err)
				time.Sleep(time.Second)
				continue
			}
			log.Printf("probe: the API server at %s knows this pod as %s", apiServer, user)
			time.Sleep(10 * time.Second)
		}
	}()
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(current)
	})
	http.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if current.User == "" {
			http.Error(w, current.Error, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	log.Fatal(http.ListenAndServe(*listen, nil))
}

// whoAmI asks the API server, as this pod's ServiceAccount, who it is.
func whoAmI(apiServer string) (string, error) {
	token, err := os.ReadFile(filepath.Join(serviceAccountDir, "token"))
	if err != nil {
		return "", err
	}
	caPEM, err := os.ReadFile(filepath.Join(serviceAccountDir, "ca.crt"))
	if err != nil {
		return "", err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return "", fmt.Errorf("no certificate in %s/ca.crt", serviceAccountDir)
	}
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
	}
	body := []byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`)
	request, err := http.NewRequest(http.MethodPost, "https://"+apiServer+"/apis/authentication.k8s.io/v1/selfsubjectreviews", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	request.Header.Set("Authorization", "Bearer "+string(bytes.TrimSpace(token)))
	request.Header.Set("Content-Type", "application/json")
	response, err := client.Do(request)
	if err != nil {
		return "", err
	}
	defer response.Body.Close()
	var review struct {
		Status struct {
			UserInfo struct {
				Username string `json:"username"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if response.StatusCode != http.StatusCreated && response.StatusCode != http.StatusOK {
		return "", fmt.Errorf("SelfSubjectReview: HTTP %d", response.StatusCode)
	}
	if err := json.NewDecoder(response.Body).Decode(&review); err != nil {
		return "", err
	}
	return review.Status.UserInfo.Username, nil
}
